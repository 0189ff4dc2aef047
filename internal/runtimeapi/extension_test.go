package runtimeapi

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

const (
	pathRegister     = "/2020-01-01/extension/register"
	pathExtNext      = "/2020-01-01/extension/event/next"
	pathExtInitError = "/2020-01-01/extension/init/error"
	pathExtExitError = "/2020-01-01/extension/exit/error"
)

// register registers an extension and returns its identifier.
func register(t *testing.T, ts *httptest.Server, name string, events ...string) string {
	t.Helper()
	b, _ := json.Marshal(map[string][]string{"events": events})
	r := do(t, ts, http.MethodPost, pathRegister, b, hdrExtName, name)
	if r.status != http.StatusOK {
		t.Fatalf("register %s: %d %s", name, r.status, r.body)
	}
	id := r.header.Get(hdrExtIdentifier)
	if id == "" {
		t.Fatalf("register %s: no identifier", name)
	}
	return id
}

// extNextAsync starts a GET /extension/event/next for id.
func extNextAsync(ctx context.Context, ts *httptest.Server, id string) <-chan reply {
	ch := make(chan reply, 1)
	go func() { ch <- send(ctx, ts, http.MethodGet, pathExtNext, nil, hdrExtIdentifier, id) }()
	return ch
}

// waitExtState polls until the extension named name is in state want.
func waitExtState(t *testing.T, s *Server, name string, want ExtensionState) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		for _, x := range s.Extensions() {
			if x.Name == name && x.State == want {
				return
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("extension %s not in state %s: %+v", name, want, s.Extensions())
		}
		time.Sleep(time.Millisecond)
	}
}

func notYet[T any](t *testing.T, ch <-chan T, what string) {
	t.Helper()
	select {
	case v := <-ch:
		t.Fatalf("%s returned early: %v", what, v)
	case <-time.After(50 * time.Millisecond):
	}
}

func TestExtRegister(t *testing.T) {
	tests := []struct {
		name     string
		extName  string
		body     string
		headers  []string
		external bool
		setup    func(t *testing.T, s *Server, ts *httptest.Server)
		status   int
		typ      apiErrorType
		wantBody string
	}{
		{name: "internal, INVOKE", extName: "e", body: `{"events":["INVOKE"]}`, status: 200,
			wantBody: `{"functionName":"fn","functionVersion":"7","handler":"h.main"}`},
		{name: "no events", extName: "e", body: `{}`, status: 200},
		{name: "account id", extName: "e", body: `{"events":[]}`, headers: []string{hdrExtAcceptFeature, "other, accountId"}, status: 200,
			wantBody: `{"accountId":"123456789012","functionName":"fn","functionVersion":"7","handler":"h.main"}`},
		{name: "external, SHUTDOWN", extName: "ext", external: true, body: `{"events":["INVOKE","SHUTDOWN"]}`, status: 200},
		{name: "no name", body: `{"events":[]}`, status: 403, typ: errExtInvalidName},
		{name: "not JSON", extName: "e", body: `{"events":`, status: 403, typ: errInvalidRequestFormat},
		{name: "not an object", extName: "e", body: `null`, status: 403, typ: errInvalidRequestFormat},
		{name: "events not strings", extName: "e", body: `{"events":[1]}`, status: 403, typ: errInvalidRequestFormat},
		{name: "configurationKeys", extName: "e", body: `{"events":[],"configurationKeys":["k"]}`, status: 403, typ: errInvalidRequestFormat},
		{name: "unknown event", extName: "e", body: `{"events":["RESTORE"]}`, status: 403, typ: errExtInvalidEventType},
		{name: "internal SHUTDOWN", extName: "e", body: `{"events":["SHUTDOWN"]}`, status: 403, typ: errExtInvalidEventType},
		{name: "name taken", extName: "e", body: `{}`, status: 403, typ: errExtInvalidState,
			setup: func(t *testing.T, s *Server, ts *httptest.Server) { register(t, ts, "e") }},
		{name: "too many", extName: "e10", body: `{}`, status: 403, typ: errExtTooMany,
			setup: func(t *testing.T, s *Server, ts *httptest.Server) {
				for i := range MaxExtensions {
					register(t, ts, fmt.Sprintf("e%d", i))
				}
			}},
		{name: "internal after the runtime's init", extName: "e", body: `{}`, status: 403, typ: errExtRegistrationClosed,
			setup: func(t *testing.T, s *Server, ts *httptest.Server) {
				s.ExpectExtensions("other") // init stays open
				nextAsync(t.Context(), ts)
				waitState(t, s, StateReady)
			}},
		{name: "external after the runtime's init", extName: "ext", external: true, body: `{}`, status: 200,
			setup: func(t *testing.T, s *Server, ts *httptest.Server) {
				s.ExpectExtensions("other")
				nextAsync(t.Context(), ts)
				waitState(t, s, StateReady)
			}},
		{name: "external after init", extName: "ext", body: `{}`, status: 403, typ: errExtRegistrationClosed,
			setup: func(t *testing.T, s *Server, ts *httptest.Server) {
				nextAsync(t.Context(), ts)
				if err := s.WaitInit(t.Context()); err != nil {
					t.Fatal(err)
				}
				s.ExpectExtensions("ext")
			}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, ts := newTestServer(t, Options{Function: FunctionInfo{Name: "fn", Version: "7", Handler: "h.main", AccountID: "123456789012"}})
			if tt.external {
				s.ExpectExtensions(tt.extName)
			}
			if tt.setup != nil {
				tt.setup(t, s, ts)
			}
			r := do(t, ts, http.MethodPost, pathRegister, []byte(tt.body), append([]string{hdrExtName, tt.extName}, tt.headers...)...)
			if tt.status != 200 {
				wantAPIError(t, r, tt.status, tt.typ)
				return
			}
			if r.status != 200 || r.header.Get(hdrExtIdentifier) == "" {
				t.Fatalf("got %d %v %s", r.status, r.header, r.body)
			}
			if tt.wantBody != "" && string(r.body) != tt.wantBody {
				t.Errorf("body %s, want %s", r.body, tt.wantBody)
			}
		})
	}
}

func TestExtIdentifier(t *testing.T) {
	tests := []struct {
		name, id string
		typ      apiErrorType
	}{
		{name: "missing", id: "", typ: errExtMissingIdentifier},
		{name: "not a uuid", id: "abc", typ: errExtInvalidIdentifier},
		{name: "unknown", id: "7f6ae0b1-1c1e-4d7e-9d52-1a8ba1f8a1aa", typ: errExtUnknownIdentifier},
	}
	endpoints := []struct{ method, path string }{
		{http.MethodGet, pathExtNext},
		{http.MethodPost, pathExtInitError},
		{http.MethodPost, pathExtExitError},
		{http.MethodPut, pathTelemetry},
		{http.MethodPut, pathLogs},
	}
	for _, tt := range tests {
		for _, ep := range endpoints {
			t.Run(tt.name+ep.path, func(t *testing.T) {
				_, ts := newTestServer(t, Options{})
				var h []string
				if tt.id != "" {
					h = []string{hdrExtIdentifier, tt.id}
				}
				h = append(h, hdrExtErrorType, "Extension.X")
				wantAPIError(t, do(t, ts, ep.method, ep.path, []byte(`{}`), h...), http.StatusForbidden, tt.typ)
			})
		}
	}
}

// TestInitWaitsForExtensions: init ends only once the runtime and every
// extension called next, and every expected external extension registered.
func TestInitWaitsForExtensions(t *testing.T) {
	s, ts := newTestServer(t, Options{})
	s.ExpectExtensions("ext")
	waitReg := make(chan error, 1)
	go func() { waitReg <- s.WaitExtensionsRegistered(t.Context()) }()
	initDone := make(chan error, 1)
	go func() { initDone <- s.WaitInit(t.Context()) }()

	notYet(t, waitReg, "WaitExtensionsRegistered")
	ext := register(t, ts, "ext", EventInvoke, EventShutdown)
	if err := receive(t, waitReg); err != nil {
		t.Fatal(err)
	}
	internal := register(t, ts, "internal", EventInvoke)
	nextAsync(t.Context(), ts)
	waitState(t, s, StateReady)
	notYet(t, initDone, "WaitInit")
	extNextAsync(t.Context(), ts, ext)
	waitExtState(t, s, "ext", ExtReady)
	notYet(t, initDone, "WaitInit")
	extNextAsync(t.Context(), ts, internal)
	if err := receive(t, initDone); err != nil {
		t.Fatalf("WaitInit = %v", err)
	}
	if got := s.ShutdownGrace(); got != GraceExternal {
		t.Errorf("ShutdownGrace = %s, want %s", got, GraceExternal)
	}
}

// TestInvokeWaitsForExtensions: INVOKE goes to the subscribed extensions
// with tracing; Invoke returns at the runtime's answer, the invocation
// completes when the extensions called next again.
func TestInvokeWaitsForExtensions(t *testing.T) {
	clock := fakeClock(time.Millisecond)
	s, ts := newTestServer(t, Options{Now: clock})
	a := register(t, ts, "a", EventInvoke)
	b := register(t, ts, "b") // not subscribed: never gets INVOKE
	nextAsync(t.Context(), ts)
	aNext := extNextAsync(t.Context(), ts, a)
	extNextAsync(t.Context(), ts, b)
	if err := s.WaitInit(t.Context()); err != nil {
		t.Fatal(err)
	}
	if got := s.ShutdownGrace(); got != GraceInternal {
		t.Errorf("ShutdownGrace = %s, want %s", got, GraceInternal)
	}

	done := invokeAsync(t.Context(), s, testInvocation("req-1"))
	ev := receive(t, aNext)
	if ev.status != 200 || ev.header.Get(hdrExtEventID) == "" {
		t.Fatalf("INVOKE: %d %v %s", ev.status, ev.header, ev.body)
	}
	const wantEv = `{"eventType":"INVOKE","deadlineMs":1767323045123,"requestId":"req-1","invokedFunctionArn":"` + testARN + `","tracing":{"type":"X-Amzn-Trace-Id","value":"` + testTrace + `"}}`
	if string(ev.body) != wantEv {
		t.Errorf("INVOKE event\n got %s\nwant %s", ev.body, wantEv)
	}
	waitState(t, s, StateRunning)
	wantAccepted(t, do(t, ts, http.MethodPost, pathResponse("req-1"), []byte(`"ok"`)))
	if got := receive(t, done); got.err != nil || string(got.res.Payload) != `"ok"` {
		t.Fatalf("Invoke = %q, %v", got.res.Payload, got.err)
	}
	// The runtime's next invocation must wait for the extension.
	nextAsync(t.Context(), ts)
	waitState(t, s, StateReady)
	if _, err := s.Invoke(t.Context(), testInvocation("req-2")); !errors.Is(err, ErrBusy) {
		t.Fatalf("Invoke before the extension is done = %v, want ErrBusy", err)
	}
	comp := make(chan Completion, 1)
	go func() {
		c, err := s.WaitInvokeDone(t.Context())
		if err != nil {
			t.Error(err)
		}
		comp <- c
	}()
	notYet(t, comp, "WaitInvokeDone")
	extNextAsync(t.Context(), ts, a)
	c := receive(t, comp)
	if c.RequestID != "req-1" || c.ProducedBytes != 4 || c.ErrorType != "" || c.Duration <= c.RuntimeDuration {
		t.Errorf("Completion = %+v", c)
	}
	second := invokeAsync(t.Context(), s, testInvocation("req-2"))
	waitState(t, s, StateRunning)
	wantAccepted(t, do(t, ts, http.MethodPost, pathResponse("req-2"), []byte(`{}`)))
	if got := receive(t, second); got.err != nil {
		t.Fatal(got.err)
	}
}

func TestExtInitError(t *testing.T) {
	t.Run("init error fails init", func(t *testing.T) {
		s, ts := newTestServer(t, Options{})
		id := register(t, ts, "e", EventInvoke)
		wantAPIError(t, do(t, ts, http.MethodPost, pathExtInitError, nil, hdrExtIdentifier, id), http.StatusForbidden, errExtMissingHeader)
		queued := invokeAsync(t.Context(), s, testInvocation("req-1"))
		waitPending(t, s)
		wantAccepted(t, do(t, ts, http.MethodPost, pathExtInitError, []byte(`{"errorMessage":"no config"}`),
			hdrExtIdentifier, id, hdrExtErrorType, "Extension.ConfigInvalid"))
		var ie *InitError
		if err := s.WaitInit(t.Context()); !errors.As(err, &ie) || ie.Type != string(ExtensionInitError) {
			t.Fatalf("WaitInit = %v, want InitError Extension.InitError", err)
		}
		if !strings.Contains(string(ie.Payload), "Extension.ConfigInvalid") {
			t.Errorf("payload %s", ie.Payload)
		}
		if got := receive(t, queued); !errors.As(got.err, &ie) {
			t.Errorf("queued Invoke = %v", got.err)
		}
		// A second report and a next are refused in InitError.
		wantAPIError(t, do(t, ts, http.MethodPost, pathExtInitError, nil, hdrExtIdentifier, id, hdrExtErrorType, "X"), http.StatusForbidden, errExtInvalidState)
		wantAPIError(t, do(t, ts, http.MethodGet, pathExtNext, nil, hdrExtIdentifier, id), http.StatusForbidden, errExtInvalidState)
	})
	t.Run("init error after next is refused", func(t *testing.T) {
		s, ts := newTestServer(t, Options{})
		id := register(t, ts, "e")
		extNextAsync(t.Context(), ts, id)
		waitExtState(t, s, "e", ExtReady)
		wantAPIError(t, do(t, ts, http.MethodPost, pathExtInitError, nil, hdrExtIdentifier, id, hdrExtErrorType, "X"), http.StatusForbidden, errExtInvalidState)
	})
	t.Run("exit error fails the invocation", func(t *testing.T) {
		s, ts := newTestServer(t, Options{})
		id := register(t, ts, "e", EventInvoke)
		nextAsync(t.Context(), ts)
		next := extNextAsync(t.Context(), ts, id)
		if err := s.WaitInit(t.Context()); err != nil {
			t.Fatal(err)
		}
		done := invokeAsync(t.Context(), s, testInvocation("req-1"))
		receive(t, next)
		waitState(t, s, StateRunning)
		wantAccepted(t, do(t, ts, http.MethodPost, pathResponse("req-1"), []byte(`{}`)))
		receive(t, done)
		wantAccepted(t, do(t, ts, http.MethodPost, pathExtExitError, nil, hdrExtIdentifier, id, hdrExtErrorType, "Extension.Panic"))
		var ee *ExtensionError
		if _, err := s.WaitInvokeDone(t.Context()); !errors.As(err, &ee) || ee.Type != ExtensionExitError || ee.Reported != "Extension.Panic" {
			t.Fatalf("WaitInvokeDone = %v", err)
		}
		if _, err := s.Invoke(t.Context(), testInvocation("req-2")); !errors.As(err, &ee) {
			t.Fatalf("Invoke after exit error = %v", err)
		}
	})
}

func TestShutdown(t *testing.T) {
	t.Run("SHUTDOWN to external extensions", func(t *testing.T) {
		s, ts := newTestServer(t, Options{})
		s.ExpectExtensions("ext")
		ext := register(t, ts, "ext", EventShutdown)
		in := register(t, ts, "in", EventInvoke)
		nextAsync(t.Context(), ts)
		extNext := extNextAsync(t.Context(), ts, ext)
		inNext := extNextAsync(t.Context(), ts, in)
		if err := s.WaitInit(t.Context()); err != nil {
			t.Fatal(err)
		}
		deadline := time.UnixMilli(1767323049000)
		done := make(chan error, 1)
		go func() { done <- s.Shutdown(t.Context(), "SPINDOWN", deadline) }()
		r := receive(t, extNext)
		if want := `{"eventType":"SHUTDOWN","shutdownReason":"spindown","deadlineMs":1767323049000}`; string(r.body) != want {
			t.Errorf("SHUTDOWN event %s, want %s", r.body, want)
		}
		notYet(t, done, "Shutdown")
		notYet(t, inNext, "the internal extension's next")
		after := extNextAsync(t.Context(), ts, ext) // parks until Close
		if err := receive(t, done); err != nil {
			t.Fatalf("Shutdown = %v", err)
		}
		waitExtState(t, s, "ext", ExtExited)
		s.Close()
		wantAPIError(t, receive(t, after), http.StatusInternalServerError, errInternalServerError)
	})
	t.Run("bounded by ctx", func(t *testing.T) {
		s, ts := newTestServer(t, Options{})
		s.ExpectExtensions("ext")
		ext := register(t, ts, "ext", EventShutdown)
		nextAsync(t.Context(), ts)
		extNextAsync(t.Context(), ts, ext)
		if err := s.WaitInit(t.Context()); err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(t.Context(), 30*time.Millisecond)
		defer cancel()
		if err := s.Shutdown(ctx, ShutdownTimeout, time.Now()); !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("Shutdown = %v, want DeadlineExceeded", err)
		}
	})
	t.Run("nobody subscribed", func(t *testing.T) {
		s, _ := newTestServer(t, Options{})
		if got := s.ShutdownGrace(); got != 0 {
			t.Errorf("ShutdownGrace = %s, want 0", got)
		}
		if err := s.Shutdown(t.Context(), ShutdownFailure, time.Now()); err != nil {
			t.Fatalf("Shutdown = %v", err)
		}
	})
	t.Run("bad reason", func(t *testing.T) {
		s, _ := newTestServer(t, Options{})
		if err := s.Shutdown(t.Context(), "bored", time.Now()); err == nil {
			t.Fatal("Shutdown accepted a bad reason")
		}
	})
}

func TestExtNextTwice(t *testing.T) {
	s, ts := newTestServer(t, Options{})
	id := register(t, ts, "e")
	extNextAsync(t.Context(), ts, id)
	waitExtState(t, s, "e", ExtReady)
	wantAPIError(t, do(t, ts, http.MethodGet, pathExtNext, nil, hdrExtIdentifier, id), http.StatusForbidden, errExtInvalidState)
}

func FuzzRegisterBody(f *testing.F) {
	for _, s := range []string{`{"events":["INVOKE","SHUTDOWN"]}`, `{}`, `null`, `[]`, `{"events":null}`, `{"configurationKeys":["a"]}`, `{"events":[1]}`, `{} {}`, ``} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		req, err := parseRegister(body)
		if err != nil {
			return
		}
		var m map[string]any
		if json.Unmarshal(body, &m) != nil {
			t.Fatalf("accepted a body that is not a JSON object: %q", body)
		}
		for _, e := range req.Events {
			_ = e
		}
	})
}
