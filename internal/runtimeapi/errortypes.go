package runtimeapi

import (
	"bytes"
	"encoding/json"
)

// ErrorType is the type of a function error as Lambda reports it: the
// errorType of the error payload and, for platform errors, Result.ErrorType.
// Runtimes may post any string; the constants are the ones the platform
// itself produces.
type ErrorType string

func (t ErrorType) String() string { return string(t) }

// Function errors posted by the runtime without a type.
const (
	// ErrorUnhandled is Result.ErrorType of an /error without the
	// Lambda-Runtime-Function-Error-Type header.
	ErrorUnhandled ErrorType = "Unhandled"
)

// Platform error types.
const (
	SandboxTimedout ErrorType = "Sandbox.Timedout"
	SandboxFailure  ErrorType = "Sandbox.Failure"

	RuntimeExitError                 ErrorType = "Runtime.ExitError"
	RuntimeOutOfMemory               ErrorType = "Runtime.OutOfMemory"
	RuntimeInvalidEntrypoint         ErrorType = "Runtime.InvalidEntrypoint"
	RuntimeInvalidWorkingDir         ErrorType = "Runtime.InvalidWorkingDir"
	RuntimeInvalidTaskConfig         ErrorType = "Runtime.InvalidTaskConfig"
	RuntimeTruncatedResponse         ErrorType = "Runtime.TruncatedResponse"
	RuntimeInvalidResponseModeHeader ErrorType = "Runtime.InvalidResponseModeHeader"
	RuntimeUnknown                   ErrorType = "Runtime.Unknown"

	FunctionResponseSizeTooLarge ErrorType = "Function.ResponseSizeTooLarge"
	FunctionUnknown              ErrorType = "Function.Unknown"

	ExtensionInitError   ErrorType = "Extension.InitError"
	ExtensionExitError   ErrorType = "Extension.ExitError"
	ExtensionCrash       ErrorType = "Extension.Crash"
	ExtensionLaunchError ErrorType = "Extension.LaunchError"
)

// ErrorPayload renders a function error body the way Lambda does:
// {"errorMessage":msg,"errorType":t}. The invoker uses it for the errors it
// makes itself (Sandbox.Timedout, Runtime.ExitError).
func ErrorPayload(t ErrorType, msg string) []byte {
	return errorPayload(string(t), msg)
}

type errorBody struct {
	ErrorMessage string `json:"errorMessage"`
	ErrorType    string `json:"errorType"`
}

func errorPayload(typ, msg string) []byte {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	// Encoding a struct of two strings cannot fail.
	_ = enc.Encode(errorBody{ErrorMessage: msg, ErrorType: typ})
	return bytes.TrimSuffix(b.Bytes(), []byte("\n"))
}

// normalizeErrorBody returns body when it is JSON, and otherwise wraps it as
// the errorMessage of an error payload of type typ, cutting the message so the
// result stays within limit bytes.
func normalizeErrorBody(body []byte, typ string, limit int64) []byte {
	if json.Valid(body) {
		return body
	}
	p := errorPayload(typ, string(body))
	if int64(len(p)) <= limit {
		return p
	}
	// Escaping grew the message past the cap. No byte escapes to more than
	// six (\u00XX, or \ufffd for invalid UTF-8), so this many always fit.
	keep := (limit - int64(len(errorPayload(typ, "")))) / 6
	keep = max(keep, 0)
	// A rune cut in half becomes one U+FFFD, which is within the bound too.
	return errorPayload(typ, string(body[:min(int64(len(body)), keep)]))
}
