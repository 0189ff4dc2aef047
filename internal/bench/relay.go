package bench

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// The Runtime API floor is the least a server can do to hand invocations
// to Lambda runtimes over the Runtime API: a relay that queues each
// request's body as an event, gives it to whichever runtime's parked
// `GET /next` takes it, and answers with that runtime's response. It has
// none of what Kappa does around that exchange: no isolation (its runtimes
// are plain processes on the host), no logs, metrics, deadlines or
// concurrency accounting. Its warm latency and throughput, measured with
// the same client and the same runtime as Kappa's, are what no server
// speaking the Runtime API to that runtime on this host can beat, which
// is how the warm and throughput scenarios separate Kappa's own cost from
// the protocol's and the runtime's. In its cold mode every invocation
// starts a runtime process of its own: the floor of a cold start.

const (
	relayNextPath   = "/2018-06-01/runtime/invocation/next"
	relayInvocation = "/2018-06-01/runtime/invocation/"
	// relayMaxBody bounds an event or a response, as Lambda's 6 MB
	// synchronous payload limit does.
	relayMaxBody = 6 << 20
)

// RelayOptions configure ServeRelay.
type RelayOptions struct {
	// Argv is the runtime's command line.
	Argv []string
	// Runtimes is how many runtime processes serve invocations (at least
	// one), unless Cold is set.
	Runtimes int
	// Cold gives every invocation a runtime process of its own, started
	// for it with a Runtime API listener of its own and killed once it
	// has answered: a process start of the same runtime with no isolation
	// around it.
	Cold bool
}

// relay is the state of ServeRelay: events wait for a runtime's /next;
// calls maps the request ids handed out to the invokers waiting for their
// response. A cold invocation has a relay of its own.
type relay struct {
	ctx    context.Context // its end kills the runtimes
	opts   RelayOptions
	events chan *relayCall
	seq    atomic.Uint64
	mu     sync.Mutex
	calls  map[string]*relayCall
	procs  *reaper
}

// reaper counts the goroutines that reap and kill runtimes; once closed
// it starts no more, so that nothing is added after its Wait.
type reaper struct {
	mu     sync.Mutex
	closed bool
	wg     sync.WaitGroup
}

// add counts n more goroutines, or reports false once closed.
func (p *reaper) add(n int) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return false
	}
	p.wg.Add(n)
	return true
}

// closeAndWait refuses further adds and waits for the counted goroutines.
func (p *reaper) closeAndWait() {
	p.mu.Lock()
	p.closed = true
	p.mu.Unlock()
	p.wg.Wait()
}

func newRelay(ctx context.Context, opts RelayOptions, procs *reaper) *relay {
	return &relay{ctx: ctx, opts: opts, events: make(chan *relayCall), calls: map[string]*relayCall{}, procs: procs}
}

// relayCall is one invocation: its event and where its outcome goes
// (buffered, so a runtime never waits for the invoker).
type relayCall struct {
	id   string
	body []byte
	out  chan relayOutcome
}

type relayOutcome struct {
	body   []byte
	failed bool // the runtime posted to /error
}

// ServeRelay serves the Runtime API floor on ln until ctx ends: POST
// /invoke is an invocation, and the Runtime API's /next, /response and
// /error are served to the runtimes, processes of opts.Argv started with
// AWS_LAMBDA_RUNTIME_API set to ln's address (a cold invocation's own
// listener's) and their output discarded. They are its children, so their
// CPU is its children's. It returns once the server has stopped and every
// runtime is reaped.
func ServeRelay(ctx context.Context, ln net.Listener, opts RelayOptions) error {
	if len(opts.Argv) == 0 || opts.Runtimes < 1 && !opts.Cold {
		return errors.New("relay: a runtime command and at least one runtime are required")
	}
	ctx, cancel := context.WithCancel(ctx)
	procs := &reaper{}
	defer func() {
		cancel() // kills the runtimes
		procs.closeAndWait()
	}()
	rl := newRelay(ctx, opts, procs)
	if !opts.Cold {
		for range opts.Runtimes {
			if err := rl.start(ln.Addr().String(), nil); err != nil {
				return err
			}
		}
	}
	srv := &http.Server{Handler: rl}
	go func() {
		<-ctx.Done()
		srv.Close()
	}()
	err := srv.Serve(ln)
	if errors.Is(err, http.ErrServerClosed) {
		err = nil
	}
	return err
}

// start starts a runtime process of the Runtime API at addr; it is
// killed when the relay's context ends or kill is closed.
func (rl *relay) start(addr string, kill <-chan struct{}) error {
	cmd := exec.Command(rl.opts.Argv[0], rl.opts.Argv[1:]...)
	cmd.Env = []string{
		"PATH=/usr/local/bin:/usr/bin:/bin",
		"AWS_LAMBDA_RUNTIME_API=" + addr,
		"AWS_LAMBDA_FUNCTION_NAME=relay",
		"AWS_LAMBDA_FUNCTION_VERSION=$LATEST",
		"AWS_LAMBDA_FUNCTION_MEMORY_SIZE=1769",
	}
	if !rl.procs.add(2) {
		return errors.New("relay: stopping")
	}
	if err := cmd.Start(); err != nil {
		rl.procs.wg.Add(-2)
		return err
	}
	exited := make(chan struct{})
	go func() {
		defer rl.procs.wg.Done()
		cmd.Wait()
		close(exited)
	}()
	go func() {
		defer rl.procs.wg.Done()
		select {
		case <-rl.ctx.Done():
		case <-kill:
		case <-exited:
			return
		}
		cmd.Process.Kill()
	}()
	return nil
}

func (rl *relay) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	path := r.URL.Path
	switch {
	case r.Method == http.MethodPost && path == "/invoke":
		rl.invoke(w, r)
	case r.Method == http.MethodGet && path == relayNextPath:
		rl.next(w, r)
	case r.Method == http.MethodPost && strings.HasPrefix(path, relayInvocation):
		id, kind, _ := strings.Cut(strings.TrimPrefix(path, relayInvocation), "/")
		if kind != "response" && kind != "error" {
			http.NotFound(w, r)
			return
		}
		rl.finish(w, r, id, kind == "error")
	case r.Method == http.MethodPost && path == "/2018-06-01/runtime/init/error":
		// A runtime that cannot start leaves the relay one short; the
		// others still serve, and a relay with none left never answers,
		// which the benchmark's context bounds.
		accepted(w)
	default:
		http.NotFound(w, r)
	}
}

// invoke queues the request's body as an event and answers with the
// runtime's response; a function error is answered 200 with
// X-Amz-Function-Error, as Invoke does.
func (rl *relay) invoke(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, relayMaxBody))
	if err != nil {
		http.Error(w, err.Error(), http.StatusRequestEntityTooLarge)
		return
	}
	if rl.opts.Cold {
		rl.invokeCold(w, r, body)
		return
	}
	rl.relay(w, r, body)
}

// invokeCold relays body to a runtime started for it, on a listener of
// its own, and kills that runtime once it has answered.
func (rl *relay) invokeCold(w http.ResponseWriter, r *http.Request, body []byte) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	one := newRelay(rl.ctx, rl.opts, rl.procs)
	srv := &http.Server{Handler: one}
	go srv.Serve(ln)
	kill := make(chan struct{})
	defer func() {
		close(kill)
		srv.Close()
	}()
	if err := rl.start(ln.Addr().String(), kill); err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	one.relay(w, r, body)
	// The answer goes out before the runtime is killed, off the path.
	http.NewResponseController(w).Flush()
}

// relay passes body to a runtime and answers with its outcome.
func (rl *relay) relay(w http.ResponseWriter, r *http.Request, body []byte) {
	c := &relayCall{id: strconv.FormatUint(rl.seq.Add(1), 10), body: body, out: make(chan relayOutcome, 1)}
	rl.mu.Lock()
	rl.calls[c.id] = c
	rl.mu.Unlock()
	defer func() {
		rl.mu.Lock()
		delete(rl.calls, c.id)
		rl.mu.Unlock()
	}()
	select {
	case rl.events <- c:
	case <-r.Context().Done():
		return
	}
	select {
	case o := <-c.out:
		if o.failed {
			w.Header().Set("X-Amz-Function-Error", "Unhandled")
		}
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Content-Length", strconv.Itoa(len(o.body)))
		w.Write(o.body)
	case <-r.Context().Done():
	}
}

// next parks until an event is queued and hands it to the runtime with
// the headers every runtime client reads.
func (rl *relay) next(w http.ResponseWriter, r *http.Request) {
	var c *relayCall
	select {
	case c = <-rl.events:
	case <-r.Context().Done():
		return
	}
	h := w.Header()
	h.Set("Lambda-Runtime-Aws-Request-Id", c.id)
	h.Set("Lambda-Runtime-Deadline-Ms", strconv.FormatInt(time.Now().Add(time.Minute).UnixMilli(), 10))
	h.Set("Lambda-Runtime-Invoked-Function-Arn", "arn:aws:lambda:us-east-1:000000000000:function:relay")
	h.Set("Lambda-Runtime-Trace-Id", "Root=1-00000000-000000000000000000000000;Sampled=0")
	h.Set("Content-Type", "application/json")
	h.Set("Content-Length", strconv.Itoa(len(c.body)))
	if _, err := w.Write(c.body); err != nil {
		// The runtime went away with the event: the invoker fails.
		rl.deliver(c.id, relayOutcome{body: []byte(`{"errorMessage":"event not delivered"}`), failed: true})
	}
}

// deliver passes the outcome of request id to its invoker, if the call
// is still waiting for one: whoever takes the call out of calls delivers,
// once, so a second answer (a runtime's after a failed delivery, or a
// runtime's guess of another's id) never blocks on the full channel.
func (rl *relay) deliver(id string, o relayOutcome) bool {
	rl.mu.Lock()
	c := rl.calls[id]
	delete(rl.calls, id)
	rl.mu.Unlock()
	if c == nil {
		return false
	}
	c.out <- o
	return true
}

// finish passes a runtime's response (or error) to the invoker waiting
// for request id.
func (rl *relay) finish(w http.ResponseWriter, r *http.Request, id string, failed bool) {
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, relayMaxBody))
	if err != nil {
		http.Error(w, err.Error(), http.StatusRequestEntityTooLarge)
		return
	}
	if !rl.deliver(id, relayOutcome{body: body, failed: failed}) {
		http.Error(w, `{"errorMessage":"unknown request id","errorType":"InvalidRequestID"}`, http.StatusBadRequest)
		return
	}
	accepted(w)
}

func accepted(w http.ResponseWriter) {
	const ok = `{"status":"OK"}`
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Content-Length", strconv.Itoa(len(ok)))
	w.WriteHeader(http.StatusAccepted)
	io.WriteString(w, ok)
}

// startRelay runs ServeRelay with runtimes of probe in a child process
// (`kappa bench relay`), like the echo server, so that its CPU and its
// runtimes' are measured apart from the load client's.
func startRelay(kappa, probe string, opts RelayOptions) (*childServer, error) {
	args := []string{"bench", "relay", "--listen", "127.0.0.1:0", "--runtimes", strconv.Itoa(opts.Runtimes)}
	if opts.Cold {
		args = append(args, "--cold")
	}
	return startChild(kappa, append(append(args, "--", probe), opts.Argv...)...)
}
