package e2e

import (
	"context"
	"encoding/json"
	"fmt"
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
	if _, err := exec.LookPath("runc"); err != nil {
		t.Skip("needs runc (snapshots are taken and restored through runc)")
	}
	if _, err := exec.LookPath("criu"); err == nil {
		return
	}
	if _, err := os.Stat("/opt/criu/sbin/criu"); err != nil {
		t.Skip("needs CRIU ≥ 4.2 at /opt/criu/sbin/criu or in PATH (scripts/build-criu.sh)")
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

	// Three at once: three environments, all restored from the snapshot.
	const n = 3
	type result struct {
		env, tail string
		out       map[string]any
	}
	results := make([]result, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			path := "/tmp/mine-" + string(rune('a'+i))
			b, _ := json.Marshal(map[string]any{"op": "write", "path": path})
			out, err := s.Lambda.Invoke(ctx, &lambda.InvokeInput{FunctionName: aws.String("snap"), Qualifier: aws.String("1"),
				Payload: b, LogType: types.LogTypeTail})
			if err != nil {
				t.Errorf("Invoke: %v", err)
				return
			}
			var m map[string]any
			json.Unmarshal(out.Payload, &m)
			env, _ := m["env"].(string)
			if out.FunctionError != nil || env == "" {
				t.Errorf("invocation %d: error %q, payload %s, log %s", i, aws.ToString(out.FunctionError), out.Payload, tailOf(t, out))
			}
			results[i] = result{env: env, tail: tailOf(t, out), out: m}
			time.Sleep(300 * time.Millisecond) // hold the environment so the others need their own
		}()
		time.Sleep(50 * time.Millisecond)
	}
	wg.Wait()
	if t.Failed() {
		t.Fatalf("server log:\n%s", s.Log())
	}
	restored := 0
	for i, r := range results {
		if r.out["ok"] != true {
			t.Errorf("invocation %d: write /tmp failed: %v", i, r.out)
		}
		if r.env != results[0].env {
			t.Errorf("invocation %d ran in environment %s, not the snapshot's %s: not restored", i, r.env, results[0].env)
		}
		if strings.Contains(r.tail, "Restore Duration:") {
			restored++
		}
		if strings.Contains(r.tail, "Init Duration:") {
			t.Errorf("invocation %d reports an Init Duration: %q", i, r.tail)
		}
	}
	if restored == 0 {
		t.Errorf("no REPORT line gives a Restore Duration")
	}
	// The snapshot's environment drew the id; the restored ones did not run init.
	logs := s.Log()
	if c := strings.Count(logs, "snapshot taken"); c != 1 {
		t.Errorf("%d snapshots taken, want 1", c)
	}

	// Each restored environment has its own /tmp: a file one wrote is not
	// in another. Ask every environment which files it sees.
	seen := map[string]bool{}
	for range 2 * n {
		b, _ := json.Marshal(map[string]any{"op": "env"})
		out, err := s.Lambda.Invoke(ctx, &lambda.InvokeInput{FunctionName: aws.String("snap"), Qualifier: aws.String("1"), Payload: b})
		if err != nil {
			t.Fatal(err)
		}
		var m map[string]any
		json.Unmarshal(out.Payload, &m)
		environ, _ := m["environ"].([]any)
		for _, kv := range environ {
			if s, _ := kv.(string); s == "AWS_LAMBDA_INITIALIZATION_TYPE=snap-start" {
				seen["initType"] = true
			}
			if s, _ := kv.(string); strings.HasPrefix(s, "_KAPPA") {
				t.Errorf("the runtime sees Kappa's own variable %s", s)
			}
		}
	}
	if !seen["initType"] {
		t.Errorf("restored runtime does not see AWS_LAMBDA_INITIALIZATION_TYPE=snap-start")
	}

	// A restart keeps the snapshot: the version's next cold start restores.
	s.restart()
	out, m := invoke(t, s, "snap:1", map[string]any{"op": "echo"}, withTail)
	if tail := tailOf(t, out); !strings.Contains(tail, "Restore Duration:") || m["env"] != results[0].env {
		t.Errorf("after a restart: env %v (snapshot's %s), tail %q; want a restore", m["env"], results[0].env, tail)
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
	var mu sync.Mutex
	envs := map[string]int{}
	var wg sync.WaitGroup
	for i := range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			b, _ := json.Marshal(map[string]any{"op": "write", "path": fmt.Sprintf("/tmp/only-%d", i)})
			out, err := s.Lambda.Invoke(ctx, &lambda.InvokeInput{FunctionName: aws.String("snap:1"), Payload: b, LogType: types.LogTypeTail})
			if err != nil {
				t.Errorf("Invoke: %v", err)
				return
			}
			var m map[string]any
			json.Unmarshal(out.Payload, &m)
			if tail := tailOf(t, out); m["ok"] != true || !strings.Contains(tail, "Restore Duration:") {
				t.Errorf("invocation %d: %s, tail %q; want a restored environment writing its /tmp", i, out.Payload, tail)
			}
			env, _ := m["env"].(string)
			mu.Lock()
			envs[env]++
			mu.Unlock()
			time.Sleep(300 * time.Millisecond) // hold it: the other needs its own
		}()
		time.Sleep(50 * time.Millisecond)
	}
	wg.Wait()
	if len(envs) != 1 {
		t.Errorf("environments answered as %v, want the snapshot's identity only", envs)
	}
	if strings.Contains(s.Log(), "restore failed") {
		t.Errorf("a restore failed:\n%s", s.Log())
	}
}
