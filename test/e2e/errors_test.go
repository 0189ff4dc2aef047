package e2e

import (
	"context"
	"encoding/json"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/lambda"
	"github.com/aws/aws-sdk-go-v2/service/lambda/types"
)

// TestInvokeErrors drives every way an invocation can fail through the
// Invoke API of one server: function errors and platform-detected failures
// come back as HTTP 200 with X-Amz-Function-Error, refusals as AWS errors.
func TestInvokeErrors(t *testing.T) {
	s := newServer(t)
	img := s.pushProbe(t, "probe:errors", "PROBE_VERSION=1")
	s.createFunction(t, "errs", img)
	s.createFunction(t, "short", img, func(in *lambda.CreateFunctionInput) { in.Timeout = aws.Int32(1) })
	s.createFunction(t, "small", img, func(in *lambda.CreateFunctionInput) { in.MemorySize = aws.Int32(128) })
	s.createFunction(t, "noentry", img, func(in *lambda.CreateFunctionInput) {
		in.ImageConfig = &types.ImageConfig{EntryPoint: []string{"/nope"}}
	})

	// recovers checks that fname serves again after a failure, and returns
	// the environment that served it.
	recovers := func(t *testing.T, fname string) string {
		t.Helper()
		out, res := invoke(t, s, fname, map[string]any{"op": "echo", "text": "again"})
		if out.FunctionError != nil || res["text"] != "again" {
			t.Fatalf("invoke after the failure: function error %q: %s", aws.ToString(out.FunctionError), out.Payload)
		}
		return res["env"].(string)
	}

	t.Run("function error", func(t *testing.T) {
		typ, msg, _ := functionErrorOf(t, s, "errs", map[string]any{"op": "error", "text": "boom"})
		if !strings.Contains(msg, "probe failed on purpose: boom") {
			t.Errorf("errorMessage = %q, want the function's error", msg)
		}
		if typ != "errorString" { // aws-lambda-go: the error's Go type
			t.Errorf("errorType = %q, want errorString", typ)
		}
		recovers(t, "errs")
	})

	t.Run("panic", func(t *testing.T) {
		_, msg, _ := functionErrorOf(t, s, "errs", map[string]any{"op": "panic"})
		if !strings.Contains(msg, "probe panics on purpose") {
			t.Errorf("errorMessage = %q, want the panic value", msg)
		}
		// aws-lambda-go exits after reporting a panic: the next
		// invocation must get a working environment.
		recovers(t, "errs")
	})

	t.Run("timeout", func(t *testing.T) {
		before := mustInvoke(t, s, "short", map[string]any{"op": "echo"})["env"]
		typ, msg, out := functionErrorOf(t, s, "short", map[string]any{"op": "sleep", "ms": 3000}, withTail)
		if typ != "Sandbox.Timedout" {
			t.Errorf("errorType = %q, want Sandbox.Timedout", typ)
		}
		if !strings.Contains(msg, "Task timed out after 1.00 seconds") {
			t.Errorf("errorMessage = %q, want Task timed out after 1.00 seconds", msg)
		}
		if tail := tailOf(t, out); !strings.Contains(tail, "Task timed out after 1.00 seconds") {
			t.Errorf("log tail lacks the timeout line:\n%s", tail)
		}
		if after := recovers(t, "short"); after == before {
			t.Errorf("invoke after a timeout ran in the timed-out environment %s, want a fresh one", after)
		}
	})

	t.Run("crash", func(t *testing.T) {
		typ, msg, out := functionErrorOf(t, s, "errs", map[string]any{"op": "exit", "log": "about to exit"}, withTail)
		if typ != "Runtime.ExitError" {
			t.Errorf("errorType = %q, want Runtime.ExitError", typ)
		}
		if !strings.Contains(msg, "exit status 3") {
			t.Errorf("errorMessage = %q, want it to say exit status 3", msg)
		}
		tail := tailOf(t, out)
		for _, want := range []string{"about to exit", "START RequestId: ", "END RequestId: ", "REPORT RequestId: "} {
			if !strings.Contains(tail, want) {
				t.Errorf("log tail of a crash lacks %q:\n%s", want, tail)
			}
		}
		recovers(t, "errs")
	})

	t.Run("out of memory", func(t *testing.T) {
		typ, msg, _ := functionErrorOf(t, s, "small", map[string]any{"op": "oom", "mb": 400})
		if typ != "Runtime.OutOfMemory" {
			t.Errorf("errorType = %q (%s), want Runtime.OutOfMemory", typ, msg)
		}
		recovers(t, "small")
	})

	t.Run("bad entrypoint", func(t *testing.T) {
		typ, msg, out := functionErrorOf(t, s, "noentry", map[string]any{"op": "echo"}, withTail)
		if typ != "Runtime.InvalidEntrypoint" || !strings.Contains(msg, "/nope") {
			t.Errorf("errorType = %q, errorMessage %q; want Runtime.InvalidEntrypoint naming /nope", typ, msg)
		}
		// Lambda logs every invocation, one that failed to start too.
		tail := tailOf(t, out)
		for _, want := range []string{"START RequestId: ", "END RequestId: ", "REPORT RequestId: "} {
			if !strings.Contains(tail, want) {
				t.Errorf("log tail of a failed start lacks %q:\n%s", want, tail)
			}
		}
	})

	t.Run("request too large", func(t *testing.T) {
		payload := []byte(`"` + strings.Repeat("x", 6*1024*1024+100) + `"`)
		r := s.do(t, "POST", "/2015-03-31/functions/errs/invocations", payload, nil)
		if r.status != 413 || r.header.Get("X-Amzn-ErrorType") != "RequestTooLargeException" {
			t.Errorf("7 MB request: HTTP %d X-Amzn-ErrorType %q: %.200s; want 413 RequestTooLargeException",
				r.status, r.header.Get("X-Amzn-ErrorType"), r.body)
		}
		if r.header.Get("X-Amzn-RequestId") == "" {
			t.Error("413 response has no x-amzn-RequestId")
		}
		var body struct{ Type, Message string }
		if err := json.Unmarshal(r.body, &body); err != nil || body.Message == "" {
			t.Errorf("413 body = %.200s, want {Type, Message}", r.body)
		}
	})

	t.Run("response too large", func(t *testing.T) {
		typ, msg, _ := functionErrorOf(t, s, "errs", map[string]any{"op": "big", "bytes": 7000000})
		if typ != "Function.ResponseSizeTooLarge" || !strings.Contains(msg, "Response payload size exceeded maximum allowed payload size") {
			t.Errorf("errorType = %q, errorMessage %q; want Function.ResponseSizeTooLarge, Response payload size exceeded …", typ, msg)
		}
		recovers(t, "errs")
	})

	t.Run("dry run", func(t *testing.T) {
		out, err := s.Lambda.Invoke(context.Background(), &lambda.InvokeInput{
			FunctionName: aws.String("errs"), InvocationType: types.InvocationTypeDryRun, Payload: []byte(`{}`),
		})
		if err != nil {
			t.Fatalf("DryRun: %v", err)
		}
		if out.StatusCode != 204 || len(out.Payload) != 0 {
			t.Errorf("DryRun = HTTP %d %q, want 204 and no body", out.StatusCode, out.Payload)
		}
	})

	t.Run("event", func(t *testing.T) {
		// Event invocations are queued durably and answered 202 with no body
		// (their delivery is covered by the async tests). The echo op keeps
		// it from disturbing the subtests after it.
		out, err := s.Lambda.Invoke(context.Background(), &lambda.InvokeInput{
			FunctionName: aws.String("errs"), InvocationType: types.InvocationTypeEvent, Payload: []byte(`{"op":"echo"}`),
		})
		if err != nil {
			t.Fatalf("Event invoke: %v", err)
		}
		if out.StatusCode != 202 || len(out.Payload) != 0 {
			t.Errorf("Event invoke = HTTP %d %q, want 202 and no body", out.StatusCode, out.Payload)
		}
	})

	t.Run("tail of an error", func(t *testing.T) {
		const line = "logged before failing"
		_, _, out := functionErrorOf(t, s, "errs", map[string]any{"op": "error", "log": line}, withTail)
		tail := tailOf(t, out)
		for _, want := range []string{line, "START RequestId: ", "END RequestId: ", "REPORT RequestId: "} {
			if !strings.Contains(tail, want) {
				t.Errorf("log tail lacks %q:\n%s", want, tail)
			}
		}
	})

	t.Run("invalid JSON payload", func(t *testing.T) {
		r := s.do(t, "POST", "/2015-03-31/functions/errs/invocations", []byte(`{"op":`), nil)
		if r.status != 400 || r.header.Get("X-Amzn-ErrorType") != "InvalidRequestContentException" {
			t.Errorf("invalid JSON payload: HTTP %d %q, want 400 InvalidRequestContentException",
				r.status, r.header.Get("X-Amzn-ErrorType"))
		}
	})
}
