package runtimeapi

import (
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
)

// Headers and trailers of /response and /error.
const (
	hdrResponseMode = "Lambda-Runtime-Function-Response-Mode"
	// hdrErrorType is a header of /error and /init/error, and a trailer of
	// /response (a failure after the body started).
	hdrErrorType = "Lambda-Runtime-Function-Error-Type"
	// hdrErrorBody is a trailer of /response: the error payload, base64.
	hdrErrorBody = "Lambda-Runtime-Function-Error-Body"
)

// lambdaReportedLimit is the size Lambda's own message quotes for its 6 MiB
// response cap (6 MiB + 100 bytes).
const lambdaReportedLimit = 6291556

// reportedLimit is the size quoted in "payload size exceeded" messages:
// Lambda's figure under the default cap, the configured one otherwise.
func reportedLimit(limit int64) int64 {
	if limit == DefaultMaxResponseBytes {
		return lambdaReportedLimit
	}
	return limit
}

type responseMode uint8

const (
	modeBuffered responseMode = iota + 1
	modeStreaming
)

// parseResponseMode reads Lambda-Runtime-Function-Response-Mode: absent or
// "buffered", or "streaming"; anything else (or the header twice) is invalid.
func parseResponseMode(h http.Header) (responseMode, bool) {
	vs := h.Values(hdrResponseMode)
	switch {
	case len(vs) == 0 || len(vs) == 1 && (vs[0] == "" || vs[0] == "buffered"):
		return modeBuffered, true
	case len(vs) == 1 && vs[0] == "streaming":
		return modeStreaming, true
	}
	return 0, false
}

var (
	errBodyTooLarge  = errors.New("body exceeds the size limit")
	errBodyTruncated = errors.New("body truncated")
)

// readBody reads r to its end, failing with errBodyTooLarge past limit bytes
// (without reading further) and with errBodyTruncated when r breaks off.
func readBody(r io.Reader, limit int64) ([]byte, error) {
	b, err := io.ReadAll(io.LimitReader(r, limit+1))
	if err != nil {
		return nil, fmt.Errorf("%w: %w", errBodyTruncated, err)
	}
	if int64(len(b)) > limit {
		return nil, errBodyTooLarge
	}
	return b, nil
}

// readRequestBody is readBody for a request, refusing a declared
// Content-Length over limit before reading anything. The body's deadline
// is put in the past if Close is called meanwhile. (A streamed answer is
// not read whole: streamResponse forwards it chunk by chunk.)
func (s *Server) readRequestBody(w http.ResponseWriter, r *http.Request, limit int64) ([]byte, error) {
	if r.ContentLength > limit {
		return nil, errBodyTooLarge
	}
	defer s.track(w, transferRead)()
	return readBody(r.Body, limit)
}

// handleResponse serves POST /2018-06-01/runtime/invocation/{id}/response.
// 202 ends the invocation with the body as payload. 403 when the runtime owes
// no answer, 400 for another request id; 400 for an invalid response mode
// header too, which ends the invocation as Runtime.InvalidResponseModeHeader;
// a body over the cap (413) or one that breaks off (400) also ends it, as
// Function.ResponseSizeTooLarge or Runtime.TruncatedResponse. For a
// streaming invocation the body is forwarded as it arrives (streamResponse).
func (s *Server) handleResponse(w http.ResponseWriter, r *http.Request, id string) {
	c, aerr := s.checkAnswer(id, evResponse)
	if aerr != nil {
		writeAPIError(w, aerr)
		return
	}
	mode, ok := parseResponseMode(r.Header)
	if !ok {
		// As Lambda: the invocation fails with Runtime.InvalidResponseModeHeader
		// (the runtime cannot take it back), and the runtime gets 400.
		res := Result{ContentType: "application/json", ErrorType: string(RuntimeInvalidResponseModeHeader),
			Payload: ErrorPayload(RuntimeInvalidResponseModeHeader,
				fmt.Sprintf("Invalid %s header value: %.64q", hdrResponseMode, r.Header.Values(hdrResponseMode)))}
		if aerr := s.answer(c, evResponse, res); aerr != nil {
			writeAPIError(w, aerr)
			return
		}
		w.Header().Set("Connection", "close") // its body is not read
		writeAPIError(w, apiErrResponseMode)
		return
	}
	if c.inv.Stream {
		s.streamResponse(w, r, c)
		return
	}
	_ = mode // both modes are buffered for a buffered invocation
	payload, err := s.readRequestBody(w, r, s.maxBytes)

	var res Result
	var reply *apiError
	switch {
	case errors.Is(err, errBodyTooLarge):
		res, reply = tooLargeResult(s.maxBytes), apiErrTooLarge(s.maxBytes)
	case err != nil:
		res, reply = truncatedResult(), apiErrTruncated
	case r.Trailer.Get(hdrErrorType) != "":
		res = s.trailerResult(r.Trailer)
	default:
		res = Result{Payload: payload, ContentType: r.Header.Get("Content-Type")}
	}
	if err != nil {
		s.log.Warn("runtime api: response replaced", "requestId", id, "errorType", res.ErrorType, "err", err)
	}
	if aerr := s.answer(c, evResponse, res); aerr != nil {
		writeAPIError(w, aerr)
		return
	}
	if reply != nil {
		writeAPIError(w, reply)
		return
	}
	writeAccepted(w)
}

// trailerResult is the result of a /response whose trailers report a
// failure after the body started: the partial body is dropped.
func (s *Server) trailerResult(t http.Header) Result {
	typ := errorTypeOf(t)
	raw := t.Get(hdrErrorBody)
	body, err := base64.StdEncoding.DecodeString(raw)
	if err != nil {
		body = []byte(raw)
	}
	if int64(len(body)) > s.maxBytes {
		body = body[:s.maxBytes]
	}
	return Result{Payload: normalizeErrorBody(body, typ, s.maxBytes), ContentType: "application/json", ErrorType: typ}
}

func tooLargeResult(limit int64) Result {
	msg := "Response payload size exceeded maximum allowed payload size (" +
		strconv.FormatInt(reportedLimit(limit), 10) + " bytes)."
	return Result{
		Payload:     ErrorPayload(FunctionResponseSizeTooLarge, msg),
		ContentType: "application/json",
		ErrorType:   string(FunctionResponseSizeTooLarge),
	}
}

func truncatedResult() Result {
	return Result{
		Payload:     ErrorPayload(RuntimeTruncatedResponse, "Runtime response was truncated before it was complete."),
		ContentType: "application/json",
		ErrorType:   string(RuntimeTruncatedResponse),
	}
}

// checkAnswer reports whether the runtime may now answer invocation id with
// ev (evResponse or evError), without moving the state: 500 once closed,
// 403 when the state refuses ev or another answer to id is being read, 400
// when id is not the invocation in flight. It claims the call: the caller
// ends it with answer (or, streaming, by its own transition).
func (s *Server) checkAnswer(id string, ev event) (*call, *apiError) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.state == StateClosed {
		return nil, apiErrClosed
	}
	if _, ok := transition(s.state, ev); !ok {
		s.log.Warn("runtime api: transition refused", "state", s.state, "event", ev)
		return nil, apiErrRefused(s.state, ev)
	}
	if s.current == nil || s.current.inv.RequestID != id {
		s.log.Warn("runtime api: unknown request id", "event", ev, "requestId", fmt.Sprintf("%.64q", id))
		return nil, apiErrInvalidRequestID
	}
	if s.current.answering {
		s.log.Warn("runtime api: second answer while the first is read", "event", ev, "requestId", id)
		return nil, apiErrRefused(s.state, ev)
	}
	s.current.answering = true
	return s.current, nil
}

// answer ends c with res and moves the state with ev. It fails as
// checkAnswer does when something else answered c while its body was read.
func (s *Server) answer(c *call, ev event, res Result) *apiError {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.state == StateClosed {
		return apiErrClosed
	}
	if s.current != c {
		return apiErrRefused(s.state, ev)
	}
	if from, ok := s.fire(ev); !ok {
		return apiErrRefused(from, ev)
	}
	s.current = nil
	now := s.now()
	res.Duration = now.Sub(c.delivered)
	c.runtimeDone, c.runtimeEnd, c.errorType = true, now, res.ErrorType
	if ev == evResponse && res.ErrorType == "" {
		c.produced = int64(len(res.Payload))
	}
	c.finish(res, nil)
	s.maybeComplete(c)
	return nil
}
