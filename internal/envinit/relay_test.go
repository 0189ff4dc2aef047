package envinit

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

const (
	pathNext = "/2018-06-01/runtime/invocation/next"
	testARN  = "arn:aws:lambda:us-east-1:000000000000:function:f:1"
)

func pathResponse(id string) string { return "/2018-06-01/runtime/invocation/" + id + "/response" }

// wait bounds every wait of these tests for something that must happen.
const wait = 10 * time.Second

func listenLoopback(t testing.TB) net.Listener {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	return ln
}

// startUpstream serves h, Kappa's stand-in, on ln (a new loopback listener
// when nil); it is closed at the end of the test. Each of configure is
// applied to the server before it starts (httptest wraps Config.ConnState
// as it starts, so a hook must be set before).
func startUpstream(t testing.TB, ln net.Listener, h http.Handler, configure ...func(*http.Server)) *httptest.Server {
	t.Helper()
	if ln == nil {
		ln = listenLoopback(t)
	}
	ts := httptest.NewUnstartedServer(h)
	ts.Listener.Close()
	ts.Listener = ln
	for _, f := range configure {
		f(ts.Config)
	}
	ts.Start()
	t.Cleanup(ts.Close)
	return ts
}

// relayHarness is a relay served the way serveRelay serves it, on its own
// loopback listener, with the connections its transport makes recorded.
type relayHarness struct {
	rl     *relay
	addr   string // the relay's listener (the runtime's AWS_LAMBDA_RUNTIME_API)
	url    string
	client *http.Client // the runtime's side

	active atomic.Int64 // relay handlers running

	mu      sync.Mutex
	asked   []string // the addresses the transport dialed for
	reached []string // the remote addresses of the connections it got
	dialing chan string
}

func startRelay(t testing.TB, upstream string) *relayHarness {
	t.Helper()
	h := &relayHarness{rl: newRelay(upstream), dialing: make(chan string, 1024)}
	h.rl.tr.DialContext = func(ctx context.Context, network, addr string) (net.Conn, error) {
		h.mu.Lock()
		h.asked = append(h.asked, addr)
		h.mu.Unlock()
		select {
		case h.dialing <- addr:
		default:
		}
		c, err := h.rl.dial(ctx, network, addr)
		if c != nil {
			h.mu.Lock()
			h.reached = append(h.reached, c.RemoteAddr().String())
			h.mu.Unlock()
		}
		return c, err
	}
	ln := listenLoopback(t)
	h.addr = ln.Addr().String()
	h.url = "http://" + h.addr
	srv := &http.Server{
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			h.active.Add(1)
			defer h.active.Add(-1)
			h.rl.ServeHTTP(w, r)
		}),
		ReadHeaderTimeout: time.Minute,
	}
	go srv.Serve(ln)
	ctr := &http.Transport{DisableCompression: true} // no proxy
	h.client = &http.Client{Transport: ctr}
	t.Cleanup(func() {
		ctr.CloseIdleConnections()
		srv.Close()
		h.rl.tr.CloseIdleConnections()
		if err := h.waitIdle(wait); err != nil {
			t.Error(err)
		}
	})
	return h
}

// waitIdle waits until no relay handler runs.
func (h *relayHarness) waitIdle(within time.Duration) error {
	deadline := time.Now().Add(within)
	for h.active.Load() != 0 {
		if time.Now().After(deadline) {
			return fmt.Errorf("%d relay handlers still running after %v", h.active.Load(), within)
		}
		time.Sleep(time.Millisecond)
	}
	return nil
}

// checkReachedOnly fails t if the relay's transport connected anywhere but
// upstream.
func (h *relayHarness) checkReachedOnly(t *testing.T, upstream string) {
	t.Helper()
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, a := range h.reached {
		if a != upstream {
			t.Errorf("relay connected to %s, want only %s (asked for %q)", a, upstream, h.asked)
		}
	}
}

type result struct {
	status  int
	header  http.Header
	trailer http.Header
	body    string
	err     error
}

func (h *relayHarness) send(ctx context.Context, method, path string, body io.Reader, headers ...string) result {
	req, err := http.NewRequestWithContext(ctx, method, h.url+path, body)
	if err != nil {
		return result{err: err}
	}
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Add(headers[i], headers[i+1])
	}
	resp, err := h.client.Do(req)
	if err != nil {
		return result{err: err}
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return result{status: resp.StatusCode, header: resp.Header, trailer: resp.Trailer, body: string(b), err: err}
}

func (h *relayHarness) do(t *testing.T, method, path string, body string, headers ...string) result {
	t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	r := h.send(t.Context(), method, path, rd, headers...)
	if r.err != nil {
		t.Fatalf("%s %s: %v", method, path, r.err)
	}
	return r
}

func (h *relayHarness) async(ctx context.Context, method, path string) <-chan result {
	ch := make(chan result, 1)
	go func() { ch <- h.send(ctx, method, path, nil) }()
	return ch
}

func receive[T any](t *testing.T, ch <-chan T) T {
	t.Helper()
	select {
	case v := <-ch:
		return v
	case <-time.After(wait):
		t.Fatal("timed out waiting")
		panic("unreachable")
	}
}

// seen is a request as the upstream got it.
type seen struct {
	method, uri, host string
	header, trailer   http.Header
	contentLength     int64
	transferEncoding  []string
	body              string
}

func record(r *http.Request) seen {
	b, _ := io.ReadAll(r.Body)
	return seen{method: r.Method, uri: r.RequestURI, host: r.Host, header: r.Header.Clone(), trailer: r.Trailer.Clone(),
		contentLength: r.ContentLength, transferEncoding: r.TransferEncoding, body: string(b)}
}

// checkpointAnswer is runtimeapi's checkpoint signal, byte for byte: a
// copy of what writeCheckpointSignal in internal/runtimeapi/next.go writes
// (the real one), which it must match should that change.
const checkpointAnswer = "HTTP/1.1 503 Service Unavailable\r\n" + CheckpointHeader +
	": 1\r\nConnection: close\r\nContent-Length: 0\r\n\r\n"

// answerCheckpoint writes the checkpoint signal on w's connection and
// reports whether the relay closed it.
func answerCheckpoint(w http.ResponseWriter) bool {
	conn, brw, err := http.NewResponseController(w).Hijack()
	if err != nil {
		return false
	}
	defer conn.Close()
	brw.WriteString(checkpointAnswer)
	if brw.Flush() != nil {
		return false
	}
	_ = conn.SetReadDeadline(time.Now().Add(wait))
	_, err = io.Copy(io.Discard, conn)
	return err == nil
}

// hijackClose breaks w's connection without an answer.
func hijackClose(w http.ResponseWriter) {
	conn, _, err := http.NewResponseController(w).Hijack()
	if err == nil {
		conn.Close()
	}
}

func TestRelayPassThrough(t *testing.T) {
	seenCh := make(chan seen, 16)
	up := startUpstream(t, nil, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s := record(r)
		seenCh <- s
		h := w.Header()
		switch {
		case r.URL.Path == pathNext:
			h.Set("Lambda-Runtime-Aws-Request-Id", "req-1")
			h.Set("Lambda-Runtime-Deadline-Ms", "1767323045123")
			h.Set("Lambda-Runtime-Invoked-Function-Arn", testARN)
			h.Set("Lambda-Runtime-Trace-Id", "Root=1-5759e988-bd862e3fe1be46a994272793;Sampled=1")
			h.Set("Lambda-Runtime-Client-Context", `{"custom":{"a":"b"}}`)
			h["X-Multi"] = []string{"one", "two"}
			h.Set("Content-Type", "application/json")
			io.WriteString(w, `{"key":"value"}`)
		case strings.HasPrefix(r.URL.Path, "/status/"):
			code, _ := strconv.Atoi(strings.TrimPrefix(r.URL.Path, "/status/"))
			h.Set("Content-Type", "application/json")
			w.WriteHeader(code)
			fmt.Fprintf(w, `{"code":%d}`, code)
		default:
			h.Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusAccepted)
			io.WriteString(w, `{"status":"OK"}`)
		}
	}))
	upAddr := up.Listener.Addr().String()
	h := startRelay(t, upAddr)

	t.Run("GET", func(t *testing.T) {
		r := h.do(t, http.MethodGet, pathNext+"?q=1&r=a%20b", "", "User-Agent", "aws-lambda-go/1.0", "X-Custom", "c1", "X-Custom", "c2")
		s := receive(t, seenCh)
		if s.method != http.MethodGet || s.uri != pathNext+"?q=1&r=a%20b" || s.body != "" {
			t.Errorf("upstream got %s %s body %q", s.method, s.uri, s.body)
		}
		if s.host != upAddr {
			t.Errorf("upstream got Host %q, want %q", s.host, upAddr)
		}
		if got := s.header.Get("User-Agent"); got != "aws-lambda-go/1.0" {
			t.Errorf("upstream got User-Agent %q", got)
		}
		if got := s.header.Values("X-Custom"); fmt.Sprint(got) != "[c1 c2]" {
			t.Errorf("upstream got X-Custom %q, want [c1 c2]", got)
		}
		if r.status != http.StatusOK || r.body != `{"key":"value"}` {
			t.Fatalf("relay answered %d %q", r.status, r.body)
		}
		for name, want := range map[string]string{
			"Lambda-Runtime-Aws-Request-Id":       "req-1",
			"Lambda-Runtime-Deadline-Ms":          "1767323045123",
			"Lambda-Runtime-Invoked-Function-Arn": testARN,
			"Lambda-Runtime-Trace-Id":             "Root=1-5759e988-bd862e3fe1be46a994272793;Sampled=1",
			"Lambda-Runtime-Client-Context":       `{"custom":{"a":"b"}}`,
			"Content-Type":                        "application/json",
		} {
			if got := r.header.Get(name); got != want {
				t.Errorf("client got %s = %q, want %q", name, got, want)
			}
		}
		if got := r.header.Values("X-Multi"); fmt.Sprint(got) != "[one two]" {
			t.Errorf("client got X-Multi %q, want [one two]", got)
		}

		// An escaped path goes upstream as the client wrote it: its
		// %2F is not turned into a separator (URL.RawPath kept).
		encoded := pathResponse("a%2Fb") + "?q=%2F"
		r = h.do(t, http.MethodGet, encoded, "")
		s = receive(t, seenCh)
		if s.method != http.MethodGet || s.uri != encoded {
			t.Errorf("upstream got %s %s, want GET %s", s.method, s.uri, encoded)
		}
		if r.status != http.StatusAccepted || r.body != `{"status":"OK"}` {
			t.Errorf("relay answered %d %q for %s", r.status, r.body, encoded)
		}
	})

	t.Run("POST with body", func(t *testing.T) {
		body := `{"answer":42,"s":"héllo"}` + strings.Repeat("x", 100<<10)
		r := h.do(t, http.MethodPost, pathResponse("req-1"), body,
			"Content-Type", "application/json",
			"Lambda-Runtime-Function-Error-Type", "Custom.Error",
			"Lambda-Runtime-Function-Xray-Error-Cause", `{"working_directory":"/"}`)
		s := receive(t, seenCh)
		if s.method != http.MethodPost || s.uri != pathResponse("req-1") {
			t.Errorf("upstream got %s %s", s.method, s.uri)
		}
		if s.body != body || s.contentLength != int64(len(body)) {
			t.Errorf("upstream got %d bytes (Content-Length %d), want %d", len(s.body), s.contentLength, len(body))
		}
		for name, want := range map[string]string{
			"Content-Type":                             "application/json",
			"Lambda-Runtime-Function-Error-Type":       "Custom.Error",
			"Lambda-Runtime-Function-Xray-Error-Cause": `{"working_directory":"/"}`,
		} {
			if got := s.header.Get(name); got != want {
				t.Errorf("upstream got %s = %q, want %q", name, got, want)
			}
		}
		if r.status != http.StatusAccepted || r.body != `{"status":"OK"}` {
			t.Errorf("relay answered %d %q", r.status, r.body)
		}
	})

	t.Run("status codes", func(t *testing.T) {
		for _, code := range []int{200, 202, 204, 400, 403, 404, 410, 413, 429, 500, 502, 503} {
			for _, method := range []string{http.MethodGet, http.MethodPost} {
				r := h.do(t, method, "/status/"+strconv.Itoa(code), "", "Content-Type", "text/plain")
				if s := receive(t, seenCh); s.method != method {
					t.Errorf("upstream got %s, want %s", s.method, method)
				}
				want := fmt.Sprintf(`{"code":%d}`, code)
				if code == http.StatusNoContent {
					want = ""
				}
				if r.status != code || r.body != want {
					t.Errorf("%s status %d: relay answered %d %q", method, code, r.status, r.body)
				}
			}
		}
		// Each request reached the upstream once: a 503 without the
		// checkpoint signal is an answer like any other.
		select {
		case s := <-seenCh:
			t.Errorf("upstream got an extra request %s %s", s.method, s.uri)
		default:
		}
	})

	h.checkReachedOnly(t, upAddr)
}

// TestRelayHopHeaders: the connection-level headers (hopHeaders) of the
// client's request are not passed to the upstream, nor those of the
// upstream's answer to the client; the end-to-end ones are.
func TestRelayHopHeaders(t *testing.T) {
	// Values a Go client and server write as they are, with no meaning to
	// either of them: they reach the relay, so only its filter stops them.
	// (Transfer-Encoding and Trailer are taken out of the header as a
	// message is read, and so never reach the relay's copy.)
	hop := map[string]string{
		"Connection":       "X-Hop-Token",
		"Keep-Alive":       "timeout=5, max=100",
		"Proxy-Connection": "keep-alive",
		"Te":               "trailers",
		"Upgrade":          "example/1",
	}
	for k := range hop {
		if !hopHeaders[k] {
			t.Fatalf("%s is not in hopHeaders", k)
		}
	}
	seenCh := make(chan seen, 1)
	up := startUpstream(t, nil, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		seenCh <- record(r)
		for k, v := range hop {
			w.Header().Set(k, v)
		}
		w.Header().Set("X-End-To-End", "answer")
		io.WriteString(w, "event")
	}))
	h := startRelay(t, up.Listener.Addr().String())

	var headers []string
	for k, v := range hop {
		headers = append(headers, k, v)
	}
	r := h.do(t, http.MethodGet, pathNext, "", append(headers, "X-End-To-End", "request")...)
	s := receive(t, seenCh)
	if r.status != http.StatusOK || r.body != "event" {
		t.Fatalf("relay answered %d %q", r.status, r.body)
	}
	for k := range hopHeaders {
		if vs, ok := s.header[k]; ok {
			t.Errorf("upstream got %s %q", k, vs)
		}
		if vs, ok := r.header[k]; ok {
			t.Errorf("client got %s %q", k, vs)
		}
	}
	if got := s.header.Get("X-End-To-End"); got != "request" {
		t.Errorf("upstream got X-End-To-End %q, want %q", got, "request")
	}
	if got := r.header.Get("X-End-To-End"); got != "answer" {
		t.Errorf("client got X-End-To-End %q, want %q", got, "answer")
	}
}

// TestRelayStreamedRequest: a streamed /response (chunked, with the error
// trailers) reaches the upstream as it is written, trailers included.
func TestRelayStreamedRequest(t *testing.T) {
	const (
		hdrMode      = "Lambda-Runtime-Function-Response-Mode"
		hdrErrorType = "Lambda-Runtime-Function-Error-Type"
		hdrErrorBody = "Lambda-Runtime-Function-Error-Body"
	)
	firstSeen := make(chan struct{})
	seenCh := make(chan seen, 1)
	up := startUpstream(t, nil, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		// The first part arrives while the client still holds the rest.
		first := make([]byte, len("part one;"))
		if _, err := io.ReadFull(r.Body, first); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		close(firstSeen)
		s := record(r)
		s.body = string(first) + s.body
		seenCh <- s
		w.WriteHeader(http.StatusAccepted)
		io.WriteString(w, `{"status":"OK"}`)
	}))
	h := startRelay(t, up.Listener.Addr().String())

	pr, pw := io.Pipe()
	defer pw.Close()
	req, err := http.NewRequestWithContext(t.Context(), http.MethodPost, h.url+pathResponse("req-1"), pr)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set(hdrMode, "streaming")
	req.Header.Set("Content-Type", "application/octet-stream")
	req.Trailer = http.Header{hdrErrorType: nil, hdrErrorBody: nil}
	done := make(chan result, 1)
	go func() {
		resp, err := h.client.Do(req)
		if err != nil {
			done <- result{err: err}
			return
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		done <- result{status: resp.StatusCode, body: string(b), err: err}
	}()

	if _, err := io.WriteString(pw, "part one;"); err != nil {
		t.Fatal(err)
	}
	receive(t, firstSeen)
	if _, err := io.WriteString(pw, "part two"); err != nil {
		t.Fatal(err)
	}
	req.Trailer.Set(hdrErrorType, "Stream.Broke")
	req.Trailer.Set(hdrErrorBody, "eyJlcnJvck1lc3NhZ2UiOiJtaWQifQ==")
	pw.Close()

	r := receive(t, done)
	if r.err != nil || r.status != http.StatusAccepted || r.body != `{"status":"OK"}` {
		t.Fatalf("relay answered %d %q %v", r.status, r.body, r.err)
	}
	s := receive(t, seenCh)
	if s.body != "part one;part two" {
		t.Errorf("upstream got body %q", s.body)
	}
	if s.contentLength != -1 || fmt.Sprint(s.transferEncoding) != "[chunked]" {
		t.Errorf("upstream got Content-Length %d, Transfer-Encoding %q, want chunked", s.contentLength, s.transferEncoding)
	}
	if got := s.header.Get(hdrMode); got != "streaming" {
		t.Errorf("upstream got %s %q", hdrMode, got)
	}
	if got := s.trailer.Get(hdrErrorType); got != "Stream.Broke" {
		t.Errorf("upstream got trailer %s %q (trailers %v)", hdrErrorType, got, s.trailer)
	}
	if got := s.trailer.Get(hdrErrorBody); got != "eyJlcnJvck1lc3NhZ2UiOiJtaWQifQ==" {
		t.Errorf("upstream got trailer %s %q", hdrErrorBody, got)
	}
}

// TestRelayStreamedResponse: an answer is flushed to the client chunk by
// chunk, its trailers after.
func TestRelayStreamedResponse(t *testing.T) {
	release := make(chan struct{})
	var once sync.Once
	up := startUpstream(t, nil, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Trailer", "Lambda-Runtime-Function-Error-Type")
		w.Header().Set("Content-Type", "application/octet-stream")
		io.WriteString(w, "first chunk;")
		http.NewResponseController(w).Flush()
		select {
		case <-release:
		case <-r.Context().Done():
			return
		}
		io.WriteString(w, "second chunk")
		w.Header().Set("Lambda-Runtime-Function-Error-Type", "Stream.Late")
	}))
	t.Cleanup(func() { once.Do(func() { close(release) }) })
	h := startRelay(t, up.Listener.Addr().String())

	resp, err := h.client.Get(h.url + "/stream")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Type") != "application/octet-stream" {
		t.Fatalf("relay answered %d %v", resp.StatusCode, resp.Header)
	}
	first := make([]byte, len("first chunk;"))
	read := make(chan error, 1)
	go func() {
		_, err := io.ReadFull(resp.Body, first)
		read <- err
	}()
	if err := receive(t, read); err != nil {
		t.Fatalf("first chunk: %v", err)
	}
	if string(first) != "first chunk;" {
		t.Fatalf("first chunk %q", first)
	}
	once.Do(func() { close(release) })
	rest, err := io.ReadAll(resp.Body)
	if err != nil || string(rest) != "second chunk" {
		t.Fatalf("rest %q %v", rest, err)
	}
	if got := resp.Trailer.Get("Lambda-Runtime-Function-Error-Type"); got != "Stream.Late" {
		t.Errorf("trailer %q, want Stream.Late (trailers %v)", got, resp.Trailer)
	}
}

// TestRelayCheckpoint: the checkpoint signal on a GET is not passed on;
// the relay drops the connection and asks again.
func TestRelayCheckpoint(t *testing.T) {
	// Before the checkpoint the relay holds two connections to the
	// upstream, idle: the /next takes one, which brings the signal, and
	// the other must be closed as well (no connection to Kappa may
	// outlive a checkpoint); the /next is asked again on a new one.
	t.Run("GET asks again", func(t *testing.T) {
		var (
			hits   atomic.Int32
			closed = make(chan bool, 1)

			warmArrived = make(chan struct{}, 2)
			warmRelease = make(chan struct{})
			warmOnce    sync.Once

			mu         sync.Mutex
			conns      []string            // the upstream's connections (their remote addresses), as they open
			connClosed = map[string]bool{} // those that reached http.StateClosed
			earlier    []string            // conns when the checkpoint signal is sent
			signalConn string              // the connection that brought the signal (hijacked)
			retryConn  string              // the one the /next came again on
		)
		t.Cleanup(func() { warmOnce.Do(func() { close(warmRelease) }) })
		up := startUpstream(t, nil, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.URL.Path == "/warm" {
				// Both warm-ups at once: two connections.
				warmArrived <- struct{}{}
				select {
				case <-warmRelease:
				case <-r.Context().Done():
				}
				io.WriteString(w, "warm")
				return
			}
			if hits.Add(1) == 1 {
				mu.Lock()
				earlier = append([]string(nil), conns...)
				signalConn = r.RemoteAddr
				mu.Unlock()
				closed <- answerCheckpoint(w)
				return
			}
			mu.Lock()
			retryConn = r.RemoteAddr
			mu.Unlock()
			w.Header().Set("Lambda-Runtime-Aws-Request-Id", "req-2")
			io.WriteString(w, "the next event")
		}), func(srv *http.Server) {
			srv.ConnState = func(c net.Conn, state http.ConnState) {
				mu.Lock()
				defer mu.Unlock()
				switch state {
				case http.StateNew:
					conns = append(conns, c.RemoteAddr().String())
				case http.StateClosed:
					connClosed[c.RemoteAddr().String()] = true
				}
			}
		})
		h := startRelay(t, up.Listener.Addr().String())

		warm := []<-chan result{
			h.async(t.Context(), http.MethodGet, "/warm"),
			h.async(t.Context(), http.MethodGet, "/warm"),
		}
		receive(t, warmArrived)
		receive(t, warmArrived)
		warmOnce.Do(func() { close(warmRelease) })
		for _, ch := range warm {
			if r := receive(t, ch); r.err != nil || r.status != http.StatusOK || r.body != "warm" {
				t.Fatalf("warm-up: %d %q %v", r.status, r.body, r.err)
			}
		}
		// The relay's handlers are done, so both connections are idle
		// in its transport.
		if err := h.waitIdle(wait); err != nil {
			t.Fatal(err)
		}

		r := h.do(t, http.MethodGet, pathNext, "")
		if r.status != http.StatusOK || r.body != "the next event" || r.header.Get("Lambda-Runtime-Aws-Request-Id") != "req-2" {
			t.Fatalf("relay answered %d %q %v", r.status, r.body, r.header)
		}
		if r.header.Get(CheckpointHeader) != "" {
			t.Errorf("client saw %s", CheckpointHeader)
		}
		if !receive(t, closed) {
			t.Error("the relay kept the connection that brought the checkpoint signal")
		}
		if n := hits.Load(); n != 2 {
			t.Errorf("upstream hit %d times, want 2", n)
		}

		// Every connection opened before the signal is closed: the one
		// that brought it (hijacked, so answerCheckpoint saw it close,
		// above) and the idle one, which the upstream sees closed
		// (http.StateClosed) a moment after the relay closes it.
		mu.Lock()
		defer mu.Unlock()
		if len(earlier) != 2 || !slices.Contains(earlier, signalConn) {
			t.Fatalf("the signal came on %s, with the upstream's connections %q; want it on one of 2", signalConn, earlier)
		}
		if slices.Contains(earlier, retryConn) {
			t.Errorf("the /next came again on %s, a connection from before the checkpoint (%q)", retryConn, earlier)
		}
		countClosed := func() (n int) {
			for _, c := range earlier {
				if c != signalConn && connClosed[c] {
					n++
				}
			}
			return n
		}
		for deadline := time.Now().Add(wait); countClosed() < len(earlier)-1 && time.Now().Before(deadline); {
			mu.Unlock()
			time.Sleep(time.Millisecond)
			mu.Lock()
		}
		if n := countClosed(); n != len(earlier)-1 {
			t.Errorf("%d of the %d idle upstream connections from before the checkpoint closed (connections %q, the signal on %s, closed %v)",
				n, len(earlier)-1, earlier, signalConn, connClosed)
		}
		if connClosed[retryConn] {
			t.Errorf("the relay closed %s, the connection it asked again on", retryConn)
		}
		if len(conns) != 3 {
			t.Errorf("the upstream got %d connections %q, want 3 (2 before the checkpoint, 1 after)", len(conns), conns)
		}
	})

	t.Run("POST is passed the signal", func(t *testing.T) {
		var hits atomic.Int32
		up := startUpstream(t, nil, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			hits.Add(1)
			io.Copy(io.Discard, r.Body)
			w.Header().Set(CheckpointHeader, "1")
			w.Header().Set("Connection", "close")
			w.WriteHeader(http.StatusServiceUnavailable)
		}))
		h := startRelay(t, up.Listener.Addr().String())
		r := h.do(t, http.MethodPost, pathResponse("req-1"), "body")
		if r.status != http.StatusServiceUnavailable || r.header.Get(CheckpointHeader) != "1" {
			t.Errorf("relay answered %d %v", r.status, r.header)
		}
		if n := hits.Load(); n != 1 {
			t.Errorf("upstream hit %d times, want 1", n)
		}
	})

	// The whole sequence: Kappa closes its listener, answers the parked
	// /next with the signal, and a restored Kappa listens at the same
	// address later; the runtime's /next gets the restored one's event.
	t.Run("restore", func(t *testing.T) {
		parked := make(chan struct{})
		proceed := make(chan struct{})
		closed := make(chan bool, 1)
		var once sync.Once
		t.Cleanup(func() { once.Do(func() { close(proceed) }) })
		first := startUpstream(t, nil, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			close(parked)
			<-proceed
			closed <- answerCheckpoint(w)
		}))
		addr := first.Listener.Addr().String()
		h := startRelay(t, addr)
		next := h.async(t.Context(), http.MethodGet, pathNext)

		receive(t, parked)
		first.Listener.Close()
		once.Do(func() { close(proceed) })
		if !receive(t, closed) {
			t.Fatal("the relay kept the connection that brought the checkpoint signal")
		}
		time.Sleep(20 * time.Millisecond) // the relay's dials are refused meanwhile
		select {
		case r := <-next:
			t.Fatalf("/next answered while no upstream listened: %+v", r)
		default:
		}
		ln, err := net.Listen("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		startUpstream(t, ln, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			io.WriteString(w, "restored event")
		}))
		r := receive(t, next)
		if r.err != nil || r.status != http.StatusOK || r.body != "restored event" {
			t.Fatalf("/next got %d %q %v", r.status, r.body, r.err)
		}
		h.checkReachedOnly(t, addr)
	})
}

// TestRelayRedial: while the upstream refuses connections, requests wait
// and the relay dials again until a listener is back at the address.
func TestRelayRedial(t *testing.T) {
	for _, method := range []string{http.MethodGet, http.MethodPost} {
		t.Run(method, func(t *testing.T) {
			first := startUpstream(t, nil, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				io.WriteString(w, "first")
			}))
			addr := first.Listener.Addr().String()
			h := startRelay(t, addr)
			if r := h.do(t, http.MethodGet, "/warm", ""); r.body != "first" {
				t.Fatalf("warm-up: %d %q", r.status, r.body)
			}
			first.Close()
			if method != http.MethodGet {
				// A request with a body is not sent again when the idle
				// connection it was given turns out closed (the transport's
				// ordinary race): start without one.
				h.rl.tr.CloseIdleConnections()
			}
			for len(h.dialing) > 0 {
				<-h.dialing
			}

			var body io.Reader
			if method == http.MethodPost {
				body = strings.NewReader("payload")
			}
			got := make(chan result, 1)
			go func() { got <- h.send(t.Context(), method, "/again", body) }()
			receive(t, h.dialing)             // the relay dials (and is refused)
			time.Sleep(20 * time.Millisecond) // for a while
			select {
			case r := <-got:
				t.Fatalf("answered while no upstream listened: %+v", r)
			default:
			}

			ln, err := net.Listen("tcp", addr)
			if err != nil {
				t.Fatal(err)
			}
			var hits atomic.Int32
			startUpstream(t, ln, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				hits.Add(1)
				b, _ := io.ReadAll(r.Body)
				fmt.Fprintf(w, "second %s %s %s", r.Method, r.URL.Path, b)
			}))
			r := receive(t, got)
			want := "second " + method + " /again "
			if method == http.MethodPost {
				want += "payload"
			}
			if r.err != nil || r.status != http.StatusOK || r.body != want {
				t.Fatalf("got %d %q %v, want %q", r.status, r.body, r.err, want)
			}
			if n := hits.Load(); n != 1 {
				t.Errorf("new upstream hit %d times, want 1", n)
			}
			h.checkReachedOnly(t, addr)
		})
	}

	t.Run("client gives up", func(t *testing.T) {
		first := startUpstream(t, nil, http.NotFoundHandler())
		addr := first.Listener.Addr().String()
		first.Close()
		h := startRelay(t, addr)
		ctx, cancel := context.WithCancel(t.Context())
		got := h.async(ctx, http.MethodGet, pathNext)
		receive(t, h.dialing)
		cancel()
		if r := receive(t, got); !errors.Is(r.err, context.Canceled) {
			t.Fatalf("GET after cancel: %+v", r)
		}
		if err := h.waitIdle(wait); err != nil {
			t.Fatal(err)
		}
	})
}

// TestRelayBrokenUpstream: a request with a body whose upstream connection
// breaks gets 502 and is not sent again; a GET is.
func TestRelayBrokenUpstream(t *testing.T) {
	var postHits, getHits atomic.Int32
	up := startUpstream(t, nil, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/warm":
			io.WriteString(w, "warm")
		case pathResponse("req-1"):
			postHits.Add(1)
			io.Copy(io.Discard, r.Body)
			hijackClose(w)
		case pathNext:
			if getHits.Add(1) == 1 {
				hijackClose(w)
				return
			}
			io.WriteString(w, "event")
		}
	}))
	h := startRelay(t, up.Listener.Addr().String())

	// On a fresh connection and on a reused one.
	for i, warm := range []bool{false, true} {
		if warm {
			h.do(t, http.MethodGet, "/warm", "")
		}
		r := h.do(t, http.MethodPost, pathResponse("req-1"), `{"ok":true}`)
		if r.status != http.StatusBadGateway || !strings.Contains(r.body, "kappa runtime api relay") {
			t.Errorf("POST (warm %v) got %d %q, want 502", warm, r.status, r.body)
		}
		if n := postHits.Load(); n != int32(i+1) {
			t.Errorf("POST (warm %v): upstream hit %d times in all, want %d", warm, n, i+1)
		}
	}

	r := h.do(t, http.MethodGet, pathNext, "")
	if r.status != http.StatusOK || r.body != "event" {
		t.Errorf("GET got %d %q", r.status, r.body)
	}
	if n := getHits.Load(); n != 2 {
		t.Errorf("GET: upstream hit %d times, want 2", n)
	}
}

// rawExchange writes raw on a new connection to addr (then half-closes it
// when halfClose) and returns what comes back until the relay closes the
// connection, nothing came for idle, or total passed.
func rawExchange(addr string, raw []byte, halfClose bool, idle, total time.Duration) (string, error) {
	c, err := net.Dial("tcp", addr)
	if err != nil {
		return "", err
	}
	defer c.Close()
	end := time.Now().Add(total)
	_ = c.SetWriteDeadline(end)
	werr := make(chan error, 1)
	go func() {
		_, err := c.Write(raw)
		if err == nil && halfClose {
			err = c.(*net.TCPConn).CloseWrite()
		}
		werr <- err
	}()
	defer func() { <-werr }()
	var out bytes.Buffer
	buf := make([]byte, 32<<10)
	for {
		d := time.Now().Add(idle)
		if d.After(end) {
			d = end
		}
		_ = c.SetReadDeadline(d)
		n, err := c.Read(buf)
		out.Write(buf[:n])
		if err != nil {
			if errors.Is(err, io.EOF) {
				err = nil
			}
			return out.String(), err
		}
	}
}

// rawGet makes one well-formed GET on a new connection and returns the
// status and body.
func rawGet(addr, path string, deadline time.Duration) (int, string, error) {
	c, err := net.Dial("tcp", addr)
	if err != nil {
		return 0, "", err
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(deadline))
	if _, err := fmt.Fprintf(c, "GET %s HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n", path); err != nil {
		return 0, "", err
	}
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), err
}

func statusOf(raw string) int {
	resp, err := http.ReadResponse(bufio.NewReader(strings.NewReader(raw)), nil)
	if err != nil {
		return 0
	}
	resp.Body.Close()
	return resp.StatusCode
}

// TestRelayHostileInput: whatever the runtime side sends, the relay talks
// to its upstream only, and keeps serving.
func TestRelayHostileInput(t *testing.T) {
	seenCh := make(chan seen, 16)
	up := startUpstream(t, nil, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s := record(r)
		seenCh <- s
		fmt.Fprintf(w, "upstream %s", r.RequestURI)
	}))
	upAddr := up.Listener.Addr().String()
	h := startRelay(t, upAddr)

	tests := []struct {
		name       string
		raw        string
		idle       time.Duration // how long to wait for more of the answer; 0: wait
		wantStatus int           // 0: any answer, or none
		wantURI    string        // "": the upstream must not be asked
	}{
		{name: "garbage", raw: "\x00\x01\x02garbage\xff\r\n\r\n", wantStatus: http.StatusBadRequest},
		{name: "binary", raw: "\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03", idle: 200 * time.Millisecond},
		{name: "bad version", raw: "GET / HTTP/9.9\r\nHost: x\r\n\r\n", wantStatus: http.StatusHTTPVersionNotSupported},
		{name: "no host", raw: "GET / HTTP/1.1\r\n\r\n", wantStatus: http.StatusBadRequest},
		{name: "bad header", raw: "GET / HTTP/1.1\r\nHost: x\r\nBad Header: v\r\n\r\n", wantStatus: http.StatusBadRequest},
		{name: "two lengths", raw: "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\nabcd", wantStatus: http.StatusBadRequest},
		{name: "bad chunk", raw: "POST / HTTP/1.1\r\nHost: x\r\nConnection: close\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nab\r\n0\r\n\r\n",
			wantStatus: http.StatusBadGateway, wantURI: "/"},
		{name: "absolute URL to another host",
			raw:        "GET http://example.invalid/x?y=1 HTTP/1.1\r\nHost: example.invalid\r\nConnection: close\r\n\r\n",
			wantStatus: http.StatusOK, wantURI: "/x?y=1"},
		{name: "authority-looking path",
			raw:        "GET //example.invalid/x HTTP/1.1\r\nHost: example.invalid\r\nConnection: close\r\n\r\n",
			wantStatus: http.StatusOK, wantURI: "//example.invalid/x"},
		// The relay builds "http://" + upstream + "@127.0.0.1:1/x": that URL's
		// host is 127.0.0.1:1, yet the dial goes to the upstream.
		{name: "opaque URL with userinfo trick",
			raw:        "GET http:@127.0.0.1:1/x HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
			wantStatus: http.StatusBadRequest},
		{name: "asterisk", raw: "GET * HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", wantStatus: http.StatusBadRequest},
		// Not a Runtime API path (the URL is an authority): refused, not
		// relayed. The answer is read to the close (Connection: close).
		{name: "CONNECT", raw: "CONNECT 127.0.0.1:1 HTTP/1.1\r\nHost: 127.0.0.1:1\r\nConnection: close\r\n\r\n",
			wantStatus: http.StatusBadRequest},
		{name: "oversized header",
			raw:        "GET / HTTP/1.1\r\nHost: x\r\nX-Big: " + strings.Repeat("a", http.DefaultMaxHeaderBytes+8<<10) + "\r\n\r\n",
			wantStatus: http.StatusRequestHeaderFieldsTooLarge},
		{name: "truncated", raw: "GET /next HTTP/1.1\r\nHost: x\r\nX-A: b", idle: 200 * time.Millisecond},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			idle := tt.idle
			if idle == 0 {
				idle = wait
			}
			out, err := rawExchange(h.addr, []byte(tt.raw), false, idle, wait)
			if got := statusOf(out); tt.wantStatus != 0 && got != tt.wantStatus {
				// The relay's server may reset an oversized request before
				// its answer is read.
				if tt.wantStatus != http.StatusRequestHeaderFieldsTooLarge || out != "" {
					t.Errorf("status %d (%q, %v), want %d", got, trim(out), err, tt.wantStatus)
				}
			}
			if tt.wantURI != "" {
				s := receive(t, seenCh)
				if s.uri != tt.wantURI {
					t.Errorf("upstream got %s %q, want %q", s.method, s.uri, tt.wantURI)
				}
				if want := "upstream " + tt.wantURI; tt.wantStatus == http.StatusOK && !strings.HasSuffix(out, want) {
					t.Errorf("client got %q, want the upstream's %q", trim(out), want)
				}
			}
			if err := h.waitIdle(wait); err != nil {
				t.Fatal(err)
			}
			// A request refused here never reached the upstream, and one
			// relayed reached it once.
			select {
			case s := <-seenCh:
				t.Errorf("upstream got %s %q", s.method, s.uri)
			default:
			}
			code, body, err := rawGet(h.addr, "/still-alive", wait)
			if err != nil || code != http.StatusOK || body != "upstream /still-alive" {
				t.Fatalf("following GET: %d %q %v", code, body, err)
			}
			receive(t, seenCh)
			h.checkReachedOnly(t, upAddr)
		})
	}
}

func trim(s string) string {
	if len(s) > 200 {
		return s[:200] + "..."
	}
	return s
}

// TestRelayDialPinned: the relay's dial connects to its upstream whatever
// address the transport asks for.
func TestRelayDialPinned(t *testing.T) {
	ln := listenLoopback(t)
	defer ln.Close()
	accepted := make(chan net.Conn, 4)
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			accepted <- c
		}
	}()
	rl := newRelay(ln.Addr().String())
	for _, addr := range []string{"127.0.0.1:1", "example.invalid:80", "", ln.Addr().String()} {
		ctx, cancel := context.WithTimeout(t.Context(), wait)
		c, err := rl.dial(ctx, "tcp", addr)
		cancel()
		if err != nil {
			t.Fatalf("dial for %q: %v", addr, err)
		}
		if got := c.RemoteAddr().String(); got != ln.Addr().String() {
			t.Errorf("dial for %q reached %s, want %s", addr, got, ln.Addr())
		}
		s := receive(t, accepted)
		if s.RemoteAddr().String() != c.LocalAddr().String() {
			t.Errorf("upstream accepted %s, want %s", s.RemoteAddr(), c.LocalAddr())
		}
		s.Close()
		c.Close()
	}
	if rl.tr.Proxy != nil {
		t.Error("the relay's transport has a proxy")
	}
}

// TestRelayDialCanceled: a dial waiting for a refusing upstream ends with
// its context.
func TestRelayDialCanceled(t *testing.T) {
	ln := listenLoopback(t)
	addr := ln.Addr().String()
	ln.Close()
	rl := newRelay(addr)
	ctx, cancel := context.WithTimeout(t.Context(), 50*time.Millisecond)
	defer cancel()
	c, err := rl.dial(ctx, "tcp", addr)
	if err == nil {
		c.Close()
		t.Fatal("dial to a closed listener succeeded")
	}
	// The context may end between two tries or during one (then the
	// dialer reports a timeout of its own).
	var ne net.Error
	if !errors.Is(err, context.DeadlineExceeded) && !(errors.As(err, &ne) && ne.Timeout()) {
		t.Errorf("err %v, want the context's deadline", err)
	}
}

// TestServeRelay: serveRelay listens at its address and relays.
func TestServeRelay(t *testing.T) {
	up := startUpstream(t, nil, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "upstream %s", r.URL.Path)
	}))
	ln, err := serveRelay("127.0.0.1:0", up.Listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	code, body, err := rawGet(ln.Addr().String(), pathNext, wait)
	if err != nil || code != http.StatusOK || body != "upstream "+pathNext {
		t.Fatalf("GET: %d %q %v", code, body, err)
	}
	if _, err := serveRelay(ln.Addr().String(), up.Listener.Addr().String()); err == nil {
		t.Error("serveRelay on a busy address succeeded")
	}
}

// FuzzRelayRequest writes arbitrary bytes to the relay as a request; the
// relay must stay healthy: its handlers end once the client is gone, and
// a well-formed GET on a new connection still goes through.
func FuzzRelayRequest(f *testing.F) {
	for _, s := range []string{
		"GET /2018-06-01/runtime/invocation/next HTTP/1.1\r\nHost: x\r\n\r\n",
		"POST /2018-06-01/runtime/invocation/req-1/response HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\n\r\n\"ok\"",
		"POST /2018-06-01/runtime/invocation/req-1/response HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n" +
			"Lambda-Runtime-Function-Response-Mode: streaming\r\nTrailer: Lambda-Runtime-Function-Error-Type\r\n\r\n" +
			"5\r\nhello\r\n0\r\nLambda-Runtime-Function-Error-Type: X\r\n\r\n",
		"POST /x HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\nshort",
		"GET http://example.invalid/x HTTP/1.1\r\nHost: example.invalid\r\n\r\n",
		"GET http:@127.0.0.1:1/x HTTP/1.1\r\nHost: x\r\n\r\n",
		"GET / HTTP/1.1\r\nHost: x\r\n\r\nGET /2 HTTP/1.1\r\nHost: x\r\n\r\n",
		"GET / HTTP/1.0\r\n\r\n",
		"GET / HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n",
		"HEAD / HTTP/1.1\r\nHost: x\r\n\r\n",
		"OPTIONS * HTTP/1.1\r\nHost: x\r\n\r\n",
		"CONNECT 127.0.0.1:1 HTTP/1.1\r\nHost: 127.0.0.1:1\r\n\r\n",
		"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n",
		"\x00\x01garbage\r\n\r\n",
		"",
	} {
		f.Add([]byte(s), false)
		f.Add([]byte(s), true)
	}

	up := startUpstream(f, nil, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "ok")
	}))
	h := startRelay(f, up.Listener.Addr().String())

	f.Fuzz(func(t *testing.T, data []byte, halfClose bool) {
		_, _ = rawExchange(h.addr, data, halfClose, 20*time.Millisecond, 500*time.Millisecond)
		if err := h.waitIdle(2 * time.Second); err != nil {
			t.Fatalf("after %q: %v", data, err)
		}
		code, body, err := rawGet(h.addr, "/health", 5*time.Second)
		if err != nil || code != http.StatusOK || body != "ok" {
			t.Fatalf("after %q, GET: %d %q %v", data, code, body, err)
		}
		h.mu.Lock()
		defer h.mu.Unlock()
		for _, a := range h.reached {
			if a != up.Listener.Addr().String() {
				t.Fatalf("after %q: the relay connected to %s", data, a)
			}
		}
		h.reached = h.reached[:0]
		h.asked = h.asked[:0]
	})
}

// TestRelayGETWithBody: a GET or HEAD that carries a body, or announces one
// of unknown length (which the Runtime API never needs), goes upstream
// without it (Content-Length 0, nothing read), and ends, answered or
// refused, once the client is gone.
//
// Regression: ServeHTTP once dropped the body of a request it may send
// again (out.Body = nil) but kept out.ContentLength = r.ContentLength (1
// or -1 here), so every RoundTrip failed at once ("http:
// Request.ContentLength=1 with nil Body") and, the request being a GET
// whose context was still live, was tried again at once, forever: tens of
// thousands of connections per second to the upstream, none carrying a
// request. The context never ended, as the server does not watch for the
// client leaving while a request body is unread, so neither the client
// closing nor http.Server.Close stopped it.
func TestRelayGETWithBody(t *testing.T) {
	var hits atomic.Int32
	seenCh := make(chan seen, 16)
	up := startUpstream(t, nil, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		seenCh <- record(r)
		io.WriteString(w, "upstream")
	}))
	h := startRelay(t, up.Listener.Addr().String())
	for i, raw := range []string{
		"GET " + pathNext + " HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Length: 1\r\n\r\nx",
		"GET " + pathNext + " HTTP/1.1\r\nHost: x\r\nConnection: close\r\nTransfer-Encoding: chunked\r\n\r\n1\r\nx\r\n0\r\n\r\n",
		"HEAD " + pathNext + " HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Length: 1\r\n\r\nx",
		// Empty, but of unknown length.
		"GET " + pathNext + " HTTP/1.1\r\nHost: x\r\nConnection: close\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
	} {
		out, err := rawExchange(h.addr, []byte(raw), false, wait, wait)
		if statusOf(out) == 0 {
			t.Errorf("%q: no answer (%q, %v)", raw, trim(out), err)
		}
		if err := h.waitIdle(wait); err != nil {
			h.mu.Lock()
			dials := len(h.asked)
			h.mu.Unlock()
			t.Fatalf("%q: %v; upstream hit %d times, %d dials", raw, err, hits.Load(), dials)
		}
		s := receive(t, seenCh)
		if s.contentLength != 0 || s.body != "" || len(s.transferEncoding) != 0 {
			t.Errorf("%q: upstream got Content-Length %d, Transfer-Encoding %q, body %q; want 0, none, \"\"",
				raw, s.contentLength, s.transferEncoding, s.body)
		}
		if n := hits.Load(); n != int32(i+1) {
			t.Errorf("%q: upstream hit %d times in all, want %d", raw, n, i+1)
		}
	}
}
