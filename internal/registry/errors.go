package registry

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
)

// code is a Distribution-spec error code, sent as the "code" field of an
// error body.
type code string

// The error codes of the Distribution spec, plus the few Docker Registry
// codes that clients still understand (TAG_INVALID, PAGINATION_NUMBER_INVALID,
// UNAVAILABLE, UNKNOWN).
const (
	codeBlobUnknown         code = "BLOB_UNKNOWN"
	codeBlobUploadInvalid   code = "BLOB_UPLOAD_INVALID"
	codeBlobUploadUnknown   code = "BLOB_UPLOAD_UNKNOWN"
	codeDigestInvalid       code = "DIGEST_INVALID"
	codeManifestBlobUnknown code = "MANIFEST_BLOB_UNKNOWN"
	codeManifestInvalid     code = "MANIFEST_INVALID"
	codeManifestUnknown     code = "MANIFEST_UNKNOWN"
	codeNameInvalid         code = "NAME_INVALID"
	codeNameUnknown         code = "NAME_UNKNOWN"
	codeSizeInvalid         code = "SIZE_INVALID"
	codeTagInvalid          code = "TAG_INVALID"
	codeUnsupported         code = "UNSUPPORTED"
	codePaginationInvalid   code = "PAGINATION_NUMBER_INVALID"
	codeUnavailable         code = "UNAVAILABLE"
	codeUnknown             code = "UNKNOWN"
	codeUnauthorized        code = "UNAUTHORIZED"
	codeDenied              code = "DENIED"
)

// codeMessages are the spec's descriptions, used when a regError has no
// message of its own.
var codeMessages = map[code]string{
	codeBlobUnknown:         "blob unknown to registry",
	codeBlobUploadInvalid:   "blob upload invalid",
	codeBlobUploadUnknown:   "blob upload unknown to registry",
	codeDigestInvalid:       "provided digest did not match uploaded content",
	codeManifestBlobUnknown: "manifest references a manifest or blob unknown to registry",
	codeManifestInvalid:     "manifest invalid",
	codeManifestUnknown:     "manifest unknown to registry",
	codeNameInvalid:         "invalid repository name",
	codeNameUnknown:         "repository name not known to registry",
	codeSizeInvalid:         "provided length did not match content length",
	codeTagInvalid:          "invalid tag",
	codeUnsupported:         "the operation is unsupported",
	codePaginationInvalid:   "invalid number of results requested",
	codeUnavailable:         "service unavailable",
	codeUnknown:             "unknown error",
	codeUnauthorized:        "authentication required",
	codeDenied:              "requested access to the resource is denied",
}

// regError is an error a client sees: an HTTP status, a spec code, a message
// and an optional detail. cause is the internal reason; it is logged, never
// sent. header holds extra response headers (Range and Location on a 416).
type regError struct {
	status  int
	code    code
	message string
	detail  any
	header  http.Header
	cause   error
}

// newError returns a client-visible error with the code's default message.
func newError(status int, c code) *regError {
	return &regError{status: status, code: c, message: codeMessages[c]}
}

// errorf returns a client-visible error with a formatted message.
func errorf(status int, c code, format string, args ...any) *regError {
	return &regError{status: status, code: c, message: fmt.Sprintf(format, args...)}
}

func (e *regError) Error() string {
	if e.cause != nil {
		return fmt.Sprintf("%s: %s: %v", e.code, e.message, e.cause)
	}
	return fmt.Sprintf("%s: %s", e.code, e.message)
}

func (e *regError) Unwrap() error { return e.cause }

// withDetail sets the error's detail field and returns e.
func (e *regError) withDetail(d any) *regError {
	e.detail = d
	return e
}

// withHeader adds a response header to e and returns e.
func (e *regError) withHeader(key, value string) *regError {
	if e.header == nil {
		e.header = http.Header{}
	}
	e.header.Set(key, value)
	return e
}

// withCause records the internal cause of e and returns e.
func (e *regError) withCause(err error) *regError {
	e.cause = err
	return e
}

// errorBody is the spec's JSON error envelope.
type errorBody struct {
	Errors []errorEntry `json:"errors"`
}

type errorEntry struct {
	Code    code   `json:"code"`
	Message string `json:"message"`
	Detail  any    `json:"detail,omitempty"`
}

// writeError renders err to the wire. It is the only place an error becomes a
// response: a *regError in err's chain is sent as it is; anything else is an
// internal failure, logged with its cause and sent as a bare 500 UNKNOWN so
// that no internal detail (paths, syscalls) leaks to the client.
func (r *Registry) writeError(w http.ResponseWriter, req *http.Request, err error) {
	var re *regError
	if !errors.As(err, &re) {
		re = newError(http.StatusInternalServerError, codeUnknown).withCause(err)
	}
	if re.status >= 500 {
		r.logger.ErrorContext(req.Context(), "registry request failed",
			"method", req.Method, "path", req.URL.Path, "status", re.status, "err", err)
	} else {
		r.logger.DebugContext(req.Context(), "registry request rejected",
			"method", req.Method, "path", req.URL.Path, "status", re.status, "err", err)
	}
	body, mErr := json.Marshal(errorBody{Errors: []errorEntry{{Code: re.code, Message: re.message, Detail: re.detail}}})
	if mErr != nil {
		// Only a detail that cannot be marshalled gets here; drop it.
		body, _ = json.Marshal(errorBody{Errors: []errorEntry{{Code: re.code, Message: re.message}}})
	}
	h := w.Header()
	for k, vs := range re.header {
		h[k] = vs
	}
	h.Set("Content-Type", "application/json")
	h.Set("Content-Length", strconv.Itoa(len(body)))
	w.WriteHeader(re.status)
	if req.Method != http.MethodHead {
		_, _ = w.Write(body)
	}
}
