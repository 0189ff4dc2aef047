package e2e

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/lambda"
	"github.com/aws/aws-sdk-go-v2/service/lambda/types"
)

// TestRecursiveLoops: a function whose success destination is itself is a
// loop. With the default recursive loop detection (Terminate) one event
// runs the function 16 times and the 17th invocation is stopped, the event
// going to the on-failure destination; with RecursiveLoop Allow, set
// through the SDK, the chain goes on. GetFunctionRecursionConfig reads the
// setting back.
func TestRecursiveLoops(t *testing.T) {
	s := newServer(t)
	ctx := context.Background()
	img := s.pushProbe(t, "probe:loop")
	for _, fn := range []string{"loop", "loop-allowed"} {
		s.createFunction(t, fn, img)
		s.putEventConfig(t, fn, aws.Int32(0), fnARN(fn), queueARN(fn+"-failed"))
	}

	got, err := s.Lambda.GetFunctionRecursionConfig(ctx, &lambda.GetFunctionRecursionConfigInput{FunctionName: aws.String("loop")})
	if err != nil || got.RecursiveLoop != types.RecursiveLoopTerminate {
		t.Fatalf("GetFunctionRecursionConfig = %v, %v; want the default Terminate", got, err)
	}
	put, err := s.Lambda.PutFunctionRecursionConfig(ctx, &lambda.PutFunctionRecursionConfigInput{
		FunctionName: aws.String("loop-allowed"), RecursiveLoop: types.RecursiveLoopAllow})
	if err != nil || put.RecursiveLoop != types.RecursiveLoopAllow {
		t.Fatalf("PutFunctionRecursionConfig = %v, %v; want Allow", put, err)
	}
	_, err = s.Lambda.PutFunctionRecursionConfig(ctx, &lambda.PutFunctionRecursionConfigInput{
		FunctionName: aws.String("loop"), RecursiveLoop: "Sometimes"})
	asWireError(t, err).check(t, "PutFunctionRecursionConfig outside the enum", 400, "ValidationException")

	failed := s.queue("loop-failed")
	s.invokeEvent(t, "loop", map[string]any{"op": "noop"})
	rec := failed.records(t, 1, 30*time.Second)[0]
	if rec.RequestContext.Condition != "RecursiveInvocationException" || rec.ResponseContext.StatusCode != 400 {
		t.Errorf("on-failure record: condition %q, status %d; want RecursiveInvocationException and 400",
			rec.RequestContext.Condition, rec.ResponseContext.StatusCode)
	}
	ran := func(fn string) float64 {
		v, _ := sample(s.scrape(t), "kappa_invocations_total", map[string]string{"function": fn, "version": "$LATEST", "alias": ""})
		return v
	}
	if n := ran("loop"); n != 16 {
		t.Errorf("the loop ran %v times, want 16", n)
	}
	// The record of the stopped event holds the records of the chain.
	depth := 0
	for payload := rec.RequestPayload; ; depth++ {
		var inner destRecord
		if json.Unmarshal(payload, &inner) != nil || inner.RequestContext.RequestID == "" {
			break
		}
		payload = inner.RequestPayload
	}
	if depth != 16 {
		t.Errorf("the stopped event nests %d records, want the 16 of its chain", depth)
	}

	// Allowed, the loop runs past 16 invocations; it is then stopped by
	// turning detection back on, which ends the chain at its next hop.
	s.invokeEvent(t, "loop-allowed", map[string]any{"op": "noop"})
	if !eventually(60*time.Second, func() bool { return ran("loop-allowed") > 20 }) {
		t.Fatalf("loop-allowed ran %v times, want more than 16", ran("loop-allowed"))
	}
	if _, err := s.Lambda.PutFunctionRecursionConfig(ctx, &lambda.PutFunctionRecursionConfigInput{
		FunctionName: aws.String("loop-allowed"), RecursiveLoop: types.RecursiveLoopTerminate}); err != nil {
		t.Fatal(err)
	}
	if r := s.queue("loop-allowed-failed").records(t, 1, 30*time.Second)[0]; r.RequestContext.Condition != "RecursiveInvocationException" {
		t.Errorf("loop-allowed ended with %q, want RecursiveInvocationException", r.RequestContext.Condition)
	}
}
