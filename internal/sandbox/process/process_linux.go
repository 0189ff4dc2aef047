//go:build linux

package process

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/kappa-run/kappa/internal/sandbox"
)

// DefaultAddr is where the Runtime API listener is bound by default.
const DefaultAddr = "127.0.0.1:9001"

// killWait bounds how long Destroy and Shutdown wait for killed processes
// to be reaped.
const killWait = 5 * time.Second

// Options configure a Runtime. The zero value is usable.
type Options struct {
	// Addr is the host:port of each environment's Runtime API listener;
	// "" means DefaultAddr. Port 0 gives every environment a free port.
	Addr string
	// ExtensionsDir is the host directory holding the external extensions;
	// "" means RootFS/opt/extensions.
	ExtensionsDir string
	// ExtensionOutput returns where the output (stdout and stderr) of the
	// extension name of environment id goes; nil means the environment's
	// Spec.Stderr.
	ExtensionOutput func(id, name string) io.Writer
	// Logger receives debug records; nil discards them.
	Logger *slog.Logger
}

// Runtime creates process environments. It is safe for concurrent use.
type Runtime struct{ opts Options }

// New returns a Runtime.
func New(opts Options) *Runtime {
	if opts.Addr == "" {
		opts.Addr = DefaultAddr
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	return &Runtime{opts: opts}
}

// Name returns "process".
func (r *Runtime) Name() string { return "process" }

// Create implements sandbox.Runtime.
func (r *Runtime) Create(ctx context.Context, spec sandbox.Spec) (sandbox.Sandbox, error) {
	return r.CreateSandbox(ctx, spec)
}

// CreateSandbox binds the environment's Runtime API listener and finds its
// external extensions; no process runs yet.
func (r *Runtime) CreateSandbox(_ context.Context, spec sandbox.Spec) (*Sandbox, error) {
	ln, err := net.Listen("tcp", r.opts.Addr)
	if err != nil {
		return nil, fmt.Errorf("runtime api listener: %w", err)
	}
	s := &Sandbox{
		id:        spec.ID,
		spec:      spec,
		opts:      r.opts,
		ln:        ln,
		addr:      ln.Addr().String(),
		done:      make(chan struct{}),
		destroyed: make(chan struct{}),
	}
	if s.spec.Stdout == nil {
		s.spec.Stdout = io.Discard
	}
	if s.spec.Stderr == nil {
		s.spec.Stderr = io.Discard
	}
	s.env = withEnv(spec.Env, "AWS_LAMBDA_RUNTIME_API", s.addr)
	dir := r.opts.ExtensionsDir
	if dir == "" {
		dir = s.hostPath("/opt/extensions")
	}
	s.extDir = dir
	s.extNames = listExtensions(dir)
	s.extExited = make(chan string, len(s.extNames))
	return s, nil
}

// Sandbox is one process environment. Methods are safe for concurrent use.
type Sandbox struct {
	id     string
	spec   sandbox.Spec
	opts   Options
	ln     net.Listener
	addr   string
	env    []string
	extDir string

	extNames  []string
	extExited chan string

	done      chan struct{} // the runtime process exited (or never will)
	destroyed chan struct{}

	mu         sync.Mutex
	started    bool
	extStarted bool
	isDead     bool // Destroy was called
	runtime    *proc
	exts       []*proc
	exit       sandbox.ExitStatus
	peak       uint64
	// tree caches the pids of the process trees; walking them costs a
	// read per thread, so it is refreshed at most every treeRefresh.
	tree   []int
	treeAt time.Time
}

// treeRefresh is how often Stats walks the process trees anew; between
// walks it reads VmHWM of the processes it found last.
const treeRefresh = time.Second

// proc is one child process and its process group.
type proc struct {
	name string
	cmd  *exec.Cmd
	pid  int
	done chan struct{}
	st   sandbox.ExitStatus
	rss  uint64 // peak RSS from rusage, once exited
}

// ID returns Spec.ID.
func (s *Sandbox) ID() string { return s.id }

// RuntimeAPIListener returns the environment's Runtime API listener.
func (s *Sandbox) RuntimeAPIListener() net.Listener { return s.ln }

// RuntimeAPIAddr returns the listener's host:port.
func (s *Sandbox) RuntimeAPIAddr() string { return s.addr }

// Done is closed when the runtime process exited, or at Destroy when it
// never started.
func (s *Sandbox) Done() <-chan struct{} { return s.done }

// Exit reports how the runtime process ended; valid after Done.
func (s *Sandbox) Exit() sandbox.ExitStatus {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.exit
}

// Extensions returns the names of the external extensions, the file names
// of the executables in the extensions directory, sorted.
func (s *Sandbox) Extensions() []string { return append([]string(nil), s.extNames...) }

// ExtensionExited delivers the name of each extension process that exits.
func (s *Sandbox) ExtensionExited() <-chan string { return s.extExited }

// Freeze does nothing: process environments are not frozen.
func (s *Sandbox) Freeze(context.Context) error { return nil }

// Thaw does nothing.
func (s *Sandbox) Thaw(context.Context) error { return nil }

// hostPath maps a path inside the environment to the host.
func (s *Sandbox) hostPath(p string) string {
	root := s.spec.RootFS
	if root == "" || root == "/" {
		return p
	}
	return filepath.Join(root, p)
}

// StartExtensions starts every external extension, each in a process group
// of its own, in name order. Call it before Start. An extension that cannot
// be started fails the call (the platform error is Extension.LaunchError);
// the ones started before it keep running until Shutdown or Destroy.
func (s *Sandbox) StartExtensions(_ context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.isDead {
		return errors.New("sandbox destroyed")
	}
	if s.extStarted {
		return errors.New("extensions already started")
	}
	s.extStarted = true
	for _, name := range s.extNames {
		var out io.Writer = s.spec.Stderr
		if s.opts.ExtensionOutput != nil {
			out = s.opts.ExtensionOutput(s.id, name)
		}
		path := filepath.Join(s.extDir, name)
		cmd := exec.Command(path)
		cmd.Dir = s.hostPath(cwdOr(s.spec.Cwd))
		if st, err := os.Stat(cmd.Dir); err != nil || !st.IsDir() {
			cmd.Dir = s.hostPath("/")
		}
		cmd.Env = s.env
		cmd.Stdout, cmd.Stderr = out, out
		p, err := s.startProc(name, cmd)
		if err != nil {
			return fmt.Errorf("launch extension %s: %w", name, err)
		}
		s.exts = append(s.exts, p)
		go func() {
			<-p.done
			s.extExited <- name
		}()
	}
	return nil
}

// Start starts the runtime process.
func (s *Sandbox) Start(_ context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.isDead {
		return errors.New("sandbox destroyed")
	}
	if s.started {
		return errors.New("sandbox already started")
	}
	if len(s.spec.Args) == 0 {
		return fmt.Errorf("no command: %w", sandbox.ErrInvalidEntrypoint)
	}
	cwd := s.hostPath(cwdOr(s.spec.Cwd))
	if st, err := os.Stat(cwd); err != nil || !st.IsDir() {
		return fmt.Errorf("working directory %s: %w", s.spec.Cwd, sandbox.ErrInvalidWorkingDir)
	}
	path, err := s.resolve(s.spec.Args[0])
	if err != nil {
		return fmt.Errorf("entrypoint %s: %w: %v", s.spec.Args[0], sandbox.ErrInvalidEntrypoint, err)
	}
	cmd := exec.Command(path, s.spec.Args[1:]...)
	cmd.Args[0] = s.spec.Args[0]
	cmd.Dir = cwd
	cmd.Env = s.env
	cmd.Stdout, cmd.Stderr = s.spec.Stdout, s.spec.Stderr
	p, err := s.startProc("runtime", cmd)
	if err != nil {
		return fmt.Errorf("entrypoint %s: %w: %v", s.spec.Args[0], sandbox.ErrInvalidEntrypoint, err)
	}
	s.started = true
	s.runtime = p
	go func() {
		<-p.done
		s.mu.Lock()
		s.exit = p.st
		s.peak = max(s.peak, p.rss)
		s.mu.Unlock()
		close(s.done)
	}()
	return nil
}

// resolve finds the executable of argv0 on the host.
func (s *Sandbox) resolve(argv0 string) (string, error) {
	if strings.Contains(argv0, "/") {
		p := argv0
		if filepath.IsAbs(p) {
			p = s.hostPath(p)
		} else {
			p = filepath.Join(s.hostPath(cwdOr(s.spec.Cwd)), p)
		}
		return p, checkExecutable(p)
	}
	pathVar := "/usr/local/bin:/usr/bin:/bin"
	for _, kv := range s.env {
		if v, ok := strings.CutPrefix(kv, "PATH="); ok {
			pathVar = v
		}
	}
	for _, dir := range filepath.SplitList(pathVar) {
		if dir == "" {
			continue
		}
		p := filepath.Join(s.hostPath(dir), argv0)
		if checkExecutable(p) == nil {
			return p, nil
		}
	}
	return "", fmt.Errorf("%s not found in PATH", argv0)
}

func checkExecutable(p string) error {
	st, err := os.Stat(p)
	if err != nil {
		return err
	}
	if st.IsDir() {
		return errors.New("is a directory")
	}
	if st.Mode()&0o111 == 0 {
		return errors.New("not executable")
	}
	return nil
}

// startProc starts cmd in a process group of its own and reaps it in a
// goroutine; s.mu must be held.
func (s *Sandbox) startProc(name string, cmd *exec.Cmd) (*proc, error) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	// Descendants may keep the output pipes open after the process is
	// killed; don't wait for them for long.
	cmd.WaitDelay = time.Second
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	p := &proc{name: name, cmd: cmd, pid: cmd.Process.Pid, done: make(chan struct{})}
	s.opts.Logger.Debug("process sandbox: started", "sandbox", s.id, "process", name, "pid", p.pid)
	go func() {
		cmd.Wait() // the ProcessState says how it ended
		p.st = exitStatus(cmd.ProcessState)
		if ru, ok := cmd.ProcessState.SysUsage().(*syscall.Rusage); ok && ru != nil {
			p.rss = uint64(ru.Maxrss) * 1024
		}
		close(p.done)
	}()
	return p, nil
}

func exitStatus(ps *os.ProcessState) sandbox.ExitStatus {
	if ps == nil {
		return sandbox.ExitStatus{Code: -1, Signal: "unknown"}
	}
	if ws, ok := ps.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
		return sandbox.ExitStatus{Code: -1, Signal: ws.Signal().String()}
	}
	return sandbox.ExitStatus{Code: ps.ExitCode()}
}

func cwdOr(cwd string) string {
	if cwd == "" {
		return "/"
	}
	return cwd
}

// procs returns every process started so far.
func (s *Sandbox) procs() []*proc {
	s.mu.Lock()
	defer s.mu.Unlock()
	var ps []*proc
	if s.runtime != nil {
		ps = append(ps, s.runtime)
	}
	return append(ps, s.exts...)
}

// Shutdown sends SIGTERM to the runtime's process group, waits up to grace
// for every process (the runtime and the extensions, which get SHUTDOWN
// through the Extensions API) to exit, then kills every process group. A
// zero grace kills at once.
func (s *Sandbox) Shutdown(ctx context.Context, grace time.Duration) error {
	ps := s.procs()
	if grace > 0 {
		s.mu.Lock()
		rt := s.runtime
		s.mu.Unlock()
		if rt != nil {
			_ = syscall.Kill(-rt.pid, syscall.SIGTERM)
		}
		timer := time.NewTimer(grace)
		defer timer.Stop()
	wait:
		for _, p := range ps {
			select {
			case <-p.done:
			case <-timer.C:
				break wait
			case <-ctx.Done():
				break wait
			}
		}
	}
	s.killAll(ps)
	return nil
}

// killAll sends SIGKILL to every process group and waits for the
// processes to be reaped.
func (s *Sandbox) killAll(ps []*proc) {
	for _, p := range ps {
		_ = syscall.Kill(-p.pid, syscall.SIGKILL)
	}
	deadline := time.NewTimer(killWait)
	defer deadline.Stop()
	for _, p := range ps {
		select {
		case <-p.done:
		case <-deadline.C:
			s.opts.Logger.Warn("process sandbox: process not reaped", "sandbox", s.id, "process", p.name, "pid", p.pid)
			return
		}
	}
}

// Destroy kills every process and closes the listener. It is idempotent
// and does not depend on ctx.
func (s *Sandbox) Destroy(_ context.Context) error {
	s.mu.Lock()
	if s.isDead {
		s.mu.Unlock()
		return nil
	}
	s.isDead = true
	started := s.started
	s.mu.Unlock()
	s.sample()
	s.killAll(s.procs())
	_ = s.ln.Close()
	if !started {
		close(s.done)
	}
	close(s.destroyed)
	return nil
}

// Stats samples the peak memory of the environment: the sum of VmHWM over
// every live process of its trees, kept as the highest sum seen (and at
// least the peak RSS of the runtime once it exited). The trees are walked
// anew at most every second; in between the processes found last are read.
func (s *Sandbox) Stats() sandbox.Stats {
	s.sample()
	s.mu.Lock()
	defer s.mu.Unlock()
	return sandbox.Stats{MaxMemoryBytes: s.peak}
}

func (s *Sandbox) sample() {
	var roots []int
	for _, p := range s.procs() {
		select {
		case <-p.done:
		default:
			roots = append(roots, p.pid)
		}
	}
	if len(roots) == 0 {
		return
	}
	s.mu.Lock()
	pids, fresh := s.tree, time.Since(s.treeAt) < treeRefresh && len(s.tree) >= len(roots)
	s.mu.Unlock()
	if !fresh {
		pids = treePids(roots)
		s.mu.Lock()
		s.tree, s.treeAt = pids, time.Now()
		s.mu.Unlock()
	}
	var sum uint64
	for _, pid := range pids {
		sum += vmHWM(pid)
	}
	s.mu.Lock()
	s.peak = max(s.peak, sum)
	s.mu.Unlock()
}

// listExtensions returns the names of the executable files in dir, sorted.
func listExtensions(dir string) []string {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil
	}
	var names []string
	for _, e := range entries {
		if checkExecutable(filepath.Join(dir, e.Name())) == nil {
			names = append(names, e.Name())
		}
	}
	sort.Strings(names)
	return names
}

// withEnv returns env with key set to value.
func withEnv(env []string, key, value string) []string {
	out := make([]string, 0, len(env)+1)
	for _, kv := range env {
		if !strings.HasPrefix(kv, key+"=") {
			out = append(out, kv)
		}
	}
	return append(out, key+"="+value)
}
