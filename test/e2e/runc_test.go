package e2e

import (
	"strings"
	"sync"
	"testing"
)

// TestRuncRuntime runs environments with `--runtime runc`, so that both OCI
// runtimes are exercised whichever the host picks by default: cold and warm
// invokes, concurrent invokes, a crash, and a clean stop.
func TestRuncRuntime(t *testing.T) {
	requireTool(t, "runc")
	s := newServer(t, "--runtime", "runc")
	if !strings.Contains(s.Log(), "runtime=runc") {
		t.Fatalf("server did not report runtime runc:\n%s", s.Log())
	}
	img := s.pushProbe(t, "probe:runc", "PROBE_VERSION=runc")
	s.createFunction(t, "onrunc", img)

	out, cold := invoke(t, s, "onrunc", map[string]any{"op": "echo", "text": "cold"}, withTail)
	if out.FunctionError != nil || cold["text"] != "cold" || cold["version"] != "runc" {
		t.Fatalf("cold invoke on runc: %s", out.Payload)
	}
	if tail := tailOf(t, out); !strings.Contains(tail, "Init Duration: ") {
		t.Errorf("cold invoke reports no Init Duration:\n%s", tail)
	}
	warm := mustInvoke(t, s, "onrunc", map[string]any{"op": "echo", "text": "warm"})
	if warm["env"] != cold["env"] {
		t.Errorf("warm invoke ran in %v, want the cold start's environment %v", warm["env"], cold["env"])
	}

	// Two at once: the warm environment serves one, a new one the other.
	var wg sync.WaitGroup
	envs := make([]any, 2)
	for i := range envs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			out, res := invoke(t, s, "onrunc", map[string]any{"op": "sleep", "ms": 1000})
			if out.FunctionError != nil {
				t.Errorf("concurrent invoke on runc: %s", out.Payload)
			}
			envs[i] = res["env"]
		}()
	}
	wg.Wait()
	if envs[0] == envs[1] {
		t.Errorf("two concurrent invokes ran in the same environment %v", envs[0])
	}

	if typ, msg, _ := functionErrorOf(t, s, "onrunc", map[string]any{"op": "exit"}); typ != "Runtime.ExitError" {
		t.Errorf("crash on runc: errorType %q (%s), want Runtime.ExitError", typ, msg)
	}
	if res := mustInvoke(t, s, "onrunc", map[string]any{"op": "status"}); !strings.Contains(res["status"].(string), "NoNewPrivs:\t1") {
		t.Errorf("runc environment without no_new_privs:\n%s", res["status"])
	}

	cgroups := s.sandboxCgroups()
	s.stop()
	s.assertNoLeftovers(t, cgroups)
}
