package runtimeapi

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strconv"
	"testing"
	"time"
)

func TestNextHeaders(t *testing.T) {
	traceRE := regexp.MustCompile(`^Root=1-[0-9a-f]{8}-[0-9a-f]{24};Parent=[0-9a-f]{16};Sampled=0$`)
	tests := []struct {
		name   string
		edit   func(*Invocation)
		want   map[string]string // header → value; "" means absent
		wantCT string
	}{
		{
			name: "all fields",
			edit: func(inv *Invocation) {
				inv.ContentType = "application/octet-stream"
				inv.ClientContext = `{"custom":{"a":"b"}}`
				inv.CognitoIdentity = `{"cognitoIdentityId":"id","cognitoIdentityPoolId":"pool"}`
				inv.TenantID = "tenant-7"
			},
			want: map[string]string{
				hdrRequestID:       "req-1",
				hdrDeadlineMs:      "1767323045123",
				hdrFunctionARN:     testARN,
				hdrTraceID:         testTrace,
				hdrClientContext:   `{"custom":{"a":"b"}}`,
				hdrCognitoIdentity: `{"cognitoIdentityId":"id","cognitoIdentityPoolId":"pool"}`,
				hdrTenantID:        "tenant-7",
			},
			wantCT: "application/octet-stream",
		},
		{
			name: "optional headers absent, content type defaulted",
			edit: func(*Invocation) {},
			want: map[string]string{
				hdrRequestID:       "req-1",
				hdrClientContext:   "",
				hdrCognitoIdentity: "",
				hdrTenantID:        "",
			},
			wantCT: "application/json",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, ts := newTestServer(t, Options{})
			inv := testInvocation("req-1")
			tt.edit(&inv)
			r, done := running(t, s, ts, inv)
			for name, want := range tt.want {
				if got := r.header.Get(name); got != want {
					t.Errorf("%s = %q, want %q", name, got, want)
				}
				if _, present := r.header[name]; want == "" && present {
					t.Errorf("%s present, want absent", name)
				}
			}
			if got := r.header.Get("Content-Type"); got != tt.wantCT {
				t.Errorf("Content-Type = %q, want %q", got, tt.wantCT)
			}
			if string(r.body) != string(inv.Payload) {
				t.Errorf("body %q, want %q", r.body, inv.Payload)
			}
			wantAccepted(t, do(t, ts, http.MethodPost, pathResponse("req-1"), []byte(`"ok"`)))
			if got := receive(t, done); got.err != nil || string(got.res.Payload) != `"ok"` {
				t.Errorf("Invoke = %+v", got)
			}
		})
	}

	t.Run("trace id made up when missing", func(t *testing.T) {
		s, ts := newTestServer(t, Options{Now: fakeClock(time.Millisecond)})
		inv := testInvocation("req-2")
		inv.TraceID = ""
		r, _ := running(t, s, ts, inv)
		got := r.header.Get(hdrTraceID)
		if !traceRE.MatchString(got) {
			t.Errorf("trace id %q does not match %s", got, traceRE)
		}
		if want := strconv.FormatInt(testEpoch.Unix(), 16); got[7:15] != want {
			t.Errorf("trace id epoch %s, want %s (from the injected clock)", got[7:15], want)
		}
	})
}

func TestNextParksUntilInvoke(t *testing.T) {
	s, ts := newTestServer(t, Options{})
	next := nextAsync(t.Context(), ts)
	if err := s.WaitInit(t.Context()); err != nil {
		t.Fatalf("WaitInit: %v", err)
	}
	waitState(t, s, StateReady)
	done := invokeAsync(t.Context(), s, testInvocation("req-1"))
	r := receive(t, next)
	if r.status != http.StatusOK || r.header.Get(hdrRequestID) != "req-1" {
		t.Fatalf("/next: %d %v", r.status, r.header)
	}
	wantAccepted(t, do(t, ts, http.MethodPost, pathResponse("req-1"), []byte(`{}`)))
	if got := receive(t, done); got.err != nil {
		t.Fatalf("Invoke: %v", got.err)
	}
	if got := s.State(); got != StateResponseSent {
		t.Errorf("state %s, want ResponseSent", got)
	}
}

// TestNextDisconnectKeepsEvent checks the delivery rule: an event is consumed
// only once it was written to a waiting /next.
func TestNextDisconnectKeepsEvent(t *testing.T) {
	t.Run("client leaves while parked", func(t *testing.T) {
		s, ts := newTestServer(t, Options{})
		ctx, cancel := context.WithCancel(t.Context())
		next := nextAsync(ctx, ts)
		waitState(t, s, StateReady)
		cancel()
		if r := receive(t, next); !errors.Is(r.err, context.Canceled) {
			t.Fatalf("/next after cancel: %+v", r)
		}
		waitState(t, s, StateIdle)

		done := invokeAsync(t.Context(), s, testInvocation("req-1"))
		r := receive(t, nextAsync(t.Context(), ts))
		if r.status != http.StatusOK || r.header.Get(hdrRequestID) != "req-1" {
			t.Fatalf("second /next: %d %v", r.status, r.header)
		}
		wantAccepted(t, do(t, ts, http.MethodPost, pathResponse("req-1"), []byte(`1`)))
		if got := receive(t, done); got.err != nil || string(got.res.Payload) != "1" {
			t.Fatalf("Invoke = %+v", got)
		}
	})

	t.Run("write fails", func(t *testing.T) {
		s, ts := newTestServer(t, Options{})
		done := invokeAsync(t.Context(), s, testInvocation("req-1"))
		waitPending(t, s)
		req := httptest.NewRequest(http.MethodGet, pathNext, nil)
		s.Handler().ServeHTTP(&brokenWriter{header: http.Header{}}, req)
		if got := s.State(); got != StateIdle {
			t.Fatalf("state after failed write %s, want Idle", got)
		}
		r := receive(t, nextAsync(t.Context(), ts))
		if r.status != http.StatusOK || r.header.Get(hdrRequestID) != "req-1" {
			t.Fatalf("/next after failed write: %d %v", r.status, r.header)
		}
		wantAccepted(t, do(t, ts, http.MethodPost, pathError("req-1"), []byte(`{}`)))
		if got := receive(t, done); got.err != nil || got.res.ErrorType != "Unhandled" {
			t.Fatalf("Invoke = %+v", got)
		}
	})
}

func waitPending(t *testing.T, s *Server) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		s.mu.Lock()
		p := s.pending != nil
		s.mu.Unlock()
		if p {
			return
		}
		if time.Now().After(deadline) {
			t.Fatal("no pending invocation")
		}
		time.Sleep(time.Millisecond)
	}
}

// brokenWriter is a ResponseWriter whose peer is gone.
type brokenWriter struct{ header http.Header }

func (w *brokenWriter) Header() http.Header         { return w.header }
func (w *brokenWriter) WriteHeader(int)             {}
func (w *brokenWriter) Write(p []byte) (int, error) { return 0, errors.New("broken pipe") }
func (w *brokenWriter) FlushError() error           { return errors.New("broken pipe") }

// TestNextConcurrent: a second /next while one is parked gets 403 and the
// parked one keeps its place.
func TestNextConcurrent(t *testing.T) {
	s, ts := newTestServer(t, Options{})
	first := nextAsync(t.Context(), ts)
	waitState(t, s, StateReady)
	for range 3 {
		wantAPIError(t, do(t, ts, http.MethodGet, pathNext, nil), http.StatusForbidden, errInvalidStateTransition)
	}
	done := invokeAsync(t.Context(), s, testInvocation("req-1"))
	if r := receive(t, first); r.status != http.StatusOK || r.header.Get(hdrRequestID) != "req-1" {
		t.Fatalf("first /next: %d %v", r.status, r.header)
	}
	wantAccepted(t, do(t, ts, http.MethodPost, pathResponse("req-1"), nil))
	receive(t, done)
}

func TestNextRefused(t *testing.T) {
	t.Run("running", func(t *testing.T) {
		s, ts := newTestServer(t, Options{})
		running(t, s, ts, testInvocation("req-1"))
		wantAPIError(t, do(t, ts, http.MethodGet, pathNext, nil), http.StatusForbidden, errInvalidStateTransition)
		if got := s.State(); got != StateRunning {
			t.Errorf("state %s after refused /next, want Running", got)
		}
	})
	t.Run("after init error", func(t *testing.T) {
		s, ts := newTestServer(t, Options{})
		wantAccepted(t, do(t, ts, http.MethodPost, pathInitError, []byte(`{}`)))
		wantAPIError(t, do(t, ts, http.MethodGet, pathNext, nil), http.StatusForbidden, errInvalidStateTransition)
		if got := s.State(); got != StateInitError {
			t.Errorf("state %s, want InitError", got)
		}
	})
}

func TestNextReleasedByClose(t *testing.T) {
	s, ts := newTestServer(t, Options{})
	next := nextAsync(t.Context(), ts)
	waitState(t, s, StateReady)
	s.Close()
	r := receive(t, next)
	if r.err != nil {
		t.Fatalf("/next: %v", r.err)
	}
	wantAPIError(t, r, http.StatusInternalServerError, errInternalServerError)
}
