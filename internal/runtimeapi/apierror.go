package runtimeapi

import (
	"encoding/json"
	"net/http"
	"strconv"
)

// apiErrorType is the errorType of an error the Runtime API itself returns
// to the runtime (as opposed to a function error, see ErrorType).
type apiErrorType string

const (
	errInvalidStateTransition      apiErrorType = "InvalidStateTransition"      // 403
	errInvalidRequestID            apiErrorType = "InvalidRequestID"            // 400
	errRequestEntityTooLarge       apiErrorType = "RequestEntityTooLarge"       // 413
	errTruncatedHTTPRequest        apiErrorType = "TruncatedHTTPRequest"        // 400
	errInvalidFunctionResponseMode apiErrorType = "InvalidFunctionResponseMode" // 400
	errInternalServerError         apiErrorType = "InternalServerError"         // 500
	errNotFound                    apiErrorType = "NotFound"                    // 404
	errMethodNotAllowed            apiErrorType = "MethodNotAllowed"            // 405

	// Extensions API, all 403.
	errExtMissingIdentifier  apiErrorType = "Extension.MissingExtensionIdentifier"
	errExtInvalidIdentifier  apiErrorType = "Extension.InvalidExtensionIdentifier"
	errExtInvalidName        apiErrorType = "Extension.InvalidExtensionName"
	errExtRegistrationClosed apiErrorType = "Extension.RegistrationClosed"
	errExtUnknownIdentifier  apiErrorType = "Extension.UnknownExtensionIdentifier"
	errExtInvalidState       apiErrorType = "Extension.InvalidExtensionState"
	errExtMissingHeader      apiErrorType = "Extension.MissingHeader"
	errExtTooMany            apiErrorType = "Extension.TooManyExtensions"
	errExtInvalidEventType   apiErrorType = "Extension.InvalidEventType"
	errInvalidRequestFormat  apiErrorType = "InvalidRequestFormat"

	// Telemetry and Logs APIs.
	errValidation                  apiErrorType = "ValidationError"              // 400
	errTelemetrySubscriptionClosed apiErrorType = "Telemetry.SubscriptionClosed" // 403
	errLogsSubscriptionClosed      apiErrorType = "Logs.SubscriptionClosed"      // 403
)

// apiError is a Runtime API error response. Message is shown to the runtime;
// it never carries internal causes (those are logged).
type apiError struct {
	status  int
	typ     apiErrorType
	message string
}

func (e *apiError) Error() string { return string(e.typ) + ": " + e.message }

var (
	apiErrClosed = &apiError{http.StatusInternalServerError, errInternalServerError,
		"The execution environment is shutting down"}
	apiErrInvalidRequestID = &apiError{http.StatusBadRequest, errInvalidRequestID,
		"Invalid request ID"}
	apiErrResponseMode = &apiError{http.StatusBadRequest, errInvalidFunctionResponseMode,
		"Invalid Lambda-Runtime-Function-Response-Mode: use buffered or streaming"}
	apiErrTruncated = &apiError{http.StatusBadRequest, errTruncatedHTTPRequest,
		"The request body ended before it was complete"}
	apiErrNotFound = &apiError{http.StatusNotFound, errNotFound,
		"No Runtime API endpoint at this path"}
	apiErrMethodNotAllowed = &apiError{http.StatusMethodNotAllowed, errMethodNotAllowed,
		"Method not allowed on this endpoint"}
)

func apiErrTooLarge(limit int64) *apiError {
	return &apiError{http.StatusRequestEntityTooLarge, errRequestEntityTooLarge,
		"Payload size exceeded maximum allowed payload size (" + strconv.FormatInt(reportedLimit(limit), 10) + " bytes)"}
}

func apiErrRefused(s State, ev event) *apiError {
	return &apiError{http.StatusForbidden, errInvalidStateTransition,
		"State transition from " + s.String() + " on " + ev.String() + " is not allowed"}
}

type apiErrorBody struct {
	ErrorType    apiErrorType `json:"errorType"`
	ErrorMessage string       `json:"errorMessage"`
}

// writeAPIError is the only place a Runtime API error reaches the wire:
// status e.status, body {"errorType":…,"errorMessage":…}.
func writeAPIError(w http.ResponseWriter, e *apiError) {
	b, _ := json.Marshal(apiErrorBody{ErrorType: e.typ, ErrorMessage: e.message})
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("Content-Length", strconv.Itoa(len(b)))
	w.WriteHeader(e.status)
	_, _ = w.Write(b)
}

var acceptedBody = []byte(`{"status":"OK"}`)

// writeAccepted answers a POST the API took: 202 {"status":"OK"}.
func writeAccepted(w http.ResponseWriter) {
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("Content-Length", strconv.Itoa(len(acceptedBody)))
	w.WriteHeader(http.StatusAccepted)
	_, _ = w.Write(acceptedBody)
}
