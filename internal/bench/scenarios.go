package bench

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

const noop = `{"op":"noop"}`

// deploy pushes the root filesystem and creates fn from it.
func (r *run) deploy(ctx context.Context, fn string, memoryMB int32) error {
	ref, err := r.srv.push(r.rootfs, "bench/"+fn+":v1")
	if err != nil {
		return err
	}
	return r.srv.createFunction(ctx, fn, ref, memoryMB)
}

// cold measures cold starts three ways, next to `<runtime> run` (and
// `podman run`) of the same root filesystem:
//
//   - recent version: the function ran recently, but its only environment
//     is gone (the previous, untimed, invocation made the runtime exit);
//     this is the cold start of a function in use.
//   - after an update: every sample follows a configuration change of a
//     function in use, so no environment of the old configuration fits.
//   - first invocation: of a function deployed a moment before and never
//     invoked (the server makes a spare at deploy time; with
//     --server-arg=--spares=0 nothing is prepared but the root filesystem).
func (r *run) cold(ctx context.Context) error {
	const fn = "bench-cold"
	n := r.opts.ColdSamples
	r.progress("cold start: %d samples per variant", n)
	ref, err := r.srv.push(r.rootfs, "bench/cold:v1")
	if err != nil {
		return err
	}
	if err := r.srv.createFunction(ctx, fn, ref, 1769); err != nil {
		return err
	}
	if _, err := r.srv.invoke(ctx, fn, noop); err != nil {
		return err
	}
	// The recent-version samples alternate with the baselines' (`<runtime>
	// run` and the Runtime API floor), so that all three see the same
	// machine: its speed drifts over minutes.
	r.progress("cold start: recent version, %s run and the Runtime API floor, alternating", r.raw.name)
	if _, err := r.raw.run(ctx); err != nil { // warm-up, not counted
		return err
	}
	rl, err := startRelay(r.opts.Kappa, r.opts.Probe, RelayOptions{Cold: true})
	if err != nil {
		return err
	}
	defer rl.stop()
	var recent, raw, floorD []time.Duration
	prev, seen := "", map[string]bool{}
	if _, err := r.floorSample(ctx, rl, seen); err != nil { // warms the relay up
		return err
	}
	stopProfile := r.startProfile(ctx, "cold-recent.pprof", time.Duration(n)*900*time.Millisecond)
	for i := range n {
		for _, t := range rotate(3, i) {
			var d time.Duration
			var err error
			switch t {
			case 0:
				if d, err = r.coldSample(ctx, fn, &prev, false); err == nil {
					recent = append(recent, d)
				}
			case 1:
				// The same pause as before the others' samples: a spare
				// the server builds after a cold start is not timed here.
				time.Sleep(250 * time.Millisecond)
				if d, err = r.raw.run(ctx); err == nil {
					raw = append(raw, d)
				}
			case 2:
				if d, err = r.floorSample(ctx, rl, seen); err == nil {
					floorD = append(floorD, d)
				}
			}
			if err != nil {
				stopProfile()
				return err
			}
		}
	}
	stopProfile()
	floor := durations(floorD)

	stopProfile = r.startProfile(ctx, "cold-update.pprof", time.Duration(n)*400*time.Millisecond)
	var fresh []time.Duration
	for i := range n {
		if err := r.srv.reconfigure(ctx, fn, fmt.Sprint(i)); err != nil {
			return err
		}
		time.Sleep(100 * time.Millisecond) // let the retired environment go
		start := time.Now()
		if _, err := r.srv.invoke(ctx, fn, noop); err != nil {
			return err
		}
		fresh = append(fresh, time.Since(start))
	}
	stopProfile()

	firstN := min(n, 20)
	r.progress("cold start: %d functions deployed and invoked", firstN)
	stopProfile = r.startProfile(ctx, "cold-first.pprof", time.Duration(firstN)*300*time.Millisecond)
	var first []time.Duration
	for i := range firstN {
		// Deployed (Active), then invoked a moment later, as a user
		// would: the server may prepare what it can in between.
		if err := r.srv.createFunction(ctx, fmt.Sprintf("bench-first-%d", i), ref, 1769); err != nil {
			return err
		}
		time.Sleep(100 * time.Millisecond)
		start := time.Now()
		if _, err := r.srv.invoke(ctx, fmt.Sprintf("bench-first-%d", i), noop); err != nil {
			return err
		}
		first = append(first, time.Since(start))
	}
	stopProfile()

	rawName := r.raw.name + " run (Go no-op)"
	r.report.Rows = append(r.report.Rows,
		Row{Scenario: "cold start, recent version", Unit: Duration, Kappa: durations(recent), Baseline: rawName, Base: durations(raw),
			Target: "≤10ms p50, ≤25ms p99"},
		Row{Scenario: "cold start, after an update", Unit: Duration, Kappa: durations(fresh), Baseline: rawName, Base: durations(raw)},
		Row{Scenario: "cold start, first invocation", Unit: Duration, Kappa: durations(first), Baseline: rawName, Base: durations(raw)},
		Row{Scenario: "cold start, vs the floor", Unit: Duration, Kappa: durations(recent), Baseline: "Runtime API floor, cold", Base: floor,
			Note: "the floor starts a process of the same runtime on the host, with no isolation, for each invocation"},
	)
	p, err := newPodman(ctx, r.work, r.rootfs)
	if err != nil {
		r.progress("cold start: no podman baseline: %v", err)
		return nil
	}
	defer p.close()
	r.progress("cold start: baseline podman run")
	if _, err := p.run(ctx); err != nil {
		r.progress("cold start: no podman baseline: %v", err)
		return nil
	}
	var pod []time.Duration
	for range min(n, 20) {
		d, err := p.run(ctx)
		if err != nil {
			return err
		}
		pod = append(pod, d)
	}
	r.report.Rows = append(r.report.Rows, Row{Scenario: "cold start, recent version", Unit: Duration, Kappa: durations(recent),
		Baseline: "podman run (Go no-op)", Base: durations(pod), Target: "≤1/20 of podman"})
	return nil
}

// afterExit measures n cold starts of fn (see coldSample).
func (r *run) afterExit(ctx context.Context, fn string, n int, sameEnv bool) ([]time.Duration, error) {
	var out []time.Duration
	prev := ""
	for range n {
		d, err := r.coldSample(ctx, fn, &prev, sameEnv)
		if err != nil {
			return nil, err
		}
		out = append(out, d)
	}
	return out, nil
}

// coldSample measures one cold start of fn, following an invocation that
// made the runtime exit (its environment is discarded), as a function in
// use sees one. A sample answered by the environment of the one before
// (*prev) is an error, unless sameEnv allows it (environments restored
// from one snapshot all report the identity drawn at its init).
func (r *run) coldSample(ctx context.Context, fn string, prev *string, sameEnv bool) (time.Duration, error) {
	// Untimed: the runtime exits mid-invocation, so the environment is
	// discarded. Then give background work a moment, as real traffic
	// would.
	if _, err := r.srv.invoke(ctx, fn, `{"op":"exit"}`); !errors.Is(err, errFunction) {
		return 0, fmt.Errorf("reset invocation: want a function error, got %v", err)
	}
	time.Sleep(250 * time.Millisecond)
	start := time.Now()
	body, err := r.srv.invoke(ctx, fn, noop)
	if err != nil {
		return 0, err
	}
	d := time.Since(start)
	env := envOf(body)
	if env == *prev && !sameEnv {
		return 0, fmt.Errorf("cold sample ran in the previous environment %s", env)
	}
	*prev = env
	return d, nil
}

// floorSample measures one cold start of the Runtime API floor rl (run
// with Cold): the invocation starts the probe as a plain host process and
// relays the event to it. The sample must come from a process of its own
// (seen records them).
func (r *run) floorSample(ctx context.Context, rl *childServer, seen map[string]bool) (time.Duration, error) {
	// The same pause as before each of Kappa's samples (see coldSample):
	// an idle machine, caches gone cold alike.
	time.Sleep(250 * time.Millisecond)
	start := time.Now()
	body, err := postBody(ctx, r.srv.client, rl.url("/invoke"), noop)
	if err != nil {
		return 0, err
	}
	d := time.Since(start)
	env := envOf(body)
	if env == "" || seen[env] {
		return 0, fmt.Errorf("floor cold start ran in runtime %q, not a new one", env)
	}
	seen[env] = true
	return d, nil
}

// startProfile takes CPU profiles of the server, in slices of two seconds
// (ProfileDir/name.0, .1, ...), until the returned func is called; that
// waits for the slice in flight, since pprof writes nothing for a profile
// cut short. d bounds the total in case stop is never reached.
func (r *run) startProfile(ctx context.Context, name string, d time.Duration) func() {
	if r.opts.ProfileDir == "" {
		return func() {}
	}
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := 0; d > 0; i++ {
			select {
			case <-stop:
				return
			default:
			}
			path := filepath.Join(r.opts.ProfileDir, fmt.Sprintf("%s.%d", name, i))
			if err := r.srv.profile(ctx, 2*time.Second, path); err != nil {
				r.progress("profile %s: %v", name, err)
				return
			}
			d -= 2 * time.Second
		}
	}()
	return func() {
		close(stop)
		<-done
	}
}

// rounds is how many times the warm and throughput scenarios alternate
// between Kappa and its baselines. This VM's speed drifts by a third over
// minutes; interleaved, every target sees the same drift.
const rounds = 5

// rotate returns the order of n targets in round i: each goes first in
// turn, so that none always follows the same one.
func rotate(n, i int) []int {
	order := make([]int, n)
	for j := range order {
		order[j] = (i + j) % n
	}
	return order
}

// warm measures sequential invocations of a warm environment next to a
// round trip to the bare echo server and an invocation through the
// Runtime API floor, with the same client, alternating between the three
// in rounds.
func (r *run) warm(ctx context.Context) error {
	const fn = "bench-warm"
	n := r.opts.WarmSamples
	r.progress("warm invoke: %d samples, in %d rounds", n, rounds)
	if err := r.deploy(ctx, fn, 1769); err != nil {
		return err
	}
	rl, err := startRelay(r.opts.Kappa, r.opts.Probe, RelayOptions{Runtimes: 1})
	if err != nil {
		return err
	}
	defer rl.stop()
	targets := []func() error{
		func() error { _, err := r.srv.invoke(ctx, fn, noop); return err },
		func() error { return post(ctx, r.srv.client, r.echo.url("/"), noop) },
		func() error { return post(ctx, r.srv.client, rl.url("/invoke"), noop) },
	}
	samples := make([][]time.Duration, len(targets))
	for _, f := range targets {
		for range 20 { // warm-up, not counted
			if err := f(); err != nil {
				return err
			}
		}
	}
	per := max(1, n/rounds)
	for i := range rounds {
		for _, t := range rotate(len(targets), i) {
			for range per {
				start := time.Now()
				if err := targets[t](); err != nil {
					return err
				}
				samples[t] = append(samples[t], time.Since(start))
			}
		}
	}
	kappa, echo, relayed := samples[0], samples[1], samples[2]
	k, b, floor := durations(kappa), durations(echo), durations(relayed)
	added := func(x, y Stat) string {
		return "p50 " + format(Duration, x.P50-y.P50) + ", p99 " + format(Duration, x.P99-y.P99)
	}
	r.report.Rows = append(r.report.Rows,
		Row{Scenario: "warm invoke", Unit: Duration, Kappa: k,
			Baseline: "HTTP echo round trip", Base: b, Target: "≤250µs added p50",
			Note: "added latency over the echo round trip: " + added(k, b)},
		Row{Scenario: "warm invoke, vs the floor", Unit: Duration, Kappa: k,
			Baseline: "Runtime API floor", Base: floor,
			Note: "the floor's own latency over the echo round trip: " + added(floor, b) + "; Kappa's over the floor: " + added(k, floor)})
	return nil
}

func post(ctx context.Context, c *http.Client, url, body string) error {
	req, err := http.NewRequestWithContext(ctx, "POST", url, strings.NewReader(body))
	if err != nil {
		return err
	}
	resp, err := c.Do(req)
	if err != nil {
		return err
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 {
		return fmt.Errorf("POST %s: HTTP %d", url, resp.StatusCode)
	}
	return nil
}

// postBody is post returning the response's body.
func postBody(ctx context.Context, c *http.Client, url, body string) ([]byte, error) {
	req, err := http.NewRequestWithContext(ctx, "POST", url, strings.NewReader(body))
	if err != nil {
		return nil, err
	}
	resp, err := c.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err == nil && resp.StatusCode != 200 {
		err = fmt.Errorf("POST %s: HTTP %d: %.200s", url, resp.StatusCode, b)
	}
	return b, err
}

// throughput runs Concurrency clients invoking a no-op for ThroughputTime,
// and the same clients for as long against the echo server and against the
// Runtime API floor, alternating between the three in rounds.
func (r *run) throughput(ctx context.Context) error {
	const fn = "bench-throughput"
	c := r.opts.Concurrency
	r.progress("throughput: %d clients for %s each, in %d rounds", c, r.opts.ThroughputTime, rounds)
	if err := r.deploy(ctx, fn, 1769); err != nil {
		return err
	}
	// The Runtime API floor, with as many runtimes as clients: what the
	// protocol and this runtime cost on this host, with no server work
	// around them.
	rl, err := startRelay(r.opts.Kappa, r.opts.Probe, RelayOptions{Runtimes: c})
	if err != nil {
		return err
	}
	defer rl.stop()
	type target struct {
		call func() error
		cpu  func() cpuSample
		n    float64
		span time.Duration
		lat  []time.Duration
		used cpuSample
	}
	ts := []*target{
		{call: func() error { _, err := r.srv.invoke(ctx, fn, noop); return err }, cpu: r.cpuNow},
		{call: func() error { return post(ctx, r.srv.client, r.echo.url("/"), noop) }, cpu: func() cpuSample { return cpuOf(r.echo.pid()) }},
		{call: func() error { return post(ctx, r.srv.client, rl.url("/invoke"), noop) }, cpu: func() cpuSample { return cpuOf(rl.pid()) }},
	}
	// Start the environments first: throughput is a warm measure.
	for _, t := range ts {
		for range 3 {
			if _, err := burst(ctx, c, t.call); err != nil {
				return err
			}
		}
	}
	if r.opts.ProfileDir != "" {
		// Profiled apart, before the measured rounds, which a profile
		// would slow.
		stopProfile := r.startProfile(ctx, "throughput.pprof", r.opts.ThroughputTime)
		_, _, err := load(ctx, c, r.opts.ThroughputTime, ts[0].call)
		stopProfile()
		if err != nil {
			return err
		}
	}
	seg := r.opts.ThroughputTime / rounds
	for i := range rounds {
		for _, j := range rotate(len(ts), i) {
			t := ts[j]
			before, start := t.cpu(), time.Now()
			_, lat, err := load(ctx, c, seg, t.call)
			t.span += time.Since(start)
			t.used = t.used.add(t.cpu().sub(before))
			if err != nil {
				return err
			}
			t.n += float64(len(lat))
			t.lat = append(t.lat, lat...)
		}
	}
	kRate, bRate, fRate := ts[0].n/ts[0].span.Seconds(), ts[1].n/ts[1].span.Seconds(), ts[2].n/ts[2].span.Seconds()
	kLat, bLat := ts[0].lat, ts[1].lat
	kCPU, bCPU, fCPU := ts[0].used, ts[1].used, ts[2].used
	k, b := durations(kLat), durations(bLat)
	kN, bN, fN := ts[0].n, ts[1].n, ts[2].n
	per := func(d time.Duration, n float64) Stat {
		v := float64(d) / max(n, 1)
		return Stat{P50: v, P99: v, N: 1}
	}
	rate := func(v float64) Stat { return Stat{P50: v, P99: v, N: 1} }
	r.report.Rows = append(r.report.Rows,
		Row{Scenario: fmt.Sprintf("throughput, c=%d", c), Unit: PerSecond, Kappa: rate(kRate),
			Baseline: "HTTP echo", Base: rate(bRate), Target: "≥10,000/s"},
		Row{Scenario: fmt.Sprintf("throughput, c=%d, vs the floor", c), Unit: PerSecond, Kappa: rate(kRate),
			Baseline: "Runtime API floor", Base: rate(fRate)},
		Row{Scenario: fmt.Sprintf("latency under load, c=%d", c), Unit: Duration, Kappa: k, Baseline: "HTTP echo", Base: b},
		// Where the CPU of one invocation goes; the machine has
		// NumCPU seconds of it per second, which bounds the rate.
		Row{Scenario: "CPU per invocation: server", Unit: Duration, Kappa: per(kCPU.server, kN),
			Baseline: "echo server and its client", Base: per(bCPU.server+bCPU.self, bN)},
		Row{Scenario: "CPU per invocation: server, vs the floor", Unit: Duration, Kappa: per(kCPU.server, kN),
			Baseline: "the floor's relay", Base: per(fCPU.server, fN)},
		Row{Scenario: "CPU per invocation: function runtimes", Unit: Duration, Kappa: per(kCPU.envs, kN),
			Baseline: "the same under the floor", Base: per(fCPU.envs, fN)},
		Row{Scenario: "CPU per invocation: load client", Unit: Duration, Kappa: per(kCPU.self, kN),
			Baseline: "the same under the floor", Base: per(fCPU.self, fN)},
	)
	return nil
}

// cpuSample is the CPU time used so far by the server, by its
// environments' processes and by this process (the load client).
type cpuSample struct{ server, envs, self time.Duration }

func (a cpuSample) sub(b cpuSample) cpuSample {
	return cpuSample{a.server - b.server, a.envs - b.envs, a.self - b.self}
}

func (a cpuSample) add(b cpuSample) cpuSample {
	return cpuSample{a.server + b.server, a.envs + b.envs, a.self + b.self}
}

func (r *run) cpuNow() cpuSample { return cpuOf(r.srv.pid()) }

// cpuOf samples the CPU time of the server process pid, of its direct
// children, and of this process.
func cpuOf(pid int) cpuSample {
	var s cpuSample
	_, s.server, _ = procStat(pid)
	s.envs, _ = childrenCPU(pid)
	_, s.self, _ = procStat(os.Getpid())
	return s
}

// burst runs f n times at once and returns how long until the last ended.
func burst(ctx context.Context, n int, f func() error) (time.Duration, error) {
	var wg sync.WaitGroup
	errs := make(chan error, n)
	gate := make(chan struct{})
	for range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-gate
			if err := f(); err != nil {
				errs <- err
			}
		}()
	}
	start := time.Now()
	close(gate)
	wg.Wait()
	d := time.Since(start)
	close(errs)
	return d, <-errs
}

// load runs c workers calling f for d and returns the rate and latencies.
func load(ctx context.Context, c int, d time.Duration, f func() error) (float64, []time.Duration, error) {
	var (
		mu    sync.Mutex
		lat   []time.Duration
		count atomic.Int64
		first error
	)
	stop := time.Now().Add(d)
	var wg sync.WaitGroup
	start := time.Now()
	for range c {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var mine []time.Duration
			for time.Now().Before(stop) && ctx.Err() == nil {
				t := time.Now()
				if err := f(); err != nil {
					mu.Lock()
					if first == nil {
						first = err
					}
					mu.Unlock()
					return
				}
				mine = append(mine, time.Since(t))
				count.Add(1)
			}
			mu.Lock()
			lat = append(lat, mine...)
			mu.Unlock()
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)
	return float64(count.Load()) / elapsed.Seconds(), lat, first
}

// scale starts ScaleOut environments at once from none, ScaleRounds
// times, next to as many concurrent `<runtime> run`s of the no-op.
func (r *run) scale(ctx context.Context) error {
	const fn = "bench-scale"
	n := r.opts.ScaleOut
	r.progress("scale-out: 0 to %d environments, %d rounds", n, r.opts.ScaleRounds)
	if err := r.deploy(ctx, fn, 128); err != nil {
		return err
	}
	var kappa, base []time.Duration
	var note []string
	for round := range r.opts.ScaleRounds {
		if err := r.retire(ctx, fn, fmt.Sprint("round-", round)); err != nil {
			return err
		}
		var mu sync.Mutex
		envs := map[string]bool{}
		stopProfile := r.startProfile(ctx, fmt.Sprintf("scale-%d.pprof", round), 4*time.Second)
		d, err := burst(ctx, n, func() error {
			body, err := r.srv.invoke(ctx, fn, noop)
			mu.Lock()
			envs[envOf(body)] = true
			mu.Unlock()
			return err
		})
		stopProfile()
		if err != nil {
			return err
		}
		kappa = append(kappa, d)
		note = append(note, fmt.Sprint(len(envs)))
		d, err = burst(ctx, n, func() error { _, err := r.raw.run(ctx); return err })
		if err != nil {
			return err
		}
		base = append(base, d)
	}
	if err := r.retire(ctx, fn, "done"); err != nil {
		return err
	}
	r.report.Rows = append(r.report.Rows, Row{Scenario: fmt.Sprintf("scale-out 0→%d", n), Unit: Duration,
		Kappa: durations(kappa), Baseline: fmt.Sprintf("%d × %s run at once", n, r.raw.name), Base: durations(base),
		Target: "≤2s", Note: "distinct environments that answered per round: " + strings.Join(note, ", ")})
	return nil
}

// retire changes fn's configuration, which destroys its idle
// environments, and waits until the server's live count stops falling.
func (r *run) retire(ctx context.Context, fn, sample string) error {
	if err := r.srv.reconfigure(ctx, fn, sample); err != nil {
		return err
	}
	prev := -1
	for range 600 {
		live, _, err := r.srv.health(ctx)
		if err != nil {
			return err
		}
		if live == prev {
			return nil
		}
		prev = live
		time.Sleep(200 * time.Millisecond)
	}
	return nil
}

// density measures what idle environments cost the server, on a server
// of its own so that earlier scenarios' garbage does not blur it: the
// growth of the server's resident memory per environment between Density/2
// and Density idle environments (function processes are not the server's
// and not counted), and the CPU the server and the function processes use
// while they idle. The baseline is the echo server holding as many idle
// long-poll requests.
func (r *run) density(ctx context.Context) error {
	const fn = "bench-density"
	n := r.opts.Density
	r.progress("density: %d idle environments, on a fresh server", n)
	srv, err := startServer(ctx, r.opts.Kappa, filepath.Join(r.work, "density"), r.opts.ServerLog, r.serverArgs...)
	if err != nil {
		return err
	}
	defer srv.stop()
	ref, err := srv.push(r.rootfs, "bench/density:v1")
	if err != nil {
		return err
	}
	if err := srv.createFunction(ctx, fn, ref, 128); err != nil {
		return err
	}
	pid := srv.pid()
	// sample brings the function to want idle environments (invocations
	// that sleep overlap, so each needs its own: the sleep outlasts making
	// them all, ~15 ms each on 2 cores, within the 30 s timeout) and
	// returns how many there are and the server's RSS.
	sleep := fmt.Sprintf(`{"op":"sleep","ms":%d}`, min(max(1000, 15*n), 25000))
	sample := func(want int) (envs int, mem uint64, err error) {
		if _, err := burst(ctx, want, func() error { _, err := srv.invoke(ctx, fn, sleep); return err }); err != nil {
			return 0, 0, err
		}
		time.Sleep(2 * time.Second)
		srv.gc(ctx)
		if envs, _, err = srv.health(ctx); err != nil {
			return 0, 0, err
		}
		mem, err = rss(pid)
		return envs, mem, err
	}
	envs0, mem0, err := sample(1)
	if err != nil {
		return err
	}
	envs1, mem1, err := sample(n / 2)
	if err != nil {
		return err
	}
	envs2, mem2, err := sample(n)
	if err != nil {
		return err
	}
	if envs2 <= envs1 {
		return fmt.Errorf("density: %d environments after the second burst, %d after the first", envs2, envs1)
	}
	perEnv := (float64(mem2) - float64(mem1)) / float64(envs2-envs1)
	srvCPU, envCPU, nChildren := idleCPU(pid, r.opts.IdleWindow)

	// Baseline: the echo server holding as many idle long polls.
	epid := r.echo.cmd.Process.Pid
	tr := &http.Transport{MaxConnsPerHost: 0, MaxIdleConnsPerHost: n}
	defer tr.CloseIdleConnections()
	pctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	hold := func(k int) {
		for range k {
			wg.Add(1)
			go func() {
				defer wg.Done()
				req, _ := http.NewRequestWithContext(pctx, "GET", r.echo.url("/wait"), nil)
				if resp, err := tr.RoundTrip(req); err == nil {
					resp.Body.Close()
				}
			}()
		}
		time.Sleep(2 * time.Second)
	}
	hold(n / 2)
	e1, _ := rss(epid)
	hold(n - n/2)
	e2, _ := rss(epid)
	echoCPU, _, _ := idleCPU(epid, r.opts.IdleWindow)
	cancel()
	wg.Wait()
	perConn := (float64(e2) - float64(e1)) / float64(n-n/2)

	r.report.Rows = append(r.report.Rows,
		Row{Scenario: fmt.Sprintf("density: server RSS per idle env (%d)", envs2), Unit: Bytes,
			Kappa: Stat{P50: perEnv, P99: perEnv, N: 1}, Baseline: "bare Go server, per idle long poll",
			Base: Stat{P50: perConn, P99: perConn, N: 1}, Target: "≤1MB",
			Note: fmt.Sprintf("server RSS %s (%d env) → %s (%d) → %s (%d); per environment between the last two; function processes excluded",
				format(Bytes, float64(mem0)), envs0, format(Bytes, float64(mem1)), envs1, format(Bytes, float64(mem2)), envs2)},
		Row{Scenario: fmt.Sprintf("idle CPU, server (%d envs)", envs2), Unit: Percent,
			Kappa: Stat{P50: srvCPU, P99: srvCPU, N: 1}, Baseline: "bare Go server, idle polls",
			Base: Stat{P50: echoCPU, P99: echoCPU, N: 1}, Target: "~0"},
		Row{Scenario: fmt.Sprintf("idle CPU, %d function processes", nChildren), Unit: Percent,
			Kappa: Stat{P50: envCPU, P99: envCPU, N: 1}, Baseline: "-"},
	)
	return nil
}

// idleCPU samples, over window, the CPU use of pid and of its children in
// percent of one CPU.
func idleCPU(pid int, window time.Duration) (self, children float64, n int) {
	_, s0, _ := procStat(pid)
	c0, _ := childrenCPU(pid)
	start := time.Now()
	time.Sleep(window)
	_, s1, _ := procStat(pid)
	c1, n := childrenCPU(pid)
	el := time.Since(start).Seconds()
	return 100 * (s1 - s0).Seconds() / el, 100 * (c1 - c0).Seconds() / el, n
}
