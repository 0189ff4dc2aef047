package oci

import (
	"context"
	"io"
	"sync"
	"testing"
	"time"

	"github.com/kappa-run/kappa/internal/sandbox"
	"github.com/kappa-run/kappa/internal/sandbox/sandboxtest"
)

// gatedWriter holds its first Write until release is closed.
type gatedWriter struct {
	once    sync.Once
	entered chan struct{}
	release chan struct{}
}

func (g *gatedWriter) Write(p []byte) (int, error) {
	g.once.Do(func() { close(g.entered) })
	<-g.release
	return len(p), nil
}

// TestWaitOutput checks that output read from the pipes but still being
// written counts as pending, and that WaitOutput waits until it is
// written: a cold start's START line waits on it so that init's output
// stays init's.
func TestWaitOutput(t *testing.T) {
	requireRuntime(t, "crun")
	te := newTestEnv(t, "crun")
	r := te.runtime(t, true)
	rootfs := sandboxtest.ReadOnly(t, sandboxtest.BuildRootFS(t))
	gate := &gatedWriter{entered: make(chan struct{}), release: make(chan struct{})}
	released := false
	defer func() {
		if !released {
			close(gate.release)
		}
	}()
	ctx := context.Background()
	created, err := r.Create(ctx, sandbox.Spec{
		ID: "output", RootFS: rootfs, Args: []string{sandboxtest.ProbePath, "ignore-term"},
		Cwd: "/", MemoryMB: 128, TmpMB: 4, Hostname: "x", Stdout: gate, Stderr: io.Discard,
	})
	if err != nil {
		t.Fatal(err)
	}
	sb := created.(*Sandbox)
	defer sb.Destroy(ctx)
	if err := sb.Start(ctx); err != nil {
		t.Fatal(err)
	}
	select {
	case <-gate.entered:
	case <-time.After(10 * time.Second):
		t.Fatal("the process wrote nothing in 10s")
	}
	if n := sb.OutputPending(); n == 0 {
		t.Fatal("OutputPending = 0 while a line read from the pipe is being written")
	}
	short, cancel := context.WithTimeout(ctx, 20*time.Millisecond)
	sb.WaitOutput(short)
	if short.Err() == nil {
		t.Fatal("WaitOutput returned with output pending and its context live")
	}
	cancel()
	if n := sb.OutputPending(); n == 0 {
		t.Fatal("OutputPending = 0 before the writer was released")
	}

	done := make(chan struct{})
	go func() {
		sb.WaitOutput(ctx)
		close(done)
	}()
	// Until the writer is released, the waiter waits.
	select {
	case <-done:
		t.Fatal("WaitOutput returned before the pending output was written")
	case <-time.After(50 * time.Millisecond):
	}
	close(gate.release)
	released = true
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("WaitOutput still waits 10s after the output was written")
	}
	if n := sb.OutputPending(); n != 0 {
		t.Errorf("OutputPending = %d after WaitOutput", n)
	}
}
