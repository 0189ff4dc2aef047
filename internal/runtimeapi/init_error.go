package runtimeapi

import (
	"errors"
	"net/http"
	"strconv"
)

// handleInitError serves POST /2018-06-01/runtime/init/error: allowed only
// while the runtime initialises (state Started). 202 makes WaitInit, a queued
// Invoke and every later Invoke return the *InitError; the runtime must exit
// afterwards. A body over the cap (413) or one that breaks off (400) still
// fails init, with a platform-made message of the posted type.
func (s *Server) handleInitError(w http.ResponseWriter, r *http.Request, _ string) {
	s.failInit(w, r, evInitError)
}

// failInit serves /init/error (ev evInitError) and /restore/error (ev
// evRestoreError, whose InitError has Restore set): both end init with
// the posted error.
func (s *Server) failInit(w http.ResponseWriter, r *http.Request, ev event) {
	typ := errorTypeOf(r.Header)
	s.mu.Lock()
	st, resolved := s.state, s.initResolved && s.initErr == nil
	s.mu.Unlock()
	if st == StateClosed {
		writeAPIError(w, apiErrClosed)
		return
	}
	// Init may have ended well in state Started: a /restore/next ends it
	// (SnapshotTaken) and leaves the state as it is.
	if _, ok := transition(st, evInitError); !ok || resolved {
		s.log.Warn("runtime api: transition refused", "state", st, "event", ev)
		writeAPIError(w, apiErrRefused(st, ev))
		return
	}
	body, err := s.readRequestBody(w, r, s.maxBytes)

	var payload []byte
	var reply *apiError
	switch {
	case errors.Is(err, errBodyTooLarge):
		payload = errorPayload(typ, "Init error payload size exceeded maximum allowed payload size ("+
			strconv.FormatInt(reportedLimit(s.maxBytes), 10)+" bytes).")
		reply = apiErrTooLarge(s.maxBytes)
	case err != nil:
		payload = errorPayload(typ, "Init error payload was truncated before it was complete.")
		reply = apiErrTruncated
	default:
		payload = normalizeErrorBody(body, typ, s.maxBytes)
	}

	s.mu.Lock()
	if s.state == StateClosed {
		s.mu.Unlock()
		writeAPIError(w, apiErrClosed)
		return
	}
	if s.initResolved && s.initErr == nil {
		s.mu.Unlock()
		writeAPIError(w, apiErrRefused(s.state, ev))
		return
	}
	if from, ok := s.fire(evInitError); !ok {
		s.mu.Unlock()
		writeAPIError(w, apiErrRefused(from, ev))
		return
	}
	ie := &InitError{Type: typ, Payload: payload, Restore: ev == evRestoreError}
	s.resolveInit(ie)
	if s.pending != nil {
		s.pending.finish(Result{}, ie)
		s.pending = nil
	}
	s.mu.Unlock()
	s.log.Info("runtime api: "+ev.String(), "errorType", typ, "err", err)

	if reply != nil {
		writeAPIError(w, reply)
		return
	}
	writeAccepted(w)
}
