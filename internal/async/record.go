package async

import (
	"encoding/json"
	"time"
)

// Conditions of a destination record.
const (
	Success          = "Success"
	RetriesExhausted = "RetriesExhausted"
	EventAgeExceeded = "EventAgeExceeded"
	// RecursiveInvocation ends an event that would have been invocation
	// number function.MaxChain+1 of one chain, at a function whose
	// recursive loop detection is Terminate. Lambda sends such an event to
	// the on-failure destination or dead-letter queue without naming a
	// condition Kappa could copy; this one is named after the exception a
	// synchronous caller gets, RecursiveInvocationException.
	RecursiveInvocation = "RecursiveInvocationException"
)

// Record is Lambda's destination record (LAMBDA_SURFACE §2).
type Record struct {
	Version         string          `json:"version"`
	Timestamp       string          `json:"timestamp"`
	RequestContext  RequestContext  `json:"requestContext"`
	RequestPayload  json.RawMessage `json:"requestPayload"`
	ResponseContext ResponseContext `json:"responseContext"`
	ResponsePayload json.RawMessage `json:"responsePayload,omitempty"`
}

// RequestContext identifies the invocation a record reports.
type RequestContext struct {
	RequestID              string `json:"requestId"`
	FunctionArn            string `json:"functionArn"`
	Condition              string `json:"condition"`
	ApproximateInvokeCount int    `json:"approximateInvokeCount"`
}

// ResponseContext is the last attempt's outcome.
type ResponseContext struct {
	StatusCode      int    `json:"statusCode,omitempty"`
	ExecutedVersion string `json:"executedVersion,omitempty"`
	FunctionError   string `json:"functionError,omitempty"`
}

// asJSON embeds b as JSON: as is when it is JSON, as a JSON string when it
// is not, null when empty.
func asJSON(b []byte) json.RawMessage {
	switch {
	case len(b) == 0:
		return json.RawMessage("null")
	case json.Valid(b):
		return json.RawMessage(b)
	default:
		s, _ := json.Marshal(string(b))
		return s
	}
}

// newRecord builds the record of ev's final outcome; response is the last
// attempt's payload (nil when there was none this delivery).
func newRecord(ev *Event, functionARN, condition string, response []byte, now time.Time) *Record {
	r := &Record{
		Version:   "1.0",
		Timestamp: now.UTC().Format("2006-01-02T15:04:05.000Z"),
		RequestContext: RequestContext{
			RequestID: ev.RequestID, FunctionArn: functionARN,
			Condition: condition, ApproximateInvokeCount: ev.Invokes,
		},
		RequestPayload: asJSON(ev.Payload),
		ResponseContext: ResponseContext{
			StatusCode: ev.Last.StatusCode, ExecutedVersion: ev.Last.ExecutedVersion, FunctionError: ev.Last.FunctionError,
		},
	}
	if response != nil {
		r.ResponsePayload = asJSON(response)
	}
	return r
}

// marshalWithin encodes r in at most limit bytes, dropping the response
// payload, else the request payload, else both when it is too large.
// dropped reports whether anything was dropped.
func (r *Record) marshalWithin(limit int) (b []byte, dropped bool) {
	b, _ = json.Marshal(r)
	if len(b) <= limit {
		return b, false
	}
	for _, drop := range []func(c *Record){
		func(c *Record) { c.ResponsePayload = nil },
		func(c *Record) { c.RequestPayload = json.RawMessage("null") },
		func(c *Record) { c.ResponsePayload, c.RequestPayload = nil, json.RawMessage("null") },
	} {
		c := *r
		drop(&c)
		if b, _ = json.Marshal(&c); len(b) <= limit {
			break
		}
	}
	return b, true
}
