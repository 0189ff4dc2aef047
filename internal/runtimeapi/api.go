package runtimeapi

import (
	"context"
	"log/slog"
	"net"
	"time"
)

// DefaultMaxResponseBytes is the default cap on a /response or /error body:
// 6 MiB, Lambda's synchronous response limit.
const DefaultMaxResponseBytes = 6 << 20

// DefaultMaxStreamBytes is the default cap on a streamed response: 200 MiB,
// Lambda's response streaming limit.
const DefaultMaxStreamBytes = 200 << 20

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
	// Stream asks for the response as it arrives: Invoke returns as soon
	// as the runtime starts its /response, with Result.Body streaming it,
	// capped at Options.MaxStreamBytes instead of MaxResponseBytes. The
	// runtime's response mode header does not matter (aws-lambda-go streams
	// io.Reader results without it). An /error is returned as for a
	// buffered invocation.
	Stream bool
	// Exited, when set, is closed when the runtime's process has exited:
	// Invoke then waits ExitSettle more for an answer already on its way
	// (a runtime may answer and exit at once, as aws-lambda-go does after
	// a panic) and, without one, gives up with ErrExited.
	Exited     <-chan struct{}
	ExitSettle time.Duration
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
	// moment the answer was received (for a stream: the moment its body
	// started), by Options.Now. Completion has the durations Lambda reports.
	Duration time.Duration
	// Body is set, and Payload nil, when Invocation.Stream asked for a
	// stream and the runtime answered with /response. The caller must read
	// it to its end or Close it: until then the runtime's POST is held and
	// the invocation does not complete. See ResponseStream.
	Body *ResponseStream
}

// Completion describes an invocation that ended: the runtime's answer fully
// received and every extension subscribed to INVOKE back in
// /extension/event/next. WaitInvokeDone returns it.
type Completion struct {
	RequestID string
	// RuntimeDuration runs from delivery to the end of the runtime's answer
	// (the last byte of a stream): platform.runtimeDone's durationMs.
	RuntimeDuration time.Duration
	// Duration runs from delivery until the runtime and every INVOKE
	// extension were done: the REPORT line's Duration.
	Duration time.Duration
	// ProducedBytes is the size of the response body the runtime sent.
	ProducedBytes int64
	// ErrorType is the function error of the invocation, "" on success:
	// Result.ErrorType, or a streamed response's StreamError.Type.
	ErrorType string
}

// FunctionInfo is what the Extensions API tells a registering extension.
type FunctionInfo struct {
	Name    string
	Version string
	Handler string
	// AccountID is sent to extensions that register with
	// Lambda-Extension-Accept-Feature: accountId; omitted when empty.
	AccountID string
}

// InitError is returned by WaitInit (and by Invoke from then on) when the
// runtime posted /init/error.
type InitError struct {
	Type string // Lambda-Runtime-Function-Error-Type, or "Unhandled" if absent
	// Payload is the body as posted, wrapped as
	// {"errorMessage":<body>,"errorType":<type>} when it is not JSON, and
	// capped at Options.MaxResponseBytes.
	Payload []byte
	// Restore is set when the runtime posted it to /restore/error: its
	// after-restore hooks failed in an environment restored from a
	// snapshot (Options.Snapshot SnapshotRestored).
	Restore bool
}

func (e *InitError) Error() string {
	if e.Restore {
		return "runtime restore error: " + e.Type
	}
	return "runtime init error: " + e.Type
}

// SnapshotRole is how an environment takes part in snapshot restore
// (SnapStart), which decides what GET /runtime/restore/next and POST
// /runtime/restore/error do. Runtimes with SnapStart hooks (the Java,
// Python and .NET runtime interface clients) call /restore/next when
// AWS_LAMBDA_INITIALIZATION_TYPE is snap-start: after their before-snapshot
// hooks, and it returns after the restore, when they run their
// after-restore hooks and report a failure of those to /restore/error.
// Runtimes without hooks never call it; their first /invocation/next ends
// init, as in any environment.
type SnapshotRole uint8

const (
	// SnapshotNone: an ordinary environment; both endpoints are refused
	// (403 InvalidStateTransition).
	SnapshotNone SnapshotRole = iota
	// SnapshotTaken: the environment is checkpointed once its init is
	// complete. /restore/next ends the runtime's init, like a first
	// /invocation/next, and stays parked until Checkpoint answers it with
	// the relay's checkpoint signal: the relay asks again after the
	// restore, of the restored environment's server.
	SnapshotTaken
	// SnapshotRestored: the environment was restored from a snapshot.
	// /restore/next answers 200 at once (the restore is done);
	// /restore/error, before the first /invocation/next, fails the
	// environment with an *InitError whose Restore is set.
	SnapshotRestored
)

// DefaultMaxConns is the default cap on the connections an environment
// may hold open to its Runtime API at once (Options.MaxConns). A runtime
// uses one or two and each extension one or two more (Lambda allows ten
// extensions); the cap keeps one environment from spending the server's
// descriptors and memory for every other.
const DefaultMaxConns = 64

// Options configure a Server. The zero value is usable.
type Options struct {
	// MaxConns caps the connections open at once to the HTTP server
	// NewHTTPServer makes; 0 means DefaultMaxConns.
	MaxConns int
	// Logger receives debug records of every state transition and warnings
	// for refused requests; nil discards them.
	Logger *slog.Logger
	// MaxResponseBytes caps a /response, /error or /init/error body; 0
	// means DefaultMaxResponseBytes.
	MaxResponseBytes int64
	// MaxStreamBytes caps a streamed response (Invocation.Stream); 0 means
	// DefaultMaxStreamBytes.
	MaxStreamBytes int64
	// Now is the clock; nil means time.Now.
	Now func() time.Time
	// Function is reported to extensions in their register response.
	Function FunctionInfo
	// DialContext connects the telemetry sender to a subscriber's
	// destination, given as "sandbox.localdomain:<port>" (or the other host
	// names a subscription may use, all meaning "inside the environment").
	// Inject a dialer that reaches into the environment's network (its
	// namespace); nil dials 127.0.0.1:<port> with a net.Dialer, which is
	// right when the environment shares this process's network.
	DialContext func(ctx context.Context, network, addr string) (net.Conn, error)
	// Snapshot is the environment's part in snapshot restore.
	Snapshot SnapshotRole
}
