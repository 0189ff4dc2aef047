package runtimeapi

import (
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

func TestInitError(t *testing.T) {
	const limit = 100
	tests := []struct {
		name        string
		body        string
		headers     []string
		wantStatus  int
		wantAPIType apiErrorType
		wantType    string
		wantPayload string
	}{
		{
			name: "typed", body: `{"errorMessage":"no handler","errorType":"Runtime.HandlerNotFound"}`,
			headers:    []string{hdrErrorType, "Runtime.HandlerNotFound"},
			wantStatus: http.StatusAccepted, wantType: "Runtime.HandlerNotFound",
			wantPayload: `{"errorMessage":"no handler","errorType":"Runtime.HandlerNotFound"}`,
		},
		{
			name: "untyped, not JSON", body: "cannot import module",
			wantStatus: http.StatusAccepted, wantType: "Unhandled",
			wantPayload: `{"errorMessage":"cannot import module","errorType":"Unhandled"}`,
		},
		{
			name: "too large", body: strings.Repeat("x", limit+1),
			headers:    []string{hdrErrorType, "Runtime.Big"},
			wantStatus: http.StatusRequestEntityTooLarge, wantAPIType: errRequestEntityTooLarge,
			wantType:    "Runtime.Big",
			wantPayload: `{"errorMessage":"Init error payload size exceeded maximum allowed payload size (100 bytes).","errorType":"Runtime.Big"}`,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, ts := newTestServer(t, Options{MaxResponseBytes: limit})
			queued := invokeAsync(t.Context(), s, testInvocation("req-1"))
			waitPending(t, s)

			r := do(t, ts, http.MethodPost, pathInitError, []byte(tt.body), tt.headers...)
			if tt.wantStatus == http.StatusAccepted {
				wantAccepted(t, r)
			} else {
				wantAPIError(t, r, tt.wantStatus, tt.wantAPIType)
			}

			var ie *InitError
			if err := s.WaitInit(t.Context()); !errors.As(err, &ie) {
				t.Fatalf("WaitInit = %v, want *InitError", err)
			}
			if ie.Type != tt.wantType || string(ie.Payload) != tt.wantPayload {
				t.Errorf("InitError %q %s, want %q %s", ie.Type, ie.Payload, tt.wantType, tt.wantPayload)
			}
			if got := receive(t, queued); !errors.As(got.err, new(*InitError)) {
				t.Errorf("queued Invoke = %v, want *InitError", got.err)
			}
			if _, err := s.Invoke(t.Context(), testInvocation("req-2")); !errors.As(err, new(*InitError)) {
				t.Errorf("later Invoke = %v, want *InitError", err)
			}
			wantAPIError(t, do(t, ts, http.MethodPost, pathInitError, nil), http.StatusForbidden, errInvalidStateTransition)
			if got := s.State(); got != StateInitError {
				t.Errorf("state %s, want InitError", got)
			}
		})
	}
}

func TestInitErrorAfterInit(t *testing.T) {
	tests := []struct {
		name  string
		setup func(t *testing.T, s *Server, ts *httptest.Server)
	}{
		{name: "ready", setup: func(t *testing.T, s *Server, ts *httptest.Server) {
			nextAsync(t.Context(), ts)
			waitState(t, s, StateReady)
		}},
		{name: "running", setup: func(t *testing.T, s *Server, ts *httptest.Server) {
			running(t, s, ts, testInvocation("req-1"))
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, ts := newTestServer(t, Options{})
			tt.setup(t, s, ts)
			wantAPIError(t, do(t, ts, http.MethodPost, pathInitError, []byte(`{}`)), http.StatusForbidden, errInvalidStateTransition)
			if err := s.WaitInit(t.Context()); err != nil {
				t.Errorf("WaitInit = %v, want nil", err)
			}
		})
	}
}

func TestInitErrorTruncated(t *testing.T) {
	s, ts := newTestServer(t, Options{})
	r := rawRequest(t, ts.Listener.Addr().String(),
		"POST "+pathInitError+" HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 50\r\n\r\nshort")
	wantAPIError(t, r, http.StatusBadRequest, errTruncatedHTTPRequest)
	var ie *InitError
	if err := s.WaitInit(t.Context()); !errors.As(err, &ie) || ie.Type != "Unhandled" {
		t.Fatalf("WaitInit = %v, want *InitError Unhandled", err)
	}
}
