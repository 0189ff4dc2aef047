package invoker

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/kappa-run/kappa/internal/sandbox"
)

// fakeRuntime is a unit-test sandbox.Runtime: each "environment" is a
// goroutine speaking the Runtime API over a real loopback listener, so the
// invoker's logic runs against the real runtimeapi server. Behaviour is
// chosen by the function's MODE environment variable:
//
//	echo       answer every event with its payload
//	exit-after answer, then exit (like aws-lambda-go after a panic)
//	init-error post /init/error and exit
//	hang-init  never call /next
//	sleep      sleep the payload's number of milliseconds, then answer
//	slow-init  sleep INIT_MS milliseconds before the first /next, then as sleep
//	late-init-output as echo, but init's output line reaches the log only
//	           when WaitOutput asks for it, or 100 ms later
//	keepalive  as echo, over one kept-alive connection as real runtimes
//	           do (the other modes open one per request)
type fakeRuntime struct {
	created atomic.Int64
	mu      sync.Mutex
	live    map[string]*fakeSandbox
}

func newFakeRuntime() *fakeRuntime { return &fakeRuntime{live: map[string]*fakeSandbox{}} }

func (r *fakeRuntime) Name() string { return "fake" }

func (r *fakeRuntime) Create(_ context.Context, spec sandbox.Spec) (sandbox.Sandbox, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	r.created.Add(1)
	s := &fakeSandbox{r: r, spec: spec, ln: ln, done: make(chan struct{}), stop: make(chan struct{})}
	r.mu.Lock()
	r.live[spec.ID] = s
	r.mu.Unlock()
	return s, nil
}

// only returns the single live sandbox.
func (r *fakeRuntime) only(t interface{ Fatalf(string, ...any) }) *fakeSandbox {
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.live) != 1 {
		t.Fatalf("%d live sandboxes, want 1", len(r.live))
	}
	for _, s := range r.live {
		return s
	}
	return nil
}

func (r *fakeRuntime) count() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.live)
}

type fakeSandbox struct {
	r        *fakeRuntime
	spec     sandbox.Spec
	ln       net.Listener
	done     chan struct{}
	stop     chan struct{}
	once     sync.Once
	stopOnce sync.Once
	exit     sandbox.ExitStatus
	frozen   atomic.Bool
	thaws    atomic.Int64
	// late is init's output still on its way (mode late-init-output): as
	// if the pipe's reader had not taken it yet; WaitOutput delivers it,
	// or a timer a while later.
	lateMu sync.Mutex
	late   []byte
}

// WaitOutput delivers the output still on its way (sandbox.OutputWaiter).
func (s *fakeSandbox) WaitOutput(context.Context) { s.deliverLate() }

func (s *fakeSandbox) deliverLate() {
	s.lateMu.Lock()
	defer s.lateMu.Unlock()
	if s.late != nil {
		s.spec.Stdout.Write(s.late)
		s.late = nil
	}
}

func (s *fakeSandbox) ID() string                       { return s.spec.ID }
func (s *fakeSandbox) RuntimeAPIListener() net.Listener { return s.ln }
func (s *fakeSandbox) RuntimeAPIAddr() string           { return s.ln.Addr().String() }
func (s *fakeSandbox) Done() <-chan struct{}            { return s.done }
func (s *fakeSandbox) Exit() sandbox.ExitStatus         { return s.exit }
func (s *fakeSandbox) Stats() sandbox.Stats             { return sandbox.Stats{MaxMemoryBytes: 5 << 20} }
func (s *fakeSandbox) Freeze(context.Context) error     { s.frozen.Store(true); return nil }
func (s *fakeSandbox) Thaw(context.Context) error {
	if s.frozen.Swap(false) {
		s.thaws.Add(1)
	}
	return nil
}

func (s *fakeSandbox) mode() string {
	for _, kv := range s.spec.Env {
		if v, ok := strings.CutPrefix(kv, "MODE="); ok {
			return v
		}
	}
	return "echo"
}

func (s *fakeSandbox) Start(context.Context) error {
	if s.spec.Args[0] == "/missing" {
		return fmt.Errorf("exec: %w", sandbox.ErrInvalidEntrypoint)
	}
	go s.loop()
	return nil
}

func (s *fakeSandbox) exitWith(code int) {
	s.once.Do(func() {
		s.exit = sandbox.ExitStatus{Code: code}
		close(s.done)
	})
}

// loop is the fake runtime process.
func (s *fakeSandbox) loop() {
	base := "http://" + s.ln.Addr().String() + "/2018-06-01/runtime/"
	tr := &http.Transport{DisableKeepAlives: s.mode() != "keepalive"}
	defer tr.CloseIdleConnections()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		select {
		case <-s.stop:
			cancel()
		case <-ctx.Done():
		}
	}()
	client := &http.Client{Transport: tr}
	get := func(url string) (*http.Response, error) {
		req, _ := http.NewRequestWithContext(ctx, "GET", url, nil)
		return client.Do(req)
	}
	post := func(url string, body io.Reader) (*http.Response, error) {
		req, _ := http.NewRequestWithContext(ctx, "POST", url, body)
		return client.Do(req)
	}
	if s.mode() == "late-init-output" {
		s.lateMu.Lock()
		s.late = []byte("fake init\n")
		s.lateMu.Unlock()
		time.AfterFunc(100*time.Millisecond, s.deliverLate)
	} else {
		fmt.Fprintln(s.spec.Stdout, "fake init")
	}
	switch s.mode() {
	case "init-error":
		if r, err := post(base+"init/error", strings.NewReader(`{"errorMessage":"boom","errorType":"InitBoom"}`)); err == nil {
			r.Body.Close()
		}
		s.exitWith(1)
		return
	case "hang-init":
		<-s.stop
		s.exitWith(-1)
		return
	case "slow-init":
		ms := 0
		for _, kv := range s.spec.Env {
			if v, ok := strings.CutPrefix(kv, "INIT_MS="); ok {
				fmt.Sscan(v, &ms)
			}
		}
		select {
		case <-time.After(time.Duration(ms) * time.Millisecond):
		case <-s.stop:
			s.exitWith(-1)
			return
		}
	}
	for {
		select {
		case <-s.stop:
			s.exitWith(-1)
			return
		default:
		}
		resp, err := get(base + "invocation/next")
		if err != nil {
			s.exitWith(2)
			return
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		id := resp.Header.Get("Lambda-Runtime-Aws-Request-Id")
		if resp.StatusCode != 200 || id == "" {
			s.exitWith(3)
			return
		}
		if s.mode() == "sleep" || s.mode() == "slow-init" {
			var ms int
			fmt.Sscan(string(body), &ms)
			select {
			case <-time.After(time.Duration(ms) * time.Millisecond):
			case <-s.stop:
				s.exitWith(-1)
				return
			}
		}
		r, err := post(base+"invocation/"+id+"/response", bytes.NewReader(body))
		if err != nil {
			s.exitWith(4)
			return
		}
		io.Copy(io.Discard, r.Body) // so that a kept-alive connection serves again
		r.Body.Close()
		if s.mode() == "exit-after" {
			s.exitWith(1)
			return
		}
	}
}

func (s *fakeSandbox) Shutdown(ctx context.Context, _ time.Duration) error { return s.Destroy(ctx) }

func (s *fakeSandbox) Destroy(context.Context) error {
	s.stopOnce.Do(func() { close(s.stop) })
	s.ln.Close()
	select {
	case <-s.done:
	case <-time.After(time.Second):
		s.exitWith(-1)
	}
	s.r.mu.Lock()
	delete(s.r.live, s.spec.ID)
	s.r.mu.Unlock()
	return nil
}

// fakeImages hands out a fixed root filesystem path.
type fakeImages struct{ refs atomic.Int64 }

func (f *fakeImages) RootFS(context.Context, string) (string, error) {
	f.refs.Add(1)
	return "/rootfs", nil
}
func (f *fakeImages) Release(string) error { f.refs.Add(-1); return nil }
