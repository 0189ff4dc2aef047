package lambdaapi

import (
	"encoding/json"
	"log/slog"
	"net/http"
	"strconv"

	"github.com/kappa-run/kappa/internal/apierr"
)

// status maps each kind to its HTTP status.
var status = map[apierr.Kind]int{
	apierr.NotFound:            http.StatusNotFound,
	apierr.ProvisionedNotFound: http.StatusNotFound,
	apierr.Conflict:            http.StatusConflict,
	apierr.InUse:               http.StatusBadRequest,
	apierr.InvalidParameter:    http.StatusBadRequest,
	apierr.Validation:          http.StatusBadRequest,
	apierr.InvalidRequest:      http.StatusBadRequest,
	apierr.PolicyTooLong:       http.StatusBadRequest,
	apierr.PreconditionFailed:  http.StatusPreconditionFailed,
	apierr.RequestTooLarge:     http.StatusRequestEntityTooLarge,
	apierr.UnsupportedMedia:    http.StatusUnsupportedMediaType,
	apierr.TooManyRequests:     http.StatusTooManyRequests,
	apierr.NotReady:            http.StatusBadGateway,
	apierr.SnapStartNotReady:   http.StatusConflict,
	apierr.SnapStart:           http.StatusBadRequest,
	apierr.SnapStartTimeout:    http.StatusRequestTimeout,
	apierr.Internal:            http.StatusInternalServerError,
	apierr.NotImplemented:      http.StatusNotFound,
}

// errorBody is Lambda's error document. Most shapes use "Message"; the SDKs
// also read "message", so both are sent.
type errorBody struct {
	Type        string `json:"Type"`
	Message     string `json:"Message"`
	LowerMessag string `json:"message"`
	Reason      string `json:"Reason,omitempty"`
}

// writeError renders err as an AWS error. Errors that are not *apierr.Error
// are internal: logged with their cause, shown as a bare ServiceException.
func writeError(w http.ResponseWriter, log *slog.Logger, err error) {
	e := apierr.As(err)
	if e == nil {
		e = apierr.Wrap(apierr.Internal, err, "internal error")
	}
	code, ok := status[e.Kind]
	if !ok {
		code = http.StatusInternalServerError
	}
	typ := "User"
	if code >= 500 {
		typ = "Service"
		log.Error("request failed", "err", err)
	}
	name := string(e.Kind)
	if e.Kind == apierr.NotImplemented {
		name = "UnknownOperationException"
	}
	h := w.Header()
	h.Set("X-Amzn-ErrorType", name)
	h.Set("Content-Type", "application/json")
	if e.RetryAfterSeconds > 0 {
		h.Set("Retry-After", strconv.Itoa(e.RetryAfterSeconds))
	}
	w.WriteHeader(code)
	json.NewEncoder(w).Encode(errorBody{Type: typ, Message: e.Message, LowerMessag: e.Message, Reason: e.Reason})
}
