package e2e

import (
	"context"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/lambda"
	"github.com/aws/aws-sdk-go-v2/service/lambda/types"
)

// TestFreezeIdleEnvironments runs a server with --freeze-idle: between
// invocations the environment's cgroup is frozen and uses no CPU; the next
// invocation thaws it and runs warm.
func TestFreezeIdleEnvironments(t *testing.T) {
	// --spares 0: these tests count the environments of on-demand
	// invocations; created-but-not-started spares would add containers.
	s := newServer(t, "--freeze-idle", "--spares", "0")
	img := s.pushProbe(t, "probe:frz")
	s.createFunction(t, "frz", img)

	first := mustInvoke(t, s, "frz", map[string]any{"op": "echo"})
	ids := s.containers(t)
	if len(ids) != 1 {
		t.Fatalf("containers after one invocation: %v, want one", ids)
	}
	id := ids[0]
	if st := s.freezerState(t, id); st == "" {
		t.Fatalf("no freezer cgroup for container %s under %s", id, s.cgroupParent())
	}
	waitFor(t, 30*time.Second, "the idle environment to be frozen", func() bool { return s.freezerState(t, id) == "FROZEN" })

	t.Run("no CPU while frozen", func(t *testing.T) {
		before, ok := s.cpuUsage(t, id)
		if !ok {
			t.Skip("no CPU accounting cgroup for the environment")
		}
		time.Sleep(time.Second)
		after, _ := s.cpuUsage(t, id)
		if st := s.freezerState(t, id); st != "FROZEN" {
			t.Fatalf("freezer state %s during the measurement", st)
		}
		if after != before {
			t.Errorf("a frozen environment used %d ns of CPU in a second", after-before)
		}
	})

	t.Run("thawed while running", func(t *testing.T) {
		done := make(chan error, 1)
		go func() {
			out, res, err := tryInvoke(s, "frz", map[string]any{"op": "sleep", "ms": 2000})
			if err == nil && (out.FunctionError != nil || res["env"] != first["env"]) {
				t.Errorf("sleeping invocation: function error %q, environment %v; want a warm run in %v", aws.ToString(out.FunctionError), res["env"], first["env"])
			}
			done <- err
		}()
		waitFor(t, 30*time.Second, "the environment to be thawed for the invocation", func() bool { return s.freezerState(t, id) == "THAWED" })
		if err := <-done; err != nil {
			t.Fatal(err)
		}
		waitFor(t, 30*time.Second, "the environment to be frozen again", func() bool { return s.freezerState(t, id) == "FROZEN" })
	})

	t.Run("next invocation is warm", func(t *testing.T) {
		out, res := invoke(t, s, "frz", map[string]any{"op": "echo", "text": "thawed"}, withTail)
		if out.FunctionError != nil || res["text"] != "thawed" {
			t.Fatalf("invoke after thaw: %s", out.Payload)
		}
		if res["env"] != first["env"] {
			t.Errorf("ran in environment %v, want the frozen one %v", res["env"], first["env"])
		}
		if tail := tailOf(t, out); strings.Contains(tail, "Init Duration") {
			t.Errorf("a thawed environment reported an Init Duration:\n%s", tail)
		}
		if ids := s.containers(t); len(ids) != 1 || ids[0] != id {
			t.Errorf("containers %v, want only %s", ids, id)
		}
	})
}

// TestIdleReaping runs servers with --idle-timeout 2s: an idle environment
// (frozen or not) is shut down and removed, and the next invocation starts
// cold in a new one.
func TestIdleReaping(t *testing.T) {
	tests := []struct {
		name string
		args []string
	}{
		{"running idle", nil},
		{"frozen idle", []string{"--freeze-idle"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := newServer(t, append([]string{"--idle-timeout", "2s", "--spares", "0"}, tc.args...)...)
			img := s.pushProbe(t, "probe:reap")
			s.createFunction(t, "reap", img)

			out, first := invoke(t, s, "reap", map[string]any{"op": "echo"}, withTail)
			if tail := tailOf(t, out); !strings.Contains(tail, "Init Duration") {
				t.Errorf("first invocation: no Init Duration in\n%s", tail)
			}
			ids := s.containers(t)
			if len(ids) != 1 {
				t.Fatalf("containers after one invocation: %v, want one", ids)
			}
			if len(s.cgroupChildren(t)) == 0 || len(s.environmentProcs()) == 0 {
				t.Fatal("no cgroup or process of the environment found; the checks below would be vacuous")
			}
			waitFor(t, time.Minute, "the idle environment to be reaped", func() bool {
				h := s.health(t)
				return h.Environments.Live == 0 && len(s.containers(t)) == 0
			})
			if cg := s.cgroupChildren(t); len(cg) > 0 {
				t.Errorf("cgroups left after reaping: %v", cg)
			}
			if p := s.environmentProcs(); len(p) > 0 {
				t.Errorf("processes left after reaping: %+v", p)
			}
			out, second := invoke(t, s, "reap", map[string]any{"op": "echo"}, withTail)
			if out.FunctionError != nil {
				t.Fatalf("invoke after reaping: %s", out.Payload)
			}
			if second["env"] == first["env"] {
				t.Errorf("invocation after reaping ran in the reaped environment %v", first["env"])
			}
			if tail := tailOf(t, out); !strings.Contains(tail, "Init Duration") {
				t.Errorf("invocation after reaping: no Init Duration (not a cold start?) in\n%s", tail)
			}
		})
	}
}

// TestInitFailure invokes a function whose runtime exits during init: each
// invocation answers Runtime.ExitError, failing environments are not kept,
// repeated invocations do not start a container each (back-off), and a
// fixed configuration runs at once.
func TestInitFailure(t *testing.T) {
	s := newServer(t)
	ctx := context.Background()
	img := s.pushProbe(t, "probe:initfail")
	s.createFunction(t, "broken", img, func(in *lambda.CreateFunctionInput) {
		in.Environment = &types.Environment{Variables: map[string]string{"PROBE_INIT_FAIL": "1"}}
	})

	typ, msg, out := functionErrorOf(t, s, "broken", map[string]any{"op": "echo"}, withTail)
	if typ != "Runtime.ExitError" {
		t.Errorf("errorType %q (%s), want Runtime.ExitError", typ, msg)
	}
	if aws.ToString(out.ExecutedVersion) != "$LATEST" {
		t.Errorf("X-Amz-Executed-Version %q, want $LATEST", aws.ToString(out.ExecutedVersion))
	}
	if tail := tailOf(t, out); !strings.Contains(tail, "probe init fails on purpose") || !strings.Contains(tail, "REPORT RequestId:") {
		t.Errorf("log tail lacks the init output or the REPORT line:\n%s", tail)
	}

	const n = 40
	for i := range n {
		typ, msg, _ := functionErrorOf(t, s, "broken", map[string]any{"op": "echo"})
		if typ != "Runtime.ExitError" {
			t.Errorf("invocation %d: errorType %q (%s), want Runtime.ExitError", i, typ, msg)
		}
	}
	started := len(s.sandboxIDs())
	t.Logf("%d invocations of a function failing init started %d containers", n+1, started)
	if started == 0 {
		t.Fatal("no sandbox id in the server log; cannot count the containers started")
	}
	// Without back-off every invocation would start two (init is retried
	// once); with it most are answered without a container.
	if started >= n {
		t.Errorf("%d invocations failing init started %d containers, want far fewer (back-off)", n+1, started)
	}
	if ids := s.containers(t); len(ids) != 0 {
		t.Errorf("containers of failed inits left: %v", ids)
	}
	if h := s.health(t); h.Environments.Live != 0 {
		t.Errorf("live environments after failed inits: %+v", h.Environments)
	}

	// Fixed: the new configuration is not held back by the old failures.
	if _, err := s.Lambda.UpdateFunctionConfiguration(ctx, &lambda.UpdateFunctionConfigurationInput{
		FunctionName: aws.String("broken"), Environment: &types.Environment{Variables: map[string]string{}},
	}); err != nil {
		t.Fatal(err)
	}
	waitUpdated(t, s, "broken")
	mustInvoke(t, s, "broken", map[string]any{"op": "echo"})
}

// TestDrainOnShutdown sends SIGTERM to a server while an invocation runs:
// the invocation completes successfully, then the server exits 0 and
// leaves nothing behind. The default configuration must drain; an explicit
// --drain-timeout must too.
func TestDrainOnShutdown(t *testing.T) {
	tests := []struct {
		name string
		args []string
	}{
		{"default", nil},
		{"drain-timeout 30s", []string{"--drain-timeout", "30s"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := newServer(t, tc.args...)
			img := s.pushProbe(t, "probe:drain")
			s.createFunction(t, "drain", img)
			mustInvoke(t, s, "drain", map[string]any{"op": "echo"}) // warm

			type result struct {
				out *lambda.InvokeOutput
				res map[string]any
				err error
			}
			done := make(chan result, 1)
			go func() {
				out, res, err := tryInvoke(s, "drain", map[string]any{"op": "sleep", "ms": 3000, "text": "drained"})
				done <- result{out, res, err}
			}()
			waitFor(t, 30*time.Second, "the invocation to run", func() bool { return s.health(t).Environments.Idle == 0 })
			time.Sleep(500 * time.Millisecond)
			cgroups := s.sandboxCgroups()
			if err := s.cmd.Process.Signal(syscall.SIGTERM); err != nil {
				t.Fatal(err)
			}

			select {
			case r := <-done:
				switch {
				case r.err != nil:
					t.Errorf("the invocation in flight at SIGTERM failed: %v", r.err)
				case r.out.StatusCode != 200 || r.out.FunctionError != nil || r.res["op"] != "sleep":
					t.Errorf("the invocation in flight at SIGTERM: HTTP %d, function error %q: %s",
						r.out.StatusCode, aws.ToString(r.out.FunctionError), r.out.Payload)
				}
			case <-time.After(time.Minute):
				t.Fatal("the invocation in flight at SIGTERM never returned")
			}
			select {
			case <-s.done:
			case <-time.After(time.Minute):
				t.Fatal("the server did not exit after draining")
			}
			if st := s.cmd.ProcessState; st == nil || !st.Success() {
				t.Errorf("server exited with %v, want 0", st)
			}
			if t.Failed() {
				t.Logf("server log:\n%s", s.Log())
			}
			s.cmd = nil
			s.assertNoLeftovers(t, cgroups)
		})
	}
}
