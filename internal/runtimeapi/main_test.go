package runtimeapi

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"
)

// TestMain fails the run when goroutines outlive the tests: every handler,
// Invoke and test server must have ended.
func TestMain(m *testing.M) {
	before := runtime.NumGoroutine()
	code := m.Run()
	if code == 0 && !fuzzing() {
		if err := waitGoroutines(before, 5*time.Second); err != nil {
			fmt.Fprintln(os.Stderr, err)
			code = 1
		}
	}
	os.Exit(code)
}

// fuzzing reports whether this process runs the fuzzing engine, whose
// workers and coordinator keep goroutines of their own.
func fuzzing() bool {
	for _, name := range []string{"test.fuzz", "test.fuzzworker"} {
		if f := flag.Lookup(name); f != nil && f.Value.String() != "" && f.Value.String() != "false" {
			return true
		}
	}
	return false
}

func waitGoroutines(want int, within time.Duration) error {
	deadline := time.Now().Add(within)
	for {
		n := runtime.NumGoroutine()
		if n <= want {
			return nil
		}
		if time.Now().After(deadline) {
			buf := make([]byte, 1<<20)
			buf = buf[:runtime.Stack(buf, true)]
			return fmt.Errorf("goroutine leak: %d running, %d before the tests\n%s", n, want, buf)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

const (
	pathNext      = "/2018-06-01/runtime/invocation/next"
	pathInitError = "/2018-06-01/runtime/init/error"
	testARN       = "arn:aws:lambda:us-east-1:000000000000:function:f:1"
	testTrace     = "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1"
)

func pathResponse(id string) string { return "/2018-06-01/runtime/invocation/" + id + "/response" }
func pathError(id string) string    { return "/2018-06-01/runtime/invocation/" + id + "/error" }

var testEpoch = time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)

// fakeClock returns a clock that advances by step on every reading.
func fakeClock(step time.Duration) func() time.Time {
	var mu sync.Mutex
	t := testEpoch
	return func() time.Time {
		mu.Lock()
		defer mu.Unlock()
		t = t.Add(step)
		return t
	}
}

func testInvocation(id string) Invocation {
	return Invocation{
		RequestID:          id,
		Payload:            []byte(`{"key":"value"}`),
		Deadline:           time.UnixMilli(1767323045123),
		InvokedFunctionARN: testARN,
		TraceID:            testTrace,
	}
}

// newTestServer serves a new Server on a loopback httptest server; both are
// closed at the end of the test.
func newTestServer(t *testing.T, opts Options) (*Server, *httptest.Server) {
	t.Helper()
	s := New(opts)
	ts := httptest.NewServer(s.Handler())
	t.Cleanup(func() {
		s.Close()
		ts.Close()
	})
	return s, ts
}

type reply struct {
	status int
	header http.Header
	body   []byte
	err    error
}

// send makes one request; headers are name, value pairs.
func send(ctx context.Context, ts *httptest.Server, method, path string, body io.Reader, headers ...string) reply {
	req, err := http.NewRequestWithContext(ctx, method, ts.URL+path, body)
	if err != nil {
		return reply{err: err}
	}
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Add(headers[i], headers[i+1])
	}
	resp, err := ts.Client().Do(req)
	if err != nil {
		return reply{err: err}
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return reply{status: resp.StatusCode, header: resp.Header, body: b, err: err}
}

func do(t *testing.T, ts *httptest.Server, method, path string, body []byte, headers ...string) reply {
	t.Helper()
	r := send(t.Context(), ts, method, path, bytes.NewReader(body), headers...)
	if r.err != nil {
		t.Fatalf("%s %s: %v", method, path, r.err)
	}
	return r
}

// nextAsync starts a GET /next and returns where its reply arrives.
func nextAsync(ctx context.Context, ts *httptest.Server) <-chan reply {
	ch := make(chan reply, 1)
	go func() { ch <- send(ctx, ts, http.MethodGet, pathNext, nil) }()
	return ch
}

type invokeReply struct {
	res Result
	err error
}

func invokeAsync(ctx context.Context, s *Server, inv Invocation) <-chan invokeReply {
	ch := make(chan invokeReply, 1)
	go func() {
		res, err := s.Invoke(ctx, inv)
		ch <- invokeReply{res, err}
	}()
	return ch
}

func receive[T any](t *testing.T, ch <-chan T) T {
	t.Helper()
	select {
	case v := <-ch:
		return v
	case <-time.After(10 * time.Second):
		t.Fatal("timed out waiting")
		panic("unreachable")
	}
}

// waitState polls until s is in state want.
func waitState(t *testing.T, s *Server, want State) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for s.State() != want {
		if time.Now().After(deadline) {
			t.Fatalf("state %s, want %s", s.State(), want)
		}
		time.Sleep(time.Millisecond)
	}
}

// running drives s to Running with invocation id delivered over HTTP and
// returns the /next reply and where Invoke's outcome arrives.
func running(t *testing.T, s *Server, ts *httptest.Server, inv Invocation) (reply, <-chan invokeReply) {
	t.Helper()
	ch := invokeAsync(t.Context(), s, inv)
	r := receive(t, nextAsync(t.Context(), ts))
	if r.err != nil || r.status != http.StatusOK {
		t.Fatalf("/next: %d %v %s", r.status, r.err, r.body)
	}
	waitState(t, s, StateRunning)
	return r, ch
}

// wantAPIError checks that r is the Runtime API error typ with status.
func wantAPIError(t *testing.T, r reply, status int, typ apiErrorType) {
	t.Helper()
	if r.status != status {
		t.Fatalf("status %d, want %d (body %s)", r.status, status, r.body)
	}
	checkAPIErrorBody(t, r.header, r.body, typ)
}

func checkAPIErrorBody(t *testing.T, h http.Header, body []byte, typ apiErrorType) {
	t.Helper()
	if ct := h.Get("Content-Type"); ct != "application/json" {
		t.Errorf("Content-Type %q, want application/json", ct)
	}
	got, err := decodeAPIError(body)
	if err != nil {
		t.Fatalf("error body %q: %v", body, err)
	}
	if got.ErrorType != typ {
		t.Errorf("errorType %q, want %q", got.ErrorType, typ)
	}
}

// decodeAPIError parses an API error body strictly: exactly errorType (not
// empty) and errorMessage, both strings.
func decodeAPIError(body []byte) (apiErrorBody, error) {
	var m map[string]any
	if err := json.Unmarshal(body, &m); err != nil {
		return apiErrorBody{}, err
	}
	typ, ok1 := m["errorType"].(string)
	msg, ok2 := m["errorMessage"].(string)
	if !ok1 || !ok2 || len(m) != 2 || typ == "" {
		return apiErrorBody{}, fmt.Errorf("not an API error: %v", m)
	}
	return apiErrorBody{ErrorType: apiErrorType(typ), ErrorMessage: msg}, nil
}

func wantAccepted(t *testing.T, r reply) {
	t.Helper()
	if r.status != http.StatusAccepted || strings.TrimSpace(string(r.body)) != `{"status":"OK"}` {
		t.Fatalf("got %d %s, want 202 {\"status\":\"OK\"}", r.status, r.body)
	}
}

// forceState puts s into st directly, for tests of one handler per state;
// in StateRunning the invocation in flight is "req-1".
func forceState(s *Server, st State) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.state = st
	switch st {
	case StateStarted:
	case StateInitError:
		s.resolveInit(&InitError{Type: "Runtime.Test"})
	default:
		s.resolveInit(nil)
	}
	if st == StateRunning {
		c, err := s.newCall(testInvocation("req-1"))
		if err != nil {
			panic(err)
		}
		c.delivered = s.now()
		s.current = c
	}
}
