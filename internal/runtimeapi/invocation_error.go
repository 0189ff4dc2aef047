package runtimeapi

import (
	"errors"
	"net/http"
)

// errorTypeOf reads Lambda-Runtime-Function-Error-Type from h: "Unhandled"
// when absent or not a clean header value.
func errorTypeOf(h http.Header) string {
	t := h.Get(hdrErrorType)
	if t == "" || !validHeaderValue(t) {
		return string(ErrorUnhandled)
	}
	return t
}

// handleInvocationError serves POST /2018-06-01/runtime/invocation/{id}/error:
// 202 ends the invocation as a function error of the header's type
// ("Unhandled" if absent) with the body as payload (wrapped when it is not
// JSON). Refusals as for /response; a body over the cap ends it as
// Function.ResponseSizeTooLarge with 413.
func (s *Server) handleInvocationError(w http.ResponseWriter, r *http.Request, id string) {
	typ := errorTypeOf(r.Header)
	c, aerr := s.checkAnswer(id, evError)
	if aerr != nil {
		writeAPIError(w, aerr)
		return
	}
	body, err := s.readRequestBody(w, r, s.maxBytes)

	var res Result
	var reply *apiError
	switch {
	case errors.Is(err, errBodyTooLarge):
		res, reply = tooLargeResult(s.maxBytes), apiErrTooLarge(s.maxBytes)
	case err != nil:
		res, reply = truncatedResult(), apiErrTruncated
	default:
		res = Result{Payload: normalizeErrorBody(body, typ, s.maxBytes), ContentType: "application/json", ErrorType: typ}
	}
	if err != nil {
		s.log.Warn("runtime api: error replaced", "requestId", id, "errorType", res.ErrorType, "err", err)
	}
	if aerr := s.answer(c, evError, res); aerr != nil {
		writeAPIError(w, aerr)
		return
	}
	if reply != nil {
		writeAPIError(w, reply)
		return
	}
	writeAccepted(w)
}
