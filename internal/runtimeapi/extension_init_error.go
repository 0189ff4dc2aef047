package runtimeapi

import (
	"net/http"
)

// maxExtErrorBody caps the body of /extension/init/error and
// /extension/exit/error.
const maxExtErrorBody = 64 << 10

// handleExtInitError serves POST /2020-01-01/extension/init/error: the
// extension failed to initialise (allowed only before its first
// /event/next). The header Lambda-Extension-Function-Error-Type is required
// (403 Extension.MissingHeader without it). 202 fails init: WaitInit, a
// queued Invoke and every later Invoke return an *InitError of type
// Extension.InitError.
func (s *Server) handleExtInitError(w http.ResponseWriter, r *http.Request, _ string) {
	s.handleExtError(w, r, xevInitError, ExtensionInitError, "failed to initialize")
}

// handleExtError serves both error endpoints of the Extensions API.
func (s *Server) handleExtError(w http.ResponseWriter, r *http.Request, ev xevent, typ ErrorType, what string) {
	x, aerr := s.extensionFor(r)
	if aerr != nil {
		writeAPIError(w, aerr)
		return
	}
	reported := r.Header.Get(hdrExtErrorType)
	if reported == "" || !validHeaderValue(reported) {
		writeAPIError(w, &apiError{http.StatusForbidden, errExtMissingHeader, hdrExtErrorType + " not found"})
		return
	}
	s.mu.Lock()
	st := x.state
	s.mu.Unlock()
	if _, ok := extTransition(st, ev); !ok {
		writeAPIError(w, apiErrExtRefused(x, st, ev))
		return
	}
	// The body (an error document) is read for the log only.
	body, _ := s.readRequestBody(w, r, maxExtErrorBody)

	s.mu.Lock()
	if s.state == StateClosed {
		s.mu.Unlock()
		writeAPIError(w, apiErrClosed)
		return
	}
	from, ok := s.fireExt(x, ev)
	if !ok {
		s.mu.Unlock()
		writeAPIError(w, apiErrExtRefused(x, from, ev))
		return
	}
	payload := ErrorPayload(typ, "Extension "+x.name+" "+what+": "+reported)
	s.extFailed(x, typ, reported, payload)
	s.mu.Unlock()
	s.log.Info("extensions api: extension error", "extension", x.name, "errorType", typ, "reported", reported, "body", string(body))
	writeAccepted(w)
}
