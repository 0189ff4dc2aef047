package e2e

import (
	"context"
	"encoding/json"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/lambda"
	"github.com/aws/aws-sdk-go-v2/service/lambda/types"
)

// asyncFlags shorten Lambda's retry delays (1 and 2 minutes) and back-off
// so that the tests see retries within seconds.
var asyncFlags = []string{"--async-retry-delay", "500ms", "--async-backoff-min", "100ms", "--async-backoff-max", "1s", "--async-ack-wait", "5s"}

// TestAsyncInvocations drives Event invocations end to end: the event
// invoke configuration API through the SDK, destinations (a queue and a
// function), retries, payload limits, reserved concurrency and the
// queue's CLI.
func TestAsyncInvocations(t *testing.T) {
	s := newServer(t, asyncFlags...)
	ctx := context.Background()
	img := s.pushProbe(t, "probe:async")
	for _, fn := range []string{"ev", "chain", "busy", "sync"} {
		s.createFunction(t, fn, img)
	}

	t.Run("event invoke config API", func(t *testing.T) {
		_, err := s.Lambda.GetFunctionEventInvokeConfig(ctx, &lambda.GetFunctionEventInvokeConfigInput{FunctionName: aws.String("ev")})
		asWireError(t, err).check(t, "Get before Put", 404, "ResourceNotFoundException")
		put, err := s.Lambda.PutFunctionEventInvokeConfig(ctx, &lambda.PutFunctionEventInvokeConfigInput{
			FunctionName: aws.String("ev"), MaximumRetryAttempts: aws.Int32(1),
			DestinationConfig: &types.DestinationConfig{OnSuccess: &types.OnSuccess{Destination: aws.String(queueARN("ev-ok"))}},
		})
		if err != nil {
			t.Fatal(err)
		}
		if aws.ToString(put.FunctionArn) != fnARN("ev")+":$LATEST" || aws.ToInt32(put.MaximumRetryAttempts) != 1 ||
			put.MaximumEventAgeInSeconds != nil || put.LastModified == nil || time.Since(*put.LastModified) > time.Minute ||
			aws.ToString(put.DestinationConfig.OnSuccess.Destination) != queueARN("ev-ok") {
			t.Errorf("Put = %+v", put)
		}
		upd, err := s.Lambda.UpdateFunctionEventInvokeConfig(ctx, &lambda.UpdateFunctionEventInvokeConfigInput{
			FunctionName: aws.String("ev"), MaximumEventAgeInSeconds: aws.Int32(600),
			DestinationConfig: &types.DestinationConfig{OnFailure: &types.OnFailure{Destination: aws.String(queueARN("ev-bad"))}},
		})
		if err != nil || aws.ToInt32(upd.MaximumRetryAttempts) != 1 || aws.ToInt32(upd.MaximumEventAgeInSeconds) != 600 ||
			aws.ToString(upd.DestinationConfig.OnSuccess.Destination) != queueARN("ev-ok") || aws.ToString(upd.DestinationConfig.OnFailure.Destination) != queueARN("ev-bad") {
			t.Errorf("Update = %+v, %v", upd, err)
		}
		list, err := s.Lambda.ListFunctionEventInvokeConfigs(ctx, &lambda.ListFunctionEventInvokeConfigsInput{FunctionName: aws.String("ev")})
		if err != nil || len(list.FunctionEventInvokeConfigs) != 1 {
			t.Errorf("List = %+v, %v", list, err)
		}
		_, err = s.Lambda.PutFunctionEventInvokeConfig(ctx, &lambda.PutFunctionEventInvokeConfigInput{FunctionName: aws.String("ev"), MaximumRetryAttempts: aws.Int32(3)})
		asWireError(t, err).check(t, "MaximumRetryAttempts 3", 400, "ValidationException")
		_, err = s.Lambda.PutFunctionEventInvokeConfig(ctx, &lambda.PutFunctionEventInvokeConfigInput{FunctionName: aws.String("ev"), MaximumEventAgeInSeconds: aws.Int32(30)})
		asWireError(t, err).check(t, "MaximumEventAgeInSeconds 30", 400, "ValidationException")
		_, err = s.Lambda.PutFunctionEventInvokeConfig(ctx, &lambda.PutFunctionEventInvokeConfigInput{FunctionName: aws.String("ev"),
			DestinationConfig: &types.DestinationConfig{OnSuccess: &types.OnSuccess{Destination: aws.String("arn:aws:sns:us-east-1:000000000000:t")}}})
		asWireError(t, err).check(t, "SNS destination", 400, "InvalidParameterValueException")
		if _, err := s.Lambda.DeleteFunctionEventInvokeConfig(ctx, &lambda.DeleteFunctionEventInvokeConfigInput{FunctionName: aws.String("ev")}); err != nil {
			t.Fatal(err)
		}
	})

	t.Run("success goes to the queue", func(t *testing.T) {
		s.putEventConfig(t, "ev", nil, queueARN("ev-ok"), queueARN("ev-bad"))
		q := s.queue("ev-ok")
		id := s.invokeEvent(t, "ev", map[string]any{"op": "echo", "text": "async hello"})
		r := q.records(t, 1, 30*time.Second)[0]
		if r.Version != "1.0" || r.RequestContext.RequestID != id || r.RequestContext.Condition != "Success" ||
			r.RequestContext.ApproximateInvokeCount != 1 || r.RequestContext.FunctionArn != fnARN("ev")+":$LATEST" ||
			r.ResponseContext.StatusCode != 200 || r.ResponseContext.ExecutedVersion != "$LATEST" || r.ResponseContext.FunctionError != "" {
			t.Errorf("record = %+v", r)
		}
		if _, err := time.Parse("2006-01-02T15:04:05.000Z", r.Timestamp); err != nil {
			t.Errorf("timestamp %q: %v", r.Timestamp, err)
		}
		var req, resp map[string]any
		json.Unmarshal(r.RequestPayload, &req)
		json.Unmarshal(r.ResponsePayload, &resp)
		if req["text"] != "async hello" || resp["text"] != "async hello" || resp["requestId"] != id {
			t.Errorf("requestPayload %s responsePayload %s", r.RequestPayload, r.ResponsePayload)
		}
	})

	t.Run("InvokeAsync", func(t *testing.T) {
		q := s.queue("ev-ok")
		q.poll(t, 0)
		before := len(q.all)
		r := s.do(t, "POST", "/2014-11-13/functions/ev/invoke-async/", []byte(`{"op":"echo","text":"legacy"}`), nil)
		if r.status != 202 || strings.TrimSpace(string(r.body)) != `{"Status":202}` {
			t.Fatalf("InvokeAsync = %d %s", r.status, r.body)
		}
		rec := q.records(t, before+1, 30*time.Second)[before]
		if rec.RequestContext.RequestID != r.header.Get("X-Amzn-Requestid") || !strings.Contains(string(rec.ResponsePayload), "legacy") {
			t.Errorf("record = %+v", rec)
		}
	})

	t.Run("payload limit", func(t *testing.T) {
		q := s.queue("ev-ok")
		q.poll(t, 0)
		before := len(q.all)
		// Exactly 1 MB: {"op":"echo","text":"xxx…"}.
		prefix := `{"op":"echo","text":"`
		payload := prefix + strings.Repeat("x", 1<<20-len(prefix)-2) + `"}`
		out, err := s.Lambda.Invoke(ctx, &lambda.InvokeInput{FunctionName: aws.String("ev"), InvocationType: types.InvocationTypeEvent, Payload: []byte(payload)})
		if err != nil || out.StatusCode != 202 {
			t.Fatalf("1 MB event: %v", err)
		}
		rec := q.records(t, before+1, 30*time.Second)[before]
		if rec.RequestContext.RequestID != requestIDOf(out.ResultMetadata) || rec.RequestContext.Condition != "Success" {
			t.Errorf("record of the 1 MB event = %+v", rec.RequestContext)
		}
		_, err = s.Lambda.Invoke(ctx, &lambda.InvokeInput{FunctionName: aws.String("ev"), InvocationType: types.InvocationTypeEvent, Payload: []byte(payload + " ")})
		asWireError(t, err).check(t, "1 MB + 1 event", 413, "RequestTooLargeException")
	})

	t.Run("retries exhausted go to OnFailure", func(t *testing.T) {
		s.putEventConfig(t, "ev", nil, queueARN("ev-ok"), queueARN("ev-bad"))
		q := s.queue("ev-bad")
		start := time.Now()
		id := s.invokeEvent(t, "ev", map[string]any{"op": "error", "text": "always"})
		r := q.records(t, 1, 30*time.Second)[0]
		took := time.Since(start)
		if r.RequestContext.RequestID != id || r.RequestContext.Condition != "RetriesExhausted" || r.RequestContext.ApproximateInvokeCount != 3 ||
			r.ResponseContext.FunctionError != "Unhandled" || !strings.Contains(string(r.ResponsePayload), "probe failed on purpose: always") {
			t.Errorf("record = %+v %s", r.RequestContext, r.ResponsePayload)
		}
		// Retries after 500 ms and 1 s (Lambda's 1 and 2 minutes, scaled).
		if took < 1500*time.Millisecond {
			t.Errorf("three attempts took %v, want at least the two retry delays (1.5 s)", took)
		}
	})

	t.Run("a retry that succeeds", func(t *testing.T) {
		// One environment, so the retry finds the mark the first attempt left in /tmp.
		if _, err := s.Lambda.PutFunctionConcurrency(ctx, &lambda.PutFunctionConcurrencyInput{FunctionName: aws.String("chain"), ReservedConcurrentExecutions: aws.Int32(1)}); err != nil {
			t.Fatal(err)
		}
		defer s.Lambda.DeleteFunctionConcurrency(ctx, &lambda.DeleteFunctionConcurrencyInput{FunctionName: aws.String("chain")})
		s.putEventConfig(t, "chain", nil, queueARN("flaky-ok"), "")
		q := s.queue("flaky-ok")
		s.invokeEvent(t, "chain", map[string]any{"op": "flaky", "text": "once"})
		r := q.records(t, 1, 30*time.Second)[0]
		if r.RequestContext.Condition != "Success" || r.RequestContext.ApproximateInvokeCount != 2 || !strings.Contains(string(r.ResponsePayload), `"recovered":true`) {
			t.Errorf("record = %+v %s", r.RequestContext, r.ResponsePayload)
		}
	})

	t.Run("function destination", func(t *testing.T) {
		s.putEventConfig(t, "ev", nil, fnARN("chain"), "")
		s.putEventConfig(t, "chain", nil, queueARN("chained"), "")
		q := s.queue("chained")
		id := s.invokeEvent(t, "ev", map[string]any{"op": "echo", "text": "hop"})
		r := q.records(t, 1, 30*time.Second)[0]
		if r.RequestContext.FunctionArn != fnARN("chain")+":$LATEST" {
			t.Errorf("final record from %s", r.RequestContext.FunctionArn)
		}
		var inner destRecord
		if err := json.Unmarshal(r.RequestPayload, &inner); err != nil || inner.RequestContext.RequestID != id || inner.RequestContext.Condition != "Success" {
			t.Errorf("chain was invoked with %s (%v), want ev's record", r.RequestPayload, err)
		}
	})

	t.Run("reserved concurrency throttles but keeps events", func(t *testing.T) {
		if _, err := s.Lambda.PutFunctionConcurrency(ctx, &lambda.PutFunctionConcurrencyInput{FunctionName: aws.String("busy"), ReservedConcurrentExecutions: aws.Int32(1)}); err != nil {
			t.Fatal(err)
		}
		s.putEventConfig(t, "busy", aws.Int32(0), queueARN("busy-done"), queueARN("busy-failed"))
		const n = 8
		want := map[string]bool{}
		for i := 0; i < n; i++ {
			want[s.invokeEvent(t, "busy", map[string]any{"op": "sleep", "ms": 200})] = true
		}
		// A synchronous invocation of busy meanwhile competes for its one
		// slot (and may be throttled); other functions are not slowed.
		var wg sync.WaitGroup
		var syncErr error
		var worst time.Duration
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 10; i++ {
				start := time.Now()
				_, err := s.Lambda.Invoke(ctx, &lambda.InvokeInput{FunctionName: aws.String("sync"), Payload: []byte(`{"op":"echo"}`)})
				if err != nil {
					syncErr = err
					return
				}
				worst = max(worst, time.Since(start))
				time.Sleep(50 * time.Millisecond)
			}
		}()
		q := s.queue("busy-done")
		recs := q.records(t, n, 60*time.Second)
		wg.Wait()
		if syncErr != nil {
			t.Errorf("synchronous invocations of another function failed while busy's events waited: %v", syncErr)
		}
		for _, r := range recs {
			delete(want, r.RequestContext.RequestID)
		}
		if len(want) != 0 {
			t.Errorf("%d events lost", len(want))
		}
		if failed := s.readQueue(t, "busy-failed", 0, 0); len(failed) != 0 {
			t.Errorf("%d events failed: throttles must be retried, not counted", len(failed))
		}
		t.Logf("slowest synchronous invoke of another function while busy drained: %v", worst)
	})

	t.Run("kappa queue tail", func(t *testing.T) {
		out, err := exec.Command(kappaBin, "queue", "tail", "busy-done", "--endpoint", "http://"+s.addr).CombinedOutput()
		if err != nil {
			t.Fatalf("kappa queue tail: %v\n%s", err, out)
		}
		lines := strings.Split(strings.TrimSpace(string(out)), "\n")
		var r destRecord
		if len(lines) != 8 || json.Unmarshal([]byte(lines[0]), &r) != nil || r.RequestContext.Condition != "Success" {
			t.Errorf("tail printed %d lines:\n%s", len(lines), out)
		}
		out, err = exec.Command(kappaBin, "queue", "list", "--endpoint", "http://"+s.addr).CombinedOutput()
		if err != nil || !strings.Contains(string(out), "busy-done") || !strings.Contains(string(out), queueARN("busy-done")) {
			t.Errorf("kappa queue list: %v\n%s", err, out)
		}
	})

	t.Run("deleting a function deletes its config", func(t *testing.T) {
		s.createFunction(t, "gone", img)
		s.putEventConfig(t, "gone", nil, queueARN("gone"), "")
		if _, err := s.Lambda.DeleteFunction(ctx, &lambda.DeleteFunctionInput{FunctionName: aws.String("gone")}); err != nil {
			t.Fatal(err)
		}
		s.createFunction(t, "gone", img)
		_, err := s.Lambda.GetFunctionEventInvokeConfig(ctx, &lambda.GetFunctionEventInvokeConfigInput{FunctionName: aws.String("gone")})
		asWireError(t, err).check(t, "config of a re-created function", 404, "ResourceNotFoundException")
	})
}
