package envinit

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/url"
	"runtime/debug"
	"strings"
	"syscall"
	"time"
)

// CheckpointHeader marks Kappa's answer to a relayed request when the
// environment is about to be checkpointed: the relay drops every
// connection to Kappa and sends the request again, which reaches Kappa
// only once the environment runs again (restored from the checkpoint).
const CheckpointHeader = "Kappa-Checkpoint"

// redialEvery is how often the relay tries Kappa's listener again while it
// refuses connections (between a checkpoint's start and a restore), and
// maxRetryPause the longest pause between tries of a request whose
// connection keeps breaking.
const (
	redialEvery   = time.Millisecond
	maxRetryPause = 100 * time.Millisecond
	dialTimeout   = 250 * time.Millisecond
)

// sleep waits d or until ctx ends.
func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// relay serves the Runtime API inside a checkpointable environment and
// forwards every request to Kappa's listener at upstream. The runtime's
// connections end here, inside the environment's process tree, so a
// checkpoint keeps them; the relay's own connections to Kappa are made
// again after a restore. A GET (the long polls: /next, /event/next) that
// fails on a broken connection, or is answered with CheckpointHeader, is
// sent again; a request with a body is sent once. Bodies and answers
// stream through unbuffered (response streaming, trailers included).
type relay struct {
	upstream string
	tr       *http.Transport
}

func newRelay(upstream string) *relay {
	rl := &relay{upstream: upstream}
	rl.tr = &http.Transport{
		DialContext:         rl.dial,
		MaxIdleConnsPerHost: 64,
		IdleConnTimeout:     0,
		DisableCompression:  true,
		// The answer to /next comes when an event does: no timeout.
		ResponseHeaderTimeout: 0,
	}
	return rl
}

// dial connects to Kappa, trying again while the listener refuses (it is
// closed from a checkpoint until the restored environment's exists).
func (rl *relay) dial(ctx context.Context, network, _ string) (net.Conn, error) {
	// Each try is bounded: a checkpoint may catch one mid-connect, and
	// the restored socket's readiness, already reported to the poller
	// before the dump, is not reported again.
	d := net.Dialer{Timeout: dialTimeout}
	d.SetMultipathTCP(false) // CRIU cannot dump MPTCP sockets
	for {
		c, err := d.DialContext(ctx, network, rl.upstream)
		var ne net.Error
		if err == nil || ctx.Err() != nil ||
			!(errors.Is(err, syscall.ECONNREFUSED) || errors.As(err, &ne) && ne.Timeout()) {
			return c, err
		}
		if err := sleep(ctx, redialEvery); err != nil {
			return nil, err
		}
	}
}

// hopHeaders are connection-level headers a proxy does not forward.
var hopHeaders = map[string]bool{
	"Connection": true, "Keep-Alive": true, "Proxy-Connection": true,
	"Te": true, "Trailer": true, "Transfer-Encoding": true, "Upgrade": true,
}

func (rl *relay) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	// A GET is sent again after a dropped connection or a checkpoint; it
	// goes without a body (the Runtime API's have none), which is left
	// unread.
	retry := r.Method == http.MethodGet || r.Method == http.MethodHead
	if r.URL.Opaque != "" || !strings.HasPrefix(r.URL.Path, "/") {
		http.Error(w, "kappa runtime api relay: not a Runtime API path", http.StatusBadRequest)
		return
	}
	// Always the upstream, whatever host the request names.
	target := (&url.URL{Scheme: "http", Host: rl.upstream, Path: r.URL.Path, RawPath: r.URL.RawPath,
		RawQuery: r.URL.RawQuery}).String()
	pause := time.Duration(0)
	for {
		body := r.Body
		if retry {
			body = nil
		}
		out, err := http.NewRequestWithContext(ctx, r.Method, target, body)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		if !retry {
			out.ContentLength = r.ContentLength
		}
		for k, vs := range r.Header {
			if !hopHeaders[k] {
				out.Header[k] = vs
			}
		}
		out.Trailer = r.Trailer // filled in as the body ends
		resp, err := rl.tr.RoundTrip(out)
		if err != nil {
			if retry && ctx.Err() == nil {
				// A dropped connection: ask again, backing off should the
				// upstream keep dropping them.
				pause = min(max(2*pause, redialEvery), maxRetryPause)
				if sleep(ctx, pause) == nil {
					continue
				}
			}
			if ctx.Err() == nil {
				http.Error(w, "kappa runtime api relay: "+err.Error(), http.StatusBadGateway)
			}
			return
		}
		if resp.Header.Get(CheckpointHeader) != "" && retry {
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			rl.tr.CloseIdleConnections()
			// Hand the heap's free pages back to the kernel: the
			// snapshot holds, and every restore copies, only the
			// pages in use.
			debug.FreeOSMemory()
			continue
		}
		copyResponse(w, resp)
		return
	}
}

// copyResponse writes resp to w as it arrives, flushing every read.
func copyResponse(w http.ResponseWriter, resp *http.Response) {
	defer resp.Body.Close()
	h := w.Header()
	for k, vs := range resp.Header {
		if !hopHeaders[k] {
			h[k] = vs
		}
	}
	for k := range resp.Trailer {
		h.Add("Trailer", k)
	}
	w.WriteHeader(resp.StatusCode)
	rc := http.NewResponseController(w)
	buf := make([]byte, 32<<10)
	for {
		n, err := resp.Body.Read(buf)
		if n > 0 {
			if _, werr := w.Write(buf[:n]); werr != nil {
				return
			}
			_ = rc.Flush()
		}
		if err != nil {
			break
		}
	}
	for k, vs := range resp.Trailer {
		h[http.TrailerPrefix+strings.TrimPrefix(k, http.TrailerPrefix)] = vs
	}
}

// serveRelay listens on addr (the runtime's AWS_LAMBDA_RUNTIME_API) and
// relays to upstream until the process ends.
func serveRelay(addr, upstream string) (net.Listener, error) {
	// Plain TCP: Go listens with MPTCP by default, whose sockets CRIU
	// cannot dump.
	var lc net.ListenConfig
	lc.SetMultipathTCP(false)
	ln, err := lc.Listen(context.Background(), "tcp", addr)
	if err != nil {
		return nil, err
	}
	srv := &http.Server{Handler: newRelay(upstream), ReadHeaderTimeout: time.Minute}
	go srv.Serve(ln)
	return ln, nil
}
