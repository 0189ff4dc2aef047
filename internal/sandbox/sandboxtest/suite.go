package sandboxtest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/kappa-run/kappa/internal/sandbox"
)

// Config describes the runtime under test.
type Config struct {
	// NewRuntime returns the runtime under test. It is called once per
	// group of tests.
	NewRuntime func(t *testing.T) sandbox.Runtime
	// RootFS is a root filesystem made by BuildRootFS (possibly mounted
	// read-only by ReadOnly).
	RootFS string
	// Isolated runs the checks of the isolation an OCI sandbox promises:
	// read-only root, user, namespaces, capabilities, limits, network,
	// freezing, OOM detection.
	Isolated bool
	// CheckClean, if set, asserts that destroyed environments left
	// nothing behind (containers, mounts, cgroups, processes). It runs
	// after each group of tests, once all their environments are
	// destroyed.
	CheckClean func(t *testing.T)
}

// Run runs the conformance suite.
func Run(t *testing.T, cfg Config) {
	if cfg.NewRuntime == nil || cfg.RootFS == "" {
		t.Fatal("sandboxtest.Run needs NewRuntime and RootFS")
	}
	s := &suite{cfg: cfg}
	groups := []struct {
		name     string
		isolated bool
		run      func(t *testing.T, rt sandbox.Runtime)
	}{
		{"Output", false, s.testOutput},
		{"ExitCode", false, s.testExitCode},
		{"RuntimeAPI", false, s.testRuntimeAPI},
		{"StartErrors", false, s.testStartErrors},
		{"Destroy", false, s.testDestroy},
		{"Shutdown", false, s.testShutdown},
		{"Concurrent", false, s.testConcurrent},
		{"Isolation", true, s.testIsolation},
		{"Network", true, s.testNetwork},
		{"OOM", true, s.testOOM},
		{"Stats", true, s.testStats},
		{"Freeze", true, s.testFreeze},
		{"Leaks", false, s.testLeaks},
	}
	for _, g := range groups {
		t.Run(g.name, func(t *testing.T) {
			if g.isolated && !cfg.Isolated {
				t.Skip("runtime does not isolate")
			}
			g.run(t, cfg.NewRuntime(t))
			if cfg.CheckClean != nil && !t.Failed() {
				cfg.CheckClean(t)
			}
		})
	}
}

type suite struct {
	cfg Config
	seq atomic.Int64
}

// spec returns a Spec running the probe with args.
func (s *suite) spec(args ...string) sandbox.Spec {
	return sandbox.Spec{
		ID:       fmt.Sprintf("st%d-%d", os.Getpid(), s.seq.Add(1)),
		RootFS:   s.cfg.RootFS,
		Args:     append([]string{ProbePath}, args...),
		Env:      []string{"PATH=/bin", "HOME=/tmp"},
		Cwd:      "/",
		MemoryMB: 128,
		TmpMB:    16,
		Hostname: "kappa-test",
	}
}

// env is an environment under test with its Runtime API served.
type env struct {
	t      *testing.T
	sb     sandbox.Sandbox
	stdout *Buffer
	stderr *Buffer
	ticks  atomic.Int64
	hits   atomic.Int64
	srv    *http.Server
}

// create creates an environment and serves "ok <id>" on its Runtime API
// (and counts requests to /tick). It is destroyed at the end of the test.
func (s *suite) create(t *testing.T, rt sandbox.Runtime, spec sandbox.Spec) *env {
	t.Helper()
	e := &env{t: t, stdout: &Buffer{}, stderr: &Buffer{}}
	spec.Stdout, spec.Stderr = e.stdout, e.stderr
	ctx := context.Background()
	sb, err := rt.Create(ctx, spec)
	if err != nil {
		t.Fatalf("Create: %v", err)
	}
	e.sb = sb
	if sb.ID() != spec.ID {
		t.Errorf("ID() = %q, want %q", sb.ID(), spec.ID)
	}
	e.srv = &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		e.hits.Add(1)
		if r.URL.Path == "/tick" {
			e.ticks.Add(1)
		}
		io.WriteString(w, "ok "+spec.ID)
	})}
	ln := sb.RuntimeAPIListener()
	go e.srv.Serve(ln)
	t.Cleanup(func() {
		e.srv.Close()
		if err := sb.Destroy(context.Background()); err != nil {
			t.Errorf("Destroy: %v", err)
		}
	})
	return e
}

// run creates and starts an environment.
func (s *suite) run(t *testing.T, rt sandbox.Runtime, spec sandbox.Spec) *env {
	t.Helper()
	e := s.create(t, rt, spec)
	if err := e.sb.Start(context.Background()); err != nil {
		t.Fatalf("Start: %v\nstdout: %s\nstderr: %s", err, e.stdout, e.stderr)
	}
	return e
}

// wait waits for the process to exit and returns how.
func (e *env) wait(timeout time.Duration) sandbox.ExitStatus {
	e.t.Helper()
	select {
	case <-e.sb.Done():
	case <-time.After(timeout):
		e.t.Fatalf("process still running after %s\nstdout: %s\nstderr: %s", timeout, e.stdout, e.stderr)
	}
	return e.sb.Exit()
}

// destroy destroys the environment now and checks that Done is closed.
func (e *env) destroy() {
	e.t.Helper()
	e.srv.Close()
	if err := e.sb.Destroy(context.Background()); err != nil {
		e.t.Fatalf("Destroy: %v", err)
	}
	select {
	case <-e.sb.Done():
	case <-time.After(10 * time.Second):
		e.t.Fatal("Done not closed after Destroy")
	}
}

// waitOutput waits until stdout contains want.
func (e *env) waitOutput(want string, timeout time.Duration) {
	e.t.Helper()
	deadline := time.Now().Add(timeout)
	for !strings.Contains(e.stdout.String(), want) {
		select {
		case <-e.sb.Done():
			if strings.Contains(e.stdout.String(), want) {
				return
			}
			e.t.Fatalf("exited (%s) before printing %q\nstdout: %s\nstderr: %s", e.sb.Exit(), want, e.stdout, e.stderr)
		case <-time.After(5 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			e.t.Fatalf("no %q on stdout after %s\nstdout: %s\nstderr: %s", want, timeout, e.stdout, e.stderr)
		}
	}
}

// expectOK runs the probe with args and requires it to exit 0 printing "OK".
func (s *suite) expectOK(t *testing.T, rt sandbox.Runtime, spec sandbox.Spec) {
	t.Helper()
	e := s.run(t, rt, spec)
	st := e.wait(60 * time.Second)
	if st.Code != 0 || !strings.HasPrefix(e.stdout.String(), "OK") {
		t.Errorf("probe %v: %s\nstdout: %s\nstderr: %s", spec.Args[1:], st, e.stdout, e.stderr)
	}
	e.destroy()
}

func (s *suite) testOutput(t *testing.T, rt sandbox.Runtime) {
	e := s.run(t, rt, s.spec("echo", "hello", "world"))
	if st := e.wait(30 * time.Second); st != (sandbox.ExitStatus{}) {
		t.Errorf("Exit() = %+v, want exit status 0", st)
	}
	if got, want := e.stdout.String(), "hello world\n"; got != want {
		t.Errorf("stdout = %q, want %q", got, want)
	}
	if got, want := e.stderr.String(), "stderr:hello world\n"; got != want {
		t.Errorf("stderr = %q, want %q", got, want)
	}
	e.destroy()
}

func (s *suite) testExitCode(t *testing.T, rt sandbox.Runtime) {
	e := s.run(t, rt, s.spec("exit", "3"))
	st := e.wait(30 * time.Second)
	if st.Code != 3 || st.Signal != "" || st.OOMKilled || st.String() != "exit status 3" {
		t.Errorf("Exit() = %+v (%s), want exit status 3", st, st)
	}
	e.destroy()
}

func (s *suite) testRuntimeAPI(t *testing.T, rt sandbox.Runtime) {
	e := s.run(t, rt, s.spec("get", "/"))
	if st := e.wait(30 * time.Second); st.Code != 0 {
		t.Errorf("GET from inside: %s\nstdout: %s\nstderr: %s", st, e.stdout, e.stderr)
	}
	if e.hits.Load() != 1 {
		t.Errorf("Runtime API saw %d requests, want 1", e.hits.Load())
	}
	if s.cfg.Isolated && e.sb.RuntimeAPIAddr() != "127.0.0.1:9001" {
		t.Errorf("RuntimeAPIAddr() = %q, want 127.0.0.1:9001", e.sb.RuntimeAPIAddr())
	}
	e.destroy()
}

func (s *suite) testStartErrors(t *testing.T, rt sandbox.Runtime) {
	tests := []struct {
		name string
		args []string
		cwd  string
		want error
	}{
		{"missing entrypoint", []string{"/bin/nope"}, "/", sandbox.ErrInvalidEntrypoint},
		{"not executable", []string{"/bin/noexec"}, "/", sandbox.ErrInvalidEntrypoint},
		{"directory", []string{"/bin"}, "/", sandbox.ErrInvalidEntrypoint},
		{"missing interpreter", []string{"/bin/badinterp"}, "/", sandbox.ErrInvalidEntrypoint},
		{"missing cwd", []string{ProbePath, "noop"}, "/nonexistent", sandbox.ErrInvalidWorkingDir},
		{"cwd is a file", []string{ProbePath, "noop"}, ProbePath, sandbox.ErrInvalidWorkingDir},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			spec := s.spec()
			spec.Args, spec.Cwd = tt.args, tt.cwd
			e := s.create(t, rt, spec)
			err := e.sb.Start(context.Background())
			if !errors.Is(err, tt.want) {
				t.Errorf("Start() = %v, want %v", err, tt.want)
			}
			e.destroy()
		})
	}
}

func (s *suite) testDestroy(t *testing.T, rt sandbox.Runtime) {
	t.Run("before start", func(t *testing.T) {
		e := s.create(t, rt, s.spec("noop"))
		e.destroy()
		if err := e.sb.Destroy(context.Background()); err != nil {
			t.Errorf("second Destroy: %v", err)
		}
		if err := e.sb.Start(context.Background()); err == nil {
			t.Error("Start after Destroy succeeded")
		}
		if _, err := e.sb.RuntimeAPIListener().Accept(); err == nil {
			t.Error("listener still accepts after Destroy")
		}
	})
	t.Run("running", func(t *testing.T) {
		e := s.run(t, rt, s.spec("sleep"))
		e.destroy()
		if st := e.sb.Exit(); st.Signal != "killed" {
			t.Errorf("Exit() = %s, want signal: killed", st)
		}
		if err := e.sb.Destroy(context.Background()); err != nil {
			t.Errorf("second Destroy: %v", err)
		}
	})
	t.Run("cancelled context", func(t *testing.T) {
		e := s.run(t, rt, s.spec("sleep"))
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		if err := e.sb.Destroy(ctx); err != nil {
			t.Errorf("Destroy(cancelled ctx) = %v", err)
		}
		e.destroy()
	})
}

func (s *suite) testShutdown(t *testing.T, rt sandbox.Runtime) {
	t.Run("graceful", func(t *testing.T) {
		e := s.run(t, rt, s.spec("trap"))
		e.waitOutput("OK trapping", 30*time.Second)
		if err := e.sb.Shutdown(context.Background(), 30*time.Second); err != nil {
			t.Fatalf("Shutdown: %v", err)
		}
		if st := e.wait(time.Second); st.Code != 0 {
			t.Errorf("Exit() = %s, want exit status 0", st)
		}
		if !strings.Contains(e.stdout.String(), "OK got SIGTERM") {
			t.Errorf("no SIGTERM seen; stdout: %s", e.stdout)
		}
	})
	t.Run("grace expires", func(t *testing.T) {
		e := s.run(t, rt, s.spec("ignore-term"))
		e.waitOutput("OK ignoring", 30*time.Second)
		if err := e.sb.Shutdown(context.Background(), 100*time.Millisecond); err != nil {
			t.Fatalf("Shutdown: %v", err)
		}
		st := e.wait(time.Second)
		if st.Code != -1 || st.Signal != "killed" {
			t.Errorf("Exit() = %+v (%s), want killed by a signal", st, st)
		}
	})
	t.Run("children", func(t *testing.T) {
		e := s.run(t, rt, s.spec("spawn", "5"))
		e.waitOutput("OK spawned 5", 30*time.Second)
		if err := e.sb.Shutdown(context.Background(), 50*time.Millisecond); err != nil {
			t.Fatalf("Shutdown: %v", err)
		}
		e.wait(time.Second)
	})
}

func (s *suite) testConcurrent(t *testing.T, rt sandbox.Runtime) {
	const n = 8
	var wg sync.WaitGroup
	envs := make([]*env, n)
	for i := range envs {
		envs[i] = s.create(t, rt, s.spec("echo", "env", strconv.Itoa(i)))
	}
	for _, e := range envs {
		wg.Go(func() {
			if err := e.sb.Start(context.Background()); err != nil {
				t.Errorf("Start: %v", err)
			}
		})
	}
	wg.Wait()
	for i, e := range envs {
		if st := e.wait(60 * time.Second); st.Code != 0 {
			t.Errorf("env %d: %s", i, st)
		}
		if got, want := e.stdout.String(), fmt.Sprintf("env %d\n", i); got != want {
			t.Errorf("env %d stdout = %q, want %q", i, got, want)
		}
	}
	for _, e := range envs {
		wg.Go(e.destroy)
	}
	wg.Wait()
}

func (s *suite) testIsolation(t *testing.T, rt sandbox.Runtime) {
	tests := []struct {
		name string
		args []string
	}{
		{"read-only root", []string{"rofs"}},
		{"tmp", []string{"tmp", "16"}},
		{"user", []string{"ids"}},
		{"pid namespace", []string{"pidns"}},
		{"capabilities", []string{"caps"}},
		{"rlimits", []string{"rlimits"}},
		{"hostname", []string{"hostname", "kappa-test"}},
		{"hosts", []string{"hosts"}},
		{"proc", []string{"proc"}},
		{"devices", []string{"dev"}},
	}
	// The group returns once its parallel subtests are done.
	t.Run("checks", func(t *testing.T) {
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				t.Parallel()
				s.expectOK(t, rt, s.spec(tt.args...))
			})
		}
	})
}

// testNetwork runs two environments side by side. Each must reach its own
// Runtime API at 127.0.0.1:9001 and nothing on the host's loopback; the
// host must not reach theirs.
func (s *suite) testNetwork(t *testing.T, rt sandbox.Runtime) {
	hostLn, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	host := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "host")
	})}
	go host.Serve(hostLn)
	defer host.Close()

	a, b := s.spec(), s.spec()
	for _, sp := range []*sandbox.Spec{&a, &b} {
		sp.Args = []string{ProbePath, "net", "ok " + sp.ID, hostLn.Addr().String(), "127.0.0.1:9070"}
	}
	ea, eb := s.create(t, rt, a), s.create(t, rt, b)

	// From the host, 127.0.0.1:9001 is not either environment's API.
	c := http.Client{Timeout: 2 * time.Second}
	if resp, err := c.Get("http://127.0.0.1:9001/"); err == nil {
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if strings.HasPrefix(string(body), "ok st") {
			t.Errorf("host reached an environment's Runtime API: %q", body)
		}
	}
	for _, e := range []*env{ea, eb} {
		if err := e.sb.Start(context.Background()); err != nil {
			t.Fatalf("Start: %v", err)
		}
	}
	for _, e := range []*env{ea, eb} {
		if st := e.wait(60 * time.Second); st.Code != 0 {
			t.Errorf("%s: %s\nstdout: %s\nstderr: %s", e.sb.ID(), st, e.stdout, e.stderr)
		}
	}
	ea.destroy()
	eb.destroy()
}

func (s *suite) testOOM(t *testing.T, rt sandbox.Runtime) {
	spec := s.spec("alloc", "512")
	spec.MemoryMB = 64
	e := s.run(t, rt, spec)
	st := e.wait(60 * time.Second)
	if !st.OOMKilled {
		t.Errorf("Exit() = %+v (%s), want OOMKilled\nstdout: %s", st, st, e.stdout)
	}
	if st.Signal != "killed" {
		t.Errorf("Exit() = %s, want signal: killed", st)
	}
	e.destroy()

	// A process that stays under its limit is not OOM-killed.
	e = s.run(t, rt, s.spec("exit", "0"))
	if st := e.wait(30 * time.Second); st.OOMKilled {
		t.Errorf("Exit() = %+v, want no OOMKilled", st)
	}
	e.destroy()
}

func (s *suite) testStats(t *testing.T, rt sandbox.Runtime) {
	spec := s.spec("alloc", "48")
	spec.MemoryMB = 256
	e := s.run(t, rt, spec)
	e.waitOutput("OK allocated 48 MiB", 60*time.Second)
	if got := e.sb.Stats().MaxMemoryBytes; got < 48<<20 || got > 256<<20 {
		t.Errorf("MaxMemoryBytes = %d, want between 48 MiB and 256 MiB", got)
	}
	e.destroy()
	if got := e.sb.Stats().MaxMemoryBytes; got < 48<<20 {
		t.Errorf("after Destroy MaxMemoryBytes = %d, want the last sample", got)
	}
}

func (s *suite) testFreeze(t *testing.T, rt sandbox.Runtime) {
	ctx := context.Background()
	e := s.run(t, rt, s.spec("ticker"))
	waitTicks := func(n int64) {
		t.Helper()
		deadline := time.Now().Add(30 * time.Second)
		for e.ticks.Load() < n {
			if time.Now().After(deadline) {
				t.Fatalf("only %d ticks, want %d\nstdout: %s\nstderr: %s", e.ticks.Load(), n, e.stdout, e.stderr)
			}
			time.Sleep(5 * time.Millisecond)
		}
	}
	waitTicks(3)
	if err := e.sb.Freeze(ctx); err != nil {
		t.Fatalf("Freeze: %v", err)
	}
	frozen := e.ticks.Load()
	time.Sleep(300 * time.Millisecond)
	// One request may have been in flight when the freeze began.
	if got := e.ticks.Load(); got > frozen+1 {
		t.Errorf("ticks went from %d to %d while frozen", frozen, got)
	}
	if err := e.sb.Thaw(ctx); err != nil {
		t.Fatalf("Thaw: %v", err)
	}
	waitTicks(frozen + 5)

	// Destroying a frozen environment kills it.
	if err := e.sb.Freeze(ctx); err != nil {
		t.Fatalf("Freeze: %v", err)
	}
	e.destroy()
}

// testLeaks creates, runs and destroys environments repeatedly and checks
// that the process's goroutines and file descriptors return to where they
// were.
func (s *suite) testLeaks(t *testing.T, rt sandbox.Runtime) {
	const rounds = 50
	one := func() {
		e := s.run(t, rt, s.spec("noop"))
		e.wait(30 * time.Second)
		e.destroy()
	}
	one() // warm up lazily created state (poller, pools)
	goroutines, fds := runtime.NumGoroutine(), countFDs()
	for range rounds {
		one()
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		g, f := runtime.NumGoroutine(), countFDs()
		if g <= goroutines && f <= fds {
			return
		}
		if time.Now().After(deadline) {
			t.Errorf("after %d environments: %d goroutines (was %d), %d fds (was %d)", rounds, g, goroutines, f, fds)
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// countFDs counts the open file descriptors of this process, or returns 0
// where /proc/self/fd does not exist.
func countFDs() int {
	entries, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		return 0
	}
	return len(entries)
}

// Buffer is a bytes.Buffer safe for concurrent use, for Spec.Stdout and
// Spec.Stderr.
type Buffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *Buffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *Buffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}
