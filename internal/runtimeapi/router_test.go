package runtimeapi

import (
	"context"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
)

func TestRouterNotFoundAndMethods(t *testing.T) {
	tests := []struct {
		name, method, path string
		wantStatus         int
		wantType           apiErrorType
		wantAllow          string
	}{
		{name: "root", method: http.MethodGet, path: "/", wantStatus: 404, wantType: errNotFound},
		{name: "unknown version", method: http.MethodGet, path: "/2019-01-01/runtime/invocation/next", wantStatus: 404, wantType: errNotFound},
		{name: "trailing slash", method: http.MethodGet, path: pathNext + "/", wantStatus: 404, wantType: errNotFound},
		{name: "double slash", method: http.MethodGet, path: "/2018-06-01//runtime/invocation/next", wantStatus: 404, wantType: errNotFound},
		{name: "dot segments", method: http.MethodGet, path: "/2018-06-01/runtime/invocation/../invocation/next", wantStatus: 404, wantType: errNotFound},
		{name: "extra segment after id", method: http.MethodPost, path: "/2018-06-01/runtime/invocation/a/b/response", wantStatus: 404, wantType: errNotFound},
		{name: "unknown action", method: http.MethodPost, path: "/2018-06-01/runtime/invocation/req-1/cancel", wantStatus: 404, wantType: errNotFound},
		{name: "POST restore next", method: http.MethodPost, path: "/2018-06-01/runtime/restore/next", wantStatus: 405, wantType: errMethodNotAllowed, wantAllow: "GET"},
		{name: "GET restore error", method: http.MethodGet, path: "/2018-06-01/runtime/restore/error", wantStatus: 405, wantType: errMethodNotAllowed, wantAllow: "POST"},
		{name: "POST next", method: http.MethodPost, path: pathNext, wantStatus: 405, wantType: errMethodNotAllowed, wantAllow: "GET"},
		{name: "HEAD next", method: http.MethodHead, path: pathNext, wantStatus: 405, wantAllow: "GET"},
		{name: "GET response", method: http.MethodGet, path: pathResponse("req-1"), wantStatus: 405, wantType: errMethodNotAllowed, wantAllow: "POST"},
		{name: "PUT error", method: http.MethodPut, path: pathError("req-1"), wantStatus: 405, wantType: errMethodNotAllowed, wantAllow: "POST"},
		{name: "DELETE init error", method: http.MethodDelete, path: pathInitError, wantStatus: 405, wantType: errMethodNotAllowed, wantAllow: "POST"},
		{name: "POST ping", method: http.MethodPost, path: "/2018-06-01/ping", wantStatus: 405, wantType: errMethodNotAllowed, wantAllow: "GET"},
		{name: "lower-case method", method: "get", path: pathNext, wantStatus: 405, wantType: errMethodNotAllowed, wantAllow: "GET"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, ts := newTestServer(t, Options{})
			r := do(t, ts, tt.method, tt.path, nil)
			if r.status != tt.wantStatus {
				t.Fatalf("status %d, want %d (%s)", r.status, tt.wantStatus, r.body)
			}
			if tt.method != http.MethodHead {
				checkAPIErrorBody(t, r.header, r.body, tt.wantType)
			}
			if got := r.header.Get("Allow"); got != tt.wantAllow {
				t.Errorf("Allow %q, want %q", got, tt.wantAllow)
			}
			if got := s.State(); got != StateStarted {
				t.Errorf("state %s, want Started", got)
			}
		})
	}
}

// TestRouterOddRequests feeds requests a client library would not make.
func TestRouterOddRequests(t *testing.T) {
	s := New(Options{})
	defer s.Close()
	tests := []struct {
		name     string
		req      *http.Request
		wantCode int
		wantType apiErrorType
	}{
		{name: "nil URL", req: &http.Request{Method: "GET", Header: http.Header{}}, wantCode: 404, wantType: errNotFound},
		{name: "relative path", req: &http.Request{Method: "GET", URL: mustURL(t, "next"), Header: http.Header{}}, wantCode: 404, wantType: errNotFound},
		{name: "asterisk", req: &http.Request{Method: "OPTIONS", URL: mustURL(t, "*"), Header: http.Header{}}, wantCode: 404, wantType: errNotFound},
		{
			// An invalid RawPath is ignored: the id is the literal "%zz".
			name:     "bad escape in raw path",
			req:      &http.Request{Method: "POST", URL: rawPathURL("/2018-06-01/runtime/invocation/%zz/response", "/2018-06-01/runtime/invocation/%zz/response"), Header: http.Header{}, Body: http.NoBody},
			wantCode: 403, wantType: errInvalidStateTransition,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rec := httptest.NewRecorder()
			s.Handler().ServeHTTP(rec, tt.req.WithContext(context.Background()))
			if rec.Code != tt.wantCode {
				t.Fatalf("status %d, want %d", rec.Code, tt.wantCode)
			}
			checkAPIErrorBody(t, rec.Header(), rec.Body.Bytes(), tt.wantType)
		})
	}
}

// TestEndpointsByState sends each runtime endpoint in each state and checks
// the status and the state it leaves behind.
func TestEndpointsByState(t *testing.T) {
	type want struct {
		status int
		state  State // 0: unchanged
	}
	endpoints := []struct {
		name, method, path string
		body               string
	}{
		{"next", http.MethodGet, pathNext, ""},
		{"response", http.MethodPost, pathResponse("req-1"), "{}"},
		{"response other id", http.MethodPost, pathResponse("req-2"), "{}"},
		{"error", http.MethodPost, pathError("req-1"), "{}"},
		{"init error", http.MethodPost, pathInitError, "{}"},
	}
	// parked: /next parks; the test's request context is already done, so
	// it leaves at once and the state ends Idle.
	const parked = -1
	table := map[State][]want{
		//                  next                     response                    response other id   error                       init error
		StateStarted:      {{parked, StateIdle}, {403, 0}, {403, 0}, {403, 0}, {202, StateInitError}},
		StateInitError:    {{403, 0}, {403, 0}, {403, 0}, {403, 0}, {403, 0}},
		StateReady:        {{403, 0}, {403, 0}, {403, 0}, {403, 0}, {403, 0}},
		StateRunning:      {{403, 0}, {202, StateResponseSent}, {400, 0}, {202, StateResponseSent}, {403, 0}},
		StateResponseSent: {{parked, StateIdle}, {403, 0}, {403, 0}, {403, 0}, {403, 0}},
		StateIdle:         {{parked, StateIdle}, {403, 0}, {403, 0}, {403, 0}, {403, 0}},
		StateClosed:       {{500, 0}, {500, 0}, {500, 0}, {500, 0}, {500, 0}},
	}
	for _, st := range allStates {
		for i, ep := range endpoints {
			w := table[st][i]
			t.Run(st.String()+"/"+ep.name, func(t *testing.T) {
				s := New(Options{})
				defer s.Close()
				forceState(s, st)
				ctx, cancel := context.WithCancel(context.Background())
				cancel()
				req := httptest.NewRequestWithContext(ctx, ep.method, ep.path, strings.NewReader(ep.body))
				rec := httptest.NewRecorder()
				s.Handler().ServeHTTP(rec, req)

				if w.status == parked {
					if rec.Body.Len() != 0 || len(rec.Header()) != 0 {
						t.Errorf("wrote %d %s, want nothing (parked, then abandoned)", rec.Code, rec.Body)
					}
				} else {
					if rec.Code != w.status {
						t.Fatalf("status %d, want %d (%s)", rec.Code, w.status, rec.Body)
					}
					if w.status != 202 {
						if _, err := decodeAPIError(rec.Body.Bytes()); err != nil {
							t.Errorf("body %s: %v", rec.Body, err)
						}
					}
				}
				wantState := w.state
				if wantState == 0 {
					wantState = st
				}
				if got := s.State(); got != wantState {
					t.Errorf("state %s, want %s", got, wantState)
				}
			})
		}
	}
}

func mustURL(t *testing.T, raw string) *url.URL {
	t.Helper()
	u, err := url.Parse(raw)
	if err != nil {
		t.Fatal(err)
	}
	return u
}

func rawPathURL(path, raw string) *url.URL { return &url.URL{Path: path, RawPath: raw} }
