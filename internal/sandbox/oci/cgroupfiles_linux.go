package oci

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"sync"
	"time"

	"golang.org/x/sys/unix"
)

// cgroupFiles holds the control files an environment's cgroup is read and
// written through on every invocation — peak memory, and the freezer when
// idle environments are frozen — open for the environment's life, so that
// each access is one pread or pwrite instead of a path walk, an open, a
// read and a close. Safe for concurrent use; after close every access
// fails with os.ErrClosed.
type cgroupFiles struct {
	mu     sync.Mutex
	closed bool
	freeze int // v1 freezer.state (read-write) or v2 cgroup.freeze (write); -1: none
	events int // v2 cgroup.events; -1: none
	peak   int // memory.max_usage_in_bytes (v1) or memory.peak (v2); -1: none
}

// openCgroupFiles opens c's control files. Files that cannot be opened are
// left to path-based access.
func openCgroupFiles(c envCgroup) *cgroupFiles {
	open := func(dir, name string, flags int) int {
		if dir == "" {
			return -1
		}
		fd, err := unix.Open(filepath.Join(dir, name), flags|unix.O_CLOEXEC, 0)
		if err != nil {
			return -1
		}
		return fd
	}
	f := &cgroupFiles{freeze: -1, events: -1, peak: -1}
	if c.freezerV2 {
		f.freeze = open(c.freezer, "cgroup.freeze", unix.O_WRONLY)
		f.events = open(c.freezer, "cgroup.events", unix.O_RDONLY)
	} else {
		f.freeze = open(c.freezer, "freezer.state", unix.O_RDWR)
	}
	if c.memoryV2 {
		f.peak = open(c.memory, "memory.peak", unix.O_RDONLY)
	} else {
		f.peak = open(c.memory, "memory.max_usage_in_bytes", unix.O_RDONLY)
	}
	return f
}

// read returns the content of the file held as fd, or of path when the
// file is not held (f nil or fd -1).
func (f *cgroupFiles) read(fd func(*cgroupFiles) int, path string) ([]byte, error) {
	if f != nil {
		f.mu.Lock()
		defer f.mu.Unlock()
		if f.closed {
			return nil, os.ErrClosed
		}
		if n := fd(f); n >= 0 {
			buf := make([]byte, 128)
			for {
				// Offset 0 makes the kernel render the file afresh.
				m, err := unix.Pread(n, buf, 0)
				if errors.Is(err, unix.EINTR) {
					continue
				}
				if err != nil {
					return nil, &os.PathError{Op: "pread", Path: path, Err: gone(err)}
				}
				return buf[:m], nil
			}
		}
	}
	return os.ReadFile(path)
}

// write writes value to the file held as fd, or to path.
func (f *cgroupFiles) write(fd func(*cgroupFiles) int, path, value string) error {
	if f != nil {
		f.mu.Lock()
		defer f.mu.Unlock()
		if f.closed {
			return os.ErrClosed
		}
		if n := fd(f); n >= 0 {
			for {
				_, err := unix.Pwrite(n, []byte(value), 0)
				if errors.Is(err, unix.EINTR) {
					continue
				}
				if err != nil {
					return &os.PathError{Op: "pwrite", Path: path, Err: gone(err)}
				}
				return nil
			}
		}
	}
	return os.WriteFile(path, []byte(value), 0)
}

// close closes the held files; later accesses fail.
func (f *cgroupFiles) close() {
	if f == nil {
		return
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.closed {
		return
	}
	f.closed = true
	for _, fd := range []int{f.freeze, f.events, f.peak} {
		if fd >= 0 {
			unix.Close(fd)
		}
	}
}

// gone reports the ENODEV of a held file whose cgroup was removed as
// ENOENT, what opening it by path would have said.
func gone(err error) error {
	if errors.Is(err, unix.ENODEV) {
		return unix.ENOENT
	}
	return err
}

func freezeFD(f *cgroupFiles) int { return f.freeze }
func eventsFD(f *cgroupFiles) int { return f.events }
func peakFD(f *cgroupFiles) int   { return f.peak }

// pause waits d, or until ctx ends. Waits under a millisecond sleep in
// nanosleep: the Go runtime's timers wake up a millisecond late at best.
func pause(ctx context.Context, d time.Duration) error {
	if d < time.Millisecond {
		ts := unix.NsecToTimespec(int64(d))
		_ = unix.Nanosleep(&ts, nil) // EINTR: return early
		return ctx.Err()
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}
