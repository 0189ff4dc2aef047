package runtimeapi

import (
	"log/slog"
	"time"
)

// Invocation is one event handed to the runtime through /invocation/next.
type Invocation struct {
	RequestID          string
	Payload            []byte
	ContentType        string // default application/json
	Deadline           time.Time
	InvokedFunctionARN string
	TraceID            string // Lambda-Runtime-Trace-Id, always sent
	ClientContext      string // decoded JSON, Lambda-Runtime-Client-Context
	CognitoIdentity    string // JSON, Lambda-Runtime-Cognito-Identity
	TenantID           string // Lambda-Runtime-Aws-Tenant-Id
}

// Result is what the runtime answered for one Invocation.
type Result struct {
	// Payload is the /response body, or the /error body when Error is set.
	Payload     []byte
	ContentType string
	// ErrorType is set when the runtime posted /error (the
	// Lambda-Runtime-Function-Error-Type header, or "Unhandled" if absent),
	// or when the platform replaced the response (Function.ResponseSizeTooLarge).
	ErrorType string
}

// InitError is returned by WaitInit when the runtime posted /init/error.
type InitError struct {
	Type    string // Lambda-Runtime-Function-Error-Type
	Payload []byte // body as posted
}

func (e *InitError) Error() string { return "runtime init error: " + e.Type }

// Options configure a Server.
type Options struct {
	Logger *slog.Logger
	// MaxResponseBytes caps a buffered /response body; 0 means 6 MiB.
	MaxResponseBytes int64
	// Now is the clock; nil means time.Now.
	Now func() time.Time
}
