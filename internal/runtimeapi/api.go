package runtimeapi

import (
	"log/slog"
	"time"
)

// DefaultMaxResponseBytes is the default cap on a /response or /error body:
// 6 MiB, Lambda's synchronous response limit.
const DefaultMaxResponseBytes = 6 << 20

// Invocation is one event handed to the runtime through /invocation/next.
// Every string field is sent as an HTTP header and must not hold control
// characters; Invoke refuses an Invocation that breaks a rule below.
type Invocation struct {
	// RequestID is Lambda-Runtime-Aws-Request-Id and the {id} of the
	// runtime's /response and /error paths: 1 to 128 characters of
	// [A-Za-z0-9_-] (a UUID fits).
	RequestID string
	Payload   []byte
	// ContentType is the Content-Type of the /next response; default
	// application/json.
	ContentType string
	// Deadline is sent as Lambda-Runtime-Deadline-Ms (epoch milliseconds);
	// it must be set.
	Deadline           time.Time
	InvokedFunctionARN string
	// TraceID is Lambda-Runtime-Trace-Id, always sent; when empty the
	// server makes up an unsampled X-Ray header (Root=1-…;Parent=…;Sampled=0).
	TraceID         string
	ClientContext   string // decoded JSON, Lambda-Runtime-Client-Context; sent when non-empty
	CognitoIdentity string // JSON, Lambda-Runtime-Cognito-Identity; sent when non-empty
	TenantID        string // Lambda-Runtime-Aws-Tenant-Id; sent when non-empty
}

// Result is what the runtime answered for one Invocation.
type Result struct {
	// Payload is the /response body, or the /error body when ErrorType is
	// set (a non-JSON /error body is wrapped as
	// {"errorMessage":<body>,"errorType":<type>}). It never exceeds
	// Options.MaxResponseBytes.
	Payload     []byte
	ContentType string
	// ErrorType is set when the runtime posted /error (the
	// Lambda-Runtime-Function-Error-Type header, or "Unhandled" if absent),
	// when it reported a failure in the Lambda-Runtime-Function-Error-Type
	// trailer of /response, or when the platform replaced the response
	// (Function.ResponseSizeTooLarge, Runtime.TruncatedResponse).
	ErrorType string
	// Duration runs from the moment the event was written to /next to the
	// moment the answer was received, by Options.Now: Lambda's "Duration".
	Duration time.Duration
}

// InitError is returned by WaitInit (and by Invoke from then on) when the
// runtime posted /init/error.
type InitError struct {
	Type string // Lambda-Runtime-Function-Error-Type, or "Unhandled" if absent
	// Payload is the body as posted, wrapped as
	// {"errorMessage":<body>,"errorType":<type>} when it is not JSON, and
	// capped at Options.MaxResponseBytes.
	Payload []byte
}

func (e *InitError) Error() string { return "runtime init error: " + e.Type }

// Options configure a Server. The zero value is usable.
type Options struct {
	// Logger receives debug records of every state transition and warnings
	// for refused requests; nil discards them.
	Logger *slog.Logger
	// MaxResponseBytes caps a /response, /error or /init/error body; 0
	// means DefaultMaxResponseBytes.
	MaxResponseBytes int64
	// Now is the clock; nil means time.Now.
	Now func() time.Time
}
