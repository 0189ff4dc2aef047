package oci

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/kappa-run/kappa/internal/sandbox"
	"golang.org/x/sys/unix"
)

// Timeouts of cleanup steps that must not be cut short by the caller's
// context.
const (
	killTimeout    = 10 * time.Second // for the processes to die after SIGKILL
	execTimeout    = 10 * time.Second // for the init process to exec after start
	createTimeout  = 60 * time.Second // for `<runtime> create`
	destroyTimeout = 30 * time.Second // for all of Destroy
	outputDrain    = 2 * time.Second  // for output still in the pipes after exit
)

// Polling of an init process's exec (see awaitExec): every execPoll times
// the number of starts waiting, for execPollClose, then backing off from a
// millisecond up to execPollMax.
const (
	execPoll      = 50 * time.Microsecond
	execPollClose = 3 * time.Millisecond
	execPollMax   = 5 * time.Millisecond
)

// hostsFile is the /etc/hosts of every environment.
const hostsFile = "127.0.0.1 localhost\n127.0.0.1 sandbox.localdomain\n"

// Files of a bundle directory; removeBundle deletes exactly these.
const (
	configFile     = "config.json"
	hostsName      = "hosts"
	pidFileName    = "pid"
	runtimeLogName = "runtime.log"
	// criuWorkName is the directory of CRIU's logs for Checkpoint and a
	// restoring Start.
	criuWorkName = "criu"
)

type lifecycleState int

const (
	stateNew lifecycleState = iota
	stateCreated
	stateStarted
)

// Sandbox is one environment run by crun or runc. It implements
// sandbox.Sandbox; its methods are safe for concurrent use.
type Sandbox struct {
	r         *Runtime
	cli       cli // r.cli, or r.snap for Checkpointable environments
	spec      sandbox.Spec
	dir       string // bundle directory
	netns     netNS  // held until Destroy; Destroy and DialContext take it under mu
	pooledNS  bool   // may take its network namespace from the pool
	pooled    bool   // took it from the pool
	cgPath    string // cgroupsPath
	cg        envCgroup
	done      chan struct{}
	closeDone sync.Once

	// lifecycle serialises Start, Freeze, Thaw and Destroy.
	lifecycle sync.Mutex
	ln        net.Listener
	init      *initProcess // set once the container exists
	state     lifecycleState
	frozen    bool
	destroyed bool
	// startErr is a problem with the image's entrypoint or working
	// directory found by Create; Start reports it.
	startErr error
	// hostsBind is the host file bound to /etc/hosts, or "".
	hostsBind string

	mu sync.Mutex // guards the fields below
	// outR are the read ends of the output pipes while they are read.
	outR []*os.File
	// outHeld counts bytes read from the pipes and not yet written to
	// the spec's writers; outMoved, made by a waiter in WaitOutput, is
	// closed (and dropped) when a chunk has been written.
	outHeld  int
	outMoved chan struct{}
	exited   bool
	execed   bool // the init process had executed Spec.Args[0] when it exited
	exit     sandbox.ExitStatus
	stats    sandbox.Stats
}

var _ sandbox.Sandbox = (*Sandbox)(nil)

func newSandbox(r *Runtime, spec sandbox.Spec) *Sandbox {
	if spec.Stdout == nil {
		spec.Stdout = io.Discard
	}
	if spec.Stderr == nil {
		spec.Stderr = io.Discard
	}
	if spec.Hostname == "" {
		spec.Hostname = "localhost"
	}
	cgPath := r.cgParent + "/" + spec.ID
	c := r.cli
	if spec.Checkpointable {
		c = r.snap // create checked Snapshots
	}
	return &Sandbox{
		r:      r,
		cli:    c,
		spec:   spec,
		dir:    filepath.Join(r.stateDir, spec.ID),
		cgPath: cgPath,
		cg:     r.cgroups.env(cgPath),
		done:   make(chan struct{}),
	}
}

func (s *Sandbox) logFile() string { return filepath.Join(s.dir, runtimeLogName) }

// create builds the bundle and the container. On error the caller
// destroys the sandbox.
func (s *Sandbox) create(ctx context.Context) error {
	s.lifecycle.Lock()
	defer s.lifecycle.Unlock()

	err := os.Mkdir(s.dir, 0o700)
	if errors.Is(err, os.ErrExist) {
		// A bundle left by a crash; removeBundle removes only our files.
		if err = removeBundle(s.dir); err == nil {
			err = os.Mkdir(s.dir, 0o700)
		}
	}
	if err != nil {
		return err
	}
	if ns, ok := s.takePooledNetNS(); ok {
		s.netns, s.ln, s.pooled = ns.ns, ns.ln, true
	} else {
		addr := runtimeAPIAddr
		if s.spec.Checkpointable {
			addr = sandbox.RelayAddr
		}
		ln, ns, err := newNetNS(addr)
		if err != nil {
			return err
		}
		s.netns, s.ln = ns, ln
	}
	if err := checkCwd(s.spec.RootFS, s.spec.Cwd); err != nil {
		s.startErr = err
		return nil
	}

	hostsPath := filepath.Join(s.dir, hostsName)
	if err := os.WriteFile(hostsPath, []byte(hostsFile), 0o644); err != nil {
		return err
	}
	// The root filesystem is read-only, so the runtime cannot create a
	// mount point for /etc/hosts; images without one do without.
	if _, err := os.Lstat(filepath.Join(s.spec.RootFS, "etc", "hosts")); err != nil {
		s.r.log.Debug("image has no /etc/hosts mount point; not providing one", "id", s.spec.ID)
		hostsPath = ""
	}
	s.hostsBind = hostsPath
	bpf := ""
	if s.cli.name == "crun" {
		bpf = s.r.cachedSeccompBPF()
	}
	cfg, err := json.Marshal(newSpec(bundleSpec{
		spec:       s.spec,
		netnsPath:  s.netns.path(),
		hostsPath:  hostsPath,
		cgroup:     s.cgPath,
		cgroupNS:   s.r.cgroupNS,
		seccomp:    s.r.seccomp,
		seccompBPF: bpf,
		criuConfig: s.criuConfig(),
	}))
	if err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(s.dir, configFile), cfg, 0o600); err != nil {
		return err
	}
	if s.spec.RestoreFrom != "" {
		// Start restores; no container until then.
		return s.prepareRestore()
	}

	stdoutR, stdoutW, stderrR, stderrW, err := outputPipes()
	if err != nil {
		return err
	}
	// The init process inherits the runtime's stdio; the runtime prints its
	// own errors on stderr too (see package doc).
	pidFile := filepath.Join(s.dir, pidFileName)
	// The caller's ctx does not interrupt the runtime: killing `create`
	// midway can orphan a half-made init process. ctx is checked after.
	runCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), createTimeout)
	defer cancel()
	cmd := s.cli.command(runCtx, s.logFile(), "create", "--bundle", s.dir, "--pid-file", pidFile, s.spec.ID)
	cmd.Stdout, cmd.Stderr = stdoutW, stderrW
	s.state = stateCreated // from here on Destroy deletes the container
	runErr := cmd.Run()
	stdoutW.Close()
	stderrW.Close()
	if runErr != nil {
		stdoutR.Close()
		said := readAvailable(stderrR)
		stderrR.Close()
		reapLeftover(pidFile)
		err := classify(s.spec, s.cli.failure("create", runErr, said, s.logFile()))
		if errors.Is(err, sandbox.ErrInvalidEntrypoint) || errors.Is(err, sandbox.ErrInvalidWorkingDir) {
			// The image's fault, reported by Start like an exec
			// failure; the environment itself is fine.
			s.startErr = err
			return nil
		}
		return err
	}

	if bpf == "" && s.cli.name == "crun" {
		s.r.learnSeccompBPF(s.spec.ID)
	}
	if err := s.adopt(pidFile, stdoutR, stderrR, false); err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	if _, err := os.Stat(s.cg.memory); err != nil {
		return fmt.Errorf("container cgroup: %w", err)
	}
	return fixTmpMode(s.init.pid)
}

// adopt takes the environment's init process, whose pid the runtime (or
// CRIU) wrote to pidFile, opens its cgroup files and starts watching its
// output; on failure it closes the output pipes' read ends and kills the
// process. A restored process was running its program when it was dumped:
// it has executed it, whatever its name.
func (s *Sandbox) adopt(pidFile string, stdoutR, stderrR *os.File, restored bool) error {
	pid, err := readPIDFile(pidFile)
	if err == nil {
		s.init, err = adoptInit(pid)
	}
	if err == nil && restored {
		s.init.startComm = ""
	}
	if err != nil {
		stdoutR.Close()
		stderrR.Close()
		if pid > 0 {
			// Not our child (no subreaper?): kill it so that delete
			// can finish; we cannot reap it.
			_ = unix.Kill(pid, unix.SIGKILL)
		}
		return err
	}
	s.cg.files = openCgroupFiles(s.cg) // before watch reads them
	go s.watch(stdoutR, stderrR)
	return nil
}

// outputPipes makes the pipes an environment's stdout and stderr go
// through (read ends first), closing both on error.
func outputPipes() (stdoutR, stdoutW, stderrR, stderrW *os.File, err error) {
	if stdoutR, stdoutW, err = os.Pipe(); err != nil {
		return nil, nil, nil, nil, err
	}
	if stderrR, stderrW, err = os.Pipe(); err != nil {
		stdoutR.Close()
		stdoutW.Close()
		return nil, nil, nil, nil, err
	}
	return stdoutR, stdoutW, stderrR, stderrW, nil
}

// takePooledNetNS takes a network namespace from the runtime's pool when
// the sandbox may.
func (s *Sandbox) takePooledNetNS() (pooledNetNS, bool) {
	if !s.pooledNS || s.spec.Checkpointable {
		return pooledNetNS{}, false
	}
	return s.r.nsPool.get()
}

// reapLeftover kills and reaps the init process of a failed create, if
// the runtime got as far as writing its pid and left it behind (as when
// it was killed by the timeout). The runtimes clean up their own errors.
func reapLeftover(pidFile string) {
	pid, err := readPIDFile(pidFile)
	if err != nil {
		return
	}
	p, err := adoptInit(pid)
	if err != nil {
		return
	}
	if p.signal(unix.SIGKILL) == nil {
		_, _, _ = p.wait()
	}
}

// readAvailable returns what a pipe holds without waiting for writers
// that may linger.
func readAvailable(f *os.File) []byte {
	_ = f.SetReadDeadline(time.Now().Add(100 * time.Millisecond))
	b, _ := io.ReadAll(io.LimitReader(f, 64<<10))
	return b
}

func readPIDFile(path string) (int, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return 0, fmt.Errorf("read pid file: %w", err)
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(data)))
	if err != nil || pid <= 0 {
		return 0, fmt.Errorf("bad pid file %q", data)
	}
	return pid, nil
}

// OutputPending returns how many bytes of the environment's output are
// not yet written to the spec's writers: what its output pipes hold unread
// (FIONREAD) and what was read from them and is being written. 0 once the
// pipes are closed.
func (s *Sandbox) OutputPending() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.outputPendingLocked()
}

func (s *Sandbox) outputPendingLocked() int {
	n := s.outHeld
	for _, f := range s.outR {
		// Through SyscallConn: Fd would make the pipe blocking, and a
		// blocked read is not interrupted by Close.
		rc, err := f.SyscallConn()
		if err != nil {
			continue
		}
		_ = rc.Control(func(fd uintptr) {
			if v, err := unix.IoctlGetInt(int(fd), unix.TIOCINQ); err == nil { // FIONREAD
				n += v
			}
		})
	}
	return n
}

// WaitOutput waits until everything the environment's processes have
// written to their output so far has reached the spec's writers (see
// OutputPending), or ctx ends.
func (s *Sandbox) WaitOutput(ctx context.Context) {
	for {
		s.mu.Lock()
		if s.outputPendingLocked() == 0 {
			s.mu.Unlock()
			return
		}
		if s.outMoved == nil {
			s.outMoved = make(chan struct{})
		}
		moved := s.outMoved
		s.mu.Unlock()
		select {
		case <-moved:
		case <-ctx.Done():
			return
		}
	}
}

// watch copies the container's output, reaps its init process, records how
// it ended and closes done.
func (s *Sandbox) watch(stdoutR, stderrR *os.File) {
	s.mu.Lock()
	s.outR = []*os.File{stdoutR, stderrR}
	s.mu.Unlock()
	var copies sync.WaitGroup
	var outMu sync.Mutex // stdout and stderr are often the same writer
	for _, p := range []struct {
		r *os.File
		w io.Writer
	}{{stdoutR, s.spec.Stdout}, {stderrR, s.spec.Stderr}} {
		copies.Add(1)
		go func() {
			defer copies.Done()
			buf := make([]byte, 8<<10)
			for {
				n, err := p.r.Read(buf)
				if n > 0 {
					// Between Read's return and this count the bytes are
					// in neither FIONREAD nor outHeld: a window of a few
					// instructions that OutputPending cannot see.
					s.mu.Lock()
					s.outHeld += n
					s.mu.Unlock()
					outMu.Lock()
					_, werr := p.w.Write(buf[:n])
					outMu.Unlock()
					if werr != nil {
						p.w = io.Discard
					}
					s.mu.Lock()
					s.outHeld -= n
					if s.outMoved != nil {
						close(s.outMoved)
						s.outMoved = nil
					}
					s.mu.Unlock()
				}
				if err != nil {
					return
				}
			}
		}()
	}

	ws, execed, err := s.init.wait()
	st := sandbox.ExitStatus{Code: -1}
	switch {
	case err != nil:
		s.r.log.Error("wait for sandbox", "id", s.spec.ID, "err", err)
	case ws.Exited():
		st.Code = ws.ExitStatus()
	case ws.Signaled():
		st.Signal = ws.Signal().String()
	}
	if n, err := s.cg.oomKills(); err == nil && n > 0 {
		st.OOMKilled = true
	}
	peak, _ := s.cg.maxMemory()

	// Every process of the environment is gone with its PID namespace, so
	// the pipes reach EOF at once unless something else holds them.
	t := time.AfterFunc(outputDrain, func() {
		stdoutR.Close()
		stderrR.Close()
	})
	copies.Wait()
	t.Stop()
	s.mu.Lock()
	s.outR = nil
	s.mu.Unlock()
	stdoutR.Close()
	stderrR.Close()

	s.mu.Lock()
	s.exited, s.execed, s.exit = true, execed, st
	if peak > s.stats.MaxMemoryBytes {
		s.stats.MaxMemoryBytes = peak
	}
	s.mu.Unlock()
	s.r.log.Debug("sandbox exited", "id", s.spec.ID, "status", st.String(), "oom", st.OOMKilled)
	s.closeDone.Do(func() { close(s.done) })
}

// ID returns Spec.ID.
func (s *Sandbox) ID() string { return s.spec.ID }

// RuntimeAPIListener returns the listener bound to 127.0.0.1:9001 inside
// the environment's network namespace.
func (s *Sandbox) RuntimeAPIListener() net.Listener { return s.ln }

// RuntimeAPIAddr returns "127.0.0.1:9001".
func (s *Sandbox) RuntimeAPIAddr() string { return runtimeAPIAddr }

// Start releases the container's init process and returns once it has
// executed Spec.Args[0]. Errors wrap sandbox.ErrInvalidEntrypoint or
// sandbox.ErrInvalidWorkingDir when the executable or the working directory
// is unusable: missing, not executable, not a directory (found at Create or
// by the runtime), or an exec that fails (a missing interpreter or dynamic
// loader, a foreign architecture), noticed when the init process exits
// before its name changes.
func (s *Sandbox) Start(ctx context.Context) error {
	s.lifecycle.Lock()
	defer s.lifecycle.Unlock()
	if s.startErr != nil {
		return fmt.Errorf("start sandbox %s: %w", s.spec.ID, s.startErr)
	}
	if s.spec.RestoreFrom != "" && !s.destroyed && s.state == stateNew {
		if err := s.restore(ctx); err != nil {
			return fmt.Errorf("start sandbox %s: %w", s.spec.ID, err)
		}
		return nil
	}
	if s.destroyed || s.state != stateCreated || s.init == nil {
		return fmt.Errorf("start sandbox %s: not in created state", s.spec.ID)
	}
	if err := s.r.start(ctx, s.cli, s.logFile(), s.spec.ID); err != nil {
		return fmt.Errorf("start sandbox %s: %w", s.spec.ID, classify(s.spec, err))
	}
	s.state = stateStarted
	if err := s.awaitExec(ctx); err != nil {
		return fmt.Errorf("start sandbox %s: %w", s.spec.ID, err)
	}
	return nil
}

// awaitExec waits until the init process has executed the environment's
// program or has exited trying.
//
// Nothing signals an exec, so it polls the process's name: closely at
// first, since an exec takes about a millisecond and the poll interval adds
// to every cold start, then backing off. The close polls sleep in
// nanosleep, because the Go runtime's timers wake up a millisecond late at
// best here; concurrent starts spread their polls so that together they
// cost a bounded share of a CPU.
func (s *Sandbox) awaitExec(ctx context.Context) error {
	s.r.awaiting.Add(1)
	defer s.r.awaiting.Add(-1)
	start := time.Now()
	deadline := start.Add(execTimeout)
	var delay time.Duration
	var t *time.Timer
	for {
		if execed, ok := s.init.execed(); ok && execed {
			return nil
		}
		select {
		case <-s.done:
			return s.execFailed()
		case <-ctx.Done():
			return ctx.Err()
		default:
		}
		now := time.Now()
		if now.After(deadline) {
			return fmt.Errorf("init process did not exec %q within %s", s.spec.Args[0], execTimeout)
		}
		if now.Sub(start) < execPollClose {
			delay = time.Duration(s.r.awaiting.Load()) * execPoll
			if delay < time.Millisecond {
				ts := unix.NsecToTimespec(int64(delay))
				_ = unix.Nanosleep(&ts, nil) // EINTR: poll again early
				continue
			}
		} else {
			delay = min(max(2*delay, time.Millisecond), execPollMax)
		}
		if t == nil {
			t = time.NewTimer(delay)
			defer t.Stop()
		} else {
			t.Reset(delay)
		}
		select {
		case <-s.done:
			return s.execFailed()
		case <-ctx.Done():
			return ctx.Err()
		case <-t.C:
		}
	}
}

// execFailed is awaitExec's verdict once the init process has exited.
func (s *Sandbox) execFailed() error {
	s.mu.Lock()
	execed, st := s.execed, s.exit
	s.mu.Unlock()
	if execed {
		return nil
	}
	return fmt.Errorf("%w %q: exec failed, init process ended with %s (the runtime's message is on the function's stderr)",
		sandbox.ErrInvalidEntrypoint, s.spec.Args[0], st)
}

// Done is closed when the init process has exited and its output has been
// copied, or when Destroy removed a sandbox that never ran.
func (s *Sandbox) Done() <-chan struct{} { return s.done }

// Exit reports how the process ended; valid after Done is closed.
func (s *Sandbox) Exit() sandbox.ExitStatus {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.exit
}

// Stats reads the environment's peak memory use from its cgroup; after the
// process has exited it returns the last sample.
func (s *Sandbox) Stats() sandbox.Stats {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.exited {
		if peak, err := s.cg.maxMemory(); err == nil && peak > s.stats.MaxMemoryBytes {
			s.stats.MaxMemoryBytes = peak
		}
	}
	return s.stats
}

// Freeze stops every process of the environment through its freezer cgroup
// and returns once the kernel reports them frozen.
func (s *Sandbox) Freeze(ctx context.Context) error {
	return s.setFrozen(ctx, true)
}

// Thaw resumes the processes stopped by Freeze.
func (s *Sandbox) Thaw(ctx context.Context) error {
	return s.setFrozen(ctx, false)
}

func (s *Sandbox) setFrozen(ctx context.Context, frozen bool) error {
	s.lifecycle.Lock()
	defer s.lifecycle.Unlock()
	if s.destroyed || s.init == nil {
		return fmt.Errorf("freeze sandbox %s: not running", s.spec.ID)
	}
	if s.frozen == frozen {
		return nil
	}
	if err := s.cg.freeze(ctx, frozen); err != nil {
		return fmt.Errorf("freeze sandbox %s: %w", s.spec.ID, err)
	}
	s.frozen = frozen
	return nil
}

// Shutdown sends SIGTERM to the init process, waits up to grace (or until
// ctx ends) for it to exit, kills every process of the environment and
// destroys it. A frozen environment is thawed first.
func (s *Sandbox) Shutdown(ctx context.Context, grace time.Duration) error {
	s.lifecycle.Lock()
	init, destroyed := s.init, s.destroyed
	if s.state != stateStarted {
		init = nil // nothing of the function runs yet: no grace needed
	}
	var err error
	if s.frozen && !destroyed {
		if err = s.cg.freeze(context.WithoutCancel(ctx), false); err == nil {
			s.frozen = false
		}
	}
	s.lifecycle.Unlock()
	if init != nil && !destroyed && err == nil {
		if err = init.signal(unix.SIGTERM); err == nil {
			t := time.NewTimer(grace)
			select {
			case <-s.done:
			case <-t.C:
			case <-ctx.Done():
			}
			t.Stop()
		}
	}
	return errors.Join(err, s.Destroy(ctx))
}

// Destroy kills every process of the environment and removes the
// container, its cgroups, the network namespace pin, the listener and the
// bundle. It is idempotent and runs to completion even if ctx is
// cancelled (within a bounded time).
func (s *Sandbox) Destroy(ctx context.Context) error {
	s.lifecycle.Lock()
	defer s.lifecycle.Unlock()
	if s.destroyed {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), destroyTimeout)
	defer cancel()

	var errs []error
	if s.init == nil {
		s.closeDone.Do(func() { close(s.done) })
	} else {
		if s.frozen {
			// A v1-frozen task does not die until thawed. A missing
			// cgroup (removed by Cleanup) has nothing left to thaw.
			if err := s.cg.freeze(ctx, false); err != nil && !errors.Is(err, os.ErrNotExist) {
				errs = append(errs, err)
			}
			s.frozen = false
		}
		// The init process is PID 1 of the environment's namespace:
		// when it dies the kernel kills every other process in it.
		errs = append(errs, s.init.signal(unix.SIGKILL))
		select {
		case <-s.done:
		case <-time.After(killTimeout):
			errs = append(errs, errors.New("processes did not exit after SIGKILL"))
		}
	}
	if s.state != stateNew || s.spec.RestoreFrom != "" {
		errs = append(errs, s.deleteContainer(ctx))
	}
	s.cg.files.close()
	for _, dir := range s.r.cgroups.dirs(s.cgPath) {
		errs = append(errs, removeCgroupTree(ctx, dir))
	}
	if s.ln != nil {
		if err := s.ln.Close(); err != nil && !errors.Is(err, net.ErrClosed) {
			errs = append(errs, err)
		}
	}
	s.mu.Lock()
	ns := s.netns
	s.netns = netNS{}
	s.mu.Unlock()
	errs = append(errs, ns.close())
	errs = append(errs, removeBundle(s.dir))

	err := errors.Join(errs...)
	if err != nil {
		s.r.log.Warn("destroy sandbox", "id", s.spec.ID, "err", err)
		return fmt.Errorf("destroy sandbox %s: %w", s.spec.ID, err)
	}
	s.destroyed = true
	s.r.forget(s.spec.ID)
	return nil
}

// deleteContainer runs `<runtime> delete --force` if the runtime knows the
// container.
func (s *Sandbox) deleteContainer(ctx context.Context) error {
	if _, err := os.Stat(filepath.Join(s.cli.root, s.spec.ID)); errors.Is(err, os.ErrNotExist) {
		return nil
	}
	_, err := s.cli.run(ctx, "", "delete", "--force", s.spec.ID)
	return err
}

// removeBundle removes a bundle directory and the files Kappa puts in it,
// and nothing else: a directory holding anything more is reported, not
// emptied.
func removeBundle(dir string) error {
	for _, name := range []string{configFile, hostsName, pidFileName, runtimeLogName, criuRestoreConfigName} {
		if err := os.Remove(filepath.Join(dir, name)); err != nil && !errors.Is(err, os.ErrNotExist) {
			return err
		}
	}
	for _, sub := range []string{criuWorkName, devDirName, emptyDirName} {
		if err := os.RemoveAll(filepath.Join(dir, sub)); err != nil {
			return err
		}
	}
	if err := os.Remove(dir); err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	return nil
}
