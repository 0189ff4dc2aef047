package e2e

import (
	"context"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/lambda"
	"github.com/aws/aws-sdk-go-v2/service/lambda/types"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/kappa-run/kappa/internal/imagebuild"
)

// TestExternalExtension runs an image whose /opt/extensions holds the
// lifecycle test extension (testdata/extensions/lifecycle) in a real
// container: Kappa's init starts it beside the runtime, init waits for it,
// each invocation waits for its post-invoke work, and SHUTDOWN reaches it
// when the server stops.
func TestExternalExtension(t *testing.T) {
	s := startServer(t)
	dir := t.TempDir()
	os.MkdirAll(filepath.Join(dir, "var", "task"), 0o755)
	os.MkdirAll(filepath.Join(dir, "opt", "extensions"), 0o755)
	data, err := os.ReadFile(filepath.Join(probeDir, "bootstrap"))
	if err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(dir, "bootstrap"), data, 0o755)
	for _, ext := range []string{"lifecycle", "telemetry"} {
		if out, err := goBuild(filepath.Join(dir, "opt", "extensions", ext), "./testdata/extensions/"+ext, true); err != nil {
			t.Fatalf("build extension %s: %v\n%s", ext, err, out)
		}
	}
	layer, err := imagebuild.DirLayer(dir)
	if err != nil {
		t.Fatal(err)
	}
	img, _ := mutate.AppendLayers(empty.Image, layer)
	cf, _ := img.ConfigFile()
	cf = cf.DeepCopy()
	cf.OS, cf.Architecture = "linux", "amd64"
	cf.Config.Entrypoint = []string{"/bootstrap"}
	img, _ = mutate.ConfigFile(img, cf)
	ref := s.registry() + "/ext:v1"
	r, _ := name.ParseReference(ref)
	if err := remote.Write(r, img); err != nil {
		t.Fatal(err)
	}
	// The extension's post-invoke work is long enough that a caller
	// having the answer before it ends is plain even on a loaded machine.
	const invokeMs = 1000
	s.createFunction(t, "withext", ref, func(in *lambda.CreateFunctionInput) {
		in.Environment = &types.Environment{Variables: map[string]string{
			"KAPPA_TEST_INIT_MS": "300", "KAPPA_TEST_INVOKE_MS": strconv.Itoa(invokeMs), "KAPPA_TEST_RECORD_STDOUT": "1"}}
	})

	out, res := invoke(t, s, "withext", map[string]any{"op": "echo", "text": "x"}, withTail)
	if out.FunctionError != nil || res["text"] != "x" {
		t.Fatalf("invoke = %s", out.Payload)
	}
	tail := tailOf(t, out)
	if !strings.Contains(tail, "[lifecycle] registered") {
		t.Errorf("tail lacks the extension's registration:\n%s", tail)
	}
	if init := reportField(tail, "Init Duration"); init < 300 {
		t.Errorf("Init Duration %.0f ms: init did not wait for the extension's 300 ms\n%s", init, tail)
	}
	if d := reportField(tail, "Duration"); d < invokeMs {
		t.Errorf("REPORT Duration %.0f ms: the invocation did not wait for the extension's %d ms\n%s", d, invokeMs, tail)
	}
	// Warm: the same environment takes the next event after the extension
	// is back in /event/next.
	out2, res2 := invoke(t, s, "withext", map[string]any{"op": "echo", "text": "y"}, withTail)
	if out2.FunctionError != nil || res2["env"] != res["env"] {
		t.Fatalf("second invoke = %s (env %v, want warm %v)", out2.Payload, res2["env"], res["env"])
	}
	if tail2 := tailOf(t, out2); !strings.Contains(tail2, "[lifecycle] event INVOKE") {
		t.Errorf("second tail lacks the extension's INVOKE event:\n%s", tail2)
	}

	// Without a tail the caller has the runtime's answer before the
	// INVOKE extension is done, as in Lambda: what the caller waited is
	// less than the REPORT Duration, which includes the extension's
	// invokeMs. (Synchronously it could only be more.)
	t0 := time.Now()
	_, res3 := invoke(t, s, "withext", map[string]any{"op": "echo", "text": "z"})
	waited := time.Since(t0)
	reqID, _ := res3["requestId"].(string)
	var report string
	s.waitLogs(t, "withext", nil, "the third invocation's REPORT", func(evs []logEvent) bool {
		for _, e := range evs {
			if e.RequestID == reqID && strings.HasPrefix(e.Message, "REPORT") {
				report = e.Message
				return true
			}
		}
		return false
	})
	if d := reportField(report, "Duration"); d < invokeMs || float64(waited.Milliseconds()) >= d {
		t.Errorf("the caller waited %v for an invocation whose REPORT says %q: want the answer before the extension's %d ms end",
			waited, report, invokeMs)
	}

	// Stopping the server sends SHUTDOWN; the telemetry subscriber then
	// prints the types of every event the Telemetry API delivered to it
	// (over its own listener inside the environment's network namespace).
	// Give its batches time to arrive before the stop.
	time.Sleep(time.Second)
	s.stop()
	var logs string
	deadline := time.Now().Add(5 * time.Second)
	for {
		logs = ""
		filepath.Walk(filepath.Join(s.dataDir, "logs"), func(p string, info os.FileInfo, err error) error {
			if err == nil && info.Mode().IsRegular() {
				b, _ := os.ReadFile(p)
				logs += string(b)
			}
			return nil
		})
		if strings.Contains(logs, "telemetry events:") || time.Now().After(deadline) {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	m := regexp.MustCompile(`telemetry events: (\S*)`).FindStringSubmatch(logs)
	if m == nil {
		// The subscriber prints on SHUTDOWN after draining its last batch
		// (≤ 1.5 s); it has the SHUTDOWN deadline and, since the init no
		// longer passes SIGTERM to extensions, the runtime's grace after it.
		t.Fatalf("the telemetry subscriber's record is not in the log after stop:\n%s", logs)
	}
	got := strings.Split(m[1], ",")
	want := []string{"platform.initStart", "platform.initRuntimeDone", "platform.initReport",
		"platform.start", "platform.runtimeDone", "platform.report",
		"platform.start", "platform.runtimeDone", "platform.report",
		"platform.start", "platform.runtimeDone", "platform.report"}
	var platform []string
	for _, typ := range got {
		if strings.HasPrefix(typ, "platform.") && typ != "platform.telemetrySubscription" && typ != "platform.extension" {
			platform = append(platform, typ)
		}
	}
	if strings.Join(platform, ",") != strings.Join(want, ",") {
		t.Errorf("telemetry platform events = %v, want %v (all: %v)", platform, want, got)
	}
	if !strings.Contains(m[1], "function") {
		t.Errorf("telemetry delivered no function log line: %v", got)
	}
	_ = context.Background
	_ = aws.String
}

// reportField reads a "<name>: <ms> ms" field of the REPORT line.
func reportField(tail, field string) float64 {
	re := regexp.MustCompile(`REPORT RequestId: .*\t` + regexp.QuoteMeta(field) + `: ([0-9.]+) ms`)
	m := re.FindStringSubmatch(tail)
	if m == nil {
		re = regexp.MustCompile(`REPORT RequestId: [^\t]*\t` + regexp.QuoteMeta(field) + `: ([0-9.]+) ms`)
		if m = re.FindStringSubmatch(tail); m == nil {
			return -1
		}
	}
	v, _ := strconv.ParseFloat(m[1], 64)
	return v
}
