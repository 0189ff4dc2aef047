package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"syscall"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/lambda"
	"github.com/aws/aws-sdk-go-v2/service/lambda/types"
)

// This file holds what the event tests (async_*, funcurl_*, schedule_*)
// share: reading Kappa queues, destination records, and killing a server.

// destRecord is a destination record as Lambda writes it.
type destRecord struct {
	Version        string `json:"version"`
	Timestamp      string `json:"timestamp"`
	RequestContext struct {
		RequestID              string `json:"requestId"`
		FunctionArn            string `json:"functionArn"`
		Condition              string `json:"condition"`
		ApproximateInvokeCount int    `json:"approximateInvokeCount"`
	} `json:"requestContext"`
	RequestPayload  json.RawMessage `json:"requestPayload"`
	ResponseContext struct {
		StatusCode      int    `json:"statusCode"`
		ExecutedVersion string `json:"executedVersion"`
		FunctionError   string `json:"functionError"`
	} `json:"responseContext"`
	ResponsePayload json.RawMessage `json:"responsePayload"`
}

type queueMessage struct {
	Sequence uint64
	Time     string
	Body     json.RawMessage
}

// readQueue returns the messages of a Kappa queue after sequence after,
// waiting up to wait for the first. A missing queue reads as empty.
func (s *server) readQueue(t testing.TB, name string, after uint64, wait time.Duration) []queueMessage {
	t.Helper()
	u := s.URL(fmt.Sprintf("/kappa/queues/%s/messages?after=%d&max=1000&wait=%.1f", url.PathEscape(name), after, wait.Seconds()))
	resp, err := http.Get(u)
	if err != nil {
		t.Fatalf("read queue %s: %v", name, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode == http.StatusNotFound {
		time.Sleep(wait)
		return nil
	}
	var out struct{ Messages []queueMessage }
	if resp.StatusCode != 200 || json.NewDecoder(resp.Body).Decode(&out) != nil {
		t.Fatalf("read queue %s: HTTP %d", name, resp.StatusCode)
	}
	return out.Messages
}

// queueReader follows a queue.
type queueReader struct {
	s     *server
	name  string
	after uint64
	all   []queueMessage
}

func (s *server) queue(name string) *queueReader { return &queueReader{s: s, name: name} }

// poll reads whatever arrived since the last call.
func (q *queueReader) poll(t testing.TB, wait time.Duration) []queueMessage {
	t.Helper()
	msgs := q.s.readQueue(t, q.name, q.after, wait)
	if len(msgs) > 0 {
		q.after = msgs[len(msgs)-1].Sequence
		q.all = append(q.all, msgs...)
	}
	return msgs
}

// records waits until the queue holds n messages (in all) and decodes
// them as destination records.
func (q *queueReader) records(t testing.TB, n int, timeout time.Duration) []destRecord {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for len(q.all) < n {
		if time.Now().After(deadline) {
			t.Fatalf("queue %s: %d messages after %v, want %d", q.name, len(q.all), timeout, n)
		}
		q.poll(t, time.Second)
	}
	out := make([]destRecord, len(q.all))
	for i, m := range q.all {
		if err := json.Unmarshal(m.Body, &out[i]); err != nil {
			t.Fatalf("queue %s message %d is not a destination record: %v: %s", q.name, m.Sequence, err, m.Body)
		}
	}
	return out
}

// kill9 kills the server with SIGKILL, as a crash would.
func (s *server) kill9() {
	s.cmd.Process.Signal(syscall.SIGKILL)
	<-s.done
	s.cmd = nil
}

func queueARN(name string) string { return "arn:aws:sqs:us-east-1:000000000000:" + name }

func fnARN(name string) string { return "arn:aws:lambda:us-east-1:000000000000:function:" + name }

// putEventConfig sets a function's asynchronous invocation configuration.
func (s *server) putEventConfig(t testing.TB, fname string, retries *int32, onSuccess, onFailure string) {
	t.Helper()
	in := &lambda.PutFunctionEventInvokeConfigInput{FunctionName: aws.String(fname), MaximumRetryAttempts: retries,
		DestinationConfig: &types.DestinationConfig{}}
	if onSuccess != "" {
		in.DestinationConfig.OnSuccess = &types.OnSuccess{Destination: aws.String(onSuccess)}
	}
	if onFailure != "" {
		in.DestinationConfig.OnFailure = &types.OnFailure{Destination: aws.String(onFailure)}
	}
	if _, err := s.Lambda.PutFunctionEventInvokeConfig(context.Background(), in); err != nil {
		t.Fatalf("PutFunctionEventInvokeConfig %s: %v", fname, err)
	}
}

// invokeEvent sends an Event invocation and returns its request id.
func (s *server) invokeEvent(t testing.TB, fname string, payload any) string {
	t.Helper()
	b, _ := json.Marshal(payload)
	out, err := s.Lambda.Invoke(context.Background(), &lambda.InvokeInput{
		FunctionName: aws.String(fname), InvocationType: types.InvocationTypeEvent, Payload: b,
	})
	if err != nil {
		t.Fatalf("Invoke Event %s: %v", fname, err)
	}
	if out.StatusCode != 202 || len(out.Payload) != 0 {
		t.Fatalf("Invoke Event %s: HTTP %d with %d bytes, want 202 and no body", fname, out.StatusCode, len(out.Payload))
	}
	return requestIDOf(out.ResultMetadata)
}
