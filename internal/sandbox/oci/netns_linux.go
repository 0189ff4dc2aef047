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

// netNS is a network namespace Kappa created, held by an open descriptor
// of its nsfs file: no mount pins it, so the host's mount table does not
// grow with the environments (every new mount namespace copies that table,
// so each pin would make every later container create and destroy slower),
// and a crashed server leaves no namespace behind.
type netNS struct {
	f *os.File
}

// path names the namespace for another process of this host (the OCI
// runtime joins it by this path) while the descriptor is open.
func (n netNS) path() string {
	return "/proc/" + strconv.Itoa(os.Getpid()) + "/fd/" + strconv.Itoa(int(n.f.Fd()))
}

// dup returns a new descriptor of the namespace, for the caller to close.
func (n netNS) dup() (int, error) {
	if n.f == nil {
		return -1, net.ErrClosed
	}
	return unix.FcntlInt(n.f.Fd(), unix.F_DUPFD_CLOEXEC, 0)
}

// close drops Kappa's reference; the kernel frees the namespace once no
// process is in it either.
func (n netNS) close() error {
	if n.f == nil {
		return nil
	}
	return n.f.Close()
}

// newNetNS creates a network namespace holding only an up loopback
// interface and a TCP listener on addr (runtimeAPIAddr, or sandbox.RelayAddr for an
// environment whose init relays the Runtime API). The caller owns the
// listener and the namespace (see netNS.close).
//
// The work happens on a dedicated, locked OS thread. If the thread cannot
// be moved back to its original namespace it is left locked, so the Go
// runtime destroys it when the goroutine ends instead of reusing it.
func newNetNS(addr string) (net.Listener, netNS, error) {
	type result struct {
		ln  net.Listener
		ns  netNS
		err error
	}
	ch := make(chan result, 1)
	go func() {
		runtime.LockOSThread()
		ln, ns, restored, err := enterNewNetNS(addr)
		if restored {
			runtime.UnlockOSThread()
		}
		ch <- result{ln, ns, err}
	}()
	r := <-ch
	return r.ln, r.ns, r.err
}

// enterNewNetNS does newNetNS's work on the current, locked thread. It
// reports whether the thread is back in its original namespace.
func enterNewNetNS(addr string) (ln net.Listener, ns netNS, restored bool, err error) {
	orig, err := unix.Open("/proc/thread-self/ns/net", unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, netNS{}, true, fmt.Errorf("open current netns: %w", err)
	}
	defer unix.Close(orig)

	if err := unix.Unshare(unix.CLONE_NEWNET); err != nil {
		return nil, netNS{}, true, fmt.Errorf("unshare netns: %w", err)
	}
	defer func() {
		if serr := unix.Setns(orig, unix.CLONE_NEWNET); serr != nil {
			restored = false
			if ln != nil {
				ln.Close()
				ln = nil
			}
			ns.close()
			ns = netNS{}
			err = errors.Join(err, fmt.Errorf("return to original netns: %w", serr))
			return
		}
		restored = true
	}()

	if err := loopbackUp(); err != nil {
		return nil, netNS{}, false, err
	}
	ln, err = net.Listen("tcp", addr)
	if err != nil {
		return nil, netNS{}, false, fmt.Errorf("listen in netns: %w", err)
	}
	fd, err := unix.Open("/proc/thread-self/ns/net", unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		ln.Close()
		return nil, netNS{}, false, fmt.Errorf("open new netns: %w", err)
	}
	return ln, netNS{f: os.NewFile(uintptr(fd), "netns")}, false, nil
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

// unmountNetNS removes a namespace pin at path, as versions of Kappa that
// pinned namespaces by bind mounts left them (Cleanup); it is a no-op when
// path does not exist.
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
