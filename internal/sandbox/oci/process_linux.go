package oci

import (
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync"

	"golang.org/x/sys/unix"
)

// becomeSubreaper makes orphaned descendants of this process (the
// containers' init processes, once `<runtime> create` exits) re-parent to it.
func becomeSubreaper() error {
	if err := unix.Prctl(unix.PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0); err != nil {
		return fmt.Errorf("become child subreaper: %w", err)
	}
	return nil
}

// initProcess is a container's init process, a child of this process.
//
// It is watched through a non-blocking pidfd that the Go runtime's poller
// waits on, so waiting costs a goroutine and no OS thread. Kernels without
// PIDFD_NONBLOCK (before 5.10) fall back to a blocking waitid.
type initProcess struct {
	pid int
	// startComm is the process's name while it is still the runtime's
	// init code, before it executes the environment's program.
	startComm string

	mu     sync.Mutex
	pidfd  *os.File // nil without pidfd support or once reaped
	reaped bool
}

// adoptInit takes over pid, which must be a child of this process.
func adoptInit(pid int) (*initProcess, error) {
	ppid, err := parentPID(pid)
	if err != nil {
		return nil, err
	}
	if ppid != os.Getpid() {
		return nil, fmt.Errorf("container init %d has parent %d, not this process (subreaper not in effect)", pid, ppid)
	}
	comm, err := readComm(pid)
	if err != nil {
		return nil, err
	}
	p := &initProcess{pid: pid, startComm: comm}
	fd, err := unix.PidfdOpen(pid, unix.PIDFD_NONBLOCK)
	switch {
	case err == nil:
		p.pidfd = os.NewFile(uintptr(fd), "pidfd:"+strconv.Itoa(pid))
	case errors.Is(err, unix.ENOSYS), errors.Is(err, unix.EINVAL):
		// Old kernel: wait() blocks a thread instead.
	default:
		return nil, fmt.Errorf("pidfd_open %d: %w", pid, err)
	}
	return p, nil
}

// parentPID reads the parent of pid from /proc.
func parentPID(pid int) (int, error) {
	data, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0, err
	}
	// pid (comm) state ppid ...; comm may contain spaces and parentheses.
	s := string(data)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return 0, fmt.Errorf("parse /proc/%d/stat", pid)
	}
	fields := strings.Fields(s[i+1:])
	if len(fields) < 2 {
		return 0, fmt.Errorf("parse /proc/%d/stat", pid)
	}
	return strconv.Atoi(fields[1])
}

// readComm returns /proc/<pid>/comm, which exec changes to the base
// name of the new program. It stays readable while the process is a
// zombie.
func readComm(pid int) (string, error) {
	data, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/comm")
	if err != nil {
		return "", err
	}
	return strings.TrimSuffix(string(data), "\n"), nil
}

// execed reports whether the process has executed a new program; ok is
// false when it cannot tell (the process is gone).
func (p *initProcess) execed() (execed, ok bool) {
	comm, err := readComm(p.pid)
	if err != nil {
		return false, false
	}
	return comm != p.startComm, true
}

// wait blocks until the process exits, reaps it and returns its status and
// whether it had executed a new program by then. It must be called once.
func (p *initProcess) wait() (ws unix.WaitStatus, execed bool, err error) {
	if err := p.awaitExit(); err != nil {
		return 0, false, err
	}
	// Not reaped yet: the zombie still has its last comm.
	execed, _ = p.execed()
	p.mu.Lock()
	defer p.mu.Unlock()
	for {
		_, err = unix.Wait4(p.pid, &ws, 0, nil)
		if !errors.Is(err, unix.EINTR) {
			break
		}
	}
	p.reaped = true
	if p.pidfd != nil {
		p.pidfd.Close()
		p.pidfd = nil
	}
	if err != nil {
		return 0, execed, fmt.Errorf("wait for container init %d: %w", p.pid, err)
	}
	return ws, execed, nil
}

// awaitExit returns once the process has exited, without reaping it.
func (p *initProcess) awaitExit() error {
	p.mu.Lock()
	pidfd := p.pidfd
	p.mu.Unlock()
	if pidfd == nil {
		var info unix.Siginfo
		for {
			err := unix.Waitid(unix.P_PID, p.pid, &info, unix.WEXITED|unix.WNOWAIT, nil)
			if !errors.Is(err, unix.EINTR) {
				return err
			}
		}
	}
	rc, err := pidfd.SyscallConn()
	if err != nil {
		return err
	}
	// The pidfd turns readable when the process exits; Read parks the
	// goroutine in the poller until then.
	return rc.Read(func(fd uintptr) bool {
		fds := []unix.PollFd{{Fd: int32(fd), Events: unix.POLLIN}}
		for {
			n, err := unix.Poll(fds, 0)
			if errors.Is(err, unix.EINTR) {
				continue
			}
			return err != nil || n > 0
		}
	})
}

// signal sends sig to the process unless it has been reaped already (a
// reaped pid may belong to another process by now).
func (p *initProcess) signal(sig unix.Signal) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.reaped {
		return nil
	}
	var err error
	if p.pidfd != nil {
		rc, cerr := p.pidfd.SyscallConn()
		if cerr != nil {
			return cerr
		}
		if cerr := rc.Control(func(fd uintptr) { err = unix.PidfdSendSignal(int(fd), sig, nil, 0) }); cerr != nil {
			return cerr
		}
	} else {
		err = unix.Kill(p.pid, sig)
	}
	if errors.Is(err, unix.ESRCH) {
		return nil
	}
	return err
}
