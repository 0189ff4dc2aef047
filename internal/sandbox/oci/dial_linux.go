package oci

import (
	"context"
	"errors"
	"fmt"
	"net"
	"runtime"
	"syscall"

	"golang.org/x/sys/unix"
)

// DialContext connects to addr inside the environment's network namespace
// (the telemetry sender reaching a subscriber's listener). Any host name
// (sandbox.localdomain in practice) means the environment's loopback.
func (s *Sandbox) DialContext(ctx context.Context, network, addr string) (net.Conn, error) {
	_, port, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, err
	}
	target := net.JoinHostPort("127.0.0.1", port)
	type result struct {
		c   net.Conn
		err error
	}
	done := make(chan result, 1)
	// A duplicate of the namespace descriptor, taken under the lock that
	// Destroy closes it under: never another environment's namespace.
	s.mu.Lock()
	nsfd, err := s.netns.dup()
	s.mu.Unlock()
	if err != nil {
		return nil, fmt.Errorf("environment netns: %w", err)
	}
	go func() {
		defer unix.Close(nsfd)
		// The socket belongs to the namespace of the thread that creates
		// it; the thread goes back before it is unlocked, or dies with it.
		runtime.LockOSThread()
		c, restored, err := dialInNetNS(ctx, nsfd, network, target)
		if restored {
			runtime.UnlockOSThread()
		}
		done <- result{c, err}
	}()
	r := <-done
	return r.c, r.err
}

func dialInNetNS(ctx context.Context, target int, network, addr string) (c net.Conn, restored bool, err error) {
	orig, err := unix.Open("/proc/thread-self/ns/net", unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, true, fmt.Errorf("open current netns: %w", err)
	}
	defer unix.Close(orig)
	if err := unix.Setns(target, syscall.CLONE_NEWNET); err != nil {
		return nil, true, fmt.Errorf("enter environment netns: %w", err)
	}
	var d net.Dialer
	c, err = d.DialContext(ctx, network, addr)
	if serr := unix.Setns(orig, syscall.CLONE_NEWNET); serr != nil {
		if c != nil {
			c.Close()
		}
		return nil, false, errors.Join(err, fmt.Errorf("return to original netns: %w", serr))
	}
	return c, true, err
}
