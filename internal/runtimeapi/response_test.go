package runtimeapi

import (
	"bufio"
	"bytes"
	"encoding/base64"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"
)

func TestResponse(t *testing.T) {
	const limit = 64
	tests := []struct {
		name       string
		path       string
		body       string
		chunked    bool
		headers    []string
		wantStatus int
		wantType   apiErrorType // for error statuses
		want       *Result      // the invocation's result; nil = still running
	}{
		{
			name: "buffered by default", path: pathResponse("req-1"), body: `{"a":1}`,
			headers:    []string{"Content-Type", "application/json"},
			wantStatus: http.StatusAccepted,
			want:       &Result{Payload: []byte(`{"a":1}`), ContentType: "application/json"},
		},
		{
			name: "content type kept", path: pathResponse("req-1"), body: "raw bytes",
			headers:    []string{"Content-Type", "application/octet-stream", hdrResponseMode, "buffered"},
			wantStatus: http.StatusAccepted,
			want:       &Result{Payload: []byte("raw bytes"), ContentType: "application/octet-stream"},
		},
		{
			name: "streaming is buffered for now", path: pathResponse("req-1"), body: "chunk1chunk2", chunked: true,
			headers:    []string{hdrResponseMode, "streaming", "Content-Type", "text/plain"},
			wantStatus: http.StatusAccepted,
			want:       &Result{Payload: []byte("chunk1chunk2"), ContentType: "text/plain"},
		},
		{
			name: "empty body", path: pathResponse("req-1"),
			wantStatus: http.StatusAccepted,
			want:       &Result{Payload: []byte{}},
		},
		{
			name: "body at the limit", path: pathResponse("req-1"), body: strings.Repeat("x", limit),
			wantStatus: http.StatusAccepted,
			want:       &Result{Payload: []byte(strings.Repeat("x", limit))},
		},
		{
			name: "invalid mode", path: pathResponse("req-1"), body: "{}",
			headers:    []string{hdrResponseMode, "Streaming-ish"},
			wantStatus: http.StatusBadRequest, wantType: errInvalidFunctionResponseMode,
			want: &Result{
				Payload:     []byte(`{"errorMessage":"Invalid Lambda-Runtime-Function-Response-Mode header value: [\"Streaming-ish\"]","errorType":"Runtime.InvalidResponseModeHeader"}`),
				ContentType: "application/json",
				ErrorType:   "Runtime.InvalidResponseModeHeader",
			},
		},
		{
			name: "mode twice", path: pathResponse("req-1"), body: "{}",
			headers:    []string{hdrResponseMode, "buffered", hdrResponseMode, "streaming"},
			wantStatus: http.StatusBadRequest, wantType: errInvalidFunctionResponseMode,
			want: &Result{
				Payload:     []byte(`{"errorMessage":"Invalid Lambda-Runtime-Function-Response-Mode header value: [\"buffered\" \"streaming\"]","errorType":"Runtime.InvalidResponseModeHeader"}`),
				ContentType: "application/json",
				ErrorType:   "Runtime.InvalidResponseModeHeader",
			},
		},
		{name: "other id", path: pathResponse("req-2"), wantStatus: http.StatusBadRequest, wantType: errInvalidRequestID},
		{name: "id prefix", path: pathResponse("req"), wantStatus: http.StatusBadRequest, wantType: errInvalidRequestID},
		{name: "id case", path: pathResponse("REQ-1"), wantStatus: http.StatusBadRequest, wantType: errInvalidRequestID},
		{name: "dot-dot id", path: pathResponse(".."), wantStatus: http.StatusBadRequest, wantType: errInvalidRequestID},
		{name: "escaped dot-dot id", path: pathResponse("%2e%2e"), wantStatus: http.StatusBadRequest, wantType: errInvalidRequestID},
		{name: "escaped slash in id", path: pathResponse("req-1%2F..%2Freq-1"), wantStatus: http.StatusBadRequest, wantType: errInvalidRequestID},
		{name: "escaped NUL in id", path: pathResponse("req-1%00"), wantStatus: http.StatusBadRequest, wantType: errInvalidRequestID},
		{name: "long id", path: pathResponse(strings.Repeat("a", 8000)), wantStatus: http.StatusBadRequest, wantType: errInvalidRequestID},
		{name: "traversal out of the id", path: "/2018-06-01/runtime/invocation/../../init/error", wantStatus: http.StatusNotFound, wantType: errNotFound},
		{name: "empty id", path: pathResponse(""), wantStatus: http.StatusBadRequest, wantType: errInvalidRequestID},
		{
			name: "too large", path: pathResponse("req-1"), body: strings.Repeat("x", limit+1),
			wantStatus: http.StatusRequestEntityTooLarge, wantType: errRequestEntityTooLarge,
			want: &Result{
				Payload:     []byte(`{"errorMessage":"Response payload size exceeded maximum allowed payload size (64 bytes).","errorType":"Function.ResponseSizeTooLarge"}`),
				ContentType: "application/json",
				ErrorType:   "Function.ResponseSizeTooLarge",
			},
		},
		{
			name: "too large, chunked", path: pathResponse("req-1"), body: strings.Repeat("x", 10*limit), chunked: true,
			headers:    []string{hdrResponseMode, "streaming"},
			wantStatus: http.StatusRequestEntityTooLarge, wantType: errRequestEntityTooLarge,
			want: &Result{
				Payload:     []byte(`{"errorMessage":"Response payload size exceeded maximum allowed payload size (64 bytes).","errorType":"Function.ResponseSizeTooLarge"}`),
				ContentType: "application/json",
				ErrorType:   "Function.ResponseSizeTooLarge",
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, ts := newTestServer(t, Options{MaxResponseBytes: limit, Now: fakeClock(time.Second)})
			_, done := running(t, s, ts, testInvocation("req-1"))

			var body io.Reader = strings.NewReader(tt.body)
			if tt.chunked {
				body = io.MultiReader(body) // unknown length: sent chunked
			}
			r := send(t.Context(), ts, http.MethodPost, tt.path, body, tt.headers...)
			if r.err != nil {
				t.Fatalf("POST: %v", r.err)
			}
			if tt.wantStatus == http.StatusAccepted {
				wantAccepted(t, r)
			} else {
				wantAPIError(t, r, tt.wantStatus, tt.wantType)
			}

			if tt.want == nil {
				if got := s.State(); got != StateRunning {
					t.Fatalf("state %s, want Running", got)
				}
				select {
				case got := <-done:
					t.Fatalf("Invoke returned %+v, want it still waiting", got)
				default:
				}
				return
			}
			got := receive(t, done)
			if got.err != nil {
				t.Fatalf("Invoke: %v", got.err)
			}
			if !bytes.Equal(got.res.Payload, tt.want.Payload) || got.res.ContentType != tt.want.ContentType || got.res.ErrorType != tt.want.ErrorType {
				t.Errorf("Result = %+v (payload %s), want %+v (payload %s)", got.res, got.res.Payload, *tt.want, tt.want.Payload)
			}
			if got.res.Duration <= 0 {
				t.Errorf("Duration = %v, want > 0 by the injected clock", got.res.Duration)
			}
			if st := s.State(); st != StateResponseSent {
				t.Errorf("state %s, want ResponseSent", st)
			}
		})
	}
}

// TestResponseDefaultLimit checks the 6 MiB default cap and Lambda's message.
func TestResponseDefaultLimit(t *testing.T) {
	tests := []struct {
		name   string
		size   int
		status int
	}{
		{name: "6 MiB", size: DefaultMaxResponseBytes, status: http.StatusAccepted},
		{name: "6 MiB + 1", size: DefaultMaxResponseBytes + 1, status: http.StatusRequestEntityTooLarge},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, ts := newTestServer(t, Options{})
			_, done := running(t, s, ts, testInvocation("req-1"))
			r := do(t, ts, http.MethodPost, pathResponse("req-1"), bytes.Repeat([]byte("x"), tt.size))
			got := receive(t, done)
			if tt.status == http.StatusAccepted {
				wantAccepted(t, r)
				if len(got.res.Payload) != tt.size || got.res.ErrorType != "" {
					t.Errorf("Result: %d bytes, type %q", len(got.res.Payload), got.res.ErrorType)
				}
				return
			}
			wantAPIError(t, r, tt.status, errRequestEntityTooLarge)
			const want = `{"errorMessage":"Response payload size exceeded maximum allowed payload size (6291556 bytes).","errorType":"Function.ResponseSizeTooLarge"}`
			if string(got.res.Payload) != want || got.res.ErrorType != string(FunctionResponseSizeTooLarge) {
				t.Errorf("Result %q %s, want %s", got.res.ErrorType, got.res.Payload, want)
			}
		})
	}
}

// TestResponseTruncated sends bodies that end before they are complete over
// a raw connection, then half-closes it.
func TestResponseTruncated(t *testing.T) {
	tests := []struct {
		name string
		raw  string
	}{
		{name: "content length not reached", raw: "Content-Length: 100\r\n\r\n{\"partial\":"},
		{name: "chunked cut mid-chunk", raw: "Transfer-Encoding: chunked\r\n\r\n10\r\nabc"},
		{name: "chunked without the last chunk", raw: "Transfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, ts := newTestServer(t, Options{})
			_, done := running(t, s, ts, testInvocation("req-1"))
			r := rawRequest(t, ts.Listener.Addr().String(),
				"POST "+pathResponse("req-1")+" HTTP/1.1\r\nHost: 127.0.0.1\r\n"+tt.raw)
			wantAPIError(t, r, http.StatusBadRequest, errTruncatedHTTPRequest)
			got := receive(t, done)
			if got.err != nil || got.res.ErrorType != string(RuntimeTruncatedResponse) {
				t.Errorf("Invoke = %+v, want Runtime.TruncatedResponse", got)
			}
		})
	}
}

// rawRequest writes raw to a new connection, half-closes it and reads the
// response.
func rawRequest(t *testing.T, addr, raw string) reply {
	t.Helper()
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if _, err := io.WriteString(conn, raw); err != nil {
		t.Fatal(err)
	}
	if err := conn.(*net.TCPConn).CloseWrite(); err != nil {
		t.Fatal(err)
	}
	_ = conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatalf("read response: %v", err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return reply{status: resp.StatusCode, header: resp.Header, body: b}
}

// TestResponseTrailerError: a failure reported in the trailers after the
// body started ends the invocation as that error.
func TestResponseTrailerError(t *testing.T) {
	tests := []struct {
		name        string
		errBody     string
		wantPayload string
	}{
		{name: "base64 JSON", errBody: base64.StdEncoding.EncodeToString([]byte(`{"errorMessage":"mid-stream","errorType":"Stream.Broke"}`)),
			wantPayload: `{"errorMessage":"mid-stream","errorType":"Stream.Broke"}`},
		{name: "not base64", errBody: "plain words",
			wantPayload: `{"errorMessage":"plain words","errorType":"Stream.Broke"}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, ts := newTestServer(t, Options{})
			_, done := running(t, s, ts, testInvocation("req-1"))
			req, err := http.NewRequestWithContext(t.Context(), http.MethodPost, ts.URL+pathResponse("req-1"),
				io.MultiReader(strings.NewReader("partial body")))
			if err != nil {
				t.Fatal(err)
			}
			req.Header.Set(hdrResponseMode, "streaming")
			req.Trailer = http.Header{hdrErrorType: {"Stream.Broke"}, hdrErrorBody: {tt.errBody}}
			resp, err := ts.Client().Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != http.StatusAccepted {
				t.Fatalf("status %d", resp.StatusCode)
			}
			got := receive(t, done)
			if got.res.ErrorType != "Stream.Broke" || string(got.res.Payload) != tt.wantPayload {
				t.Errorf("Result %q %s, want Stream.Broke %s", got.res.ErrorType, got.res.Payload, tt.wantPayload)
			}
		})
	}
}

func TestResponseWrongState(t *testing.T) {
	tests := []struct {
		name  string
		setup func(t *testing.T, s *Server, ts *httptest.Server)
	}{
		{name: "before init", setup: func(*testing.T, *Server, *httptest.Server) {}},
		{name: "ready", setup: func(t *testing.T, s *Server, ts *httptest.Server) {
			nextAsync(t.Context(), ts)
			waitState(t, s, StateReady)
		}},
		{name: "answered", setup: func(t *testing.T, s *Server, ts *httptest.Server) {
			_, done := running(t, s, ts, testInvocation("req-1"))
			wantAccepted(t, do(t, ts, http.MethodPost, pathResponse("req-1"), nil))
			receive(t, done)
		}},
		{name: "answered with error", setup: func(t *testing.T, s *Server, ts *httptest.Server) {
			_, done := running(t, s, ts, testInvocation("req-1"))
			wantAccepted(t, do(t, ts, http.MethodPost, pathError("req-1"), nil))
			receive(t, done)
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, ts := newTestServer(t, Options{})
			tt.setup(t, s, ts)
			before := s.State()
			for _, p := range []string{pathResponse("req-1"), pathError("req-1"), pathResponse("other")} {
				wantAPIError(t, do(t, ts, http.MethodPost, p, []byte("{}")), http.StatusForbidden, errInvalidStateTransition)
			}
			if got := s.State(); got != before {
				t.Errorf("state %s after refusals, want %s", got, before)
			}
		})
	}
}

// TestResponseRace: of concurrent answers to one invocation exactly one wins.
func TestResponseRace(t *testing.T) {
	s, ts := newTestServer(t, Options{})
	_, done := running(t, s, ts, testInvocation("req-1"))
	const n = 8
	statuses := make([]int, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			p := pathResponse("req-1")
			if i%2 == 1 {
				p = pathError("req-1")
			}
			r := send(t.Context(), ts, http.MethodPost, p, strings.NewReader(`{}`))
			statuses[i] = r.status
		})
	}
	wg.Wait()
	won := 0
	for _, st := range statuses {
		switch st {
		case http.StatusAccepted:
			won++
		case http.StatusForbidden:
		default:
			t.Errorf("status %d", st)
		}
	}
	if won != 1 {
		t.Errorf("%d answers accepted, want 1 (%v)", won, statuses)
	}
	receive(t, done)
}

// TestSecondAnswerRefused: a /response or /error for an invocation whose
// first answer is still being read is refused with 403, buffered or
// streamed, and the first answer ends the invocation.
func TestSecondAnswerRefused(t *testing.T) {
	for _, stream := range []bool{false, true} {
		t.Run(fmt.Sprintf("stream=%v", stream), func(t *testing.T) {
			s, ts := newTestServer(t, Options{})
			inv := testInvocation("req-1")
			inv.Stream = stream
			_, done := running(t, s, ts, inv)
			pr, pw := io.Pipe()
			first := make(chan reply, 1)
			go func() { first <- send(t.Context(), ts, http.MethodPost, pathResponse("req-1"), pr) }()
			if _, err := pw.Write([]byte(`"par`)); err != nil {
				t.Fatal(err)
			}
			waitReading(t, s, 1)
			for _, path := range []string{pathResponse("req-1"), pathError("req-1")} {
				wantAPIError(t, do(t, ts, http.MethodPost, path, []byte(`"second"`)), http.StatusForbidden, errInvalidStateTransition)
			}
			go func() {
				pw.Write([]byte(`t"`))
				pw.Close()
			}()
			got := receive(t, done)
			if got.err != nil {
				t.Fatalf("Invoke = %v", got.err)
			}
			payload := got.res.Payload
			if stream {
				// The stream's reader drains what the first answer sends.
				payload, _ = io.ReadAll(got.res.Body)
			}
			if r := receive(t, first); r.err != nil || r.status != http.StatusAccepted {
				t.Fatalf("first answer: %d %v %s", r.status, r.err, r.body)
			}
			if string(payload) != `"part"` {
				t.Errorf("payload %q, want the first answer's", payload)
			}
		})
	}
}
