package e2e

import (
	"context"
	"os"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/kappa-run/kappa/internal/runtimeapi"
)

// TestIsolation looks at an execution environment from inside: read-only
// root, a private PID namespace, an unprivileged user without capabilities,
// and a network namespace that reaches its own Runtime API and nothing of
// the host.
func TestIsolation(t *testing.T) {
	requireEnv(t)
	// The kernel's default per-uid inotify limit (what was there is put back if higher):
	// the server must raise it (see the "unprivileged user" subtest).
	const inotifyInstances = "/proc/sys/fs/inotify/max_user_instances"
	before, err := os.ReadFile(inotifyInstances)
	if err != nil {
		t.Fatalf("read %s: %v", inotifyInstances, err)
	}
	if err := os.WriteFile(inotifyInstances, []byte("128"), 0o644); err != nil {
		t.Fatalf("lower %s for the test: %v", inotifyInstances, err)
	}
	t.Cleanup(func() {
		if n, _ := strconv.Atoi(strings.TrimSpace(string(before))); n >= 8192 {
			os.WriteFile(inotifyInstances, before, 0o644)
		}
	})
	s := newServer(t)
	img := s.pushProbe(t, "probe:iso")
	s.createFunction(t, "iso", img)
	s.createFunction(t, "iso2", img)

	t.Run("read-only root, writable /tmp", func(t *testing.T) {
		if res := mustInvoke(t, s, "iso", map[string]any{"op": "write", "path": "/x"}); res["ok"] != false {
			t.Errorf("writing /x succeeded (%v), want a read-only root filesystem", res)
		}
		if res := mustInvoke(t, s, "iso", map[string]any{"op": "write", "path": "/var/task/x"}); res["ok"] != false {
			t.Errorf("writing /var/task/x succeeded (%v), want a read-only root filesystem", res)
		}
		if res := mustInvoke(t, s, "iso", map[string]any{"op": "write", "path": "/tmp/x"}); res["ok"] != true {
			t.Errorf("writing /tmp/x failed: %v", res["err"])
		}
	})

	t.Run("own PID namespace", func(t *testing.T) {
		res := mustInvoke(t, s, "iso", map[string]any{"op": "pids"})
		list, _ := res["pids"].([]any)
		var pids []int
		for _, p := range list {
			n, _ := strconv.Atoi(p.(string))
			pids = append(pids, n)
		}
		high := false
		for _, p := range pids {
			high = high || p >= 100
		}
		if len(pids) == 0 || len(pids) >= 10 && high {
			t.Errorf("the environment sees pids %v, want only its own few", pids)
		}
	})

	t.Run("unprivileged user", func(t *testing.T) {
		res := mustInvoke(t, s, "iso", map[string]any{"op": "env"})
		if uid, _ := res["uid"].(float64); uid != 993 {
			t.Errorf("uid = %v, want 993", res["uid"])
		}
		st := mustInvoke(t, s, "iso", map[string]any{"op": "status"})
		status := st["status"].(string)
		// No core dumps: a host's core_pattern helper runs as root.
		if limits, _ := st["limits"].(string); !regexp.MustCompile(`(?m)^Max core file size\s+0\s+0\s`).MatchString(limits) {
			t.Errorf("core file size not 0/0:\n%s", limits)
		}
		fields := map[string]string{}
		for _, line := range strings.Split(status, "\n") {
			if k, v, ok := strings.Cut(line, ":"); ok {
				fields[k] = strings.TrimSpace(v)
			}
		}
		zero := regexp.MustCompile(`^0+$`)
		for _, k := range []string{"CapEff", "CapPrm", "CapInh", "CapAmb"} {
			if !zero.MatchString(fields[k]) {
				t.Errorf("%s = %q, want no capabilities", k, fields[k])
			}
		}
		// Every environment is uid 993 on the host: the server raised the
		// per-uid inotify limit they share.
		b, err := os.ReadFile(inotifyInstances)
		if n, _ := strconv.Atoi(strings.TrimSpace(string(b))); err != nil || n < 8192 {
			t.Errorf("fs.inotify.max_user_instances = %q (%v), want ≥ 8192 (the server raises it from 128)", b, err)
		}
		if fields["NoNewPrivs"] != "1" {
			t.Errorf("NoNewPrivs = %q, want 1", fields["NoNewPrivs"])
		}
		if fields["Seccomp"] != "2" {
			t.Errorf("Seccomp = %q, want 2 (filter)", fields["Seccomp"])
		}
	})

	// The filter Kappa hands crun (compiled once, then dispatched by
	// syscall number; see package seccompbpf) still denies what the moby
	// profile denies, outright and by argument.
	t.Run("seccomp profile", func(t *testing.T) {
		res := mustInvoke(t, s, "iso", map[string]any{"op": "syscalls"})
		want := map[string]string{
			"keyctl":           "operation not permitted",
			"personalityQuery": "ok",
			"personalityOther": "operation not permitted",
		}
		for k, v := range want {
			if res[k] != v {
				t.Errorf("%s: %v, want %q (all: %v)", k, res[k], v, res)
			}
		}
	})

	t.Run("network", func(t *testing.T) {
		host := hostListener(t).Addr().String()
		for _, fname := range []string{"iso", "iso2"} {
			if res := mustInvoke(t, s, fname, map[string]any{"op": "connect", "addr": "127.0.0.1:9001"}); res["ok"] != true {
				t.Errorf("%s cannot reach its own Runtime API at 127.0.0.1:9001: %v", fname, res["err"])
			}
			if res := mustInvoke(t, s, fname, map[string]any{"op": "connect", "addr": s.addr}); res["ok"] != false {
				t.Errorf("%s reached the kappa server at %s", fname, s.addr)
			}
			// A listener on the host's loopback stands for anything
			// there, another environment's API included: each
			// environment has a loopback of its own.
			if res := mustInvoke(t, s, fname, map[string]any{"op": "connect", "addr": host}); res["ok"] != false {
				t.Errorf("%s reached a listener on the host at %s", fname, host)
			}
		}
	})

	t.Run("runtime api connection cap", func(t *testing.T) {
		// 300 connections held open at once to its own Runtime API: the
		// server serves at most runtimeapi.DefaultMaxConns of them
		// (the runtime's own connection among them) and closes the rest;
		// once they are closed the environment serves again, and the
		// other function never noticed.
		res := mustInvoke(t, s, "iso", map[string]any{"op": "flood", "conns": 300})
		served, _ := res["served"].(float64)
		if res["opened"] != float64(300) || served < runtimeapi.DefaultMaxConns-4 || served >= runtimeapi.DefaultMaxConns {
			t.Errorf("flood of 300 connections: opened %v, served %v; want all opened and %d-%d served",
				res["opened"], res["served"], runtimeapi.DefaultMaxConns-4, runtimeapi.DefaultMaxConns-1)
		}
		if again := mustInvoke(t, s, "iso", map[string]any{"op": "echo"}); again["env"] != res["env"] {
			t.Errorf("after the flood the warm environment was replaced: %v then %v", res["env"], again["env"])
		}
		mustInvoke(t, s, "iso2", map[string]any{"op": "echo"})
	})
}

// TestTwoServersOnOneHost runs two servers side by side, as this suite and
// a developer's `kappa server` do: starting or stopping the second must not
// disturb the environments of the first.
func TestTwoServersOnOneHost(t *testing.T) {
	a := newServer(t)
	img := a.pushProbe(t, "probe:a")
	a.createFunction(t, "fa", img)
	warm := mustInvoke(t, a, "fa", map[string]any{"op": "echo"})["env"]

	// stillWarm checks that the first server's warm environment survived
	// event, and returns the environment now warm.
	stillWarm := func(event string) any {
		t.Helper()
		out, res := invoke(t, a, "fa", map[string]any{"op": "echo"})
		if out.FunctionError != nil {
			t.Errorf("after a second server %s, the first one's warm environment failed: %s", event, out.Payload)
			return mustInvoke(t, a, "fa", map[string]any{"op": "echo"})["env"]
		}
		if res["env"] != warm {
			t.Errorf("after a second server %s, the first one's warm environment %v was replaced by %v", event, warm, res["env"])
		}
		return res["env"]
	}

	b := newServer(t) // its start-up cleans up after crashed runs
	warm = stillWarm("started")
	b.stop() // and so does its shutdown
	warm = stillWarm("stopped")

	// A third given the first one's run directory (but a data directory
	// of its own) refuses to start rather than clean up the first one's
	// environments.
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, kappaBin, "server", "--listen", "127.0.0.1:0", "--data-dir", t.TempDir(), "--run-dir", a.runDir)
	out, err := cmd.CombinedOutput()
	if err == nil || !strings.Contains(string(out), "in use by another kappa server") {
		t.Errorf("a server on another's run directory: %v\n%s", err, out)
	}
	stillWarm("was refused the first one's run directory")
}
