package runtimeapi

import (
	"bufio"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/textproto"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/kappa-run/kappa/internal/envinit"
)

// rawNext sends GET /next on a new connection to ts, as the environment's
// relay does, and returns the connection (closed at the end of the test)
// and a reader of its answers.
func rawNext(t *testing.T, ts *httptest.Server) (net.Conn, *bufio.Reader) {
	t.Helper()
	return rawGet(t, ts, pathNext)
}

// readCheckpointSignal reads the answer on conn and checks that it is the
// relay's checkpoint signal: a bare 503 with CheckpointHeader and
// Connection: close.
func readCheckpointSignal(t *testing.T, conn net.Conn, br *bufio.Reader) {
	t.Helper()
	_ = conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	defer conn.SetReadDeadline(time.Time{})
	tp := textproto.NewReader(br)
	status, err := tp.ReadLine()
	if err != nil {
		t.Fatalf("reading the answer to /next: %v", err)
	}
	h, err := tp.ReadMIMEHeader()
	if err != nil {
		t.Fatalf("reading the answer's header: %v", err)
	}
	if !strings.HasPrefix(status, "HTTP/1.1 503 ") {
		t.Errorf("status line %q, want a 503", status)
	}
	if got := h.Get(envinit.CheckpointHeader); got == "" {
		t.Errorf("no %s header in %v", envinit.CheckpointHeader, h)
	}
	if got := h.Values("Connection"); len(got) != 1 || got[0] != "close" {
		t.Errorf("Connection %q, want close", got)
	}
	if got := h.Get("Content-Length"); got != "0" {
		t.Errorf("Content-Length %q, want 0", got)
	}
	for _, name := range []string{hdrRequestID, hdrDeadlineMs, hdrFunctionARN, hdrTraceID} {
		if v := h.Get(name); v != "" {
			t.Errorf("the checkpoint signal carries %s %q", name, v)
		}
	}
	if n := br.Buffered(); n != 0 {
		b, _ := br.Peek(n)
		t.Errorf("more after the checkpoint signal: %q", b)
	}
}

func checkpointAsync(ctx context.Context, s *Server) <-chan error {
	ch := make(chan error, 1)
	go func() { ch <- s.Checkpoint(ctx) }()
	return ch
}

// checkpointHandshake plays the relay's part in a checkpoint: done is where
// a Checkpoint started with checkpointAsync returns, conn the connection of
// the request that is (or is about to be) parked. The request gets the
// checkpoint signal, Checkpoint waits until the relay closes conn, and then
// returns nil.
func checkpointHandshake(t *testing.T, done <-chan error, conn net.Conn, br *bufio.Reader) {
	t.Helper()
	readCheckpointSignal(t, conn, br)
	// Checkpoint returns only once the relay closed the connection.
	notYet(t, done, "Checkpoint")
	conn.Close()
	if err := receive(t, done); err != nil {
		t.Fatalf("Checkpoint = %v", err)
	}
}

// wantCheckpointRefused checks that Checkpoint on s, whose init has not
// completed (or failed), is refused at once with an error of its own: not
// ErrClosed, and without waiting for its context.
func wantCheckpointRefused(t *testing.T, s *Server) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	err := s.Checkpoint(ctx)
	if err == nil || errors.Is(err, ErrClosed) || errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Checkpoint before init = %v, want an init error", err)
	}
}

func TestCheckpoint(t *testing.T) {
	t.Run("parked next", func(t *testing.T) {
		s, ts := newTestServer(t, Options{})
		conn, br := rawNext(t, ts)
		if err := s.WaitInit(t.Context()); err != nil {
			t.Fatalf("WaitInit: %v", err)
		}
		waitState(t, s, StateReady)

		checkpointHandshake(t, checkpointAsync(t.Context(), s), conn, br)
		if got := s.State(); got != StateIdle {
			t.Errorf("state %s after the checkpoint, want Idle", got)
		}
	})

	t.Run("next comes after", func(t *testing.T) {
		s, ts := newTestServer(t, Options{})
		ctx, cancel := context.WithCancel(t.Context())
		first := nextAsync(ctx, ts)
		if err := s.WaitInit(t.Context()); err != nil {
			t.Fatalf("WaitInit: %v", err)
		}
		waitState(t, s, StateReady)
		cancel()
		if r := receive(t, first); !errors.Is(r.err, context.Canceled) {
			t.Fatalf("first /next: %+v", r)
		}
		waitState(t, s, StateIdle)

		done := checkpointAsync(t.Context(), s)
		notYet(t, done, "Checkpoint with no /next parked")
		conn, br := rawNext(t, ts)
		checkpointHandshake(t, done, conn, br)
	})

	t.Run("before a pending event", func(t *testing.T) {
		// An event queued meanwhile is not delivered: the checkpoint
		// signal comes first.
		s, ts := newTestServer(t, Options{})
		conn, br := rawNext(t, ts)
		if err := s.WaitInit(t.Context()); err != nil {
			t.Fatalf("WaitInit: %v", err)
		}
		waitState(t, s, StateReady)
		s.mu.Lock()
		s.ckpt = make(chan error, 1) // Checkpoint's first step, without its wake-up
		s.mu.Unlock()
		done := checkpointAsync(t.Context(), s)
		inv := invokeAsync(t.Context(), s, testInvocation("req-1"))
		checkpointHandshake(t, done, conn, br)
		s.Close()
		if got := receive(t, inv); !errors.Is(got.err, ErrClosed) {
			t.Errorf("Invoke = %+v, want ErrClosed", got)
		}
	})
}

func TestCheckpointBeforeInit(t *testing.T) {
	t.Run("no next yet", func(t *testing.T) {
		s := New(Options{})
		defer s.Close()
		wantCheckpointRefused(t, s)
	})

	t.Run("extension not ready", func(t *testing.T) {
		s, ts := newTestServer(t, Options{})
		s.ExpectExtensions("ext")
		next := nextAsync(t.Context(), ts)
		waitState(t, s, StateReady)
		wantCheckpointRefused(t, s)

		// The refused Checkpoint left nothing behind: once init ends,
		// the parked /next gets the next event.
		id := register(t, ts, "ext")
		extNextAsync(t.Context(), ts, id)
		if err := s.WaitInit(t.Context()); err != nil {
			t.Fatalf("WaitInit: %v", err)
		}
		done := invokeAsync(t.Context(), s, testInvocation("req-1"))
		r := receive(t, next)
		if r.err != nil || r.status != http.StatusOK || r.header.Get(hdrRequestID) != "req-1" {
			t.Fatalf("/next: %d %v %v", r.status, r.header, r.err)
		}
		wantAccepted(t, do(t, ts, http.MethodPost, pathResponse("req-1"), []byte(`1`)))
		if got := receive(t, done); got.err != nil {
			t.Fatalf("Invoke = %+v", got)
		}
	})

	t.Run("init failed", func(t *testing.T) {
		s, ts := newTestServer(t, Options{})
		wantAccepted(t, do(t, ts, http.MethodPost, pathInitError, []byte(`{}`)))
		wantCheckpointRefused(t, s)
	})
}

func TestCheckpointClosed(t *testing.T) {
	t.Run("before init", func(t *testing.T) {
		s := New(Options{})
		s.Close()
		if err := s.Checkpoint(t.Context()); !errors.Is(err, ErrClosed) {
			t.Fatalf("Checkpoint = %v, want ErrClosed", err)
		}
	})
	t.Run("after init", func(t *testing.T) {
		s, ts := newTestServer(t, Options{})
		next := nextAsync(t.Context(), ts)
		if err := s.WaitInit(t.Context()); err != nil {
			t.Fatalf("WaitInit: %v", err)
		}
		s.Close()
		if err := s.Checkpoint(t.Context()); !errors.Is(err, ErrClosed) {
			t.Fatalf("Checkpoint = %v, want ErrClosed", err)
		}
		wantAPIError(t, receive(t, next), http.StatusInternalServerError, errInternalServerError)
	})
}

func TestCheckpointContext(t *testing.T) {
	t.Run("relay keeps the connection", func(t *testing.T) {
		s, ts := newTestServer(t, Options{})
		conn, br := rawNext(t, ts)
		if err := s.WaitInit(t.Context()); err != nil {
			t.Fatalf("WaitInit: %v", err)
		}
		waitState(t, s, StateReady)

		ctx, cancel := context.WithTimeout(t.Context(), 100*time.Millisecond)
		defer cancel()
		done := checkpointAsync(ctx, s)
		readCheckpointSignal(t, conn, br)
		if err := receive(t, done); !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("Checkpoint = %v, want DeadlineExceeded", err)
		}
		// The connection closes late: a Checkpoint called again gets the
		// outcome.
		conn.Close()
		if err := s.Checkpoint(t.Context()); err != nil {
			t.Fatalf("Checkpoint again = %v", err)
		}
	})

	t.Run("relay keeps the connection past the wait", func(t *testing.T) {
		// The relay reads the signal but never closes its connection:
		// after checkpointCloseWait Checkpoint gives up with an error, and
		// Kappa closes the connection itself.
		old := checkpointCloseWait
		checkpointCloseWait = 100 * time.Millisecond
		t.Cleanup(func() { checkpointCloseWait = old })
		s, ts := newTestServer(t, Options{})
		conn, br := rawNext(t, ts)
		if err := s.WaitInit(t.Context()); err != nil {
			t.Fatalf("WaitInit: %v", err)
		}
		waitState(t, s, StateReady)

		done := checkpointAsync(t.Context(), s)
		readCheckpointSignal(t, conn, br)
		err := receive(t, done)
		if err == nil || !strings.Contains(err.Error(), "kept its connection") {
			t.Fatalf("Checkpoint = %v, want the relay kept its connection", err)
		}
		_ = conn.SetReadDeadline(time.Now().Add(10 * time.Second))
		if b, err := br.ReadByte(); err != io.EOF {
			t.Errorf("read after the failed checkpoint = %q, %v; want EOF (Kappa closed the connection)", b, err)
		}
	})

	t.Run("no next comes", func(t *testing.T) {
		s, ts := newTestServer(t, Options{})
		ctx, cancel := context.WithCancel(t.Context())
		first := nextAsync(ctx, ts)
		if err := s.WaitInit(t.Context()); err != nil {
			t.Fatalf("WaitInit: %v", err)
		}
		waitState(t, s, StateReady)
		cancel()
		receive(t, first)
		waitState(t, s, StateIdle)

		short, cancelShort := context.WithTimeout(t.Context(), 50*time.Millisecond)
		defer cancelShort()
		if err := s.Checkpoint(short); !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("Checkpoint = %v, want DeadlineExceeded", err)
		}
	})
}

// TestCheckpointThenMoreNext: requests that still reach the server after a
// checkpoint (the relay tries again at once; Checkpoint's caller is meant
// to close the listener first, but a connection may get through) must not
// leave handlers behind, whether they are /next or, in an environment to
// be checkpointed, /restore/next.
//
// Regression: s.ckpt stays set after the checkpoint, so every later
// request is answered with the signal too, and its handler then reports
// the outcome on s.ckpt, a channel of capacity 1 that nobody reads any
// more. That send used to block: the first extra request filled the
// channel, the second and every later one blocked forever, Close included.
// answerCheckpoint (next.go) now drops an outcome nobody waits for.
func TestCheckpointThenMoreNext(t *testing.T) {
	tests := []struct {
		name   string
		path   string
		opts   Options
		parked State // the state while the first request is parked
	}{
		{name: "next", path: pathNext, opts: Options{}, parked: StateReady},
		{name: "restore next", path: pathRestoreNext, opts: Options{Snapshot: SnapshotTaken}, parked: StateStarted},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := New(tt.opts)
			var active atomic.Int32
			ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				active.Add(1)
				defer active.Add(-1)
				s.Handler().ServeHTTP(w, r)
			}))
			defer ts.Close()
			defer s.Close()

			conn, br := rawGet(t, ts, tt.path)
			if err := s.WaitInit(t.Context()); err != nil {
				t.Fatalf("WaitInit: %v", err)
			}
			waitState(t, s, tt.parked)
			checkpointHandshake(t, checkpointAsync(t.Context(), s), conn, br)

			for range 3 {
				c, br := rawGet(t, ts, tt.path)
				_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
				if _, err := br.ReadString('\n'); err != nil {
					t.Fatalf("no answer to a %s after the checkpoint: %v", tt.path, err)
				}
				c.Close()
			}
			s.Close()
			deadline := time.Now().Add(10 * time.Second)
			for active.Load() != 0 {
				if time.Now().After(deadline) {
					t.Fatalf("%d handlers still running after Close", active.Load())
				}
				time.Sleep(time.Millisecond)
			}
		})
	}
}
