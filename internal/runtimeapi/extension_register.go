package runtimeapi

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"

	"github.com/google/uuid"
)

// maxRegisterBody caps a /extension/register body.
const maxRegisterBody = 64 << 10

// registerRequest is the body of /extension/register.
type registerRequest struct {
	Events []string `json:"events"`
}

// parseRegister parses a register body: a JSON object whose "events" is an
// array of strings (absent means none). The deprecated configurationKeys
// are refused as Lambda does. Event names are checked by the caller.
func parseRegister(body []byte) (registerRequest, error) {
	var req struct {
		Events            []string `json:"events"`
		ConfigurationKeys []string `json:"configurationKeys"`
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	if err := dec.Decode(&req); err != nil {
		return registerRequest{}, fmt.Errorf("invalid register body: %w", err)
	}
	if len(bytes.Trim(body[dec.InputOffset():], " \t\r\n")) != 0 {
		return registerRequest{}, errors.New("invalid register body: data after the JSON object")
	}
	// Decode accepts null and leaves req empty; a body must be an object.
	if t := bytes.TrimLeft(body, " \t\r\n"); len(t) == 0 || t[0] != '{' {
		return registerRequest{}, errors.New("invalid register body: not a JSON object")
	}
	if len(req.ConfigurationKeys) != 0 {
		return registerRequest{}, errors.New("configurationKeys are deprecated; use environment variables instead")
	}
	return registerRequest{Events: req.Events}, nil
}

type registerResponse struct {
	AccountID       string `json:"accountId,omitempty"`
	FunctionName    string `json:"functionName"`
	FunctionVersion string `json:"functionVersion"`
	Handler         string `json:"handler"`
}

// handleExtRegister serves POST /2020-01-01/extension/register. The
// extension names itself with Lambda-Extension-Name (for an external one,
// its file name) and lists the events it wants; 200 returns its
// Lambda-Extension-Identifier and the function's name, version and handler
// (and account id, with Lambda-Extension-Accept-Feature: accountId). Every
// refusal is 403 with an Extension.* error type, as Lambda answers:
// InvalidExtensionName (no name), InvalidRequestFormat (bad body),
// InvalidEventType (unknown event, or SHUTDOWN for an internal extension),
// RegistrationClosed (after init; for internal extensions after the
// runtime's first /next), InvalidExtensionState (name taken),
// TooManyExtensions (past MaxExtensions).
func (s *Server) handleExtRegister(w http.ResponseWriter, r *http.Request, _ string) {
	name := r.Header.Get(hdrExtName)
	if name == "" || !validHeaderValue(name) {
		writeAPIError(w, &apiError{http.StatusForbidden, errExtInvalidName, "Empty extension name"})
		return
	}
	body, err := s.readRequestBody(w, r, maxRegisterBody)
	if err != nil {
		writeAPIError(w, &apiError{http.StatusForbidden, errInvalidRequestFormat, "Invalid register request body"})
		return
	}
	req, err := parseRegister(body)
	if err != nil {
		writeAPIError(w, &apiError{http.StatusForbidden, errInvalidRequestFormat, err.Error()})
		return
	}

	s.mu.Lock()
	if s.state == StateClosed {
		s.mu.Unlock()
		writeAPIError(w, apiErrClosed)
		return
	}
	external := s.expected[name]
	x := &extension{id: uuid.NewString(), name: name, external: external, state: ExtRegistered}
	for _, e := range req.Events {
		switch {
		case e == EventInvoke:
			x.invoke = true
		case e == EventShutdown && external:
			x.shutdown = true
		case e == EventShutdown:
			s.mu.Unlock()
			writeAPIError(w, &apiError{http.StatusForbidden, errExtInvalidEventType,
				"SHUTDOWN: internal extensions cannot subscribe to SHUTDOWN"})
			return
		default:
			s.mu.Unlock()
			writeAPIError(w, &apiError{http.StatusForbidden, errExtInvalidEventType,
				fmt.Sprintf("%.64q: unknown event type", e)})
			return
		}
	}
	var refuse *apiError
	switch {
	case s.initResolved || !external && s.state != StateStarted:
		refuse = &apiError{http.StatusForbidden, errExtRegistrationClosed, "Extension registration closed already"}
	case s.extByName[name] != nil:
		refuse = &apiError{http.StatusForbidden, errExtInvalidState, "Extension with this name already registered"}
	case len(s.exts) >= MaxExtensions:
		refuse = &apiError{http.StatusForbidden, errExtTooMany,
			"Extension limit (" + strconv.Itoa(MaxExtensions) + ") reached"}
	}
	if refuse != nil {
		s.mu.Unlock()
		s.log.Warn("extensions api: registration refused", "extension", name, "err", refuse.message)
		writeAPIError(w, refuse)
		return
	}
	s.exts = append(s.exts, x)
	s.extByID[x.id] = x
	s.extByName[name] = x
	s.notifyRegistration()
	fn := s.fn
	s.mu.Unlock()
	s.log.Info("extensions api: registered", "extension", name, "external", external, "events", req.Events)

	resp := registerResponse{FunctionName: fn.Name, FunctionVersion: fn.Version, Handler: fn.Handler}
	if acceptsAccountID(r.Header) {
		resp.AccountID = fn.AccountID
	}
	b, _ := json.Marshal(resp)
	h := w.Header()
	h.Set(hdrExtIdentifier, x.id)
	h.Set("Content-Type", "application/json")
	h.Set("Content-Length", strconv.Itoa(len(b)))
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(b)
}
