// Command echo is a Lambda function built with aws-lambda-go. The runtimeapi
// tests build it and run it against a Server as a real Runtime API client.
// The "op" field of the event picks what it does.
package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"strings"

	"github.com/aws/aws-lambda-go/lambda"
	"github.com/aws/aws-lambda-go/lambdacontext"
)

type request struct {
	Op      string          `json:"op"`
	Message string          `json:"message,omitempty"`
	Size    int             `json:"size,omitempty"`
	Data    json.RawMessage `json:"data,omitempty"`
}

type response struct {
	Data         json.RawMessage   `json:"data,omitempty"`
	RequestID    string            `json:"requestId,omitempty"`
	FunctionARN  string            `json:"functionArn,omitempty"`
	DeadlineMs   int64             `json:"deadlineMs,omitempty"`
	TraceID      string            `json:"traceId,omitempty"`
	TenantID     string            `json:"tenantId,omitempty"`
	ClientCustom map[string]string `json:"clientCustom,omitempty"`
	Filler       string            `json:"filler,omitempty"`
}

// customError shows up as errorType "customError" in the error payload.
type customError struct{ msg string }

func (e *customError) Error() string { return e.msg }

func handle(ctx context.Context, req request) (*response, error) {
	switch req.Op {
	case "echo":
		return &response{Data: req.Data}, nil
	case "context":
		lc, _ := lambdacontext.FromContext(ctx)
		deadline, _ := ctx.Deadline()
		return &response{
			RequestID:    lc.AwsRequestID,
			FunctionARN:  lc.InvokedFunctionArn,
			DeadlineMs:   deadline.UnixMilli(),
			TraceID:      os.Getenv("_X_AMZN_TRACE_ID"),
			TenantID:     lc.TenantID,
			ClientCustom: lc.ClientContext.Custom,
		}, nil
	case "error":
		return nil, &customError{msg: req.Message}
	case "panic":
		panic(req.Message)
	case "big":
		return &response{Filler: strings.Repeat("x", req.Size)}, nil
	}
	return nil, fmt.Errorf("unknown op %q", req.Op)
}

func main() {
	lambda.Start(handle)
}
