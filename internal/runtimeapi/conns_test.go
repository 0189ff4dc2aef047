package runtimeapi

import (
	"bufio"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"
)

// TestNewHTTPServerConnCap holds the cap's worth of connections open and
// checks that one more is closed before it is served, that the refusal is
// logged once, and that a slot freed by a closing connection serves again.
func TestNewHTTPServerConnCap(t *testing.T) {
	var logs strings.Builder
	var logMu sync.Mutex
	logger := slog.New(slog.NewTextHandler(lockedWriter{&logMu, &logs}, nil))
	const max = 3
	s := New(Options{Logger: logger, MaxConns: max, Function: FunctionInfo{Name: "f"}})
	t.Cleanup(s.Close)
	srv := NewHTTPServer(s)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	addr := ln.Addr().String()

	// ping answers on c, or reports how the connection ended.
	ping := func(c net.Conn) error {
		c.SetDeadline(time.Now().Add(10 * time.Second))
		if _, err := io.WriteString(c, "GET /2018-06-01/ping HTTP/1.1\r\nHost: x\r\n\r\n"); err != nil {
			return err
		}
		resp, err := http.ReadResponse(bufio.NewReader(c), nil)
		if err != nil {
			return err
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return errors.New(resp.Status)
		}
		return nil
	}
	dial := func() net.Conn {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		return c
	}
	var held []net.Conn
	for range max {
		c := dial()
		if err := ping(c); err != nil {
			t.Fatalf("connection under the cap: %v", err)
		}
		held = append(held, c) // kept alive, idle
	}
	if err := ping(dial()); err == nil {
		t.Fatal("a connection over the cap was served")
	}
	if err := ping(dial()); err == nil {
		t.Fatal("a second connection over the cap was served")
	}
	logMu.Lock()
	got := strings.Count(logs.String(), "too many connections")
	logMu.Unlock()
	if got != 1 {
		t.Fatalf("refusals logged %d times, want once:\n%s", got, logs.String())
	}

	// Held connections still work, and one closed frees its slot (the
	// server sees the close asynchronously: wait for it).
	if err := ping(held[1]); err != nil {
		t.Fatalf("held connection: %v", err)
	}
	held[0].Close()
	deadline := time.Now().Add(10 * time.Second)
	for {
		err := ping(dial())
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("a slot freed by a closed connection was not reused: %v", err)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestNewHTTPServerDefaultCap(t *testing.T) {
	s := New(Options{})
	defer s.Close()
	if s.maxConns != DefaultMaxConns {
		t.Fatalf("maxConns %d, want %d", s.maxConns, DefaultMaxConns)
	}
	if srv := NewHTTPServer(s); srv.ReadHeaderTimeout <= 0 || srv.ConnState == nil {
		t.Fatal("server without header timeout or connection cap")
	}
}

// TestNewHTTPServerConnCapHijack: a hijacked connection (the checkpoint
// hand-over takes its connection from net/http) frees its slot.
func TestNewHTTPServerConnCapHijack(t *testing.T) {
	s := New(Options{MaxConns: 1})
	t.Cleanup(s.Close)
	srv := NewHTTPServer(s)
	hijacked := make(chan net.Conn, 1)
	srv.Handler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/hijack" {
			c, _, err := http.NewResponseController(w).Hijack()
			if err == nil {
				hijacked <- c
			}
			return
		}
		w.WriteHeader(http.StatusOK)
	})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })

	get := func(path string) (net.Conn, error) {
		c, err := net.Dial("tcp", ln.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		c.SetDeadline(time.Now().Add(10 * time.Second))
		if _, err := io.WriteString(c, "GET "+path+" HTTP/1.1\r\nHost: x\r\n\r\n"); err != nil {
			return c, err
		}
		if path == "/hijack" {
			return c, nil
		}
		resp, err := http.ReadResponse(bufio.NewReader(c), nil)
		if err == nil {
			resp.Body.Close()
		}
		return c, err
	}
	if _, err := get("/hijack"); err != nil {
		t.Fatal(err)
	}
	h := <-hijacked // the only slot was its; hijacked, it is free
	defer h.Close()
	if _, err := get("/ok"); err != nil {
		t.Fatalf("after a hijack: %v", err)
	}
}
