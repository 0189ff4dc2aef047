package invoker

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/kappa-run/kappa/internal/function"
	"github.com/kappa-run/kappa/internal/sandbox"
)

// recordingRuntime numbers the sandboxes a fakeRuntime creates, so a test
// can tell a sandbox created ahead (a spare) from one created on demand.
type recordingRuntime struct {
	*fakeRuntime
	mu    sync.Mutex
	seq   int
	order map[string]int // sandbox id → creation number
}

func (r *recordingRuntime) Create(ctx context.Context, spec sandbox.Spec) (sandbox.Sandbox, error) {
	sb, err := r.fakeRuntime.Create(ctx, spec)
	if err == nil {
		r.mu.Lock()
		r.seq++
		r.order[spec.ID] = r.seq
		r.mu.Unlock()
	}
	return sb, err
}

func (r *recordingRuntime) created() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.seq
}

func (r *recordingRuntime) number(id string) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.order[id]
}

func newSpareInvoker(t *testing.T, mutate ...func(*Options)) (*Invoker, *recordingRuntime, *fakeImages) {
	t.Helper()
	rt := &recordingRuntime{fakeRuntime: newFakeRuntime(), order: map[string]int{}}
	imgs := &fakeImages{}
	opts := Options{Runtime: rt, Images: imgs, Region: "us-east-1", Account: "000000000000", MaxEnvironments: 32,
		InitTimeout: 2 * time.Second, Spares: SpareOptions{Max: 16, IdleTimeout: time.Hour}}
	for _, m := range mutate {
		m(&opts)
	}
	inv := New(opts)
	t.Cleanup(func() {
		inv.Close(context.Background())
		if n := rt.count(); n != 0 {
			t.Errorf("%d sandboxes left after Close", n)
		}
		if n := imgs.refs.Load(); n != 0 {
			t.Errorf("%d root filesystem references left after Close", n)
		}
	})
	return inv, rt, imgs
}

// envValue returns the value of name in a KEY=VALUE list.
func envValue(env []string, name string) string {
	for _, kv := range env {
		if v, ok := strings.CutPrefix(kv, name+"="); ok {
			return v
		}
	}
	return ""
}

// servedBy returns the sandbox of the environment that served the last
// invocation of c. Its runtime exits after each answer (mode exit-after),
// so c has exactly one environment: the one that served last.
func servedBy(t *testing.T, inv *Invoker, c function.Config) *fakeSandbox {
	t.Helper()
	inv.mu.Lock()
	defer inv.mu.Unlock()
	var found *fakeSandbox
	for e := range inv.all {
		if e.key == configKey(c) {
			if found != nil {
				t.Fatalf("%s has more than one environment", configKey(c))
			}
			found = e.sb.(*fakeSandbox)
		}
	}
	if found == nil {
		t.Fatalf("no environment of %s", configKey(c))
	}
	return found
}

// TestSpareNeverHandedToAnotherConfiguration invokes configurations that
// differ only in function, version, revision, code or memory, each cold
// every time, and checks that every sandbox served only the configuration
// it was created for, and that spares did serve them.
func TestSpareNeverHandedToAnotherConfiguration(t *testing.T) {
	inv, rt, _ := newSpareInvoker(t)
	base := cfg("fn-a", "exit-after")
	label := func(c function.Config, l string) function.Config {
		c.Environment = map[string]string{"MODE": "exit-after", "LABEL": l}
		return c
	}
	a := label(base, "a")
	v1 := label(base, "a") // a published version of the same code and settings
	v1.Version = "1"
	r2 := label(base, "a") // the same function after a configuration update
	r2.RevisionID = "r2"
	code := label(base, "a") // new code, same revision id
	code.Code.Digest = "sha256:" + strings.Repeat("b", 64)
	mem := label(base, "a") // a memory change (which also changes the revision)
	mem.MemorySize, mem.RevisionID = 256, "r3"
	b := label(cfg("fn-b", "exit-after"), "b")
	configs := []function.Config{a, v1, r2, code, mem, b}

	owner := map[string]string{} // sandbox id → configuration key it served
	fromSpare := map[string]int{}
	check := func(c function.Config, before int) {
		sb := servedBy(t, inv, c)
		key := configKey(c)
		if prev, ok := owner[sb.spec.ID]; ok && prev != key {
			t.Errorf("sandbox %s served %s and %s", sb.spec.ID, prev, key)
		}
		owner[sb.spec.ID] = key
		env := sb.spec.Env
		if got := envValue(env, "AWS_LAMBDA_FUNCTION_NAME"); got != c.Name {
			t.Errorf("%s ran in a sandbox of function %q", key, got)
		}
		if got := envValue(env, "AWS_LAMBDA_FUNCTION_VERSION"); got != c.Version {
			t.Errorf("%s ran in a sandbox of version %q", key, got)
		}
		if got := envValue(env, "LABEL"); got != c.Environment["LABEL"] {
			t.Errorf("%s ran in a sandbox labelled %q", key, got)
		}
		if sb.spec.MemoryMB != c.MemorySize {
			t.Errorf("%s (%d MB) ran in a sandbox of %d MB", key, c.MemorySize, sb.spec.MemoryMB)
		}
		if !strings.Contains(envValue(env, "AWS_LAMBDA_LOG_STREAM_NAME"), "["+c.Version+"]") {
			t.Errorf("%s ran with log stream %q", key, envValue(env, "AWS_LAMBDA_LOG_STREAM_NAME"))
		}
		if rt.number(sb.spec.ID) <= before {
			fromSpare[key]++
		}

	}
	invoke := func(c function.Config) {
		before := rt.created()
		resp, err := inv.Invoke(context.Background(), request(c, `"x"`))
		if err != nil || resp.FunctionError != "" || !resp.ColdStart {
			t.Fatalf("invoke %s: %+v, %v", configKey(c), resp, err)
		}
		check(c, before)
	}
	waitSpares := func(n int) {
		t.Helper()
		for deadline := time.Now().Add(10 * time.Second); inv.spares.pool.Len() < n; time.Sleep(time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatalf("%d spares ready, want %d", inv.spares.pool.Len(), n)
			}
		}
	}
	// Sequentially, in a different order each round, with a spare of every
	// configuration ready.
	for round := range 4 {
		for i := range configs {
			j := (i + round) % len(configs)
			if round%2 == 1 {
				j = len(configs) - 1 - j
			}
			c := configs[j]
			invoke(c)
			// Without this wait the next configuration may not have its spare yet.
			if round > 0 {
				waitSpares(len(configs) - 1)
			}
		}
		waitSpares(len(configs))
	}
	for _, c := range configs {
		if fromSpare[configKey(c)] == 0 {
			t.Errorf("no invocation of %s was served by a spare", configKey(c))
		}
	}
	// Concurrently: the pool and the invoker under -race.
	var wg sync.WaitGroup
	for i := range 24 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c := configs[i%len(configs)]
			resp, err := inv.Invoke(context.Background(), request(c, `"y"`))
			if err != nil || resp.FunctionError != "" {
				t.Errorf("invoke %s: %+v, %v", configKey(c), resp, err)
			}
		}()
	}
	wg.Wait()
	inv.mu.Lock()
	for e := range inv.all {
		sb := e.sb.(*fakeSandbox)
		var want function.Config
		for _, c := range configs {
			if configKey(c) == e.key {
				want = c
			}
		}
		if envValue(sb.spec.Env, "AWS_LAMBDA_FUNCTION_NAME") != want.Name || sb.spec.MemoryMB != want.MemorySize ||
			envValue(sb.spec.Env, "AWS_LAMBDA_FUNCTION_VERSION") != want.Version {
			t.Errorf("environment of %s runs sandbox %s made for %s %s/%d MB", e.key, sb.spec.ID,
				envValue(sb.spec.Env, "AWS_LAMBDA_FUNCTION_NAME"), envValue(sb.spec.Env, "AWS_LAMBDA_FUNCTION_VERSION"), sb.spec.MemoryMB)
		}
	}
	inv.mu.Unlock()
}

// TestFingerprintCoversTheSandbox checks that configurations sharing a
// configuration key (same function, version, code and revision) but
// differing in anything their sandbox is built from get different
// fingerprints, so that even a revision id reused by mistake cannot hand
// out a spare built for other settings.
func TestFingerprintCoversTheSandbox(t *testing.T) {
	base := cfg("f", "echo")
	tests := []struct {
		name   string
		mutate func(*function.Config)
	}{
		{"memory", func(c *function.Config) { c.MemorySize = 256 }},
		{"ephemeral storage", func(c *function.Config) { c.EphemeralStorage = 1024 }},
		{"environment value", func(c *function.Config) { c.Environment = map[string]string{"MODE": "sleep"} }},
		{"environment variable", func(c *function.Config) { c.Environment = map[string]string{"MODE": "echo", "X": ""} }},
		{"entrypoint", func(c *function.Config) { c.ImageConfig.EntryPoint = []string{"/other"} }},
		{"command", func(c *function.Config) { c.ImageConfig.Command = []string{"handler"} }},
		{"working directory", func(c *function.Config) { c.ImageConfig.WorkingDirectory = "/var/task" }},
		{"image env", func(c *function.Config) { c.Code.Env = []string{"A=1"} }},
		{"log format", func(c *function.Config) { c.LoggingConfig.LogFormat = "JSON" }},
	}
	want := fingerprint(base, "us-east-1", initOnDemand)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := base
			c.Environment = map[string]string{"MODE": "echo"}
			tt.mutate(&c)
			if configKey(c) != configKey(base) {
				t.Fatal("test case changes the configuration key itself")
			}
			if got := fingerprint(c, "us-east-1", initOnDemand); got == want {
				t.Errorf("spare key unchanged by a different %s", tt.name)
			}
		})
	}
	t.Run("init type", func(t *testing.T) {
		if fingerprint(base, "us-east-1", initProvisioned) == want {
			t.Error("on-demand and provisioned sandboxes share a fingerprint")
		}
	})
	t.Run("map order", func(t *testing.T) {
		c := base
		c.Environment = map[string]string{"MODE": "echo", "A": "1", "B": "2", "C": "3", "D": "4"}
		first := fingerprint(c, "us-east-1", initOnDemand)
		for range 20 {
			if fingerprint(c, "us-east-1", initOnDemand) != first {
				t.Fatal("spare key depends on map iteration order")
			}
		}
	})
}

// TestSpareOfOtherSettingsDiscarded reuses a revision id for other
// settings (which the function service never does): the spare made for the
// first settings must be discarded, not started for the second.
func TestSpareOfOtherSettingsDiscarded(t *testing.T) {
	inv, rt, _ := newSpareInvoker(t)
	x := cfg("f", "exit-after")
	y := x
	y.MemorySize = 256
	if configKey(x) != configKey(y) {
		t.Fatal("x and y must share a configuration key")
	}
	if _, err := inv.Invoke(context.Background(), request(x, `1`)); err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(10 * time.Second); inv.spares.pool.Len() < 1; time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("no spare made")
		}
	}
	<-servedBy(t, inv, x).done // x's environment has exited: y starts cold
	before := rt.created()
	if _, err := inv.Invoke(context.Background(), request(y, `2`)); err != nil {
		t.Fatal(err)
	}
	sb := servedBy(t, inv, y)
	if sb.spec.MemoryMB != 256 {
		t.Errorf("y (256 MB) ran in a sandbox of %d MB", sb.spec.MemoryMB)
	}
	if rt.number(sb.spec.ID) <= before {
		t.Error("y ran in a sandbox created before it was invoked")
	}
}

// TestSpareOutputReachesItsEnvironment checks that what a spare's process
// prints once started lands in the log of the invocation it serves.
func TestSpareOutputReachesItsEnvironment(t *testing.T) {
	inv, rt, _ := newSpareInvoker(t)
	c := cfg("f", "exit-after")
	if _, err := inv.Invoke(context.Background(), request(c, `1`)); err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(10 * time.Second); inv.spares.pool.Len() < 1; time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("no spare made")
		}
	}
	before := rt.created()
	req := request(c, `2`)
	req.Tail = true
	resp, err := inv.Invoke(context.Background(), req)
	if err != nil {
		t.Fatal(err)
	}
	if rt.number(servedBy(t, inv, c).spec.ID) > before {
		t.Fatal("the invocation did not use the spare")
	}
	if !strings.Contains(string(resp.LogTail), "fake init") || !strings.Contains(string(resp.LogTail), "START RequestId: "+req.RequestID) {
		t.Errorf("log tail lacks the spare's init output:\n%s", resp.LogTail)
	}
}

// TestSparesRetiredWithTheirFunction checks that Retire discards the
// function's spares, and only its.
func TestSparesRetiredWithTheirFunction(t *testing.T) {
	inv, rt, imgs := newSpareInvoker(t)
	f, g := cfg("f", "echo"), cfg("g", "echo")
	for _, c := range []function.Config{f, g} {
		if _, err := inv.Invoke(context.Background(), request(c, `1`)); err != nil {
			t.Fatal(err)
		}
	}
	for deadline := time.Now().Add(10 * time.Second); inv.spares.pool.Len() < 2; time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("spares not made")
		}
	}
	inv.Retire("f", nil) // f's idle environment and spare go
	if n := inv.spares.pool.Len(); n != 1 {
		t.Errorf("%d spares after Retire(f), want 1 (g's)", n)
	}
	if n := rt.count(); n != 2 { // g's environment and spare
		t.Errorf("%d sandboxes after Retire(f), want 2", n)
	}
	if n := imgs.refs.Load(); n != 2 {
		t.Errorf("%d root filesystem references after Retire(f), want 2", n)
	}
	if _, ok := inv.spares.pool.Take(configKey(f)); ok {
		t.Error("f's spare survived Retire")
	}
}

// TestSparesOff checks the zero SpareOptions: no sandbox is created ahead.
func TestSparesOff(t *testing.T) {
	inv, rt, _ := newSpareInvoker(t, func(o *Options) { o.Spares = SpareOptions{} })
	c := cfg("f", "echo")
	for i := range 3 {
		if _, err := inv.Invoke(context.Background(), request(c, fmt.Sprint(i))); err != nil {
			t.Fatal(err)
		}
	}
	if inv.spares != nil || rt.created() != 1 {
		t.Errorf("spares off: %d sandboxes created, want 1", rt.created())
	}
}

// TestPrewarm checks that a function's new configuration gets a spare as
// soon as it is deployed, whether it replaces one in use or is the first of
// a new function, and that its first invocation starts that spare.
func TestPrewarm(t *testing.T) {
	inv, rt, _ := newSpareInvoker(t)
	// waitSpare waits for the pool's first spare: each part starts with
	// none.
	waitSpare := func(c function.Config) {
		t.Helper()
		for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(time.Millisecond) {
			if inv.spares.pool.Len() > 0 {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("no spare made for %s %s", c.Name, c.RevisionID)
			}
		}
	}
	startsSpare := func(c function.Config, payload string) {
		t.Helper()
		before := rt.created()
		if _, err := inv.Invoke(context.Background(), request(c, payload)); err != nil {
			t.Fatal(err)
		}
		if sb := servedBy(t, inv, c); rt.number(sb.spec.ID) > before || envValue(sb.spec.Env, "AWS_LAMBDA_FUNCTION_NAME") != c.Name {
			t.Errorf("the first invocation of %s %s did not start the prewarmed spare", c.Name, c.RevisionID)
		}
	}

	old := cfg("f", "exit-after")
	if _, err := inv.Invoke(context.Background(), request(old, `1`)); err != nil {
		t.Fatal(err)
	}
	updated := old
	updated.RevisionID = "r2"
	inv.Retire("f", nil)
	inv.Prewarm(updated)
	waitSpare(updated)
	startsSpare(updated, `2`)

	// A new function, never invoked, gets one too (in a new invoker, so
	// that no spare of f is about).
	inv, rt, _ = newSpareInvoker(t)
	fresh := cfg("g", "echo")
	inv.Prewarm(fresh)
	waitSpare(fresh)
	startsSpare(fresh, `3`)
}
