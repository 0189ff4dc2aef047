package funcurl

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"

	"github.com/kappa-run/kappa/internal/function"
	"github.com/kappa-run/kappa/internal/invoker"
)

// IntegrationResponseType is the content type of a streamed function URL
// response that starts with a prelude: a JSON document {statusCode,
// headers, cookies}, eight NUL bytes, then the body.
const IntegrationResponseType = "application/vnd.awslambda.http-integration-response"

// maxPrelude bounds the prelude of a streamed response.
const maxPrelude = 64 << 10

var preludeEnd = make([]byte, 8)

// serveStream answers a RESPONSE_STREAM URL: the function's bytes go to
// the client as the function produces them. Once the first byte is sent
// the status is fixed; a failure after that ends the body early.
func (h *Handler) serveStream(w http.ResponseWriter, r *http.Request, cfg *Config, in Request) {
	plain := func(status int, msg string) Response {
		hdr := http.Header{}
		hdr.Set("Content-Type", "application/json")
		b, _ := json.Marshal(map[string]string{"Message": msg})
		return Response{Status: status, Header: hdr, Body: b}
	}
	write := func(resp Response) {
		if cfg.Cors != nil {
			cfg.Cors.Apply(resp.Header, r.Header.Get("Origin"))
		}
		for k, v := range resp.Header {
			w.Header()[k] = v
		}
		w.Header().Set("X-Amzn-Trace-Id", in.TraceID)
		w.WriteHeader(resp.Status)
		if r.Method != http.MethodHead {
			w.Write(resp.Body)
		}
	}
	q := cfg.Qualifier
	if q == function.LatestVersion {
		q = ""
	}
	ref := function.Ref{Name: cfg.FunctionName, Qualifier: q}
	target, err := h.opts.Functions.Resolve(r.Context(), ref)
	if err != nil {
		write(h.platform(err, plain))
		return
	}
	res, err := h.opts.Invoker.Invoke(context.WithoutCancel(r.Context()), invoker.Request{
		Config:     target.Config,
		Reserved:   target.Reserved,
		Unreserved: h.opts.Functions.UnreservedCached(),
		RequestID:  in.RequestID,
		Payload:    MarshalEvent(BuildEvent(in)),
		InvokedARN: h.opts.Functions.ARN(ref.Name, ref.Qualifier),
		TraceID:    in.TraceID,
		Stream:     true,
	})
	if err != nil {
		write(h.platform(err, plain))
		return
	}
	if res.Stream == nil {
		// Answered before streaming: an error, or a buffered result.
		if res.FunctionError != "" {
			write(Response{Status: http.StatusBadGateway, Header: textHeader(), Body: []byte("Internal Server Error")})
			return
		}
		out, err := MapResponse(res.Payload)
		if err != nil {
			write(Response{Status: http.StatusBadGateway, Header: textHeader(), Body: []byte("Internal Server Error")})
			return
		}
		write(out)
		return
	}
	defer res.Finish()
	defer res.Stream.Close()
	body := bufio.NewReaderSize(res.Stream, 32<<10)
	head := Response{Status: http.StatusOK, Header: http.Header{}}
	if res.ContentType == IntegrationResponseType {
		prelude, err := readPrelude(body)
		if err == nil {
			head, err = MapPrelude(prelude)
		}
		if err != nil {
			h.log.Info("function url: malformed stream prelude", "function", cfg.FunctionName, "requestId", in.RequestID, "err", err)
			write(Response{Status: http.StatusBadGateway, Header: textHeader(), Body: []byte("Internal Server Error")})
			return
		}
	} else {
		head.Header.Set("Content-Type", res.ContentType)
	}
	write(head)
	if r.Method == http.MethodHead {
		return
	}
	flusher, _ := w.(http.Flusher)
	buf := make([]byte, 32<<10)
	for {
		n, rerr := body.Read(buf)
		if n > 0 {
			if _, err := w.Write(buf[:n]); err != nil {
				return // client gone; the deferred Close drains the rest
			}
			if flusher != nil {
				flusher.Flush()
			}
		}
		if rerr != nil {
			if !errors.Is(rerr, io.EOF) {
				h.log.Info("function url: stream ended early", "function", cfg.FunctionName, "requestId", in.RequestID, "err", rerr)
			}
			return
		}
	}
}

// readPrelude reads the JSON prelude up to the eight NUL bytes that end it.
func readPrelude(r *bufio.Reader) ([]byte, error) {
	var prelude []byte
	for len(prelude) <= maxPrelude {
		b, err := r.ReadByte()
		if err != nil {
			return nil, fmt.Errorf("prelude: %w", err)
		}
		prelude = append(prelude, b)
		if bytes.HasSuffix(prelude, preludeEnd) {
			return prelude[:len(prelude)-len(preludeEnd)], nil
		}
	}
	return nil, fmt.Errorf("prelude longer than %d bytes", maxPrelude)
}

func textHeader() http.Header {
	h := http.Header{}
	h.Set("Content-Type", "text/plain; charset=utf-8")
	return h
}
