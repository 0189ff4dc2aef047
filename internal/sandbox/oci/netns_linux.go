package oci

import (
	"errors"
	"fmt"
	"net"
	"os"
	"runtime"
	"strconv"

	"golang.org/x/sys/unix"
)

// newNetNS creates a network namespace holding only an up loopback
// interface and a TCP listener on runtimeAPIAddr, and pins the namespace by
// bind-mounting it onto path (which must not exist). The caller owns the
// listener and the mount (see removeNetNS).
//
// The work happens on a dedicated, locked OS thread. If the thread cannot
// be moved back to its original namespace it is left locked, so the Go
// runtime destroys it when the goroutine ends instead of reusing it.
func newNetNS(path string) (net.Listener, error) {
	type result struct {
		ln  net.Listener
		err error
	}
	ch := make(chan result, 1)
	go func() {
		runtime.LockOSThread()
		ln, restored, err := enterNewNetNS(path)
		if restored {
			runtime.UnlockOSThread()
		}
		ch <- result{ln, err}
	}()
	r := <-ch
	return r.ln, r.err
}

// enterNewNetNS does newNetNS's work on the current, locked thread. It
// reports whether the thread is back in its original namespace.
func enterNewNetNS(path string) (ln net.Listener, restored bool, err error) {
	orig, err := unix.Open("/proc/thread-self/ns/net", unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, true, fmt.Errorf("open current netns: %w", err)
	}
	defer unix.Close(orig)

	if err := unix.Unshare(unix.CLONE_NEWNET); err != nil {
		return nil, true, fmt.Errorf("unshare netns: %w", err)
	}
	defer func() {
		if serr := unix.Setns(orig, unix.CLONE_NEWNET); serr != nil {
			restored = false
			if ln != nil {
				ln.Close()
				ln = nil
			}
			if err == nil {
				unmountNetNS(path)
			}
			err = errors.Join(err, fmt.Errorf("return to original netns: %w", serr))
			return
		}
		restored = true
	}()

	if err := loopbackUp(); err != nil {
		return nil, false, err
	}
	ln, err = net.Listen("tcp", runtimeAPIAddr)
	if err != nil {
		return nil, false, fmt.Errorf("listen in netns: %w", err)
	}
	if err := pinNetNS(path); err != nil {
		ln.Close()
		return nil, false, err
	}
	return ln, false, nil
}

// loopbackUp sets IFF_UP on "lo" in the current thread's namespace.
func loopbackUp() error {
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("loopback socket: %w", err)
	}
	defer unix.Close(fd)
	ifr, err := unix.NewIfreq("lo")
	if err != nil {
		return err
	}
	if err := unix.IoctlIfreq(fd, unix.SIOCGIFFLAGS, ifr); err != nil {
		return fmt.Errorf("get lo flags: %w", err)
	}
	ifr.SetUint16(ifr.Uint16() | unix.IFF_UP)
	if err := unix.IoctlIfreq(fd, unix.SIOCSIFFLAGS, ifr); err != nil {
		return fmt.Errorf("bring lo up: %w", err)
	}
	return nil
}

// pinNetNS bind-mounts the current thread's network namespace onto path.
func pinNetNS(path string) error {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_EXCL|os.O_RDONLY, 0o444)
	if err != nil {
		return fmt.Errorf("create netns file: %w", err)
	}
	f.Close()
	src := "/proc/self/task/" + strconv.Itoa(unix.Gettid()) + "/ns/net"
	if err := unix.Mount(src, path, "", unix.MS_BIND, ""); err != nil {
		os.Remove(path)
		return fmt.Errorf("bind-mount netns onto %s: %w", path, err)
	}
	return nil
}

// unmountNetNS removes the namespace pin at path; it is a no-op when path
// does not exist.
func unmountNetNS(path string) error {
	err := unix.Unmount(path, unix.MNT_DETACH)
	if err != nil && !errors.Is(err, unix.EINVAL) && !errors.Is(err, unix.ENOENT) {
		return fmt.Errorf("unmount %s: %w", path, err)
	}
	if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	return nil
}
