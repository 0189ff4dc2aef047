package oci

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/kappa-run/kappa/internal/sandbox"
	"github.com/kappa-run/kappa/internal/sandbox/sandboxtest"
)

// runtimeWith returns a Runtime on te's directories with extra options.
func (te testEnv) runtimeWith(t testing.TB, mutate func(*Options)) *Runtime {
	t.Helper()
	opts := Options{
		Runtime: te.name, StateDir: te.stateDir, RunDir: te.runDir, CgroupParent: te.parent,
		Logger: slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelWarn})),
	}
	mutate(&opts)
	r, err := New(context.Background(), opts)
	if err != nil {
		t.Skipf("needs a working %s: %v", te.name, err)
	}
	return r
}

// TestConformanceFastPaths runs the conformance suite through both fast
// paths at once: network namespaces from the pool and crun containers
// started through their exec fifo.
func TestConformanceFastPaths(t *testing.T) {
	requireRuntime(t, "crun")
	te := newTestEnv(t, "crun")
	var mu sync.Mutex
	var runtimes []*Runtime
	sandboxtest.Run(t, sandboxtest.Config{
		NewRuntime: func(t *testing.T) sandbox.Runtime {
			r := te.runtimeWith(t, func(o *Options) { o.NetNSPool = 2 })
			if !r.fifoStart {
				t.Fatal("crun containers do not start through the exec fifo")
			}
			mu.Lock()
			runtimes = append(runtimes, r)
			mu.Unlock()
			return r
		},
		RootFS:   sandboxtest.ReadOnly(t, sandboxtest.BuildRootFS(t)),
		Isolated: true,
		CheckClean: func(t *testing.T) {
			// The pools' spare namespaces belong to no environment.
			mu.Lock()
			for _, r := range runtimes {
				if err := r.nsPool.drain(); err != nil {
					t.Errorf("drain: %v", err)
				}
			}
			mu.Unlock()
			te.checkClean(t)
		},
	})
}

// TestFIFOStart checks that a container released through its exec fifo
// runs its program and that crun's own state agrees it is running.
func TestFIFOStart(t *testing.T) {
	requireRuntime(t, "crun")
	te := newTestEnv(t, "crun")
	r := te.runtime(t, true)
	if !r.fifoStart {
		t.Fatal("fifoStart is off with crun")
	}
	rootfs := sandboxtest.ReadOnly(t, sandboxtest.BuildRootFS(t))
	hit := make(chan struct{}, 1)
	sb, err := r.Create(context.Background(), sandbox.Spec{
		ID: "fifo", RootFS: rootfs, Args: []string{sandboxtest.ProbePath, "get", "/"},
		Cwd: "/", MemoryMB: 128, TmpMB: 4, Hostname: "x",
	})
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		select {
		case hit <- struct{}{}:
		default:
		}
		io.WriteString(w, "ok")
	})}
	go srv.Serve(sb.RuntimeAPIListener())
	defer srv.Close()
	if got := crunStatus(t, te, "fifo"); got != "created" {
		t.Errorf("before Start: crun state = %q, want created", got)
	}
	if err := sb.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	select {
	case <-hit:
	case <-time.After(30 * time.Second):
		t.Fatal("the program did not reach its Runtime API")
	}
	if got := crunStatus(t, te, "fifo"); got != "running" && got != "stopped" {
		t.Errorf("after Start: crun state = %q, want running or stopped", got)
	}
	if err := sb.Destroy(context.Background()); err != nil {
		t.Fatal(err)
	}
	te.checkClean(t)

	t.Run("ExecStart", func(t *testing.T) {
		r := te.runtimeWith(t, func(o *Options) { o.ExecStart = true })
		if r.fifoStart {
			t.Error("ExecStart set, but containers start through the fifo")
		}
	})
}

func crunStatus(t *testing.T, te testEnv, id string) string {
	t.Helper()
	out, err := exec.Command("crun", "--root", filepath.Join(te.runDir, "crun"), "state", id).Output()
	if err != nil {
		t.Fatalf("crun state %s: %v", id, err)
	}
	i := strings.Index(string(out), `"status"`)
	if i < 0 {
		t.Fatalf("crun state %s: no status in %s", id, out)
	}
	rest := string(out[i+len(`"status"`):])
	rest = strings.TrimLeft(rest, ": ")
	v, _, _ := strings.Cut(strings.TrimPrefix(rest, `"`), `"`)
	return v
}

// TestNetNSPoolNeverShared creates environments concurrently from a small
// pool and checks that every one of them got a network namespace of its
// own, that the namespace is gone with it, and that the pool's leftovers go
// with Cleanup.
func TestNetNSPoolNeverShared(t *testing.T) {
	requireRuntime(t, "crun")
	te := newTestEnv(t, "crun")
	r := te.runtimeWith(t, func(o *Options) { o.NetNSPool = 3 })
	rootfs := sandboxtest.ReadOnly(t, sandboxtest.BuildRootFS(t))
	const n = 8
	sbs := make([]sandbox.Sandbox, n)
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			sb, err := r.Create(context.Background(), sandbox.Spec{
				ID: "pool" + strconv.Itoa(i), RootFS: rootfs, Args: []string{sandboxtest.ProbePath, "sleep", "60"},
				Cwd: "/", MemoryMB: 128, TmpMB: 4, Hostname: "x",
			})
			if err != nil {
				errs <- err
				return
			}
			sbs[i] = sb
		}()
		if i == 1 {
			// Let the first creates start the pool filling, and the rest
			// find namespaces in it.
			wg.Wait()
			// (Generous: on a loaded host the kernel can hold a new
			// network namespace back while others are torn down.)
			deadline := time.Now().Add(60 * time.Second)
			for len(errs) == 0 && r.nsPool.holds() == 0 {
				if time.Now().After(deadline) {
					t.Error("the network namespace pool holds nothing after 60s")
					break
				}
				time.Sleep(5 * time.Millisecond)
			}
		}
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	seen := map[string]string{}
	pooled := 0
	for _, sb := range sbs {
		s := sb.(*Sandbox)
		ino := netnsInode(t, s.init.pid)
		if other, dup := seen[ino]; dup {
			t.Errorf("%s and %s share network namespace %s", other, s.ID(), ino)
		}
		seen[ino] = s.ID()
		if s.pooled {
			pooled++
		}
	}
	if pooled == 0 {
		t.Error("no environment took a pooled namespace")
	}
	for _, sb := range sbs {
		if err := sb.Destroy(context.Background()); err != nil {
			t.Fatal(err)
		}
		if s := sb.(*Sandbox); s.netns.f != nil {
			t.Errorf("%s: network namespace still held after Destroy", sb.ID())
		}
	}
	if err := r.Cleanup(context.Background()); err != nil {
		t.Fatal(err)
	}
	te.checkClean(t)
}

// holds reports how many namespaces the pool holds ready.
func (p *netnsPool) holds() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.ready)
}

// netnsInode identifies the network namespace of pid.
func netnsInode(t *testing.T, pid int) string {
	t.Helper()
	link, err := os.Readlink(fmt.Sprintf("/proc/%d/ns/net", pid))
	if err != nil {
		t.Fatal(err)
	}
	return link
}

// TestCgroupFilesHeld checks that an environment reads and writes its
// per-invocation cgroup files through descriptors held open, that freezing
// and peak memory work through them, and that Destroy closes them.
func TestCgroupFilesHeld(t *testing.T) {
	for _, name := range []string{"crun", "runc"} {
		t.Run(name, func(t *testing.T) {
			requireRuntime(t, name)
			te := newTestEnv(t, name)
			r := te.runtime(t, true)
			rootfs := sandboxtest.ReadOnly(t, sandboxtest.BuildRootFS(t))
			sb, err := r.Create(context.Background(), sandbox.Spec{
				ID: "held", RootFS: rootfs, Args: []string{sandboxtest.ProbePath, "sleep", "60"},
				Cwd: "/", MemoryMB: 128, TmpMB: 4, Hostname: "x",
			})
			if err != nil {
				t.Fatal(err)
			}
			s := sb.(*Sandbox)
			f := s.cg.files
			if f == nil || f.freeze < 0 || f.peak < 0 || (s.cg.freezerV2 && f.events < 0) {
				t.Fatalf("cgroup files not held: %+v", f)
			}
			if err := sb.Start(context.Background()); err != nil {
				t.Fatal(err)
			}
			for range 3 {
				if err := sb.Freeze(context.Background()); err != nil {
					t.Fatal(err)
				}
				state, err := os.ReadFile(filepath.Join(s.cg.freezer, map[bool]string{false: "freezer.state", true: "cgroup.freeze"}[s.cg.freezerV2]))
				if err != nil || !strings.Contains(string(state), map[bool]string{false: "FROZEN", true: "1"}[s.cg.freezerV2]) {
					t.Errorf("after Freeze the cgroup reads %q (%v)", state, err)
				}
				if err := sb.Thaw(context.Background()); err != nil {
					t.Fatal(err)
				}
			}
			if st := sb.Stats(); st.MaxMemoryBytes == 0 {
				t.Error("Stats reports no peak memory")
			}
			if err := sb.Destroy(context.Background()); err != nil {
				t.Fatal(err)
			}
			if _, err := f.read(peakFD, "/nonexistent"); !errors.Is(err, os.ErrClosed) {
				t.Errorf("read after Destroy = %v, want os.ErrClosed", err)
			}
			te.checkClean(t)
		})
	}
}
