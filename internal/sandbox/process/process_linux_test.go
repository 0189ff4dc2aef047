//go:build linux

package process

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/kappa-run/kappa/internal/sandbox"
	"github.com/kappa-run/kappa/internal/sandbox/sandboxtest"
)

func TestMain(m *testing.M) {
	before := runtime.NumGoroutine()
	code := m.Run()
	if code == 0 {
		deadline := time.Now().Add(5 * time.Second)
		for runtime.NumGoroutine() > before && time.Now().Before(deadline) {
			time.Sleep(20 * time.Millisecond)
		}
		if n := runtime.NumGoroutine(); n > before {
			buf := make([]byte, 1<<20)
			fmt.Fprintf(os.Stderr, "goroutine leak: %d goroutines, %d at start\n%s", n, before, buf[:runtime.Stack(buf, true)])
			code = 1
		}
	}
	os.Exit(code)
}

func TestConformance(t *testing.T) {
	rootfs := sandboxtest.BuildRootFS(t)
	sandboxtest.Run(t, sandboxtest.Config{
		NewRuntime: func(t *testing.T) sandbox.Runtime {
			return New(Options{Addr: "127.0.0.1:0"})
		},
		RootFS: rootfs,
	})
}

// TestExtensionsAndStats starts two "extensions" (copies of the probe that
// allocate memory and wait) and the runtime, and checks their output goes
// to ExtensionOutput, Stats sees the memory, and Shutdown ends them all.
func TestExtensionsAndStats(t *testing.T) {
	rootfs := sandboxtest.BuildRootFS(t)
	extDir := filepath.Join(t.TempDir(), "extensions")
	if err := os.MkdirAll(extDir, 0o755); err != nil {
		t.Fatal(err)
	}
	probe, err := os.ReadFile(filepath.Join(rootfs, sandboxtest.ProbePath))
	if err != nil {
		t.Fatal(err)
	}
	// The probe reads its command from argv; a wrapper script passes it.
	for _, name := range []string{"b-ext", "a-ext"} {
		if err := os.WriteFile(filepath.Join(extDir, name), []byte("#!/bin/sh\nexec "+filepath.Join(rootfs, sandboxtest.ProbePath)+" echo ext "+name+"\n"), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(extDir, "not-executable"), probe[:10], 0o644); err != nil {
		t.Fatal(err)
	}
	outs := map[string]*sandboxtest.Buffer{"a-ext": {}, "b-ext": {}}
	rt := New(Options{Addr: "127.0.0.1:0", ExtensionsDir: extDir, ExtensionOutput: func(id, name string) io.Writer {
		return outs[name]
	}})
	stdout := &sandboxtest.Buffer{}
	sb, err := rt.CreateSandbox(context.Background(), sandbox.Spec{
		ID: "p1", RootFS: rootfs, Args: []string{sandboxtest.ProbePath, "alloc", "40"},
		Env: []string{"PATH=/bin"}, Cwd: "/", Stdout: stdout, Stderr: stdout,
	})
	if err != nil {
		t.Fatal(err)
	}
	defer sb.Destroy(context.Background())
	if got := strings.Join(sb.Extensions(), ","); got != "a-ext,b-ext" {
		t.Fatalf("Extensions() = %s, want a-ext,b-ext", got)
	}
	if err := sb.StartExtensions(context.Background()); err != nil {
		t.Fatal(err)
	}
	exited := map[string]bool{}
	for range 2 {
		select {
		case n := <-sb.ExtensionExited():
			exited[n] = true
		case <-time.After(30 * time.Second):
			t.Fatal("extensions did not exit")
		}
	}
	for name, b := range outs {
		if got, want := b.String(), "ext "+name+"\nstderr:ext "+name+"\n"; got != want {
			t.Errorf("output of %s = %q, want %q", name, got, want)
		}
	}
	if err := sb.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(30 * time.Second)
	for !strings.Contains(stdout.String(), "OK allocated 40 MiB") {
		if time.Now().After(deadline) {
			t.Fatalf("no allocation; output %q", stdout)
		}
		time.Sleep(10 * time.Millisecond)
	}
	if got := sb.Stats().MaxMemoryBytes; got < 40<<20 {
		t.Errorf("MaxMemoryBytes = %d, want at least 40 MiB", got)
	}
	if err := sb.Shutdown(context.Background(), 200*time.Millisecond); err != nil {
		t.Fatal(err)
	}
	select {
	case <-sb.Done():
	case <-time.After(10 * time.Second):
		t.Fatal("runtime still running after Shutdown")
	}
	if got := sb.Stats().MaxMemoryBytes; got < 40<<20 {
		t.Errorf("after exit MaxMemoryBytes = %d, want the peak", got)
	}
}
