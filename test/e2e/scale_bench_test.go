package e2e

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"sync"
	"testing"
	"time"
)

// BenchmarkScaleOut measures how a Go function (aws-lambda-go) scales out
// from zero and what a warm steady state sustains, on a server started with
// --max-environments 250:
//
//   - scale-out: 200 invocations sent at once to a function with no
//     environment, each sleeping 1 s so that they overlap and need 200
//     environments; it reports the time until all 200 have answered and the
//     p50/p99 latency of the invocations;
//   - steady state: 32 concurrent clients invoking a no-op for 30 s
//     (KAPPA_BENCH_STEADY, a Go duration, overrides) after a warm-up; it
//     reports invocations per second and p50/p99 latency.
//
// It prints a table and reports the numbers as metrics; b.N is ignored:
//
//	go test -run '^$' -bench ScaleOut -benchtime 1x ./test/e2e/
func BenchmarkScaleOut(b *testing.B) {
	if skipReason != "" {
		b.Skip(skipReason)
	}
	const fanout, sleepMs, steadyClients = 200, 1000, 32
	steadyFor := 30 * time.Second
	if d, err := time.ParseDuration(os.Getenv("KAPPA_BENCH_STEADY")); err == nil && d > 0 {
		steadyFor = d
	}
	var s *server
	b.Cleanup(func() {
		if s != nil {
			os.RemoveAll(s.runDir)
		}
	})
	s = startServer(b, "--max-environments", "250")
	img := s.pushProbe(b, "bench:scale")
	s.createFunction(b, "scale", img)
	s.createFunction(b, "steady", img)

	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: fanout, MaxIdleConns: 2 * fanout}}
	// post invokes fname and returns the latency and the environment that
	// answered.
	post := func(fname, payload string) (time.Duration, string, error) {
		start := time.Now()
		resp, err := client.Post(s.URL("/2015-03-31/functions/"+fname+"/invocations"), "application/json", strings.NewReader(payload))
		if err != nil {
			return 0, "", err
		}
		body, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		d := time.Since(start)
		if err != nil {
			return 0, "", err
		}
		if resp.StatusCode != 200 || resp.Header.Get("X-Amz-Function-Error") != "" {
			return 0, "", fmt.Errorf("HTTP %d %s: %.200s", resp.StatusCode, resp.Header.Get("X-Amz-Function-Error"), body)
		}
		var res struct{ Env string }
		json.Unmarshal(body, &res)
		return d, res.Env, nil
	}

	// Scale-out from zero.
	lat := make([]time.Duration, fanout)
	envOf := make([]string, fanout)
	errs := make([]error, fanout)
	go1 := make(chan struct{})
	var wg sync.WaitGroup
	for i := range fanout {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-go1
			lat[i], envOf[i], errs[i] = post("scale", fmt.Sprintf(`{"op":"sleep","ms":%d}`, sleepMs))
		}()
	}
	start := time.Now()
	close(go1)
	wg.Wait()
	allAnswered := time.Since(start)
	envs := map[string]bool{}
	var ok []time.Duration
	var failures []string
	for i := range fanout {
		if errs[i] != nil {
			failures = append(failures, errs[i].Error())
			continue
		}
		ok = append(ok, lat[i])
		envs[envOf[i]] = true
	}
	if len(ok) == 0 {
		b.Fatalf("no invocation of the scale-out succeeded: %v", failures[0])
	}
	h := s.health(b)

	// Steady state: warm up, then measure.
	steady := func(d time.Duration) (lats []time.Duration, failed int, elapsed time.Duration) {
		var mu sync.Mutex
		deadline := time.Now().Add(d)
		begin := time.Now()
		var wg sync.WaitGroup
		for range steadyClients {
			wg.Add(1)
			go func() {
				defer wg.Done()
				var mine []time.Duration
				bad := 0
				for time.Now().Before(deadline) {
					l, _, err := post("steady", `{"op":"noop"}`)
					if err != nil {
						bad++
						continue
					}
					mine = append(mine, l)
				}
				mu.Lock()
				lats = append(lats, mine...)
				failed += bad
				mu.Unlock()
			}()
		}
		wg.Wait()
		return lats, failed, time.Since(begin)
	}
	steady(2 * time.Second)
	steadyLat, steadyFailed, steadyElapsed := steady(steadyFor)
	if len(steadyLat) == 0 {
		b.Fatal("no steady-state invocation succeeded")
	}
	rate := float64(len(steadyLat)) / steadyElapsed.Seconds()

	var out bytes.Buffer
	fmt.Fprintf(&out, "\nscale-out from zero: %d concurrent invocations (sleep %d ms), --max-environments 250\n", fanout, sleepMs)
	fmt.Fprintf(&out, "  %-34s %s\n", "all answered after", fmtDur(allAnswered))
	fmt.Fprintf(&out, "  %-34s %s / %s\n", "latency p50 / p99", fmtDur(pct(ok, 50)), fmtDur(pct(ok, 99)))
	fmt.Fprintf(&out, "  %-34s %s\n", "overhead over the 1 s sleep, p50", fmtDur(pct(ok, 50)-time.Duration(sleepMs)*time.Millisecond))
	fmt.Fprintf(&out, "  %-34s %d succeeded, %d failed, %d environments\n", "invocations", len(ok), len(failures), len(envs))
	fmt.Fprintf(&out, "  %-34s live %d, idle %d\n", "/healthz afterwards", h.Environments.Live, h.Environments.Idle)
	fmt.Fprintf(&out, "steady state: %d concurrent clients, no-op, %s\n", steadyClients, steadyFor)
	fmt.Fprintf(&out, "  %-34s %.0f\n", "invocations/s", rate)
	fmt.Fprintf(&out, "  %-34s %s / %s\n", "latency p50 / p99", fmtDur(pct(steadyLat, 50)), fmtDur(pct(steadyLat, 99)))
	fmt.Fprintf(&out, "  %-34s %d succeeded, %d failed\n", "invocations", len(steadyLat), steadyFailed)
	if len(failures) > 0 {
		fmt.Fprintf(&out, "first scale-out failure: %s\n", failures[0])
	}
	fmt.Print(out.String())

	b.ReportMetric(allAnswered.Seconds(), "scaleout-all-answered-s")
	b.ReportMetric(float64(pct(ok, 50).Milliseconds()), "scaleout-p50-ms")
	b.ReportMetric(float64(pct(ok, 99).Milliseconds()), "scaleout-p99-ms")
	b.ReportMetric(float64(len(envs)), "scaleout-environments")
	b.ReportMetric(float64(len(failures)), "scaleout-failed")
	b.ReportMetric(rate, "steady-inv/s")
	b.ReportMetric(float64(pct(steadyLat, 50).Microseconds()), "steady-p50-µs")
	b.ReportMetric(float64(pct(steadyLat, 99).Microseconds()), "steady-p99-µs")
}
