// Command stream is a Lambda function (aws-lambda-go) for the response
// streaming, extension and telemetry tests. The event's "op" picks what it
// does: "echo" returns the event's data; "getenv" returns the variable
// named by "key"; "log" prints the event's lines to
// stdout; "sleep" sleeps ms milliseconds, deadline or not; "stream" returns an io.Reader
// that yields n chunks "chunk-<i>\n", ms milliseconds apart (aws-lambda-go
// streams an io.Reader result with chunked encoding); "streamfail" does the
// same and then fails mid-stream (the error travels in the trailers);
// "exit" exits with status 3.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-lambda-go/lambda"
)

type event struct {
	Op    string          `json:"op"`
	N     int             `json:"n"`
	Ms    int             `json:"ms"`
	Lines []string        `json:"lines"`
	Data  json.RawMessage `json:"data"`
	Key   string          `json:"key"`
	// A function URL event carries the test's event in its body.
	RawPath string `json:"rawPath"`
	Body    string `json:"body"`
}

type response struct {
	Data json.RawMessage `json:"data,omitempty"`
	Ok   bool            `json:"ok"`
}

// midStreamError is what "streamfail" fails with.
type midStreamError struct{}

func (midStreamError) Error() string { return "failed after streaming" }

func handle(ctx context.Context, ev event) (any, error) {
	if ev.RawPath != "" {
		var inner event
		if err := json.Unmarshal([]byte(ev.Body), &inner); err != nil {
			return nil, err
		}
		if inner.Op == "stream" {
			// A RESPONSE_STREAM function URL: a prelude, then the body.
			r, _ := chunks(inner).(io.Reader)
			return &events.LambdaFunctionURLStreamingResponse{
				StatusCode: 201,
				Headers:    map[string]string{"Content-Type": "text/plain", "X-Streamed": "yes"},
				Body:       r,
			}, nil
		}
		ev = inner
	}
	switch ev.Op {
	case "echo":
		return response{Data: ev.Data, Ok: true}, nil
	case "getenv":
		v, _ := json.Marshal(os.Getenv(ev.Key))
		return response{Data: v, Ok: true}, nil
	case "log":
		for _, l := range ev.Lines {
			fmt.Println(l)
		}
		return response{Ok: true}, nil
	case "sleep":
		// Ignores the deadline, as a function that overruns it does.
		time.Sleep(time.Duration(ev.Ms) * time.Millisecond)
		return response{Ok: true}, nil
	case "stream", "streamfail":
		return chunks(ev), nil
	case "exit":
		os.Exit(3)
	}
	return nil, errors.New("unknown op " + ev.Op)
}

func main() {
	lambda.Start(handle)
}

// chunks yields n chunks "chunk-<i>\n", ms milliseconds apart, failing at
// the end for "streamfail".
func chunks(ev event) any {
	r, w := io.Pipe()
	go func() {
		for i := range ev.N {
			if i > 0 {
				time.Sleep(time.Duration(ev.Ms) * time.Millisecond)
			}
			if _, err := fmt.Fprintf(w, "chunk-%d\n", i); err != nil {
				return
			}
		}
		if ev.Op == "streamfail" {
			w.CloseWithError(midStreamError{})
			return
		}
		w.Close()
	}()
	return io.Reader(r)
}
