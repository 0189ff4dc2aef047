package runtimeapi

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

const (
	pathRestoreNext  = "/2018-06-01/runtime/restore/next"
	pathRestoreError = "/2018-06-01/runtime/restore/error"
)

// rawGet sends GET path on a new connection to ts, as the environment's
// relay does, and returns the connection (closed at the end of the test)
// and a reader of its answers.
func rawGet(t *testing.T, ts *httptest.Server, path string) (net.Conn, *bufio.Reader) {
	t.Helper()
	conn, err := net.Dial("tcp", ts.Listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	if _, err := io.WriteString(conn, "GET "+path+" HTTP/1.1\r\nHost: "+ts.Listener.Addr().String()+"\r\n\r\n"); err != nil {
		t.Fatal(err)
	}
	return conn, bufio.NewReader(conn)
}

// notAnswered checks that nothing arrives on conn for a little while: the
// request is parked.
func notAnswered(t *testing.T, conn net.Conn, br *bufio.Reader) {
	t.Helper()
	_ = conn.SetReadDeadline(time.Now().Add(100 * time.Millisecond))
	defer conn.SetReadDeadline(time.Time{})
	if b, err := br.Peek(1); err == nil {
		t.Fatalf("answered early: %q", b)
	} else if ne, ok := err.(net.Error); !ok || !ne.Timeout() {
		t.Fatalf("connection failed while parked: %v", err)
	}
}

// readReply reads one HTTP answer from a raw connection.
func readReply(t *testing.T, conn net.Conn, br *bufio.Reader) reply {
	t.Helper()
	_ = conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	defer conn.SetReadDeadline(time.Time{})
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatalf("reading the answer: %v", err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return reply{status: resp.StatusCode, header: resp.Header, body: b, err: err}
}

// initResolved reports whether init has ended, without waiting.
func initResolved(s *Server) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.initResolved
}

// wantInitError checks that WaitInit fails with an *InitError and returns it.
func wantInitError(t *testing.T, s *Server) *InitError {
	t.Helper()
	var ie *InitError
	if err := s.WaitInit(t.Context()); !errors.As(err, &ie) {
		t.Fatalf("WaitInit = %v, want *InitError", err)
	}
	return ie
}

// TestRestoreNone: in an ordinary environment both restore endpoints are
// refused and change nothing.
func TestRestoreNone(t *testing.T) {
	tests := []struct {
		name   string
		method string
		path   string
		body   []byte
		hdrs   []string
	}{
		{name: "restore next", method: http.MethodGet, path: pathRestoreNext},
		{name: "restore error", method: http.MethodPost, path: pathRestoreError,
			body: []byte(`{"errorMessage":"boom","errorType":"Runtime.AfterRestoreError"}`),
			hdrs: []string{hdrErrorType, "Runtime.AfterRestoreError"}},
		{name: "restore error, empty", method: http.MethodPost, path: pathRestoreError},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, ts := newTestServer(t, Options{})
			wantAPIError(t, do(t, ts, tt.method, tt.path, tt.body, tt.hdrs...), http.StatusForbidden, errInvalidStateTransition)
			if got := s.State(); got != StateStarted {
				t.Errorf("state %s, want Started", got)
			}
			if s.RestoreNextCalled() {
				t.Error("RestoreNextCalled() = true after a refused request")
			}
			if initResolved(s) {
				t.Error("a refused request ended init")
			}

			// The environment works as before: the first /next ends init.
			next := nextAsync(t.Context(), ts)
			if err := s.WaitInit(t.Context()); err != nil {
				t.Fatalf("WaitInit = %v", err)
			}
			done := invokeAsync(t.Context(), s, testInvocation("req-1"))
			if r := receive(t, next); r.err != nil || r.status != http.StatusOK {
				t.Fatalf("/next: %d %v %s", r.status, r.err, r.body)
			}
			wantAccepted(t, do(t, ts, http.MethodPost, pathResponse("req-1"), []byte(`1`)))
			if got := receive(t, done); got.err != nil || string(got.res.Payload) != "1" {
				t.Fatalf("Invoke = %+v", got)
			}
			wantAPIError(t, do(t, ts, tt.method, tt.path, tt.body, tt.hdrs...), http.StatusForbidden, errInvalidStateTransition)
		})
	}
}

// TestRestoreRefused: the restore endpoints in the states and roles where
// they are not allowed.
func TestRestoreRefused(t *testing.T) {
	nextThenInit := func(t *testing.T, s *Server, ts *httptest.Server) {
		t.Helper()
		nextAsync(t.Context(), ts)
		if err := s.WaitInit(t.Context()); err != nil {
			t.Fatalf("WaitInit = %v", err)
		}
		waitState(t, s, StateReady)
	}
	tests := []struct {
		name      string
		role      SnapshotRole
		setup     func(t *testing.T, s *Server, ts *httptest.Server)
		method    string
		path      string
		wantState State
	}{
		{name: "none, after init: restore next", role: SnapshotNone, setup: nextThenInit,
			method: http.MethodGet, path: pathRestoreNext, wantState: StateReady},
		{name: "taken: restore error", role: SnapshotTaken,
			method: http.MethodPost, path: pathRestoreError, wantState: StateStarted},
		{name: "taken, after init: restore next", role: SnapshotTaken, setup: nextThenInit,
			method: http.MethodGet, path: pathRestoreNext, wantState: StateReady},
		{name: "restored, after init: restore next", role: SnapshotRestored, setup: nextThenInit,
			method: http.MethodGet, path: pathRestoreNext, wantState: StateReady},
		{name: "restored, after init: restore error", role: SnapshotRestored, setup: nextThenInit,
			method: http.MethodPost, path: pathRestoreError, wantState: StateReady},
		{name: "restored, running: restore error", role: SnapshotRestored,
			setup: func(t *testing.T, s *Server, ts *httptest.Server) {
				running(t, s, ts, testInvocation("req-1"))
			},
			method: http.MethodPost, path: pathRestoreError, wantState: StateRunning},
		{name: "restored, after init error: restore next", role: SnapshotRestored,
			setup: func(t *testing.T, s *Server, ts *httptest.Server) {
				wantAccepted(t, do(t, ts, http.MethodPost, pathInitError, []byte(`{}`)))
			},
			method: http.MethodGet, path: pathRestoreNext, wantState: StateInitError},
		{name: "restored, after restore error: restore error", role: SnapshotRestored,
			setup: func(t *testing.T, s *Server, ts *httptest.Server) {
				wantAccepted(t, do(t, ts, http.MethodPost, pathRestoreError, []byte(`{}`)))
			},
			method: http.MethodPost, path: pathRestoreError, wantState: StateInitError},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, ts := newTestServer(t, Options{Snapshot: tt.role})
			if tt.setup != nil {
				tt.setup(t, s, ts)
			}
			wantAPIError(t, do(t, ts, tt.method, tt.path, []byte(`{"errorMessage":"x"}`)),
				http.StatusForbidden, errInvalidStateTransition)
			if got := s.State(); got != tt.wantState {
				t.Errorf("state %s, want %s", got, tt.wantState)
			}
		})
	}
}

func TestRestoreClosed(t *testing.T) {
	roles := []struct {
		name string
		role SnapshotRole
	}{{"none", SnapshotNone}, {"taken", SnapshotTaken}, {"restored", SnapshotRestored}}
	for _, role := range roles {
		for _, ep := range []struct{ method, path string }{
			{http.MethodGet, pathRestoreNext},
			{http.MethodPost, pathRestoreError},
		} {
			t.Run(role.name+" "+ep.method, func(t *testing.T) {
				s, ts := newTestServer(t, Options{Snapshot: role.role})
				s.Close()
				wantAPIError(t, do(t, ts, ep.method, ep.path, nil), http.StatusInternalServerError, errInternalServerError)
				if s.RestoreNextCalled() {
					t.Error("RestoreNextCalled() = true")
				}
			})
		}
	}
}

// TestRestoreRestored: a restored environment's runtime calls
// /restore/next, which answers at once, and then its first /next.
func TestRestoreRestored(t *testing.T) {
	s, ts := newTestServer(t, Options{Snapshot: SnapshotRestored})
	if s.RestoreNextCalled() {
		t.Fatal("RestoreNextCalled() = true before the call")
	}
	queued := invokeAsync(t.Context(), s, testInvocation("req-1"))
	waitPending(t, s)

	r := do(t, ts, http.MethodGet, pathRestoreNext, nil)
	if r.status != http.StatusOK || len(r.body) != 0 {
		t.Fatalf("restore/next: %d %q, want 200 and no body", r.status, r.body)
	}
	if !s.RestoreNextCalled() {
		t.Error("RestoreNextCalled() = false after the call")
	}
	// /restore/next does not end a restored environment's init: the
	// after-restore hooks run now, and may still fail.
	if got := s.State(); got != StateStarted {
		t.Errorf("state %s, want Started", got)
	}
	if initResolved(s) {
		t.Error("restore/next ended init in a restored environment")
	}
	// Again (a relay's retry after a broken connection): answered again.
	if r := do(t, ts, http.MethodGet, pathRestoreNext, nil); r.status != http.StatusOK {
		t.Errorf("second restore/next: %d %s, want 200", r.status, r.body)
	}

	// The first /next ends init and gets the queued event.
	next := receive(t, nextAsync(t.Context(), ts))
	if next.err != nil || next.status != http.StatusOK || next.header.Get(hdrRequestID) != "req-1" {
		t.Fatalf("/next: %d %v %v", next.status, next.err, next.header)
	}
	if err := s.WaitInit(t.Context()); err != nil {
		t.Fatalf("WaitInit = %v", err)
	}
	wantAccepted(t, do(t, ts, http.MethodPost, pathResponse("req-1"), []byte(`"ok"`)))
	if got := receive(t, queued); got.err != nil || string(got.res.Payload) != `"ok"` {
		t.Fatalf("Invoke = %+v", got)
	}
	wantAPIError(t, do(t, ts, http.MethodPost, pathRestoreError, []byte(`{}`)), http.StatusForbidden, errInvalidStateTransition)
	wantAPIError(t, do(t, ts, http.MethodGet, pathRestoreNext, nil), http.StatusForbidden, errInvalidStateTransition)
}

func TestRestoreError(t *testing.T) {
	const limit = 100
	tests := []struct {
		name        string
		restoreNext bool // the runtime called /restore/next first
		body        string
		headers     []string
		wantStatus  int
		wantAPIType apiErrorType
		wantType    string
		wantPayload string
	}{
		{
			name: "typed JSON", restoreNext: true,
			body:       `{"errorMessage":"boom","errorType":"Runtime.AfterRestoreError"}`,
			headers:    []string{hdrErrorType, "Runtime.AfterRestoreError"},
			wantStatus: http.StatusAccepted, wantType: "Runtime.AfterRestoreError",
			wantPayload: `{"errorMessage":"boom","errorType":"Runtime.AfterRestoreError"}`,
		},
		{
			name: "typed JSON, before restore next",
			body: `{"errorMessage":"boom","errorType":"Runtime.AfterRestoreError"}`, headers: []string{hdrErrorType, "Runtime.AfterRestoreError"},
			wantStatus: http.StatusAccepted, wantType: "Runtime.AfterRestoreError",
			wantPayload: `{"errorMessage":"boom","errorType":"Runtime.AfterRestoreError"}`,
		},
		{
			name: "typed, not JSON", restoreNext: true, body: "boom",
			headers:    []string{hdrErrorType, "Runtime.AfterRestoreError"},
			wantStatus: http.StatusAccepted, wantType: "Runtime.AfterRestoreError",
			wantPayload: `{"errorMessage":"boom","errorType":"Runtime.AfterRestoreError"}`,
		},
		{
			name: "untyped, not JSON", restoreNext: true, body: "hook <failed> & boom",
			wantStatus: http.StatusAccepted, wantType: "Unhandled",
			wantPayload: `{"errorMessage":"hook <failed> & boom","errorType":"Unhandled"}`,
		},
		{
			name: "empty", restoreNext: true,
			wantStatus: http.StatusAccepted, wantType: "Unhandled",
			wantPayload: `{"errorMessage":"","errorType":"Unhandled"}`,
		},
		{
			name: "too large", restoreNext: true, body: strings.Repeat("x", limit+1),
			headers:    []string{hdrErrorType, "Runtime.Big"},
			wantStatus: http.StatusRequestEntityTooLarge, wantAPIType: errRequestEntityTooLarge,
			wantType:    "Runtime.Big",
			wantPayload: `{"errorMessage":"Init error payload size exceeded maximum allowed payload size (100 bytes).","errorType":"Runtime.Big"}`,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, ts := newTestServer(t, Options{Snapshot: SnapshotRestored, MaxResponseBytes: limit})
			queued := invokeAsync(t.Context(), s, testInvocation("req-1"))
			waitPending(t, s)
			if tt.restoreNext {
				if r := do(t, ts, http.MethodGet, pathRestoreNext, nil); r.status != http.StatusOK {
					t.Fatalf("restore/next: %d %s", r.status, r.body)
				}
			}

			r := do(t, ts, http.MethodPost, pathRestoreError, []byte(tt.body), tt.headers...)
			if tt.wantStatus == http.StatusAccepted {
				wantAccepted(t, r)
			} else {
				wantAPIError(t, r, tt.wantStatus, tt.wantAPIType)
			}

			ie := wantInitError(t, s)
			if !ie.Restore {
				t.Error("InitError.Restore = false")
			}
			if ie.Type != tt.wantType || string(ie.Payload) != tt.wantPayload {
				t.Errorf("InitError %q %s, want %q %s", ie.Type, ie.Payload, tt.wantType, tt.wantPayload)
			}
			if got, want := ie.Error(), "runtime restore error: "+tt.wantType; got != want {
				t.Errorf("Error() = %q, want %q", got, want)
			}
			var qe *InitError
			if got := receive(t, queued); !errors.As(got.err, &qe) || qe != ie {
				t.Errorf("queued Invoke = %v, want WaitInit's *InitError %p", got.err, ie)
			}
			var le *InitError
			if _, err := s.Invoke(t.Context(), testInvocation("req-2")); !errors.As(err, &le) || le != ie {
				t.Errorf("later Invoke = %v, want WaitInit's *InitError", err)
			}
			if got := s.State(); got != StateInitError {
				t.Errorf("state %s, want InitError", got)
			}
			for _, again := range []struct{ method, path string }{
				{http.MethodPost, pathRestoreError},
				{http.MethodPost, pathInitError},
				{http.MethodGet, pathRestoreNext},
				{http.MethodGet, pathNext},
			} {
				wantAPIError(t, do(t, ts, again.method, again.path, []byte(`{}`)), http.StatusForbidden, errInvalidStateTransition)
			}
			if ie2 := wantInitError(t, s); ie2 != ie {
				t.Errorf("WaitInit changed: %+v, was %+v", ie2, ie)
			}
		})
	}
}

// TestRestoreErrorTruncated: a /restore/error body that breaks off still
// fails the environment, with a platform-made message.
func TestRestoreErrorTruncated(t *testing.T) {
	s, ts := newTestServer(t, Options{Snapshot: SnapshotRestored})
	r := rawRequest(t, ts.Listener.Addr().String(),
		"POST "+pathRestoreError+" HTTP/1.1\r\nHost: 127.0.0.1\r\n"+hdrErrorType+": Runtime.X\r\nContent-Length: 50\r\n\r\nshort")
	wantAPIError(t, r, http.StatusBadRequest, errTruncatedHTTPRequest)
	ie := wantInitError(t, s)
	if !ie.Restore || ie.Type != "Runtime.X" {
		t.Fatalf("InitError %+v, want Restore and type Runtime.X", ie)
	}
	if want := `{"errorMessage":"Init error payload was truncated before it was complete.","errorType":"Runtime.X"}`; string(ie.Payload) != want {
		t.Errorf("payload %s, want %s", ie.Payload, want)
	}
}

// TestRestoreInitError: /init/error stays an init error in a restored
// environment (Restore unset), and ends it as in any other.
func TestRestoreInitError(t *testing.T) {
	for _, restoreNext := range []bool{false, true} {
		name := "before restore next"
		if restoreNext {
			name = "after restore next"
		}
		t.Run(name, func(t *testing.T) {
			s, ts := newTestServer(t, Options{Snapshot: SnapshotRestored})
			if restoreNext {
				if r := do(t, ts, http.MethodGet, pathRestoreNext, nil); r.status != http.StatusOK {
					t.Fatalf("restore/next: %d %s", r.status, r.body)
				}
			}
			wantAccepted(t, do(t, ts, http.MethodPost, pathInitError, []byte(`{"errorMessage":"no handler"}`),
				hdrErrorType, "Runtime.HandlerNotFound"))
			ie := wantInitError(t, s)
			if ie.Restore || ie.Type != "Runtime.HandlerNotFound" {
				t.Errorf("InitError %+v, want Restore unset and type Runtime.HandlerNotFound", ie)
			}
			if got, want := ie.Error(), "runtime init error: Runtime.HandlerNotFound"; got != want {
				t.Errorf("Error() = %q, want %q", got, want)
			}
			wantAPIError(t, do(t, ts, http.MethodPost, pathRestoreError, []byte(`{}`)), http.StatusForbidden, errInvalidStateTransition)
		})
	}
}

// TestRestoreTaken: in an environment to be checkpointed, /restore/next
// ends the runtime's init and parks until Checkpoint answers it.
func TestRestoreTaken(t *testing.T) {
	t.Run("checkpoint", func(t *testing.T) {
		s, ts := newTestServer(t, Options{Snapshot: SnapshotTaken})
		conn, br := rawGet(t, ts, pathRestoreNext)
		if err := s.WaitInit(t.Context()); err != nil {
			t.Fatalf("WaitInit = %v", err)
		}
		notAnswered(t, conn, br)
		if !s.RestoreNextCalled() {
			t.Error("RestoreNextCalled() = false while parked")
		}
		if got := s.State(); got != StateStarted {
			t.Errorf("state %s while restore/next is parked, want Started", got)
		}
		// No /restore/error here.
		wantAPIError(t, do(t, ts, http.MethodPost, pathRestoreError, []byte(`{}`)), http.StatusForbidden, errInvalidStateTransition)
		notAnswered(t, conn, br)
		// A second /restore/next (a relay's retry whose first connection
		// Kappa has not yet seen go) takes the parked one's place: that
		// one is refused, the new one parks and gets the signal.
		first, firstBR := conn, br
		conn, br = rawGet(t, ts, pathRestoreNext)
		wantAPIError(t, readReply(t, first, firstBR), http.StatusForbidden, errInvalidStateTransition)
		notAnswered(t, conn, br)

		checkpointHandshake(t, checkpointAsync(t.Context(), s), conn, br)
	})

	t.Run("an event waits", func(t *testing.T) {
		// An Invoke meanwhile does not wake the parked /restore/next into
		// anything but the checkpoint signal.
		s, ts := newTestServer(t, Options{Snapshot: SnapshotTaken})
		conn, br := rawGet(t, ts, pathRestoreNext)
		if err := s.WaitInit(t.Context()); err != nil {
			t.Fatalf("WaitInit = %v", err)
		}
		ctx, cancel := context.WithCancel(t.Context())
		defer cancel()
		inv := invokeAsync(ctx, s, testInvocation("req-1"))
		waitPending(t, s)
		notAnswered(t, conn, br)

		checkpointHandshake(t, checkpointAsync(t.Context(), s), conn, br)
		notYet(t, inv, "Invoke")
		s.Close()
		if got := receive(t, inv); !errors.Is(got.err, ErrClosed) {
			t.Errorf("Invoke = %+v, want ErrClosed", got)
		}
	})

	t.Run("extension not ready", func(t *testing.T) {
		// Init ends when the extensions are done too; the parked
		// /restore/next waits for it, and Checkpoint before it is refused.
		s, ts := newTestServer(t, Options{Snapshot: SnapshotTaken})
		s.ExpectExtensions("ext")
		conn, br := rawGet(t, ts, pathRestoreNext)
		deadline := time.Now().Add(10 * time.Second)
		for !s.RestoreNextCalled() {
			if time.Now().After(deadline) {
				t.Fatal("restore/next did not arrive")
			}
			time.Sleep(time.Millisecond)
		}
		if initResolved(s) {
			t.Fatal("init ended before the extension registered")
		}
		wantCheckpointRefused(t, s)
		notAnswered(t, conn, br)

		id := register(t, ts, "ext")
		extNextAsync(t.Context(), ts, id)
		if err := s.WaitInit(t.Context()); err != nil {
			t.Fatalf("WaitInit = %v", err)
		}
		notAnswered(t, conn, br)
		checkpointHandshake(t, checkpointAsync(t.Context(), s), conn, br)
	})

	t.Run("runtime without hooks", func(t *testing.T) {
		// A runtime that never calls /restore/next is checkpointed at its
		// first /next, as in any environment.
		s, ts := newTestServer(t, Options{Snapshot: SnapshotTaken})
		conn, br := rawNext(t, ts)
		if err := s.WaitInit(t.Context()); err != nil {
			t.Fatalf("WaitInit = %v", err)
		}
		waitState(t, s, StateReady)
		checkpointHandshake(t, checkpointAsync(t.Context(), s), conn, br)
		if s.RestoreNextCalled() {
			t.Error("RestoreNextCalled() = true")
		}
	})

	t.Run("close while parked", func(t *testing.T) {
		s, ts := newTestServer(t, Options{Snapshot: SnapshotTaken})
		conn, br := rawGet(t, ts, pathRestoreNext)
		if err := s.WaitInit(t.Context()); err != nil {
			t.Fatalf("WaitInit = %v", err)
		}
		notAnswered(t, conn, br)
		s.Close()
		r := readReply(t, conn, br)
		if r.err != nil {
			t.Fatalf("reading the body: %v", r.err)
		}
		wantAPIError(t, r, http.StatusInternalServerError, errInternalServerError)
		if got, err := decodeAPIError(r.body); err != nil || got.ErrorMessage != apiErrClosed.message {
			t.Errorf("error body %s, want the message of apiErrClosed", r.body)
		}
		if err := s.Checkpoint(t.Context()); !errors.Is(err, ErrClosed) {
			t.Errorf("Checkpoint after Close = %v, want ErrClosed", err)
		}
	})

	t.Run("client goes away", func(t *testing.T) {
		// The parked handler ends when its client leaves, before any
		// Checkpoint or Close (TestMain checks that no goroutine stays).
		s := New(Options{Snapshot: SnapshotTaken})
		var active atomic.Int32
		ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			active.Add(1)
			defer active.Add(-1)
			s.Handler().ServeHTTP(w, r)
		}))
		t.Cleanup(func() {
			s.Close()
			ts.Close()
		})

		conn, br := rawGet(t, ts, pathRestoreNext)
		if err := s.WaitInit(t.Context()); err != nil {
			t.Fatalf("WaitInit = %v", err)
		}
		notAnswered(t, conn, br)
		if n := active.Load(); n != 1 {
			t.Fatalf("%d handlers running, want the parked one", n)
		}
		conn.Close()
		deadline := time.Now().Add(10 * time.Second)
		for active.Load() != 0 {
			if time.Now().After(deadline) {
				t.Fatal("the parked restore/next handler did not return when its client left")
			}
			time.Sleep(time.Millisecond)
		}
		if got := s.State(); got != StateStarted {
			t.Errorf("state %s, want Started", got)
		}
		// Nothing is left to answer: Checkpoint waits for its ctx.
		ctx, cancel := context.WithTimeout(t.Context(), 50*time.Millisecond)
		defer cancel()
		if err := s.Checkpoint(ctx); !errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("Checkpoint = %v, want DeadlineExceeded", err)
		}
	})
}

// TestRestoreTakenInitErrorAfterRestoreNext: a taken environment's init
// ended with its /restore/next, so a later /init/error is refused (as it is
// after a first /next) and changes nothing: init stays complete and the
// parked /restore/next still takes the checkpoint.
//
// Regression: /restore/next ends init but leaves the state Started
// (restore.go), and failInit (init_error.go) used to check only that the
// state allowed evInitError: it answered 202 and moved to InitError while
// init stayed resolved with nil, so WaitInit said nil, every later Invoke
// returned (Result{}, nil) and Checkpoint still went ahead. failInit now
// also refuses once init has ended well.
func TestRestoreTakenInitErrorAfterRestoreNext(t *testing.T) {
	s, ts := newTestServer(t, Options{Snapshot: SnapshotTaken})
	conn, br := rawGet(t, ts, pathRestoreNext)
	if err := s.WaitInit(t.Context()); err != nil {
		t.Fatalf("WaitInit = %v", err)
	}
	wantAPIError(t, do(t, ts, http.MethodPost, pathInitError, []byte(`{}`)), http.StatusForbidden, errInvalidStateTransition)
	if got := s.State(); got != StateStarted {
		t.Errorf("state %s after the refused /init/error, want Started", got)
	}
	if err := s.WaitInit(t.Context()); err != nil {
		t.Errorf("WaitInit = %v after the refused /init/error, want nil", err)
	}
	checkpointHandshake(t, checkpointAsync(t.Context(), s), conn, br)
}

// TestRestoreTakenRetry: the relay sends a GET again when its connection
// to Kappa breaks (envinit relay.go), so a /restore/next whose connection
// broke before the checkpoint comes again, and must park again as the
// first did; a /next does (its handler moves to Idle and the next /next is
// taken).
//
// Regression: handleRestoreNext (restore.go) sets s.restoreNext before it
// parks and leaves it set when its client goes away; it used to refuse the
// retry for that with 403 InvalidStateTransition, so the runtime got that
// as the answer to its /restore/next and nothing could answer Checkpoint
// any more. A retry while the state is Started now parks again.
func TestRestoreTakenRetry(t *testing.T) {
	s, ts := newTestServer(t, Options{Snapshot: SnapshotTaken})
	ctx, cancel := context.WithCancel(t.Context())
	first := make(chan reply, 1)
	go func() { first <- send(ctx, ts, http.MethodGet, pathRestoreNext, nil) }()
	if err := s.WaitInit(t.Context()); err != nil {
		t.Fatalf("WaitInit = %v", err)
	}
	cancel()
	receive(t, first)

	conn, br := rawGet(t, ts, pathRestoreNext)
	notAnswered(t, conn, br)
	checkpointHandshake(t, checkpointAsync(t.Context(), s), conn, br)
}

// FuzzRestoreError posts arbitrary error types and bodies to /restore/error
// in a restored environment: the answer is 202 or a well-formed 4xx API
// error, and whenever the error was taken the environment failed with an
// *InitError whose Restore is set.
func FuzzRestoreError(f *testing.F) {
	for _, seed := range []struct {
		typ, body   string
		restoreNext bool
	}{
		{"Runtime.AfterRestoreError", `{"errorMessage":"boom","errorType":"Runtime.AfterRestoreError"}`, true},
		{"", "plain text", false},
		{"", "", true},
		{"Bad\x00Type", "\xff\xfe<>&", true},
		{"Runtime.Big", strings.Repeat("x", 65), false},
		{"Runtime.Big", strings.Repeat("é<", 20), true},
		{strings.Repeat("T", 200), `"str"`, true},
	} {
		f.Add(seed.typ, []byte(seed.body), seed.restoreNext)
	}
	const limit = 64
	f.Fuzz(func(t *testing.T, typ string, body []byte, restoreNext bool) {
		s := New(Options{Snapshot: SnapshotRestored, MaxResponseBytes: limit})
		defer s.Close()
		if restoreNext {
			rec := httptest.NewRecorder()
			s.Handler().ServeHTTP(rec, httptest.NewRequest(http.MethodGet, pathRestoreNext, nil))
			if rec.Code != http.StatusOK {
				t.Fatalf("restore/next: %d %q", rec.Code, rec.Body)
			}
		}

		req := httptest.NewRequest(http.MethodPost, pathRestoreError, bytes.NewReader(body))
		req.Header[hdrErrorType] = []string{typ}
		rec := httptest.NewRecorder()
		s.Handler().ServeHTTP(rec, req)

		switch {
		case rec.Code == http.StatusAccepted:
			if rec.Body.String() != `{"status":"OK"}` {
				t.Fatalf("202 body %q", rec.Body)
			}
		case rec.Code >= 400 && rec.Code < 500:
			if ct := rec.Header().Get("Content-Type"); ct != "application/json" {
				t.Fatalf("%d with Content-Type %q", rec.Code, ct)
			}
			e, err := decodeAPIError(rec.Body.Bytes())
			if err != nil {
				t.Fatalf("%d body %q: %v", rec.Code, rec.Body, err)
			}
			if !knownAPIError[e.ErrorType] {
				t.Fatalf("unknown errorType %q", e.ErrorType)
			}
			if e.ErrorType == errInvalidStateTransition {
				// Refused: nothing happened.
				if s.State() != StateStarted || initResolved(s) {
					t.Fatalf("a refused restore/error moved the state to %s", s.State())
				}
				return
			}
		default:
			t.Fatalf("status %d %q", rec.Code, rec.Body)
		}

		// Taken, possibly with a body over the cap (413): init failed.
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		var ie *InitError
		if err := s.WaitInit(ctx); !errors.As(err, &ie) {
			t.Fatalf("WaitInit = %v after %d, want *InitError", err, rec.Code)
		}
		if !ie.Restore {
			t.Fatal("InitError.Restore = false")
		}
		wantType := typ
		if typ == "" || !validHeaderValue(typ) {
			wantType = "Unhandled"
		}
		if ie.Type != wantType {
			t.Fatalf("InitError.Type %q, want %q", ie.Type, wantType)
		}
		if !json.Valid(ie.Payload) {
			t.Fatalf("payload not JSON: %q", ie.Payload)
		}
		if json.Valid(body) && len(body) <= limit && !bytes.Equal(ie.Payload, body) {
			t.Fatalf("JSON body changed: %q → %q", body, ie.Payload)
		}
		if s.State() != StateInitError {
			t.Fatalf("state %s, want InitError", s.State())
		}
	})
}

// TestRestoreTakenAbandonedNext: a runtime parked in /restore/next that
// also sends a /next and drops it must still get the checkpoint. The
// abandoned /next used to drop the wake channel the /restore/next waited
// on without closing it, so Checkpoint's wake never reached it.
func TestRestoreTakenAbandonedNext(t *testing.T) {
	s, ts := newTestServer(t, Options{Snapshot: SnapshotTaken})
	conn, br := rawGet(t, ts, pathRestoreNext)
	if err := s.WaitInit(t.Context()); err != nil {
		t.Fatalf("WaitInit = %v", err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	next := nextAsync(ctx, ts)
	waitState(t, s, StateReady)
	cancel()
	receive(t, next)
	waitState(t, s, StateIdle)
	notAnswered(t, conn, br)
	checkpointHandshake(t, checkpointAsync(t.Context(), s), conn, br)
}
