package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/lambda"
)

// hostCounts is what one server holds on the host, counted from outside.
type hostCounts struct {
	procs      int // descendants of the server process (zombies included)
	mounts     int // mountinfo entries under its data or run directory
	cgroups    int // cgroup directories under its cgroup parent, all hierarchies
	netns      int // network namespace pins in <run dir>/netns
	containers int // containers in the crun/runc state roots under its run dir
	fds        int // open file descriptors of the server process
	goroutines int // goroutines of the server process (GET /healthz)
}

func (c hostCounts) String() string {
	return fmt.Sprintf("processes %d, mounts %d, cgroups %d, netns pins %d, containers %d, fds %d, goroutines %d",
		c.procs, c.mounts, c.cgroups, c.netns, c.containers, c.fds, c.goroutines)
}

// descendants returns the processes below pid.
func descendants(pid int) []proc {
	children := map[int][]proc{}
	for _, p := range scanProcs() {
		children[p.ppid] = append(children[p.ppid], p)
	}
	var out []proc
	for queue := []int{pid}; len(queue) > 0; queue = queue[1:] {
		for _, c := range children[queue[0]] {
			out = append(out, c)
			queue = append(queue, c.pid)
		}
	}
	return out
}

// count takes the census of a running server.
func (s *server) count(t *testing.T) hostCounts {
	t.Helper()
	var c hostCounts
	pid := s.cmd.Process.Pid
	c.procs = len(descendants(pid))
	for _, m := range mountinfo(t) {
		if under(m.point, s.dataDir) || under(m.point, s.runDir) {
			c.mounts++
		}
	}
	c.cgroups = len(s.cgroupChildren(t))
	pins, _ := os.ReadDir(filepath.Join(s.runDir, "netns"))
	c.netns = len(pins)
	c.containers = len(s.containers(t))
	fds, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
	if err != nil {
		t.Fatal(err)
	}
	c.fds = len(fds)
	c.goroutines = s.health(t).Goroutines
	return c
}

// quiesce waits until the server holds no environment and its connection
// count has settled, and returns its census.
func (s *server) quiesce(t *testing.T, tr *http.Transport) hostCounts {
	t.Helper()
	waitFor(t, 2*time.Minute, "every environment to be reaped", func() bool {
		h := s.health(t)
		return h.Environments.Live == 0 && len(s.containers(t)) == 0 && len(s.cgroupChildren(t)) == 0
	})
	tr.CloseIdleConnections()
	// Let the server notice the closed connections; take the smallest of a
	// few samples so that a request in passing does not count.
	var best hostCounts
	for i := range 5 {
		time.Sleep(200 * time.Millisecond)
		c := s.count(t)
		if i == 0 || c.fds+c.goroutines < best.fds+best.goroutines {
			best = c
		}
	}
	return best
}

func envInt(name string, def int) int {
	if v, err := strconv.Atoi(os.Getenv(name)); err == nil && v > 0 {
		return v
	}
	return def
}

// TestNoLeaks runs many warm invocations and many environment
// create/destroy cycles, then counts what the server holds on the host:
// processes, mounts, cgroups, network namespace pins, containers, file
// descriptors and goroutines must be back where they were after warm-up,
// and nothing of the server may remain once it has stopped.
//
// KAPPA_LEAK_INVOKES (default 10000) and KAPPA_LEAK_CYCLES (default 1000)
// set the counts; -short divides the defaults by ten.
func TestNoLeaks(t *testing.T) {
	invokes, cycles := 10000, 1000
	if testing.Short() {
		invokes, cycles = 1000, 100
	}
	invokes, cycles = envInt("KAPPA_LEAK_INVOKES", invokes), envInt("KAPPA_LEAK_CYCLES", cycles)
	const (
		concurrency = 8
		// Cycles invoke a ring of functions, in order, from two goroutines
		// taking turns. The ring holds one function per environment the
		// server may keep plus one per goroutine: by the time a function
		// comes round again its environment was the least recently used
		// and has been evicted, so every invocation creates one environment
		// and destroys another.
		workers  = 2
		maxEnvs  = 16
		ringSize = maxEnvs + workers
	)
	// --spares 0 --netns-pool 0: the counts compare environments of
	// invocations; the spare and namespace pools are bounded on their own
	// (they refill toward their size) and checked by the stop cleanup.
	s := newServer(t, "--max-environments", strconv.Itoa(maxEnvs), "--idle-timeout", "2s", "--spares", "0", "--netns-pool", "0")
	img := s.pushProbe(t, "probe:leak")
	s.createFunction(t, "leak-warm", img)
	var ring []string
	for i := range ringSize {
		name := fmt.Sprintf("leak-c%02d", i)
		s.createFunction(t, name, img)
		ring = append(ring, name)
	}

	tr := &http.Transport{MaxIdleConnsPerHost: 2 * concurrency}
	client := lambda.New(lambda.Options{
		Region:       "us-east-1",
		Credentials:  credentials.NewStaticCredentialsProvider("AKIDEXAMPLE", "secret", ""),
		BaseEndpoint: aws.String("http://" + s.addr),
		Retryer:      aws.NopRetryer{},
		HTTPClient:   &http.Client{Transport: tr},
	})
	noop := []byte(`{"op":"noop"}`)
	call := func(fname string) (string, error) {
		out, err := client.Invoke(context.Background(), &lambda.InvokeInput{FunctionName: aws.String(fname), Payload: noop})
		if err != nil {
			return "", err
		}
		if out.StatusCode != 200 || out.FunctionError != nil {
			return "", fmt.Errorf("HTTP %d, function error %q: %s", out.StatusCode, aws.ToString(out.FunctionError), out.Payload)
		}
		var res struct{ Env string }
		if err := json.Unmarshal(out.Payload, &res); err != nil || res.Env == "" {
			return "", fmt.Errorf("unexpected payload %s", out.Payload)
		}
		return res.Env, nil
	}

	// warm invokes n times from concurrency goroutines and returns the
	// environments used.
	warm := func(n int) (map[string]bool, error) {
		var next atomic.Int64
		var mu sync.Mutex
		envs := map[string]bool{}
		var firstErr error
		var wg sync.WaitGroup
		for range concurrency {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for next.Add(1) <= int64(n) {
					env, err := call("leak-warm")
					mu.Lock()
					if err != nil && firstErr == nil {
						firstErr = err
					}
					envs[env] = true
					mu.Unlock()
					if err != nil {
						return
					}
				}
			}()
		}
		wg.Wait()
		return envs, firstErr
	}
	// cycle invokes the rings until n distinct environments have been
	// created (each then destroyed by eviction or reaping).
	cycle := func(n int) (int, error) {
		var mu sync.Mutex
		envs := map[string]bool{}
		calls := 0
		var firstErr error
		var next atomic.Int64
		var wg sync.WaitGroup
		for range workers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for {
					mu.Lock()
					stop := len(envs) >= n || firstErr != nil
					mu.Unlock()
					if stop {
						return
					}
					env, err := call(ring[int(next.Add(1)-1)%ringSize])
					mu.Lock()
					calls++
					if err != nil && firstErr == nil {
						firstErr = err
					}
					envs[env] = true
					mu.Unlock()
				}
			}()
		}
		wg.Wait()
		return calls, firstErr
	}

	// Warm-up: every code path once, then back to no environment.
	if _, err := warm(200); err != nil {
		t.Fatalf("warm-up: %v", err)
	}
	if _, err := cycle(2 * ringSize); err != nil {
		t.Fatalf("warm-up cycles: %v", err)
	}
	before := s.quiesce(t, tr)
	t.Logf("after warm-up: %v", before)

	start := time.Now()
	envs, err := warm(invokes)
	if err != nil {
		t.Fatalf("warm invocations: %v", err)
	}
	t.Logf("%d warm invocations (concurrency %d) in %d environments took %s", invokes, concurrency, len(envs), time.Since(start).Round(time.Millisecond))
	during := s.count(t)
	t.Logf("while warm: %v", during)

	start = time.Now()
	calls, err := cycle(cycles)
	if err != nil {
		t.Fatalf("create/destroy cycles: %v", err)
	}
	t.Logf("%d environments created and destroyed in %d invocations took %s", cycles, calls, time.Since(start).Round(time.Millisecond))
	if calls > cycles+cycles/5+2*workers {
		t.Errorf("%d invocations for %d new environments: the rings did not evict as expected", calls, cycles)
	}

	after := s.quiesce(t, tr)
	t.Logf("after the load: %v", after)
	exact := []struct {
		name          string
		before, after int
	}{
		{"processes", before.procs, after.procs},
		{"mounts", before.mounts, after.mounts},
		{"cgroups", before.cgroups, after.cgroups},
		{"netns pins", before.netns, after.netns},
		{"containers", before.containers, after.containers},
	}
	for _, c := range exact {
		if c.after != c.before {
			t.Errorf("%s: %d after warm-up, %d after the load", c.name, c.before, c.after)
		}
	}
	// A few descriptors and goroutines come and go with connections and
	// timers; growth with the number of invocations or environments is a
	// leak.
	const fdSlack, goroutineSlack = 8, 16
	if after.fds > before.fds+fdSlack {
		t.Errorf("file descriptors of the server: %d after warm-up, %d after the load", before.fds, after.fds)
	}
	if after.goroutines > before.goroutines+goroutineSlack {
		t.Errorf("goroutines of the server: %d after warm-up, %d after the load", before.goroutines, after.goroutines)
	}
	if t.Failed() {
		fds, _ := os.ReadDir(fmt.Sprintf("/proc/%d/fd", s.cmd.Process.Pid))
		var targets []string
		for _, fd := range fds {
			l, _ := os.Readlink(fmt.Sprintf("/proc/%d/fd/%s", s.cmd.Process.Pid, fd.Name()))
			targets = append(targets, l)
		}
		t.Logf("server fds: %s", strings.Join(targets, " "))
	}

	// Start one environment so the stop has something to clean up, then
	// stop and look for anything left.
	if _, err := call("leak-warm"); err != nil {
		t.Fatal(err)
	}
	cgroups := s.sandboxCgroups()
	s.stop()
	s.assertNoLeftovers(t, cgroups)
	for _, p := range scanProcs() {
		for _, cg := range p.cgroups {
			if under(cg, "/"+s.cgroupParent()) {
				t.Errorf("process %d %q left in cgroup %s", p.pid, p.cmdline, cg)
			}
		}
	}
	if cg := s.cgroupChildren(t); len(cg) > 0 {
		t.Errorf("cgroups left under %s: %v", s.cgroupParent(), cg)
	}
}
