package e2e

import (
	"context"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/lambda"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	sqstypes "github.com/aws/aws-sdk-go-v2/service/sqs/types"
)

// TestSQSProducers: a producer written against SQS (aws-sdk-go-v2's SQS
// client, pointed at Kappa) creates a queue and sends to it, and an event
// source mapping hands the messages to the function with the message ids
// SendMessage answered.
func TestSQSProducers(t *testing.T) {
	s := newServer(t)
	ctx := context.Background()
	img := s.pushProbe(t, "probe:sqs")
	s.createFunction(t, "sqs-consumer", img)
	q := sqs.New(sqs.Options{Region: "us-east-1", BaseEndpoint: aws.String("http://" + s.addr),
		Credentials: credentials.NewStaticCredentialsProvider("kappa", "kappa", "")})

	created, err := q.CreateQueue(ctx, &sqs.CreateQueueInput{QueueName: aws.String("orders")})
	if err != nil {
		t.Fatal(err)
	}
	attrs, err := q.GetQueueAttributes(ctx, &sqs.GetQueueAttributesInput{QueueUrl: created.QueueUrl,
		AttributeNames: []sqstypes.QueueAttributeName{sqstypes.QueueAttributeNameQueueArn}})
	if err != nil || attrs.Attributes["QueueArn"] != queueARN("orders") {
		t.Fatalf("QueueArn = %v, %v", attrs, err)
	}
	m, err := s.Lambda.CreateEventSourceMapping(ctx, &lambda.CreateEventSourceMappingInput{
		FunctionName: aws.String("sqs-consumer"), EventSourceArn: aws.String(attrs.Attributes["QueueArn"])})
	if err != nil {
		t.Fatal(err)
	}
	s.waitESM(t, aws.ToString(m.UUID), "Enabled")

	one, err := q.SendMessage(ctx, &sqs.SendMessageInput{QueueUrl: created.QueueUrl, MessageBody: aws.String("order-1")})
	if err != nil {
		t.Fatal(err)
	}
	batch, err := q.SendMessageBatch(ctx, &sqs.SendMessageBatchInput{QueueUrl: created.QueueUrl, Entries: []sqstypes.SendMessageBatchRequestEntry{
		{Id: aws.String("a"), MessageBody: aws.String("order-2")}, {Id: aws.String("b"), MessageBody: aws.String("order-3")}}})
	if err != nil || len(batch.Successful) != 2 {
		t.Fatalf("SendMessageBatch = %+v, %v", batch, err)
	}
	ids := map[string]string{"order-1": aws.ToString(one.MessageId)}
	for _, e := range batch.Successful {
		ids[map[string]string{"a": "order-2", "b": "order-3"}[aws.ToString(e.Id)]] = aws.ToString(e.MessageId)
	}
	// The probe prints each record with its message id.
	lines := s.waitSQS(t, "sqs-consumer", "the three orders", func(ls []sqsLine) bool {
		return len(bodyCounts(ls, "order-1")) > 0 && len(bodyCounts(ls, "order-2")) > 0 && len(bodyCounts(ls, "order-3")) > 0
	})
	for _, l := range lines {
		if l.source != queueARN("orders") || l.id != ids[l.body] {
			t.Errorf("record %q: source %s, message id %s; want %s and SendMessage's %s", l.body, l.source, l.id, queueARN("orders"), ids[l.body])
		}
	}
}
