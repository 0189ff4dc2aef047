package runtimeapi

import (
	"bufio"
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func streamInvocation(id string) Invocation {
	inv := testInvocation(id)
	inv.Stream = true
	return inv
}

// rawPost opens a connection to ts and writes a chunked POST's head; the
// caller writes chunks with chunk and ends with end.
type rawPost struct {
	conn net.Conn
	br   *bufio.Reader
}

func startRawPost(t *testing.T, ts *httptest.Server, path string, headers ...string) *rawPost {
	t.Helper()
	conn, err := net.Dial("tcp", ts.Listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	head := "POST " + path + " HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nContent-Type: text/plain\r\n"
	for i := 0; i+1 < len(headers); i += 2 {
		head += headers[i] + ": " + headers[i+1] + "\r\n"
	}
	if _, err := io.WriteString(conn, head+"\r\n"); err != nil {
		t.Fatal(err)
	}
	return &rawPost{conn: conn, br: bufio.NewReader(conn)}
}

func (p *rawPost) chunk(t *testing.T, s string) {
	t.Helper()
	if _, err := fmt.Fprintf(p.conn, "%x\r\n%s\r\n", len(s), s); err != nil {
		t.Fatal(err)
	}
}

// end writes the last chunk with trailers and returns the response.
func (p *rawPost) end(t *testing.T, trailers ...string) reply {
	t.Helper()
	s := "0\r\n"
	for i := 0; i+1 < len(trailers); i += 2 {
		s += trailers[i] + ": " + trailers[i+1] + "\r\n"
	}
	if _, err := io.WriteString(p.conn, s+"\r\n"); err != nil {
		t.Fatal(err)
	}
	return p.response(t)
}

func (p *rawPost) response(t *testing.T) reply {
	t.Helper()
	resp, err := http.ReadResponse(p.br, nil)
	if err != nil {
		return reply{err: err}
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return reply{status: resp.StatusCode, header: resp.Header, body: b, err: err}
}

// readN reads exactly n bytes of body.
func readN(t *testing.T, body io.Reader, n int) string {
	t.Helper()
	buf := make([]byte, n)
	if _, err := io.ReadFull(body, buf); err != nil {
		t.Fatalf("read: %v", err)
	}
	return string(buf)
}

func TestStreamRaw(t *testing.T) {
	t.Run("chunks arrive as they are sent", func(t *testing.T) {
		s, ts := newTestServer(t, Options{})
		_, done := running(t, s, ts, streamInvocation("req-1"))
		p := startRawPost(t, ts, pathResponse("req-1"), hdrResponseMode, "streaming", "Trailer", hdrErrorType+", "+hdrErrorBody)
		p.chunk(t, "first")
		got := receive(t, done)
		if got.err != nil || got.res.Body == nil || got.res.Payload != nil || got.res.ContentType != "text/plain" {
			t.Fatalf("Invoke = %+v, %v", got.res, got.err)
		}
		if s := readN(t, got.res.Body, 5); s != "first" {
			t.Fatalf("first chunk %q", s)
		}
		// The invocation is not complete while the body runs.
		if _, err := s.Invoke(t.Context(), testInvocation("req-2")); !errors.Is(err, ErrBusy) {
			t.Fatalf("Invoke during the stream = %v, want ErrBusy", err)
		}
		p.chunk(t, "second")
		if s := readN(t, got.res.Body, 6); s != "second" {
			t.Fatalf("second chunk %q", s)
		}
		respc := make(chan reply, 1)
		go func() { respc <- p.end(t) }()
		if b, err := io.ReadAll(got.res.Body); err != nil || len(b) != 0 || got.res.Body.Err() != nil {
			t.Fatalf("end of body: %q %v %v", b, err, got.res.Body.Err())
		}
		wantAccepted(t, receive(t, respc))
		c, err := s.WaitInvokeDone(t.Context())
		if err != nil || c.ProducedBytes != 11 || c.ErrorType != "" {
			t.Fatalf("Completion %+v, %v", c, err)
		}
	})
	t.Run("error in the trailers", func(t *testing.T) {
		s, ts := newTestServer(t, Options{})
		_, done := running(t, s, ts, streamInvocation("req-1"))
		p := startRawPost(t, ts, pathResponse("req-1"), hdrResponseMode, "streaming")
		p.chunk(t, "partial")
		got := receive(t, done)
		respc := make(chan reply, 1)
		go func() {
			respc <- p.end(t, hdrErrorType, "Custom.Boom", hdrErrorBody,
				base64.StdEncoding.EncodeToString([]byte(`{"errorMessage":"boom","errorType":"Custom.Boom"}`)))
		}()
		b, err := io.ReadAll(got.res.Body)
		var se *StreamError
		if string(b) != "partial" || !errors.As(err, &se) || se.Type != "Custom.Boom" || string(se.Payload) != `{"errorMessage":"boom","errorType":"Custom.Boom"}` {
			t.Fatalf("body %q, err %v", b, err)
		}
		if !errors.As(got.res.Body.Err(), &se) {
			t.Errorf("Err() = %v", got.res.Body.Err())
		}
		wantAccepted(t, receive(t, respc))
		if c, err := s.WaitInvokeDone(t.Context()); err != nil || c.ErrorType != "Custom.Boom" {
			t.Fatalf("Completion %+v, %v", c, err)
		}
	})
	t.Run("over the stream cap", func(t *testing.T) {
		s, ts := newTestServer(t, Options{MaxStreamBytes: 8})
		_, done := running(t, s, ts, streamInvocation("req-1"))
		p := startRawPost(t, ts, pathResponse("req-1"))
		p.chunk(t, "12345")
		got := receive(t, done)
		p.chunk(t, "67890")
		b, err := io.ReadAll(got.res.Body)
		var se *StreamError
		// The bytes up to the cap are forwarded, whether the two chunks
		// arrive in one read or two.
		if string(b) != "12345678" || !errors.As(err, &se) || se.Type != string(FunctionResponseSizeTooLarge) {
			t.Fatalf("body %q, err %v", b, err)
		}
		wantAPIError(t, p.response(t), http.StatusRequestEntityTooLarge, errRequestEntityTooLarge)
	})
	t.Run("truncated", func(t *testing.T) {
		s, ts := newTestServer(t, Options{})
		_, done := running(t, s, ts, streamInvocation("req-1"))
		p := startRawPost(t, ts, pathResponse("req-1"))
		p.chunk(t, "abc")
		got := receive(t, done)
		readN(t, got.res.Body, 3)
		p.conn.Close()
		_, err := io.ReadAll(got.res.Body)
		var se *StreamError
		if !errors.As(err, &se) || se.Type != string(RuntimeTruncatedResponse) {
			t.Fatalf("err %v", err)
		}
	})
	t.Run("reader closes early", func(t *testing.T) {
		s, ts := newTestServer(t, Options{})
		_, done := running(t, s, ts, streamInvocation("req-1"))
		p := startRawPost(t, ts, pathResponse("req-1"))
		p.chunk(t, "abc")
		got := receive(t, done)
		got.res.Body.Close()
		p.chunk(t, "dropped")
		wantAccepted(t, p.end(t))
		if c, err := s.WaitInvokeDone(t.Context()); err != nil || c.ProducedBytes != 10 {
			t.Fatalf("Completion %+v, %v", c, err)
		}
	})
	t.Run("closed mid-stream", func(t *testing.T) {
		s, ts := newTestServer(t, Options{})
		_, done := running(t, s, ts, streamInvocation("req-1"))
		p := startRawPost(t, ts, pathResponse("req-1"))
		p.chunk(t, "abc")
		got := receive(t, done)
		readN(t, got.res.Body, 3)
		s.Close()
		if _, err := io.ReadAll(got.res.Body); !errors.Is(err, ErrClosed) {
			t.Fatalf("err %v, want ErrClosed", err)
		}
		if _, err := s.WaitInvokeDone(t.Context()); !errors.Is(err, ErrClosed) {
			t.Fatalf("WaitInvokeDone = %v", err)
		}
	})
	t.Run("error before the first byte", func(t *testing.T) {
		s, ts := newTestServer(t, Options{})
		_, done := running(t, s, ts, streamInvocation("req-1"))
		wantAccepted(t, do(t, ts, http.MethodPost, pathError("req-1"), []byte(`{"errorMessage":"x","errorType":"E"}`), hdrErrorType, "E"))
		got := receive(t, done)
		if got.err != nil || got.res.Body != nil || got.res.ErrorType != "E" {
			t.Fatalf("Invoke = %+v, %v", got.res, got.err)
		}
	})
	t.Run("buffered invocation, streaming runtime", func(t *testing.T) {
		s, ts := newTestServer(t, Options{})
		_, done := running(t, s, ts, testInvocation("req-1"))
		p := startRawPost(t, ts, pathResponse("req-1"), hdrResponseMode, "streaming")
		p.chunk(t, "a")
		p.chunk(t, "b")
		wantAccepted(t, p.end(t))
		if got := receive(t, done); got.err != nil || got.res.Body != nil || string(got.res.Payload) != "ab" {
			t.Fatalf("Invoke = %+v, %v", got.res, got.err)
		}
	})
}

// TestStreamRealClient runs testdata/functions/stream, an aws-lambda-go
// function returning an io.Reader, and checks that its chunks arrive while
// it still runs.
func TestStreamRealClient(t *testing.T) {
	bin := buildStream(t)
	s, ts := newTestServer(t, Options{})
	proc := startEcho(t, bin, ts.Listener.Addr().String())
	if err := s.WaitInit(t.Context()); err != nil {
		t.Fatalf("WaitInit: %v\n%s", err, proc.output())
	}

	inv := streamInvocation("slow-1")
	inv.Payload = []byte(`{"op":"stream","n":3,"ms":300}`)
	inv.Deadline = time.Now().Add(time.Minute)
	start := time.Now()
	got := receive(t, invokeAsync(t.Context(), s, inv))
	if got.err != nil || got.res.Body == nil {
		t.Fatalf("Invoke = %+v, %v\n%s", got.res, got.err, proc.output())
	}
	if first := readN(t, got.res.Body, len("chunk-0\n")); first != "chunk-0\n" {
		t.Fatalf("first chunk %q", first)
	}
	// Streamed, not buffered: the first chunk is here while the runtime
	// is still writing the rest (two more, 300 ms apart).
	if st := s.State(); st != StateRunning {
		t.Errorf("state %s when the first chunk arrived: not streamed", st)
	}
	rest, err := io.ReadAll(got.res.Body)
	if err != nil || string(rest) != "chunk-1\nchunk-2\n" {
		t.Fatalf("rest %q, %v", rest, err)
	}
	if d := time.Since(start); d < 550*time.Millisecond {
		t.Errorf("whole stream in %s, want ≥ 600ms", d)
	}
	if _, err := s.WaitInvokeDone(t.Context()); err != nil {
		t.Fatal(err)
	}

	inv = streamInvocation("fail-1")
	inv.Payload = []byte(`{"op":"streamfail","n":2,"ms":10}`)
	inv.Deadline = time.Now().Add(time.Minute)
	got = receive(t, invokeAsync(t.Context(), s, inv))
	if got.err != nil || got.res.Body == nil {
		t.Fatalf("Invoke = %+v, %v", got.res, got.err)
	}
	b, err := io.ReadAll(got.res.Body)
	var se *StreamError
	if string(b) != "chunk-0\nchunk-1\n" || !errors.As(err, &se) || se.Type != "midStreamError" ||
		!strings.Contains(string(se.Payload), "failed after streaming") {
		t.Fatalf("body %q, err %v", b, err)
	}
}

func buildStream(t *testing.T) string {
	t.Helper()
	goBin, err := exec.LookPath("go")
	if err != nil {
		t.Skip("needs the go command to build testdata/functions/stream")
	}
	bin := filepath.Join(t.TempDir(), "stream")
	cmd := exec.CommandContext(t.Context(), goBin, "build", "-o", bin, "../../testdata/functions/stream")
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build testdata/functions/stream: %v\n%s", err, out)
	}
	return bin
}

// TestStreamAfterInvokeGaveUp: a streamed answer that arrives after Invoke
// gave up (its context ended) is read to its end and dropped; the runtime
// gets 202 rather than hanging on a body nobody reads.
func TestStreamAfterInvokeGaveUp(t *testing.T) {
	s, ts := newTestServer(t, Options{})
	ctx, cancel := context.WithCancel(t.Context())
	done := invokeAsync(ctx, s, streamInvocation("req-1"))
	if r := receive(t, nextAsync(t.Context(), ts)); r.err != nil || r.status != http.StatusOK {
		t.Fatalf("/next: %d %v", r.status, r.err)
	}
	cancel()
	if got := receive(t, done); !errors.Is(got.err, context.Canceled) {
		t.Fatalf("Invoke = %v, want context.Canceled", got.err)
	}
	p := startRawPost(t, ts, pathResponse("req-1"), hdrResponseMode, "streaming")
	big := strings.Repeat("x", 256<<10) // more than any pipe or socket buffer holds
	for range 4 {
		p.chunk(t, big)
	}
	p.conn.SetDeadline(time.Now().Add(30 * time.Second))
	if r := p.end(t); r.err != nil || r.status != http.StatusAccepted {
		t.Fatalf("streamed answer after Invoke gave up: %d %v %s", r.status, r.err, r.body)
	}
}
