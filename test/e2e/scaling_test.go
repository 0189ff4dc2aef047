package e2e

import (
	"context"
	"encoding/json"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/lambda"
	"github.com/aws/aws-sdk-go-v2/service/lambda/types"
)

// accountLimits returns GetAccountSettings' ConcurrentExecutions and
// UnreservedConcurrentExecutions.
func accountLimits(t *testing.T, s *server) (limit, unreserved int32) {
	t.Helper()
	out, err := s.Lambda.GetAccountSettings(context.Background(), &lambda.GetAccountSettingsInput{})
	if err != nil {
		t.Fatalf("GetAccountSettings: %v", err)
	}
	if out.AccountLimit == nil {
		t.Fatal("GetAccountSettings has no AccountLimit")
	}
	return out.AccountLimit.ConcurrentExecutions, aws.ToInt32(out.AccountLimit.UnreservedConcurrentExecutions)
}

// checkThrottle requires err to be a 429 TooManyRequestsException with the
// given Reason and a Retry-After, as the SDK decodes them.
func checkThrottle(t *testing.T, what string, err error, reason types.ThrottleReason) {
	t.Helper()
	tm := throttleOf(err)
	if tm == nil {
		t.Errorf("%s: error %v, want TooManyRequestsException", what, err)
		return
	}
	asWireError(t, err).check(t, what, 429, "TooManyRequestsException")
	if tm.Reason != reason {
		t.Errorf("%s: Reason %q, want %q", what, tm.Reason, reason)
	}
	if n, err := strconv.Atoi(aws.ToString(tm.RetryAfterSeconds)); err != nil || n < 1 {
		t.Errorf("%s: Retry-After %q, want a positive number of seconds", what, aws.ToString(tm.RetryAfterSeconds))
	}
}

// TestReservedConcurrency drives PutFunctionConcurrency and its readers:
// reserved 0 throttles everything, reserved 2 admits exactly two concurrent
// invocations and refuses the rest at once, at least 100 of the account's
// 1,000 stay unreserved, and GetAccountSettings follows every change.
func TestReservedConcurrency(t *testing.T) {
	s := newServer(t)
	ctx := context.Background()
	img := s.pushProbe(t, "probe:thr")
	s.createFunction(t, "thr", img)
	s.createFunction(t, "other", img)

	t.Run("account settings without reservations", func(t *testing.T) {
		limit, unreserved := accountLimits(t, s)
		if limit != 1000 || unreserved != 1000 {
			t.Errorf("ConcurrentExecutions %d, UnreservedConcurrentExecutions %d; want 1000, 1000", limit, unreserved)
		}
		got, err := s.Lambda.GetFunctionConcurrency(ctx, &lambda.GetFunctionConcurrencyInput{FunctionName: aws.String("thr")})
		if err != nil {
			t.Fatal(err)
		}
		if got.ReservedConcurrentExecutions != nil {
			t.Errorf("GetFunctionConcurrency without a reservation = %d, want none", *got.ReservedConcurrentExecutions)
		}
	})

	t.Run("reserved 0 throttles every invocation", func(t *testing.T) {
		put, err := s.Lambda.PutFunctionConcurrency(ctx, &lambda.PutFunctionConcurrencyInput{
			FunctionName: aws.String("thr"), ReservedConcurrentExecutions: aws.Int32(0),
		})
		if err != nil {
			t.Fatal(err)
		}
		if put.ReservedConcurrentExecutions == nil || *put.ReservedConcurrentExecutions != 0 {
			t.Errorf("PutFunctionConcurrency answered %v, want 0", put.ReservedConcurrentExecutions)
		}
		got, err := s.Lambda.GetFunctionConcurrency(ctx, &lambda.GetFunctionConcurrencyInput{FunctionName: aws.String("thr")})
		if err != nil {
			t.Fatal(err)
		}
		if got.ReservedConcurrentExecutions == nil || *got.ReservedConcurrentExecutions != 0 {
			t.Errorf("GetFunctionConcurrency = %v, want 0", got.ReservedConcurrentExecutions)
		}
		fn, err := s.Lambda.GetFunction(ctx, &lambda.GetFunctionInput{FunctionName: aws.String("thr")})
		if err != nil {
			t.Fatal(err)
		}
		if fn.Concurrency == nil || aws.ToInt32(fn.Concurrency.ReservedConcurrentExecutions) != 0 || fn.Concurrency.ReservedConcurrentExecutions == nil {
			t.Errorf("GetFunction Concurrency = %+v, want ReservedConcurrentExecutions 0", fn.Concurrency)
		}

		_, err = s.Lambda.Invoke(ctx, &lambda.InvokeInput{FunctionName: aws.String("thr"), Payload: []byte(`{"op":"echo"}`)})
		checkThrottle(t, "Invoke with reserved concurrency 0", err, types.ThrottleReasonReservedFunctionConcurrentInvocationLimitExceeded)

		raw := s.do(t, "POST", "/2015-03-31/functions/thr/invocations", []byte(`{"op":"echo"}`), nil)
		if raw.status != 429 || raw.header.Get("X-Amzn-ErrorType") != "TooManyRequestsException" {
			t.Errorf("raw Invoke: HTTP %d, X-Amzn-ErrorType %q; want 429 TooManyRequestsException",
				raw.status, raw.header.Get("X-Amzn-ErrorType"))
		}
		if n, err := strconv.Atoi(raw.header.Get("Retry-After")); err != nil || n < 1 {
			t.Errorf("raw Invoke: Retry-After %q, want a positive number of seconds", raw.header.Get("Retry-After"))
		}
		var body struct{ Reason, Type string }
		if err := json.Unmarshal(raw.body, &body); err != nil || body.Reason != "ReservedFunctionConcurrentInvocationLimitExceeded" || body.Type != "User" {
			t.Errorf("raw Invoke body %s, want Type User and Reason ReservedFunctionConcurrentInvocationLimitExceeded", raw.body)
		}
		if ids := s.startedContainers(t); len(ids) != 0 {
			t.Errorf("throttled invocations started containers: %v", ids)
		}
		if _, unreserved := accountLimits(t, s); unreserved != 1000 {
			t.Errorf("UnreservedConcurrentExecutions with a reservation of 0 = %d, want 1000", unreserved)
		}
		// Other functions are not affected.
		mustInvoke(t, s, "other", map[string]any{"op": "echo"})
	})

	t.Run("reserved 2 admits two of four concurrent invocations", func(t *testing.T) {
		if _, err := s.Lambda.PutFunctionConcurrency(ctx, &lambda.PutFunctionConcurrencyInput{
			FunctionName: aws.String("thr"), ReservedConcurrentExecutions: aws.Int32(2),
		}); err != nil {
			t.Fatal(err)
		}
		if _, unreserved := accountLimits(t, s); unreserved != 998 {
			t.Errorf("UnreservedConcurrentExecutions with a reservation of 2 = %d, want 998", unreserved)
		}
		type result struct {
			err error
			seq int64
		}
		var finished atomic.Int64
		results := make(chan result, 4)
		var wg sync.WaitGroup
		for range 4 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				out, err := s.Lambda.Invoke(ctx, &lambda.InvokeInput{
					FunctionName: aws.String("thr"), Payload: []byte(`{"op":"sleep","ms":2500}`),
				})
				if err == nil && (out.StatusCode != 200 || out.FunctionError != nil) {
					t.Errorf("admitted invoke: HTTP %d, function error %q: %s", out.StatusCode, aws.ToString(out.FunctionError), out.Payload)
				}
				results <- result{err, finished.Add(1)}
			}()
		}
		wg.Wait()
		close(results)
		var ok, throttled []int64
		for r := range results {
			if r.err == nil {
				ok = append(ok, r.seq)
				continue
			}
			checkThrottle(t, "Invoke beyond reserved concurrency 2", r.err, types.ThrottleReasonReservedFunctionConcurrentInvocationLimitExceeded)
			throttled = append(throttled, r.seq)
		}
		if len(ok) != 2 || len(throttled) != 2 {
			t.Fatalf("%d succeeded and %d were throttled, want 2 and 2", len(ok), len(throttled))
		}
		// Nothing queues behind a throttle: the refused calls came back
		// while the admitted ones were still running.
		for _, th := range throttled {
			for _, o := range ok {
				if th > o {
					t.Errorf("a throttled invocation answered after an admitted one (order %v throttled, %v admitted)", throttled, ok)
				}
			}
		}
		mustInvoke(t, s, "thr", map[string]any{"op": "echo"})
	})

	t.Run("at least 100 stay unreserved", func(t *testing.T) {
		_, err := s.Lambda.PutFunctionConcurrency(ctx, &lambda.PutFunctionConcurrencyInput{
			FunctionName: aws.String("thr"), ReservedConcurrentExecutions: aws.Int32(901),
		})
		w := asWireError(t, err)
		w.check(t, "reserving 901 of 1000", 400, "InvalidParameterValueException")
		if !strings.Contains(w.message, "UnreservedConcurrentExecution below its minimum value of [100]") {
			t.Errorf("message %q does not name the minimum of 100", w.message)
		}
		if got, _ := s.Lambda.GetFunctionConcurrency(ctx, &lambda.GetFunctionConcurrencyInput{FunctionName: aws.String("thr")}); got == nil ||
			aws.ToInt32(got.ReservedConcurrentExecutions) != 2 {
			t.Errorf("a refused PutFunctionConcurrency changed the reservation: %+v", got)
		}
		if _, err := s.Lambda.PutFunctionConcurrency(ctx, &lambda.PutFunctionConcurrencyInput{
			FunctionName: aws.String("thr"), ReservedConcurrentExecutions: aws.Int32(900),
		}); err != nil {
			t.Fatalf("reserving 900 of 1000: %v", err)
		}
		if _, unreserved := accountLimits(t, s); unreserved != 100 {
			t.Errorf("UnreservedConcurrentExecutions = %d, want 100", unreserved)
		}
		_, err = s.Lambda.PutFunctionConcurrency(ctx, &lambda.PutFunctionConcurrencyInput{
			FunctionName: aws.String("other"), ReservedConcurrentExecutions: aws.Int32(1),
		})
		asWireError(t, err).check(t, "reserving 1 more with 100 unreserved", 400, "InvalidParameterValueException")
	})

	t.Run("delete", func(t *testing.T) {
		if _, err := s.Lambda.DeleteFunctionConcurrency(ctx, &lambda.DeleteFunctionConcurrencyInput{FunctionName: aws.String("thr")}); err != nil {
			t.Fatal(err)
		}
		got, err := s.Lambda.GetFunctionConcurrency(ctx, &lambda.GetFunctionConcurrencyInput{FunctionName: aws.String("thr")})
		if err != nil {
			t.Fatal(err)
		}
		if got.ReservedConcurrentExecutions != nil {
			t.Errorf("GetFunctionConcurrency after delete = %d, want none", *got.ReservedConcurrentExecutions)
		}
		fn, err := s.Lambda.GetFunction(ctx, &lambda.GetFunctionInput{FunctionName: aws.String("thr")})
		if err != nil {
			t.Fatal(err)
		}
		if fn.Concurrency != nil && fn.Concurrency.ReservedConcurrentExecutions != nil {
			t.Errorf("GetFunction after delete shows ReservedConcurrentExecutions %d", *fn.Concurrency.ReservedConcurrentExecutions)
		}
		if _, unreserved := accountLimits(t, s); unreserved != 1000 {
			t.Errorf("UnreservedConcurrentExecutions after delete = %d, want 1000", unreserved)
		}
		mustInvoke(t, s, "thr", map[string]any{"op": "echo"})
	})

	t.Run("unknown function", func(t *testing.T) {
		_, err := s.Lambda.PutFunctionConcurrency(ctx, &lambda.PutFunctionConcurrencyInput{
			FunctionName: aws.String("nope"), ReservedConcurrentExecutions: aws.Int32(1),
		})
		asWireError(t, err).check(t, "PutFunctionConcurrency of a missing function", 404, "ResourceNotFoundException")
	})
}

// TestAccountConcurrencyLimit runs a server with room for two environments
// and a configured account limit: a third concurrent invocation (of another
// slow function) is throttled with ConcurrentInvocationLimitExceeded, and
// the configured limit is what GetAccountSettings and the unreserved
// minimum use.
func TestAccountConcurrencyLimit(t *testing.T) {
	s := newServer(t, "--max-environments", "2", "--concurrency-limit", "150")
	ctx := context.Background()
	img := s.pushProbe(t, "probe:limit")
	for _, n := range []string{"lim-a", "lim-b", "lim-c"} {
		s.createFunction(t, n, img)
	}

	t.Run("account settings", func(t *testing.T) {
		limit, unreserved := accountLimits(t, s)
		if limit != 150 || unreserved != 150 {
			t.Errorf("ConcurrentExecutions %d, UnreservedConcurrentExecutions %d; want 150, 150", limit, unreserved)
		}
		_, err := s.Lambda.PutFunctionConcurrency(ctx, &lambda.PutFunctionConcurrencyInput{
			FunctionName: aws.String("lim-c"), ReservedConcurrentExecutions: aws.Int32(51),
		})
		asWireError(t, err).check(t, "reserving 51 of 150", 400, "InvalidParameterValueException")
		if _, err := s.Lambda.PutFunctionConcurrency(ctx, &lambda.PutFunctionConcurrencyInput{
			FunctionName: aws.String("lim-c"), ReservedConcurrentExecutions: aws.Int32(50),
		}); err != nil {
			t.Fatalf("reserving 50 of 150: %v", err)
		}
		if _, unreserved := accountLimits(t, s); unreserved != 100 {
			t.Errorf("UnreservedConcurrentExecutions = %d, want 100", unreserved)
		}
		if _, err := s.Lambda.DeleteFunctionConcurrency(ctx, &lambda.DeleteFunctionConcurrencyInput{FunctionName: aws.String("lim-c")}); err != nil {
			t.Fatal(err)
		}
	})

	t.Run("third concurrent environment is throttled", func(t *testing.T) {
		errs := make(chan error, 2)
		for _, n := range []string{"lim-a", "lim-b"} {
			go func() {
				out, err := s.Lambda.Invoke(ctx, &lambda.InvokeInput{FunctionName: aws.String(n), Payload: []byte(`{"op":"sleep","ms":4000}`)})
				if err == nil && out.FunctionError != nil {
					t.Errorf("Invoke %s: function error %s", n, out.Payload)
				}
				errs <- err
			}()
		}
		// Both environments exist and are busy.
		waitFor(t, 30*time.Second, "two busy environments", func() bool {
			h := s.health(t)
			return h.Environments.Live == 2 && h.Environments.Idle == 0
		})
		_, err := s.Lambda.Invoke(ctx, &lambda.InvokeInput{FunctionName: aws.String("lim-c"), Payload: []byte(`{"op":"echo"}`)})
		checkThrottle(t, "third concurrent invocation with --max-environments 2", err, types.ThrottleReasonConcurrentInvocationLimitExceeded)
		for range 2 {
			if err := <-errs; err != nil {
				t.Errorf("one of the first two invocations failed: %v", err)
			}
		}
		// With the others idle, the third function evicts one of them.
		waitFor(t, 30*time.Second, "two idle environments", func() bool { return s.health(t).Environments.Idle == 2 })
		mustInvoke(t, s, "lim-c", map[string]any{"op": "echo"})
		if h := s.health(t); h.Environments.Live > 2 {
			t.Errorf("%d live environments with --max-environments 2", h.Environments.Live)
		}
	})
}
