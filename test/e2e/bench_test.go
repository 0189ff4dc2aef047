package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/lambda"
	"github.com/aws/aws-sdk-go-v2/service/lambda/types"
)

// BenchmarkInvokeLatency measures, in one run, the cold-start and warm-invoke
// latency of a Go no-op function (aws-lambda-go) next to two baselines: a
// raw `crun run` (or `runc run`) of a Go no-op on the same root filesystem,
// and a round trip to a bare Go HTTP echo server. It prints a table and
// reports p50/p99 as metrics. Sample counts are fixed (b.N is ignored):
//
//	go test -run '^$' -bench InvokeLatency -benchtime 1x ./test/e2e/
func BenchmarkInvokeLatency(b *testing.B) {
	if skipReason != "" {
		b.Skip(skipReason)
	}
	const coldN, warmN = 25, 400
	s := startServer(b)
	img := s.pushProbe(b, "bench:v1")
	s.createFunction(b, "bench", img, func(in *lambda.CreateFunctionInput) { in.MemorySize = aws.Int32(1769) })

	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 4}}
	invokeURL := s.URL("/2015-03-31/functions/bench/invocations")
	post := func(url string) time.Duration {
		start := time.Now()
		resp, err := client.Post(url, "application/json", strings.NewReader("{}"))
		if err != nil {
			b.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		d := time.Since(start)
		if resp.StatusCode != 200 || resp.Header.Get("X-Amz-Function-Error") != "" {
			b.Fatalf("invoke: %d %s", resp.StatusCode, resp.Header.Get("X-Amz-Function-Error"))
		}
		return d
	}

	// Cold: change the configuration (not timed) so no warm environment
	// fits, then time the invoke.
	var cold []time.Duration
	for i := range coldN {
		_, err := s.Lambda.UpdateFunctionConfiguration(context.Background(), &lambda.UpdateFunctionConfigurationInput{
			FunctionName: aws.String("bench"),
			Environment:  &types.Environment{Variables: map[string]string{"SAMPLE": fmt.Sprint(i)}},
		})
		if err != nil {
			b.Fatal(err)
		}
		w := lambda.NewFunctionUpdatedV2Waiter(s.Lambda, func(o *lambda.FunctionUpdatedV2WaiterOptions) {
			o.MinDelay, o.MaxDelay = 10*time.Millisecond, 100*time.Millisecond
		})
		if err := w.Wait(context.Background(), &lambda.GetFunctionInput{FunctionName: aws.String("bench")}, time.Minute); err != nil {
			b.Fatal(err)
		}
		time.Sleep(100 * time.Millisecond) // let the retired environment go
		cold = append(cold, post(invokeURL))
	}
	var warm []time.Duration
	for range warmN {
		warm = append(warm, post(invokeURL))
	}

	// Baseline 1: raw OCI runtime run of a Go no-op on the same rootfs.
	runtimeName, rawRun := rawRuntimeRun(b)
	var raw []time.Duration
	for i := range coldN {
		raw = append(raw, rawRun(i))
	}

	// Baseline 2: a bare Go HTTP echo server on loopback.
	echo := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(w, r.Body)
	}))
	defer echo.Close()
	var echoLat []time.Duration
	for range warmN {
		echoLat = append(echoLat, post(echo.URL))
	}

	rows := []struct {
		name       string
		kappa, ref []time.Duration
		refName    string
	}{
		{"cold start", cold, raw, runtimeName + " run (Go no-op)"},
		{"warm invoke", warm, echoLat, "HTTP echo round trip"},
	}
	var out bytes.Buffer
	fmt.Fprintf(&out, "\n%-12s %10s %10s   %-26s %10s %10s %8s\n", "scenario", "kappa p50", "kappa p99", "baseline", "base p50", "base p99", "p50 ratio")
	for _, r := range rows {
		k50, k99 := pct(r.kappa, 50), pct(r.kappa, 99)
		b50, b99 := pct(r.ref, 50), pct(r.ref, 99)
		fmt.Fprintf(&out, "%-12s %10s %10s   %-26s %10s %10s %8.2f\n", r.name, fmtDur(k50), fmtDur(k99), r.refName, fmtDur(b50), fmtDur(b99), float64(k50)/float64(b50))
		key := strings.ReplaceAll(r.name, " ", "-")
		b.ReportMetric(float64(k50.Microseconds()), key+"-p50-µs")
		b.ReportMetric(float64(k99.Microseconds()), key+"-p99-µs")
		b.ReportMetric(float64(b50.Microseconds()), key+"-baseline-p50-µs")
	}
	fmt.Fprintf(&out, "warm overhead over echo (p50): %s\n", fmtDur(pct(warm, 50)-pct(echoLat, 50)))
	fmt.Print(out.String())
}

func pct(d []time.Duration, p int) time.Duration {
	s := slices.Clone(d)
	slices.Sort(s)
	i := (len(s)*p + 99) / 100
	return s[max(0, min(len(s)-1, i-1))]
}

func fmtDur(d time.Duration) string {
	if d < time.Millisecond {
		return fmt.Sprintf("%dµs", d.Microseconds())
	}
	return fmt.Sprintf("%.2fms", float64(d)/float64(time.Millisecond))
}

// rawRuntimeRun prepares a bundle whose rootfs holds the probe and a Go
// no-op, and returns a function timing one `<runtime> run` of the no-op.
func rawRuntimeRun(b *testing.B) (string, func(i int) time.Duration) {
	rt := "crun"
	if _, err := exec.LookPath(rt); err != nil {
		rt = "runc"
	}
	dir := b.TempDir()
	rootfs := filepath.Join(dir, "rootfs")
	for _, d := range []string{"proc", "dev", "sys", "tmp", "var/task"} {
		os.MkdirAll(filepath.Join(rootfs, d), 0o755)
	}
	if out, err := goBuild(filepath.Join(rootfs, "noop"), "./testdata/functions/noop", true); err != nil {
		b.Fatalf("build noop: %v\n%s", err, out)
	}
	data, _ := os.ReadFile(filepath.Join(probeDir, "bootstrap"))
	os.WriteFile(filepath.Join(rootfs, "bootstrap"), data, 0o755)
	bundle := filepath.Join(dir, "bundle")
	os.MkdirAll(bundle, 0o755)
	if out, err := exec.Command(rt, "spec", "--bundle", bundle).CombinedOutput(); err != nil {
		b.Fatalf("%s spec: %v\n%s", rt, err, out)
	}
	var spec map[string]any
	raw, _ := os.ReadFile(filepath.Join(bundle, "config.json"))
	json.Unmarshal(raw, &spec)
	proc := spec["process"].(map[string]any)
	proc["terminal"] = false
	proc["args"] = []string{"/noop"}
	spec["root"] = map[string]any{"path": rootfs, "readonly": true}
	raw, _ = json.Marshal(spec)
	os.WriteFile(filepath.Join(bundle, "config.json"), raw, 0o644)
	root := filepath.Join(dir, "state")
	run := func(i int) time.Duration {
		id := fmt.Sprintf("kappa-bench-%d-%d", os.Getpid(), i)
		start := time.Now()
		out, err := exec.Command(rt, "--root", root, "run", "--bundle", bundle, id).CombinedOutput()
		d := time.Since(start)
		if err != nil {
			b.Fatalf("%s run: %v\n%s", rt, err, out)
		}
		return d
	}
	// One warm-up run, not counted.
	run(-1)
	return rt, run
}
