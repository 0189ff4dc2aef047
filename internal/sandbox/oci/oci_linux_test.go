package oci

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/kappa-run/kappa/internal/sandbox"
	"github.com/kappa-run/kappa/internal/sandbox/sandboxtest"
)

func TestMain(m *testing.M) {
	code := m.Run()
	if code == 0 {
		var leaked []string
		for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(20 * time.Millisecond) {
			if leaked = leakedGoroutines(); len(leaked) == 0 || time.Now().After(deadline) {
				break
			}
		}
		if len(leaked) > 0 {
			fmt.Fprintf(os.Stderr, "%d goroutines of this package leaked:\n%s\n", len(leaked), strings.Join(leaked, "\n\n"))
			code = 1
		}
	}
	os.Exit(code)
}

// leakedGoroutines returns the stacks of goroutines running this package's
// code, other than the caller's.
func leakedGoroutines() []string {
	buf := make([]byte, 1<<20)
	buf = buf[:runtime.Stack(buf, true)]
	var leaked []string
	for _, g := range strings.Split(string(buf), "\n\n")[1:] {
		if strings.Contains(g, "kappa/internal/sandbox/oci.") {
			leaked = append(leaked, g)
		}
	}
	return leaked
}

// testEnv is one Runtime under test and where it keeps its state.
type testEnv struct {
	name     string
	stateDir string
	runDir   string
	parent   string
}

// requireRuntime skips unless the test runs as root and the named runtime
// is installed.
func requireRuntime(t testing.TB, name string) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skipf("needs root and %s", name)
	}
	if _, err := exec.LookPath(name); err != nil {
		t.Skipf("needs %s in PATH", name)
	}
}

func newTestEnv(t testing.TB, name string) testEnv {
	t.Helper()
	// Short paths: t.TempDir embeds the test name.
	dir, err := os.MkdirTemp("", "kappa-oci-")
	if err != nil {
		t.Fatal(err)
	}
	te := testEnv{
		name:     name,
		stateDir: filepath.Join(dir, "s"),
		runDir:   filepath.Join(dir, "r"),
		parent:   fmt.Sprintf("kappa-test-%d-%s", os.Getpid(), name),
	}
	t.Cleanup(func() {
		r := te.runtime(t, false)
		if r != nil {
			if err := r.Cleanup(context.Background()); err != nil {
				t.Errorf("Cleanup: %v", err)
			}
			for _, d := range r.cgroups.dirs(r.cgParent) {
				_ = os.Remove(d)
			}
		}
		os.RemoveAll(dir)
	})
	return te
}

// runtime returns a new Runtime on te's directories. With mustWork unset a
// Runtime that cannot start yields nil.
func (te testEnv) runtime(t testing.TB, mustWork bool) *Runtime {
	t.Helper()
	level := slog.LevelWarn
	r, err := New(context.Background(), Options{
		Runtime:      te.name,
		StateDir:     te.stateDir,
		RunDir:       te.runDir,
		CgroupParent: te.parent,
		Logger:       slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: level})),
	})
	if err != nil {
		if !mustWork {
			return nil
		}
		if te.name == "crun" {
			t.Skipf("needs a working crun: %v (on hybrid cgroup hosts mount a v1 hugetlb hierarchy at /sys/fs/cgroup/hugetlb)", err)
		}
		t.Fatalf("New: %v", err)
	}
	return r
}

type testWriter struct{ t testing.TB }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimSuffix(string(p), "\n"))
	return len(p), nil
}

// checkClean asserts that no environment of te left anything behind.
func (te testEnv) checkClean(t *testing.T) {
	t.Helper()
	bin, _ := exec.LookPath(te.name)
	out, err := exec.Command(bin, "--root", filepath.Join(te.runDir, te.name), "list", "-q").CombinedOutput()
	if err != nil {
		t.Errorf("%s list: %v: %s", te.name, err, out)
	} else if ids := strings.Fields(string(out)); len(ids) > 0 {
		t.Errorf("%s list shows containers %v", te.name, ids)
	}
	if entries, _ := os.ReadDir(filepath.Join(te.runDir, "netns")); len(entries) > 0 {
		t.Errorf("netns pins left: %v", entries)
	}
	mountinfo, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(mountinfo), "\n") {
		if f := strings.Fields(line); len(f) > 4 && strings.HasPrefix(f[4], te.runDir) {
			t.Errorf("mount left: %s", line)
		}
	}
	if entries, _ := os.ReadDir(te.stateDir); len(entries) > 1 || (len(entries) == 1 && entries[0].Name() != probeDir) {
		t.Errorf("state dir holds %v", entries)
	}
	hosts, err := detectCgroups()
	if err != nil {
		t.Fatal(err)
	}
	for _, dir := range hosts.dirs("/" + te.parent) {
		entries, _ := os.ReadDir(dir)
		for _, e := range entries {
			if e.IsDir() {
				t.Errorf("cgroup left: %s/%s", dir, e.Name())
			}
		}
	}
	if pids := strayProcesses(te.parent); len(pids) > 0 {
		t.Errorf("processes left: %v", pids)
	}
}

// strayProcesses lists the processes that descend from this one or sit in
// a cgroup under parent. (Other tests on the host may run processes as the
// sandbox uid, so the uid says nothing.)
func strayProcesses(parent string) []string {
	entries, _ := os.ReadDir("/proc")
	ppids := map[int]int{}
	var stray []string
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if ppid, err := parentPID(pid); err == nil {
			ppids[pid] = ppid
		}
		cg, _ := os.ReadFile(filepath.Join("/proc", e.Name(), "cgroup"))
		if strings.Contains(string(cg), "/"+parent+"/") {
			stray = append(stray, fmt.Sprintf("%d (in cgroup)", pid))
		}
	}
	self := os.Getpid()
	for pid := range ppids {
		for p, hops := ppids[pid], 0; p > 1 && hops < 64; p, hops = ppids[p], hops+1 {
			if p == self {
				comm, _ := readComm(pid)
				stray = append(stray, fmt.Sprintf("%d (%s, descendant)", pid, comm))
				break
			}
		}
	}
	return stray
}

func TestConformance(t *testing.T) {
	for _, name := range []string{"crun", "runc"} {
		t.Run(name, func(t *testing.T) {
			requireRuntime(t, name)
			te := newTestEnv(t, name)
			te.runtime(t, true) // skip early when the runtime cannot work here
			sandboxtest.Run(t, sandboxtest.Config{
				NewRuntime: func(t *testing.T) sandbox.Runtime { return te.runtime(t, true) },
				RootFS:     sandboxtest.ReadOnly(t, sandboxtest.BuildRootFS(t)),
				Isolated:   true,
				CheckClean: te.checkClean,
			})
		})
	}
}

func TestNewAuto(t *testing.T) {
	requireRuntime(t, "runc")
	te := newTestEnv(t, "")
	r := te.runtime(t, true)
	if n := r.Name(); n != "crun" && n != "runc" {
		t.Errorf("Name() = %q", n)
	}
	t.Logf("auto-detected %s", r.Name())
}

func TestNewErrors(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root")
	}
	dir := t.TempDir()
	tests := []struct {
		name string
		opts Options
	}{
		{"unknown runtime", Options{Runtime: "docker", StateDir: dir + "/s", RunDir: dir + "/r"}},
		{"no state dir", Options{RunDir: dir + "/r"}},
		{"bad cgroup parent", Options{StateDir: dir + "/s", RunDir: dir + "/r", CgroupParent: "/"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := New(context.Background(), tt.opts); err == nil {
				t.Error("New succeeded")
			}
		})
	}
	t.Run("missing binary", func(t *testing.T) {
		t.Setenv("PATH", t.TempDir())
		_, err := New(context.Background(), Options{Runtime: "crun", StateDir: dir + "/s", RunDir: dir + "/r"})
		if err == nil || !strings.Contains(err.Error(), "crun") {
			t.Errorf("New = %v, want an error naming crun", err)
		}
	})
}

// TestCleanup simulates a crash: environments that their Runtime no longer
// knows about must be removed by Cleanup of a new Runtime.
func TestCleanup(t *testing.T) {
	for _, name := range []string{"crun", "runc"} {
		t.Run(name, func(t *testing.T) {
			requireRuntime(t, name)
			te := newTestEnv(t, name)
			crashed := te.runtime(t, true)
			rootfs := sandboxtest.ReadOnly(t, sandboxtest.BuildRootFS(t))
			var started []sandbox.Sandbox
			for i := range 3 {
				sb, err := crashed.Create(context.Background(), sandbox.Spec{
					ID: "crash" + strconv.Itoa(i), RootFS: rootfs, Args: []string{sandboxtest.ProbePath, "spawn", "3"},
					Cwd: "/", MemoryMB: 128, TmpMB: 4, Hostname: "x",
				})
				if err != nil {
					t.Fatal(err)
				}
				if i > 0 { // crash0 stays created, never started
					if err := sb.Start(context.Background()); err != nil {
						t.Fatal(err)
					}
				}
				if i == 2 {
					if err := sb.Freeze(context.Background()); err != nil {
						t.Fatal(err)
					}
				}
				started = append(started, sb)
			}
			fresh := te.runtime(t, true)
			if err := fresh.Cleanup(context.Background()); err != nil {
				t.Fatalf("Cleanup: %v", err)
			}
			for _, sb := range started {
				select {
				case <-sb.Done():
				case <-time.After(10 * time.Second):
					t.Fatalf("%s still running after Cleanup", sb.ID())
				}
				// Destroy after the external cleanup only closes the
				// listener, which a real crash would have closed.
				if err := sb.Destroy(context.Background()); err != nil {
					t.Errorf("Destroy after Cleanup: %v", err)
				}
			}
			te.checkClean(t)
		})
	}
}

// TestRuntimeStderrNotForwarded checks that when create fails, what the
// runtime printed does not reach the function's stderr.
func TestRuntimeStderrNotForwarded(t *testing.T) {
	for _, name := range []string{"crun", "runc"} {
		t.Run(name, func(t *testing.T) {
			requireRuntime(t, name)
			te := newTestEnv(t, name)
			r := te.runtime(t, true)
			rootfs := sandboxtest.ReadOnly(t, sandboxtest.BuildRootFS(t))
			var stderr bytes.Buffer
			sb, err := r.Create(context.Background(), sandbox.Spec{
				ID: "missing", RootFS: rootfs, Args: []string{"/bin/nope"},
				Cwd: "/", MemoryMB: 128, TmpMB: 4, Hostname: "x", Stderr: &stderr,
			})
			if err != nil {
				t.Fatal(err)
			}
			if err := sb.Start(context.Background()); err == nil {
				t.Error("Start succeeded")
			}
			if err := sb.Destroy(context.Background()); err != nil {
				t.Error(err)
			}
			if stderr.Len() > 0 {
				t.Errorf("runtime output reached the function's stderr: %q", stderr.String())
			}
			te.checkClean(t)
		})
	}
}
