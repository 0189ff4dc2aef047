package runtimeapi

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"
)

func TestWaitInit(t *testing.T) {
	t.Run("first next ends init", func(t *testing.T) {
		s, ts := newTestServer(t, Options{})
		done := make(chan error, 1)
		go func() { done <- s.WaitInit(t.Context()) }()
		nextAsync(t.Context(), ts)
		if err := receive(t, done); err != nil {
			t.Fatalf("WaitInit = %v", err)
		}
		s.Close()
		if err := s.WaitInit(t.Context()); err != nil {
			t.Errorf("WaitInit after Close = %v, want nil (init had finished)", err)
		}
	})
	t.Run("context ends", func(t *testing.T) {
		s := New(Options{})
		defer s.Close()
		ctx, cancel := context.WithTimeout(t.Context(), 10*time.Millisecond)
		defer cancel()
		if err := s.WaitInit(ctx); !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("WaitInit = %v, want DeadlineExceeded", err)
		}
	})
	t.Run("closed before init", func(t *testing.T) {
		s := New(Options{})
		done := make(chan error, 1)
		go func() { done <- s.WaitInit(t.Context()) }()
		s.Close()
		if err := receive(t, done); !errors.Is(err, ErrClosed) {
			t.Fatalf("WaitInit = %v, want ErrClosed", err)
		}
	})
}

func TestInvokeBeforeInit(t *testing.T) {
	s, ts := newTestServer(t, Options{})
	done := invokeAsync(t.Context(), s, testInvocation("req-1"))
	waitPending(t, s)
	if got := s.State(); got != StateStarted {
		t.Fatalf("state %s, want Started", got)
	}
	r := receive(t, nextAsync(t.Context(), ts))
	if r.header.Get(hdrRequestID) != "req-1" {
		t.Fatalf("/next: %d %v", r.status, r.header)
	}
	if err := s.WaitInit(t.Context()); err != nil {
		t.Fatalf("WaitInit = %v", err)
	}
	wantAccepted(t, do(t, ts, http.MethodPost, pathResponse("req-1"), []byte("{}")))
	if got := receive(t, done); got.err != nil {
		t.Fatal(got.err)
	}
}

func TestInvokeBusy(t *testing.T) {
	s, ts := newTestServer(t, Options{})
	first := invokeAsync(t.Context(), s, testInvocation("req-1"))
	waitPending(t, s)
	if _, err := s.Invoke(t.Context(), testInvocation("req-2")); !errors.Is(err, ErrBusy) {
		t.Fatalf("second Invoke = %v, want ErrBusy", err)
	}
	receive(t, nextAsync(t.Context(), ts))
	if _, err := s.Invoke(t.Context(), testInvocation("req-2")); !errors.Is(err, ErrBusy) {
		t.Fatalf("Invoke while running = %v, want ErrBusy", err)
	}
	wantAccepted(t, do(t, ts, http.MethodPost, pathResponse("req-1"), []byte("{}")))
	receive(t, first)
}

func TestInvokeContextEnds(t *testing.T) {
	t.Run("before delivery: event withdrawn", func(t *testing.T) {
		s, ts := newTestServer(t, Options{})
		ctx, cancel := context.WithCancel(t.Context())
		done := invokeAsync(ctx, s, testInvocation("req-1"))
		waitPending(t, s)
		cancel()
		if got := receive(t, done); !errors.Is(got.err, context.Canceled) {
			t.Fatalf("Invoke = %v, want Canceled", got.err)
		}
		// The next /next must not get the withdrawn event: it parks.
		nextCtx, stop := context.WithCancel(t.Context())
		next := nextAsync(nextCtx, ts)
		waitState(t, s, StateReady)
		second := invokeAsync(t.Context(), s, testInvocation("req-2"))
		if r := receive(t, next); r.header.Get(hdrRequestID) != "req-2" {
			t.Fatalf("/next got %q, want req-2", r.header.Get(hdrRequestID))
		}
		stop()
		wantAccepted(t, do(t, ts, http.MethodPost, pathResponse("req-2"), []byte("{}")))
		receive(t, second)
	})
	t.Run("after delivery: answer accepted and dropped", func(t *testing.T) {
		s, ts := newTestServer(t, Options{})
		ctx, cancel := context.WithCancel(t.Context())
		done := invokeAsync(ctx, s, testInvocation("req-1"))
		receive(t, nextAsync(t.Context(), ts))
		waitState(t, s, StateRunning)
		cancel()
		if got := receive(t, done); !errors.Is(got.err, context.Canceled) {
			t.Fatalf("Invoke = %v, want Canceled", got.err)
		}
		if _, err := s.Invoke(t.Context(), testInvocation("req-2")); !errors.Is(err, ErrInvalidState) {
			t.Fatalf("Invoke while the runtime owes an answer = %v, want ErrInvalidState", err)
		}
		wantAccepted(t, do(t, ts, http.MethodPost, pathResponse("req-1"), []byte("{}")))
		if got := s.State(); got != StateResponseSent {
			t.Fatalf("state %s, want ResponseSent", got)
		}
	})
}

// TestInvokeExited: when the runtime's process exits, Invoke gives up with
// ErrExited unless an answer arrives within ExitSettle, which wins.
func TestInvokeExited(t *testing.T) {
	tests := []struct {
		name   string
		settle time.Duration
		answer bool // the runtime answers after its exit is noticed
	}{
		{"no answer", time.Millisecond, false},
		{"answer within the settle time", time.Hour, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s, ts := newTestServer(t, Options{})
			exited := make(chan struct{})
			inv := testInvocation("req-1")
			inv.Exited, inv.ExitSettle = exited, tc.settle
			done := invokeAsync(t.Context(), s, inv)
			receive(t, nextAsync(t.Context(), ts))
			close(exited)
			if !tc.answer {
				if got := receive(t, done); !errors.Is(got.err, ErrExited) {
					t.Fatalf("Invoke = %v, want ErrExited", got.err)
				}
				return
			}
			wantAccepted(t, do(t, ts, http.MethodPost, pathResponse("req-1"), []byte(`"late"`)))
			if got := receive(t, done); got.err != nil || string(got.res.Payload) != `"late"` {
				t.Fatalf("Invoke = %q, %v; want the answer", got.res.Payload, got.err)
			}
		})
	}
}

// TestNewCallJSONLineBreaks: a pretty-printed client context or Cognito
// identity (valid JSON with line breaks) travels with spaces instead, as
// Go's header writer would send it; it does not fail the invocation.
func TestNewCallJSONLineBreaks(t *testing.T) {
	s := New(Options{})
	defer s.Close()
	inv := testInvocation("req-1")
	inv.ClientContext = "{\r\n  \"custom\": {\"a\": \"b\"}\n}"
	inv.CognitoIdentity = "{\n\"cognitoIdentityId\": \"x\"}"
	c, err := s.newCall(inv)
	if err != nil {
		t.Fatal(err)
	}
	if got := c.header.Get(hdrClientContext); got != "{    \"custom\": {\"a\": \"b\"} }" {
		t.Errorf("client context header %q", got)
	}
	if got := c.header.Get(hdrCognitoIdentity); got != "{ \"cognitoIdentityId\": \"x\"}" {
		t.Errorf("cognito identity header %q", got)
	}
}

func TestInvokeInvalid(t *testing.T) {
	tests := []struct {
		name string
		edit func(*Invocation)
	}{
		{name: "empty id", edit: func(i *Invocation) { i.RequestID = "" }},
		{name: "slash in id", edit: func(i *Invocation) { i.RequestID = "a/b" }},
		{name: "dots in id", edit: func(i *Invocation) { i.RequestID = ".." }},
		{name: "long id", edit: func(i *Invocation) { i.RequestID = strings.Repeat("a", 129) }},
		{name: "no deadline", edit: func(i *Invocation) { i.Deadline = time.Time{} }},
		{name: "CRLF in ARN", edit: func(i *Invocation) { i.InvokedFunctionARN = "arn\r\nX-Evil: 1" }},
		{name: "NUL in client context", edit: func(i *Invocation) { i.ClientContext = "{\x00}" }},
		{name: "newline in trace id", edit: func(i *Invocation) { i.TraceID = "Root=1\n" }},
		{name: "DEL in content type", edit: func(i *Invocation) { i.ContentType = "text/plain\x7f" }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := New(Options{})
			defer s.Close()
			inv := testInvocation("req-1")
			tt.edit(&inv)
			if _, err := s.Invoke(t.Context(), inv); !errors.Is(err, ErrInvalidInvocation) {
				t.Fatalf("Invoke = %v, want ErrInvalidInvocation", err)
			}
			if got := s.State(); got != StateStarted {
				t.Errorf("state %s, want Started", got)
			}
		})
	}
}

func TestClose(t *testing.T) {
	t.Run("pending invoke", func(t *testing.T) {
		s := New(Options{})
		done := invokeAsync(t.Context(), s, testInvocation("req-1"))
		waitPending(t, s)
		s.Close()
		if got := receive(t, done); !errors.Is(got.err, ErrClosed) {
			t.Fatalf("Invoke = %v, want ErrClosed", got.err)
		}
	})
	t.Run("running invoke", func(t *testing.T) {
		s, ts := newTestServer(t, Options{})
		_, done := running(t, s, ts, testInvocation("req-1"))
		s.Close()
		if got := receive(t, done); !errors.Is(got.err, ErrClosed) {
			t.Fatalf("Invoke = %v, want ErrClosed", got.err)
		}
		wantAPIError(t, do(t, ts, http.MethodPost, pathResponse("req-1"), nil), http.StatusInternalServerError, errInternalServerError)
	})
	t.Run("body being read", func(t *testing.T) {
		s, ts := newTestServer(t, Options{})
		_, done := running(t, s, ts, testInvocation("req-1"))
		pr, pw := io.Pipe()
		defer pw.Close()
		posted := make(chan reply, 1)
		go func() { posted <- send(t.Context(), ts, http.MethodPost, pathResponse("req-1"), pr) }()
		if _, err := pw.Write([]byte(`{"part`)); err != nil {
			t.Fatal(err)
		}
		waitTransfers(t, s, 1)
		s.Close()
		if got := receive(t, done); !errors.Is(got.err, ErrClosed) {
			t.Fatalf("Invoke = %v, want ErrClosed", got.err)
		}
		// The handler is released (the test server's cleanup waits for
		// it); end the client's body too, or its transport may wait on the
		// pipe for the rest of a request the server has answered.
		pw.CloseWithError(errors.New("test over"))
		r := receive(t, posted)
		if r.err == nil {
			wantAPIError(t, r, http.StatusInternalServerError, errInternalServerError)
		}
	})
	t.Run("every later request and call fails", func(t *testing.T) {
		s, ts := newTestServer(t, Options{})
		s.Close()
		s.Close() // idempotent
		for _, p := range []string{pathNext, "/2018-06-01/ping"} {
			wantAPIError(t, do(t, ts, http.MethodGet, p, nil), http.StatusInternalServerError, errInternalServerError)
		}
		for _, p := range []string{pathResponse("req-1"), pathError("req-1"), pathInitError, "/2020-01-01/extension/register"} {
			wantAPIError(t, do(t, ts, http.MethodPost, p, nil), http.StatusInternalServerError, errInternalServerError)
		}
		if _, err := s.Invoke(t.Context(), testInvocation("req-1")); !errors.Is(err, ErrClosed) {
			t.Errorf("Invoke = %v, want ErrClosed", err)
		}
		if got := s.State(); got != StateClosed {
			t.Errorf("state %s", got)
		}
	})
}

func waitTransfers(t *testing.T, s *Server, n int) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		s.mu.Lock()
		got := len(s.transfers)
		s.mu.Unlock()
		if got == n {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d transfers, want %d", got, n)
		}
		time.Sleep(time.Millisecond)
	}
}

// waitReading waits until n request bodies are being read (a delivery to
// /next that is still being written does not count).
func waitReading(t *testing.T, s *Server, n int) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		s.mu.Lock()
		got := 0
		for _, dir := range s.transfers {
			if dir == transferRead {
				got++
			}
		}
		s.mu.Unlock()
		if got == n {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d bodies being read, want %d", got, n)
		}
		time.Sleep(time.Millisecond)
	}
}

// TestInvokeLoop runs a fake runtime loop against many sequential invokes,
// under the race detector.
func TestInvokeLoop(t *testing.T) {
	var logs strings.Builder
	var logMu sync.Mutex
	logger := slog.New(slog.NewTextHandler(lockedWriter{&logMu, &logs}, &slog.HandlerOptions{Level: slog.LevelDebug}))
	s, ts := newTestServer(t, Options{Logger: logger, Now: fakeClock(time.Millisecond)})

	ctx, stop := context.WithCancel(t.Context())
	runtimeDone := make(chan struct{})
	go func() {
		defer close(runtimeDone)
		for ctx.Err() == nil {
			r := send(ctx, ts, http.MethodGet, pathNext, nil)
			if r.err != nil || r.status != http.StatusOK {
				continue
			}
			id := r.header.Get(hdrRequestID)
			p := pathResponse(id)
			if strings.HasSuffix(id, "3") {
				p = pathError(id)
			}
			send(ctx, ts, http.MethodPost, p, strings.NewReader(`{"echo":`+string(r.body)+`}`))
		}
	}()
	if err := s.WaitInit(t.Context()); err != nil {
		t.Fatal(err)
	}
	for i := range 100 {
		id := fmt.Sprintf("req-%d", i)
		inv := testInvocation(id)
		inv.Payload = []byte(fmt.Sprint(i))
		res, err := s.Invoke(t.Context(), inv)
		if err != nil {
			t.Fatalf("Invoke %s: %v", id, err)
		}
		if want := fmt.Sprintf(`{"echo":%d}`, i); string(res.Payload) != want {
			t.Fatalf("Invoke %s = %s, want %s", id, res.Payload, want)
		}
		if wantErr := strings.HasSuffix(id, "3"); (res.ErrorType == "Unhandled") != wantErr {
			t.Fatalf("Invoke %s: ErrorType %q", id, res.ErrorType)
		}
		if res.Duration <= 0 {
			t.Fatalf("Invoke %s: Duration %v", id, res.Duration)
		}
	}
	stop()
	s.Close()
	<-runtimeDone
	logMu.Lock()
	defer logMu.Unlock()
	if !strings.Contains(logs.String(), "to=Running") {
		t.Errorf("no transition logged through the injected logger")
	}
}

type lockedWriter struct {
	mu *sync.Mutex
	w  io.Writer
}

func (w lockedWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.w.Write(p)
}
