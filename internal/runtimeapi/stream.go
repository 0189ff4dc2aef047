package runtimeapi

import (
	"errors"
	"io"
	"net/http"
	"sync"
)

// ResponseStream is the body of a streamed response (Result.Body): the
// bytes of the runtime's /response as they arrive. Read returns io.EOF after
// a complete response; when the response failed it returns, after the last
// byte, a *StreamError (the runtime's Lambda-Runtime-Function-Error-Type
// and -Body trailers, Function.ResponseSizeTooLarge past
// Options.MaxStreamBytes, Runtime.TruncatedResponse when the runtime's
// request broke off) or ErrClosed. Err reports the same once Read has
// returned it.
//
// Reading is what moves the runtime's body along: a slow reader slows the
// runtime's POST down. Close stops the forwarding; the rest of the body is
// then read and dropped, so the invocation still completes. Read and Close
// may be called from different goroutines.
type ResponseStream struct {
	r *io.PipeReader

	mu    sync.Mutex
	ended bool
	err   error
}

// Read reads the next bytes of the response.
func (b *ResponseStream) Read(p []byte) (int, error) { return b.r.Read(p) }

// Close stops reading; the rest of the body is discarded.
func (b *ResponseStream) Close() error { return b.r.Close() }

// Err reports how the response ended: nil while it runs or after a
// complete response, else the error Read returns at its end.
func (b *ResponseStream) Err() error {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.err
}

func (b *ResponseStream) end(err error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if !b.ended {
		b.ended, b.err = true, err
	}
}

// StreamError is how a streamed response failed after it started: Type is
// the function error type, Payload the error document
// ({"errorMessage","errorType"} or what the runtime sent).
type StreamError struct {
	Type    string
	Payload []byte
}

func (e *StreamError) Error() string { return "streamed response failed: " + e.Type }

// streamResponse answers a streaming invocation: Invoke gets a Result whose
// Body is fed from the runtime's request body chunk by chunk, up to
// s.maxStream bytes; the trailers are checked at the end. The runtime gets
// 202 once its body ended (413 past the cap, 400 when it broke off).
func (s *Server) streamResponse(w http.ResponseWriter, r *http.Request, c *call) {
	if r.ContentLength > s.maxStream {
		res, reply := tooLargeResult(s.maxStream), apiErrTooLarge(s.maxStream)
		if aerr := s.answer(c, evResponse, res); aerr != nil {
			writeAPIError(w, aerr)
			return
		}
		writeAPIError(w, reply)
		return
	}
	pr, pw := io.Pipe()
	body := &ResponseStream{r: pr}
	s.mu.Lock()
	if s.state == StateClosed {
		s.mu.Unlock()
		writeAPIError(w, apiErrClosed)
		return
	}
	if s.current != c {
		st := s.state
		s.mu.Unlock()
		writeAPIError(w, apiErrRefused(st, evResponse))
		return
	}
	c.stream = pw
	ct := r.Header.Get("Content-Type")
	if c.abandoned {
		// Invoke gave up on it (its deadline passed): nobody reads the
		// body, which is read to its end and dropped.
		pr.Close()
	}
	c.finish(Result{Body: body, ContentType: ct, Duration: s.now().Sub(c.delivered)}, nil)
	s.mu.Unlock()

	untrack := s.track(w, transferRead)
	n, err := copyStream(pw, r.Body, s.maxStream)
	untrack()

	var serr *StreamError
	var reply *apiError
	switch {
	case errors.Is(err, errBodyTooLarge):
		res := tooLargeResult(s.maxStream)
		serr, reply = &StreamError{Type: res.ErrorType, Payload: res.Payload}, apiErrTooLarge(s.maxStream)
	case err != nil:
		res := truncatedResult()
		serr, reply = &StreamError{Type: res.ErrorType, Payload: res.Payload}, apiErrTruncated
	case r.Trailer.Get(hdrErrorType) != "":
		res := s.trailerResult(r.Trailer)
		serr = &StreamError{Type: res.ErrorType, Payload: res.Payload}
	}
	if serr != nil {
		s.log.Info("runtime api: streamed response failed", "requestId", c.inv.RequestID, "errorType", serr.Type, "err", err)
		body.end(serr)
		pw.CloseWithError(serr)
	} else {
		body.end(nil)
		pw.Close()
	}

	s.mu.Lock()
	if s.state == StateClosed {
		body.end(ErrClosed)
		s.mu.Unlock()
		writeAPIError(w, apiErrClosed)
		return
	}
	if s.current != c {
		st := s.state
		s.mu.Unlock()
		writeAPIError(w, apiErrRefused(st, evResponse))
		return
	}
	s.fire(evResponse)
	s.current = nil
	c.stream = nil
	c.runtimeDone, c.runtimeEnd, c.produced = true, s.now(), n
	if serr != nil {
		c.errorType = serr.Type
	}
	s.maybeComplete(c)
	s.mu.Unlock()
	if reply != nil {
		// The rest of the body is not read: end the connection instead of
		// draining it.
		w.Header().Set("Connection", "close")
		writeAPIError(w, reply)
		return
	}
	writeAccepted(w)
}

// copyStream copies src to dst chunk by chunk, as each arrives, and returns
// how many bytes src held. Once dst is closed by its reader the rest of src
// is read and dropped. It fails with errBodyTooLarge past limit bytes, after
// forwarding the first limit bytes and without reading further, and with an error wrapping errBodyTruncated
// when src breaks off.
func copyStream(dst *io.PipeWriter, src io.Reader, limit int64) (int64, error) {
	buf := make([]byte, 32<<10)
	var n int64
	discard := false
	for {
		k, rerr := src.Read(buf)
		if k > 0 {
			if n+int64(k) > limit {
				// The bytes up to the cap still reach the reader, however
				// the runtime's writes were split into reads.
				if !discard && n < limit {
					_, _ = dst.Write(buf[:limit-n])
				}
				return limit, errBodyTooLarge
			}
			n += int64(k)
			if !discard {
				if _, werr := dst.Write(buf[:k]); werr != nil {
					discard = true // the reader closed, or the server did
				}
			}
		}
		switch {
		case rerr == io.EOF:
			return n, nil
		case rerr != nil:
			return n, errors.Join(errBodyTruncated, rerr)
		}
	}
}
