package apierr

import (
	"errors"
	"fmt"
)

// Kind is a class of client-visible error. A Kind is itself an error so that
// errors.Is(err, apierr.NotFound) works on any wrapped *Error.
type Kind string

func (k Kind) Error() string { return string(k) }

// The kinds. Their names are the AWS error types they render as by default.
const (
	NotFound            Kind = "ResourceNotFoundException"
	Conflict            Kind = "ResourceConflictException"
	InUse               Kind = "ResourceInUseException"
	InvalidParameter    Kind = "InvalidParameterValueException"
	Validation          Kind = "ValidationException"
	InvalidRequest      Kind = "InvalidRequestContentException"
	PreconditionFailed  Kind = "PreconditionFailedException"
	RequestTooLarge     Kind = "RequestTooLargeException"
	UnsupportedMedia    Kind = "UnsupportedMediaTypeException"
	TooManyRequests     Kind = "TooManyRequestsException"
	NotReady            Kind = "ResourceNotReadyException"
	SnapStartNotReady   Kind = "SnapStartNotReadyException"
	SnapStart           Kind = "SnapStartException"
	SnapStartTimeout    Kind = "SnapStartTimeoutException"
	Internal            Kind = "ServiceException"
	ProvisionedNotFound Kind = "ProvisionedConcurrencyConfigNotFoundException"
	PolicyTooLong       Kind = "PolicyLengthExceededException"
	NotImplemented      Kind = "NotImplemented"
)

// Error is a client-visible error. Message is shown to the client verbatim;
// Err is the internal cause, logged but never rendered.
type Error struct {
	Kind    Kind
	Message string
	// Reason is the TooManyRequestsException Reason field (e.g.
	// ConcurrentInvocationLimitExceeded); empty otherwise.
	Reason string
	// RetryAfterSeconds, when > 0, is sent as the Retry-After header.
	RetryAfterSeconds int
	Err               error
}

// New returns an *Error of kind k with a formatted message.
func New(k Kind, format string, args ...any) *Error {
	return &Error{Kind: k, Message: fmt.Sprintf(format, args...)}
}

// Wrap returns an *Error of kind k with message msg and internal cause err.
func Wrap(k Kind, err error, msg string) *Error {
	return &Error{Kind: k, Message: msg, Err: err}
}

func (e *Error) Error() string {
	if e.Err != nil {
		return fmt.Sprintf("%s: %s: %v", e.Kind, e.Message, e.Err)
	}
	return fmt.Sprintf("%s: %s", e.Kind, e.Message)
}

// Unwrap exposes both the Kind (for errors.Is) and the cause.
func (e *Error) Unwrap() []error {
	if e.Err != nil {
		return []error{e.Kind, e.Err}
	}
	return []error{e.Kind}
}

// As returns the *Error in err's chain, or nil.
func As(err error) *Error {
	var e *Error
	if errors.As(err, &e) {
		return e
	}
	return nil
}
