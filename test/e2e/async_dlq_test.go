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

// TestAsyncDeadLetterQueue: an event that fails for good, with no OnFailure
// destination, goes to the function's DeadLetterConfig target — the event
// itself, not a destination record, as Lambda sends to a DLQ.
func TestAsyncDeadLetterQueue(t *testing.T) {
	s := newServer(t, asyncFlags...)
	ctx := context.Background()
	img := s.pushProbe(t, "probe:dlq")
	s.createFunction(t, "dlq", img, func(in *lambda.CreateFunctionInput) {
		in.DeadLetterConfig = &types.DeadLetterConfig{TargetArn: aws.String(queueARN("dead"))}
	})
	fn, err := s.Lambda.GetFunctionConfiguration(ctx, &lambda.GetFunctionConfigurationInput{FunctionName: aws.String("dlq")})
	if err != nil || fn.DeadLetterConfig == nil || aws.ToString(fn.DeadLetterConfig.TargetArn) != queueARN("dead") {
		t.Fatalf("DeadLetterConfig = %+v, %v", fn.DeadLetterConfig, err)
	}
	_, err = s.Lambda.UpdateFunctionConfiguration(ctx, &lambda.UpdateFunctionConfigurationInput{
		FunctionName: aws.String("dlq"), DeadLetterConfig: &types.DeadLetterConfig{TargetArn: aws.String("not-an-arn")}})
	asWireError(t, err).check(t, "bad DLQ ARN", 400, "InvalidParameterValueException")

	zero := int32(0)
	s.putEventConfig(t, "dlq", &zero, "", "")
	q := s.queue("dead")
	s.invokeEvent(t, "dlq", map[string]any{"op": "error", "text": "to the DLQ"})
	deadline := time.Now().Add(30 * time.Second)
	for len(q.all) == 0 && time.Now().Before(deadline) {
		q.poll(t, time.Second)
	}
	if len(q.all) != 1 {
		t.Fatalf("dead-letter queue holds %d messages, want 1", len(q.all))
	}
	var ev map[string]any
	if err := json.Unmarshal(q.all[0].Body, &ev); err != nil || ev["op"] != "error" || ev["text"] != "to the DLQ" {
		t.Errorf("dead letter = %s, want the event itself", q.all[0].Body)
	}
}
