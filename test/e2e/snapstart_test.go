package e2e

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/lambda"
	"github.com/aws/aws-sdk-go-v2/service/lambda/types"
)

// requireCRIU skips unless a CRIU that can take snapshots is installed
// (.ci/run builds one with scripts/build-criu.sh).
func requireCRIU(t *testing.T) {
	t.Helper()
	requireEnv(t)
	// CI provides both (.ci/run builds CRIU): there a missing one fails.
	skip := t.Skip
	if os.Getenv("CI") != "" {
		skip = t.Fatal
	}
	if _, err := exec.LookPath("runc"); err != nil {
		skip("needs runc (snapshots are taken and restored through runc)")
	}
	// The server prefers the built CRIU; Debian 12's criu 3.17 in PATH
	// fails on this kernel (docs/snapshot-restore.md).
	if _, err := os.Stat("/opt/criu/sbin/criu"); err != nil {
		skip("needs CRIU ≥ 4.2 at /opt/criu/sbin/criu (scripts/build-criu.sh)")
	}
}

// TestSnapStart publishes a version of a function whose init sleeps a
// second with SnapStart, and checks that its environments are restored
// from one snapshot taken after init: every restored environment carries
// the identity the probe drew at init, the init's output is not repeated,
// REPORT lines give a Restore Duration, and each environment is still
// isolated from the others (its own /tmp, its own Runtime API).
func TestSnapStart(t *testing.T) {
	requireCRIU(t)
	s := startServer(t)
	ctx := context.Background()
	img := s.pushProbe(t, "snap/probe:v1", "PROBE_INIT_SLEEP=1s")
	fn := s.createFunction(t, "snap", img, func(in *lambda.CreateFunctionInput) {
		in.SnapStart = &types.SnapStart{ApplyOn: types.SnapStartApplyOnPublishedVersions}
	})
	if ss := fn.Configuration.SnapStart; ss == nil || ss.ApplyOn != types.SnapStartApplyOnPublishedVersions ||
		ss.OptimizationStatus != types.SnapStartOptimizationStatusOff {
		t.Errorf("$LATEST SnapStart = %+v, want PublishedVersions/Off", ss)
	}

	pub, err := s.Lambda.PublishVersion(ctx, &lambda.PublishVersionInput{FunctionName: aws.String("snap")})
	if err != nil {
		t.Fatalf("PublishVersion: %v", err)
	}
	if pub.State != types.StatePending {
		t.Errorf("published version state = %s, want Pending while its snapshot is taken", pub.State)
	}
	w := lambda.NewPublishedVersionActiveWaiter(s.Lambda, func(o *lambda.PublishedVersionActiveWaiterOptions) {
		o.MinDelay, o.MaxDelay = 100*time.Millisecond, 500*time.Millisecond
	})
	got, err := w.WaitForOutput(ctx, &lambda.GetFunctionConfigurationInput{
		FunctionName: aws.String("snap"), Qualifier: pub.Version}, 2*time.Minute)
	if err != nil {
		t.Fatalf("version %s not Active: %v\n%s", aws.ToString(pub.Version), err, s.Log())
	}
	if ss := got.SnapStart; ss == nil || ss.OptimizationStatus != types.SnapStartOptimizationStatusOn {
		t.Errorf("version SnapStart = %+v, want OptimizationStatus On", got.SnapStart)
	}
	snaps, _ := filepath.Glob(filepath.Join(s.dataDir, "snapshots", "snap", "1-*"))
	if len(snaps) != 1 {
		t.Fatalf("snapshots of version 1: %v, want one", snaps)
	}

	// Three at once, each holding its environment: three environments,
	// all cold, all restored from the snapshot (the identity drawn at init
	// is the snapshot's), none running init again.
	const n = 3
	first := tmpRound(t, s, "snap:1", n, true)
	snapEnv := first[0].env
	for i, r := range first {
		if r.env != snapEnv {
			t.Errorf("invocation %d ran in environment %s, not the snapshot's %s: not restored", i, r.env, snapEnv)
		}
		if !strings.Contains(r.tail, "Restore Duration:") || strings.Contains(r.tail, "Init Duration:") {
			t.Errorf("invocation %d: tail %q, want a cold start restored from the snapshot", i, r.tail)
		}
		if len(r.tmp) != 0 {
			t.Errorf("invocation %d: /tmp holds %v, want the snapshot's (empty)", i, r.tmp)
		}
	}
	if c := strings.Count(s.Log(), "snapshot taken"); c != 1 {
		t.Errorf("%d snapshots taken, want 1", c)
	}
	// Each restored environment has its own /tmp: now warm, each sees the
	// one file it wrote, not the others'.
	for i, r := range tmpRound(t, s, "snap:1", n, false) {
		if len(r.tmp) != 1 {
			t.Errorf("warm invocation %d: /tmp holds %v, want only its environment's own file", i, r.tmp)
		}
	}

	_, em := invoke(t, s, "snap:1", map[string]any{"op": "env"})
	environ, _ := em["environ"].([]any)
	initType := false
	for _, kv := range environ {
		if s, _ := kv.(string); s == "AWS_LAMBDA_INITIALIZATION_TYPE=snap-start" {
			initType = true
		}
		if s, _ := kv.(string); strings.HasPrefix(s, "_KAPPA") {
			t.Errorf("the runtime sees Kappa's own variable %s", s)
		}
		// As in Lambda: one snapshot serves many environments, each with
		// a log stream of its own, so a SnapStart runtime has neither.
		if s, _ := kv.(string); strings.HasPrefix(s, "AWS_LAMBDA_LOG_STREAM_NAME=") || strings.HasPrefix(s, "AWS_LAMBDA_LOG_GROUP_NAME=") {
			t.Errorf("a SnapStart runtime sees %s", s)
		}
	}
	if !initType {
		t.Errorf("restored runtime does not see AWS_LAMBDA_INITIALIZATION_TYPE=snap-start")
	}

	// A restart keeps the snapshot: the version's next cold start restores.
	s.restart()
	out, m := invoke(t, s, "snap:1", map[string]any{"op": "echo"}, withTail)
	if tail := tailOf(t, out); !strings.Contains(tail, "Restore Duration:") || m["env"] != snapEnv {
		t.Errorf("after a restart: env %v (snapshot's %s), tail %q; want a restore", m["env"], snapEnv, tail)
	}

	// A snapshot that cannot be restored (here: damaged; in life, a new
	// kernel or CRIU) costs the invocation nothing but the init: it runs
	// the ordinary way, and the snapshot is taken again.
	if err := os.Remove(filepath.Join(snaps[0], "inventory.img")); err != nil {
		t.Fatal(err)
	}
	s.restart() // no warm environment left
	out, m = invoke(t, s, "snap:1", map[string]any{"op": "echo", "text": "still served"}, withTail)
	if m["text"] != "still served" || out.FunctionError != nil {
		t.Fatalf("invocation with a damaged snapshot = %v (error %v)", m, aws.ToString(out.FunctionError))
	}
	if tail := tailOf(t, out); !strings.Contains(tail, "Init Duration:") {
		t.Errorf("damaged snapshot: tail %q, want an ordinary cold start", tail)
	}
	deadline := time.Now().Add(time.Minute)
	for strings.Count(s.Log(), "snapshot taken") < 2 && time.Now().Before(deadline) {
		time.Sleep(100 * time.Millisecond)
	}
	if strings.Count(s.Log(), "snapshot taken") < 2 {
		t.Fatalf("the damaged snapshot was not taken again")
	}
	// Make the next invocation cold: the runtime exits.
	invoke(t, s, "snap:1", map[string]any{"op": "exit"})
	out, m = invoke(t, s, "snap:1", map[string]any{"op": "echo"}, withTail)
	if tail := tailOf(t, out); !strings.Contains(tail, "Restore Duration:") {
		t.Errorf("after the snapshot was taken again: tail %q, want a restore", tail)
	}

	// A restored environment is as confined as any: the sandbox user, no
	// capabilities, no new privileges, the seccomp filter.
	_, st := invoke(t, s, "snap:1", map[string]any{"op": "status"})
	status, _ := st["status"].(string)
	for _, want := range []string{"Uid:\t993\t993\t993\t993", "CapEff:\t0000000000000000", "CapBnd:\t0000000000000000",
		"NoNewPrivs:\t1", "Seccomp:\t2"} {
		if !strings.Contains(status, want) {
			t.Errorf("restored environment's /proc/self/status lacks %q:\n%s", want, status)
		}
	}

	// $LATEST still starts the ordinary way.
	out, _ = invoke(t, s, "snap", map[string]any{"op": "echo"}, withTail)
	if tail := tailOf(t, out); !strings.Contains(tail, "Init Duration:") {
		t.Errorf("$LATEST cold start tail has no Init Duration: %q", tail)
	}

	// Deleting the version drops its snapshot.
	if _, err := s.Lambda.DeleteFunction(ctx, &lambda.DeleteFunctionInput{FunctionName: aws.String("snap"), Qualifier: aws.String("1")}); err != nil {
		t.Fatal(err)
	}
	if snaps, _ := filepath.Glob(filepath.Join(s.dataDir, "snapshots", "snap", "1-*")); len(snaps) != 0 {
		t.Errorf("snapshot left after DeleteFunction of the version: %v", snaps)
	}
}

// TestSnapStartUnavailable: a server that cannot take snapshots refuses
// SnapStart.ApplyOn PublishedVersions with the reason, rather than
// ignore it.
func TestSnapStartUnavailable(t *testing.T) {
	s := startServer(t, "--criu", "/nonexistent/criu")
	img := s.pushProbe(t, "snap/probe:v1")
	_, err := s.Lambda.CreateFunction(context.Background(), &lambda.CreateFunctionInput{
		FunctionName: aws.String("snap-fn"), PackageType: types.PackageTypeImage,
		Code: &types.FunctionCode{ImageUri: aws.String(img)}, Role: aws.String(testRole),
		SnapStart: &types.SnapStart{ApplyOn: types.SnapStartApplyOnPublishedVersions},
	})
	if apiErrorCode(err) != "InvalidParameterValueException" || httpStatus(err) != 400 ||
		!strings.Contains(err.Error(), "SnapStart is not available on this Kappa server") || !strings.Contains(err.Error(), "/nonexistent/criu") {
		t.Errorf("CreateFunction with SnapStart on a server without CRIU = %v", err)
	}
	if _, err := s.Lambda.GetFunction(context.Background(), &lambda.GetFunctionInput{FunctionName: aws.String("snap-fn")}); apiErrorCode(err) != "ResourceNotFoundException" {
		t.Errorf("refused function exists: %v", err)
	}
}

// TestSnapStartViaRunc restores through `runc restore`, the path of hosts
// whose device rules are cgroup v2's (where Kappa does not run CRIU
// itself), and checks the same: one snapshot, every environment restored
// from it, each with its own /tmp.
func TestSnapStartViaRunc(t *testing.T) {
	requireCRIU(t)
	s := startServer(t, "--restore-via-runc")
	ctx := context.Background()
	img := s.pushProbe(t, "snap/probe:v1", "PROBE_INIT_SLEEP=1s")
	s.createFunction(t, "snap", img, func(in *lambda.CreateFunctionInput) {
		in.SnapStart = &types.SnapStart{ApplyOn: types.SnapStartApplyOnPublishedVersions}
	})
	pub, err := s.Lambda.PublishVersion(ctx, &lambda.PublishVersionInput{FunctionName: aws.String("snap")})
	if err != nil {
		t.Fatal(err)
	}
	w := lambda.NewPublishedVersionActiveWaiter(s.Lambda, func(o *lambda.PublishedVersionActiveWaiterOptions) {
		o.MinDelay, o.MaxDelay = 100*time.Millisecond, 500*time.Millisecond
	})
	if err := w.Wait(ctx, &lambda.GetFunctionConfigurationInput{FunctionName: aws.String("snap"), Qualifier: pub.Version}, 2*time.Minute); err != nil {
		t.Fatalf("version not Active: %v", err)
	}
	first := tmpRound(t, s, "snap:1", 2, true)
	for i, r := range first {
		if r.env != first[0].env || !strings.Contains(r.tail, "Restore Duration:") || len(r.tmp) != 0 {
			t.Errorf("invocation %d: environment %s (first %s), /tmp %v, tail %q; want cold starts restored from one snapshot",
				i, r.env, first[0].env, r.tmp, r.tail)
		}
	}
	for i, r := range tmpRound(t, s, "snap:1", 2, false) {
		if len(r.tmp) != 1 {
			t.Errorf("warm invocation %d: /tmp holds %v, want only its environment's own file", i, r.tmp)
		}
	}
	if strings.Contains(s.Log(), "restore failed") {
		t.Errorf("a restore failed:\n%s", s.Log())
	}
}

// tmpResult is one invocation of the probe's "tmp" op.
type tmpResult struct {
	env, tail string
	tmp       []any // what the environment's /tmp held before this call
}

// tmpRound invokes fn n times at once with the probe's "tmp" op, each
// holding its environment for 600 ms (the calls start 50 ms apart, so
// every one needs an environment of its own), and returns what each saw.
func tmpRound(t *testing.T, s *server, fn string, n int, tail bool) []tmpResult {
	t.Helper()
	out := make([]tmpResult, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			b, _ := json.Marshal(map[string]any{"op": "tmp", "ms": 600})
			in := &lambda.InvokeInput{FunctionName: aws.String(fn), Payload: b}
			if tail {
				in.LogType = types.LogTypeTail
			}
			res, err := s.Lambda.Invoke(context.Background(), in)
			if err != nil {
				t.Errorf("Invoke: %v", err)
				return
			}
			var m map[string]any
			json.Unmarshal(res.Payload, &m)
			env, _ := m["env"].(string)
			if res.FunctionError != nil || env == "" || m["ok"] != true {
				t.Errorf("invocation %d: error %q, payload %s", i, aws.ToString(res.FunctionError), res.Payload)
			}
			out[i].env, _ = m["env"].(string)
			out[i].tmp, _ = m["tmp"].([]any)
			if tail && res.LogResult != nil {
				b, _ := base64.StdEncoding.DecodeString(*res.LogResult)
				out[i].tail = string(b)
			}
		}()
		time.Sleep(50 * time.Millisecond)
	}
	wg.Wait()
	if t.Failed() {
		t.Fatalf("server log:\n%s", s.Log())
	}
	return out
}

// TestSnapStartHooks runs SnapStart with a runtime that has hooks, as the
// Java, Python and .NET runtime interface clients do: the probe, with
// PROBE_SNAPSTART_HOOKS, calls GET /runtime/restore/next after its init
// (its before-snapshot hook) and runs its after-restore hook when that
// returns. The snapshot is taken while /restore/next is parked, and the
// call returns in each restored environment, which then runs its hook once
// (a new restore id per restore, the init's identity shared). An
// after-restore hook that fails (/restore/error) makes Invoke answer
// SnapStartException.
func TestSnapStartHooks(t *testing.T) {
	requireCRIU(t)
	s := startServer(t)
	ctx := context.Background()
	publish := func(name, hooks string) {
		t.Helper()
		img := s.pushProbe(t, "snap/"+name+":v1", "PROBE_SNAPSTART_HOOKS="+hooks)
		s.createFunction(t, name, img, func(in *lambda.CreateFunctionInput) {
			in.SnapStart = &types.SnapStart{ApplyOn: types.SnapStartApplyOnPublishedVersions}
		})
		pub, err := s.Lambda.PublishVersion(ctx, &lambda.PublishVersionInput{FunctionName: aws.String(name)})
		if err != nil {
			t.Fatal(err)
		}
		w := lambda.NewPublishedVersionActiveWaiter(s.Lambda, func(o *lambda.PublishedVersionActiveWaiterOptions) {
			o.MinDelay, o.MaxDelay = 100*time.Millisecond, 500*time.Millisecond
		})
		if err := w.Wait(ctx, &lambda.GetFunctionConfigurationInput{FunctionName: aws.String(name), Qualifier: pub.Version}, 2*time.Minute); err != nil {
			t.Fatalf("%s: version not Active: %v\n%s", name, err, s.Log())
		}
	}

	t.Run("hooks run around the snapshot", func(t *testing.T) {
		publish("hooks", "1")
		var envs, restores []string
		for i := range 2 {
			if i > 0 {
				// The runtime exits: the next call restores anew.
				s.Lambda.Invoke(ctx, &lambda.InvokeInput{FunctionName: aws.String("hooks:1"), Payload: []byte(`{"op":"exit"}`)})
			}
			out, res := invoke(t, s, "hooks:1", map[string]any{"op": "echo"}, func(in *lambda.InvokeInput) { in.LogType = types.LogTypeTail })
			tail, _ := base64.StdEncoding.DecodeString(aws.ToString(out.LogResult))
			if !strings.Contains(string(tail), "Restore Duration:") {
				t.Errorf("call %d: tail %q, want a cold start restored from the snapshot", i, tail)
			}
			if res["beforeSnapshot"] != float64(1) || res["afterRestore"] != float64(1) {
				t.Errorf("call %d: hooks ran before the snapshot %v and after the restore %v times, want once each",
					i, res["beforeSnapshot"], res["afterRestore"])
			}
			env, _ := res["env"].(string)
			restoreID, _ := res["restoreId"].(string)
			envs = append(envs, env)
			restores = append(restores, restoreID)
		}
		if envs[0] == "" || envs[0] != envs[1] {
			t.Errorf("environments %v: want both restored from the snapshot (the identity drawn at init)", envs)
		}
		if restores[0] == "" || restores[0] == restores[1] {
			t.Errorf("after-restore hook ids %q: want one drawn after each restore", restores)
		}
		// $LATEST is initialised on demand: no hooks.
		if _, res := invoke(t, s, "hooks", map[string]any{"op": "echo"}); res["beforeSnapshot"] != float64(0) {
			t.Errorf("$LATEST ran its before-snapshot hook: %v", res)
		}
	})

	t.Run("a failing after-restore hook", func(t *testing.T) {
		publish("hooksfail", "fail")
		_, err := s.Lambda.Invoke(ctx, &lambda.InvokeInput{FunctionName: aws.String("hooksfail:1"), Payload: []byte(`{"op":"echo"}`)})
		var sse *types.SnapStartException
		if !errors.As(err, &sse) || httpStatus(err) != 400 || !strings.Contains(err.Error(), "Probe.AfterRestore") {
			t.Fatalf("Invoke after a failing afterRestore hook = %v, want SnapStartException (400) naming the hook's error", err)
		}
		// The snapshot stays: the hook is the function's code.
		got, err := s.Lambda.GetFunctionConfiguration(ctx, &lambda.GetFunctionConfigurationInput{
			FunctionName: aws.String("hooksfail"), Qualifier: aws.String("1")})
		if err != nil || got.State != types.StateActive {
			t.Errorf("version after the failed hook: %v, %v; want Active", got.State, err)
		}
	})

	t.Run("an after-restore hook that never finishes", func(t *testing.T) {
		// Lambda's restore phase lasts 10 s at most.
		publish("hookshang", "hang")
		_, err := s.Lambda.Invoke(ctx, &lambda.InvokeInput{FunctionName: aws.String("hookshang:1"), Payload: []byte(`{"op":"echo"}`)})
		var ste *types.SnapStartTimeoutException
		if !errors.As(err, &ste) || httpStatus(err) != 408 {
			t.Fatalf("Invoke with a hanging afterRestore hook = %v, want SnapStartTimeoutException (408)", err)
		}
	})
}

// TestSnapStartDeletedWhileRetaken deletes a version while its snapshot is
// taken again in the background (its file went missing, so a cold start
// retakes it): the snapshot the retake makes after the deletion must not
// be stored, since nothing would ever remove it.
func TestSnapStartDeletedWhileRetaken(t *testing.T) {
	requireCRIU(t)
	s := startServer(t)
	ctx := context.Background()
	img := s.pushProbe(t, "snapdel/probe:v1", "PROBE_INIT_SLEEP=1s")
	s.createFunction(t, "snapdel", img, func(in *lambda.CreateFunctionInput) {
		in.SnapStart = &types.SnapStart{ApplyOn: types.SnapStartApplyOnPublishedVersions}
	})
	pub, err := s.Lambda.PublishVersion(ctx, &lambda.PublishVersionInput{FunctionName: aws.String("snapdel")})
	if err != nil {
		t.Fatal(err)
	}
	w := lambda.NewPublishedVersionActiveWaiter(s.Lambda, func(o *lambda.PublishedVersionActiveWaiterOptions) {
		o.MinDelay, o.MaxDelay = 100*time.Millisecond, 500*time.Millisecond
	})
	if err := w.Wait(ctx, &lambda.GetFunctionConfigurationInput{FunctionName: aws.String("snapdel"), Qualifier: pub.Version}, 2*time.Minute); err != nil {
		t.Fatalf("version not Active: %v\n%s", err, s.Log())
	}
	pattern := filepath.Join(s.dataDir, "snapshots", "snapdel", "1-*")
	snaps, _ := filepath.Glob(pattern)
	if len(snaps) != 1 {
		t.Fatalf("snapshots of version 1: %v, want one", snaps)
	}
	if err := os.RemoveAll(snaps[0]); err != nil {
		t.Fatal(err)
	}

	// This cold start finds no snapshot: it runs init the ordinary way
	// and the snapshot is taken again beside it (init 1 s). The version
	// is deleted during that second.
	done := make(chan struct{})
	go func() {
		defer close(done)
		s.Lambda.Invoke(ctx, &lambda.InvokeInput{FunctionName: aws.String("snapdel"), Qualifier: pub.Version,
			Payload: []byte(`{"op":"echo"}`)})
	}()
	// Both inits run once two containers have started: delete then.
	deadline := time.Now().Add(time.Minute)
	for len(s.startedContainers(t)) < 2 {
		if time.Now().After(deadline) {
			t.Fatalf("the cold start and the retake did not both start:\n%s", s.Log())
		}
		time.Sleep(20 * time.Millisecond)
	}
	if _, err := s.Lambda.DeleteFunction(ctx, &lambda.DeleteFunctionInput{FunctionName: aws.String("snapdel"), Qualifier: pub.Version}); err != nil {
		t.Fatal(err)
	}
	for !strings.Contains(s.Log(), "snapshot not stored: its version was deleted") {
		if time.Now().After(deadline) {
			t.Fatalf("the retake did not end by throwing its snapshot away:\n%s", s.Log())
		}
		if strings.Contains(s.Log(), "retake snapshot") {
			t.Fatalf("the retake failed instead:\n%s", s.Log())
		}
		time.Sleep(50 * time.Millisecond)
	}
	<-done
	if left, _ := filepath.Glob(filepath.Join(s.dataDir, "snapshots", "snapdel", "*")); len(left) != 0 {
		t.Errorf("left in the snapshot directory after the version was deleted: %v", left)
	}
}
