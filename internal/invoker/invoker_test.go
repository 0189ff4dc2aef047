package invoker

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/kappa-run/kappa/internal/apierr"
	"github.com/kappa-run/kappa/internal/function"
	"github.com/kappa-run/kappa/internal/logs"
)

// clock is a settable test clock.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time      { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) Add(d time.Duration) { c.mu.Lock(); c.t = c.t.Add(d); c.mu.Unlock() }

func newTestInvoker(t testing.TB, mutate ...func(*Options)) (*Invoker, *fakeRuntime, *fakeImages) {
	t.Helper()
	rt, imgs := newFakeRuntime(), &fakeImages{}
	opts := Options{Runtime: rt, Images: imgs, Region: "us-east-1", Account: "000000000000", MaxEnvironments: 8, InitTimeout: 2 * time.Second}
	for _, m := range mutate {
		m(&opts)
	}
	inv := New(opts)
	t.Cleanup(func() {
		inv.Close(context.Background())
		if n := rt.count(); n != 0 {
			t.Errorf("%d environments left after Close", n)
		}
		if n := imgs.refs.Load(); n != 0 {
			t.Errorf("%d root filesystem references left after Close", n)
		}
	})
	return inv, rt, imgs
}

func cfg(name, mode string) function.Config {
	return function.Config{
		Name: name, Version: "$LATEST", MemorySize: 128, Timeout: 3, EphemeralStorage: 512,
		Environment: map[string]string{"MODE": mode}, RevisionID: "r1",
		Code: function.Code{Digest: "sha256:" + strings.Repeat("a", 64), Entrypoint: []string{"/bootstrap"}},
	}
}

var reqN atomic.Int64

func request(c function.Config, payload string) Request {
	return Request{Config: c, RequestID: fmt.Sprintf("req-%d", reqN.Add(1)), Payload: []byte(payload), Unreserved: 1000}
}

func TestWarmReuse(t *testing.T) {
	inv, rt, _ := newTestInvoker(t)
	c := cfg("f", "echo")
	r1, err := inv.Invoke(context.Background(), request(c, `"one"`))
	if err != nil || string(r1.Payload) != `"one"` || !r1.ColdStart {
		t.Fatalf("first invoke = %+v, %v", r1, err)
	}
	r2, err := inv.Invoke(context.Background(), request(c, `"two"`))
	if err != nil || string(r2.Payload) != `"two"` || r2.ColdStart {
		t.Fatalf("second invoke = %+v, %v", r2, err)
	}
	if n := rt.created.Load(); n != 1 {
		t.Errorf("created %d environments, want 1", n)
	}
	// A new configuration never reuses the old environment.
	c2 := c
	c2.RevisionID = "r2"
	if r3, _ := inv.Invoke(context.Background(), request(c2, `3`)); !r3.ColdStart {
		t.Errorf("new configuration ran warm")
	}
}

func TestDeadEnvironmentIsNotReused(t *testing.T) {
	inv, rt, _ := newTestInvoker(t)
	c := cfg("f", "exit-after")
	for i := range 3 {
		r, err := inv.Invoke(context.Background(), request(c, `1`))
		if err != nil || r.FunctionError != "" {
			t.Fatalf("invoke %d = %+v (%s), %v; want success in a fresh environment", i, r, r.Payload, err)
		}
	}
	if n := rt.created.Load(); n != 3 {
		t.Errorf("created %d environments, want 3", n)
	}
}

func TestThrottles(t *testing.T) {
	inv, _, _ := newTestInvoker(t)
	c := cfg("f", "sleep")
	zero, one := 0, 1
	req := request(c, `1`)
	req.Reserved = &zero
	_, err := inv.Invoke(context.Background(), req)
	if e := apierr.As(err); e == nil || e.Kind != apierr.TooManyRequests || e.Reason != "ReservedFunctionConcurrentInvocationLimitExceeded" {
		t.Fatalf("reserved 0 = %v", err)
	}
	// One slow invocation holds the only reserved slot: it runs until the
	// test is done with it and lets its caller go.
	c.Timeout = 60
	slowCtx, release := context.WithCancel(context.Background())
	defer release()
	slow := request(c, `60000`)
	slow.Reserved = &one
	done := make(chan error, 1)
	go func() { _, err := inv.Invoke(slowCtx, slow); done <- err }()
	waitUntil(t, func() bool { return inv.Concurrency("f") == 1 })
	second := request(c, `1`)
	second.Reserved = &one
	if _, err := inv.Invoke(context.Background(), second); apierr.As(err) == nil || apierr.As(err).Reason != "ReservedFunctionConcurrentInvocationLimitExceeded" {
		t.Errorf("over reservation = %v", err)
	}
	unres := request(cfg("g", "echo"), `1`)
	unres.Unreserved = 0
	if _, err := inv.Invoke(context.Background(), unres); apierr.As(err) == nil || apierr.As(err).Reason != "ConcurrentInvocationLimitExceeded" {
		t.Errorf("over unreserved = %v", err)
	}
	// However the released invocation ends, its slot is freed.
	release()
	<-done
	if inv.Concurrency("f") != 0 {
		t.Errorf("concurrency not released")
	}
}

func TestScalingRate(t *testing.T) {
	clk := &clock{t: time.Unix(1e9, 0)}
	inv, rt, _ := newTestInvoker(t, func(o *Options) { o.ScaleBurst, o.ScaleRate, o.Now = 2, 1, clk.Now })
	c := cfg("f", "sleep")
	c.Timeout = 60
	// Two invocations take the burst and stay busy (no warm environment
	// for the third) until the test lets their callers go.
	busyCtx, release := context.WithCancel(context.Background())
	defer release()
	var wg sync.WaitGroup
	for range 2 {
		wg.Add(1)
		go func() { defer wg.Done(); inv.Invoke(busyCtx, request(c, `60000`)) }()
	}
	// Both took their token: their environments are created.
	waitUntil(t, func() bool { return inv.Concurrency("f") == 2 && rt.created.Load() == 2 })
	_, err := inv.Invoke(context.Background(), request(c, `1`))
	if apierr.As(err) == nil || apierr.As(err).Reason != "FunctionInvocationRateLimitExceeded" {
		t.Errorf("third cold start in the burst = %v, want a scaling throttle", err)
	}
	release()
	wg.Wait()
	clk.Add(2 * time.Second)
	if _, err := inv.Invoke(context.Background(), request(c, `1`)); err != nil {
		t.Errorf("after refill = %v", err)
	}
}

func TestEnvironmentCapEvictsIdle(t *testing.T) {
	inv, rt, _ := newTestInvoker(t, func(o *Options) { o.MaxEnvironments = 2 })
	for i := range 4 {
		if _, err := inv.Invoke(context.Background(), request(cfg(fmt.Sprintf("f%d", i), "echo"), `1`)); err != nil {
			t.Fatalf("invoke %d: %v", i, err)
		}
	}
	waitUntil(t, func() bool { return rt.count() <= 2 })
	if live, _ := inv.Stats(); live > 2 {
		t.Errorf("live = %d, want ≤ 2", live)
	}
}

func TestIdleReaping(t *testing.T) {
	clk := &clock{t: time.Unix(1e9, 0)}
	inv, rt, _ := newTestInvoker(t, func(o *Options) { o.Now, o.IdleTimeout = clk.Now, time.Minute })
	inv.Invoke(context.Background(), request(cfg("f", "echo"), `1`))
	inv.reapIdle()
	if rt.count() != 1 {
		t.Fatalf("reaped a fresh environment")
	}
	clk.Add(2 * time.Minute)
	inv.reapIdle()
	if rt.count() != 0 {
		t.Errorf("idle environment not reaped after the idle timeout")
	}
}

func TestMemoryPressure(t *testing.T) {
	avail := uint64(10 << 30)
	var mu sync.Mutex
	inv, rt, _ := newTestInvoker(t, func(o *Options) {
		o.MinMemAvailable = 1 << 30
		o.MemAvailable = func() (uint64, error) { mu.Lock(); defer mu.Unlock(); return avail, nil }
	})
	for i := range 4 {
		inv.Invoke(context.Background(), request(cfg(fmt.Sprintf("f%d", i), "echo"), `1`))
	}
	inv.reapIdle()
	if rt.count() != 4 {
		t.Fatalf("reaped without memory pressure")
	}
	mu.Lock()
	avail = 100 << 20
	mu.Unlock()
	inv.reapIdle()
	if rt.count() != 3 {
		t.Errorf("under pressure %d environments left, want 3 (a quarter reaped)", rt.count())
	}
}

func TestInitErrorRetriedThenBackedOff(t *testing.T) {
	clk := &clock{t: time.Unix(1e9, 0)}
	inv, rt, _ := newTestInvoker(t, func(o *Options) { o.Now = clk.Now })
	c := cfg("f", "init-error")
	r, err := inv.Invoke(context.Background(), request(c, `1`))
	if err != nil || r.FunctionError != "Unhandled" || !strings.Contains(string(r.Payload), "InitBoom") {
		t.Fatalf("init error invoke = %+v, %v", r, err)
	}
	if n := rt.created.Load(); n != 2 {
		t.Errorf("init tried %d times, want 2 (suppressed init retry)", n)
	}
	inv.Invoke(context.Background(), request(c, `1`)) // second failure starts the back-off
	before := rt.created.Load()
	r, _ = inv.Invoke(context.Background(), request(c, `1`))
	if rt.created.Load() != before || r.FunctionError != "Unhandled" {
		t.Errorf("backed-off invoke started an environment or succeeded")
	}
	clk.Add(time.Minute)
	inv.Invoke(context.Background(), request(c, `1`))
	if rt.created.Load() == before {
		t.Errorf("no new attempt after the back-off elapsed")
	}
}

func TestInvalidEntrypoint(t *testing.T) {
	inv, _, _ := newTestInvoker(t)
	c := cfg("f", "echo")
	c.ImageConfig.EntryPoint = []string{"/missing"}
	req := request(c, `1`)
	req.Tail = true
	r, err := inv.Invoke(context.Background(), req)
	if err != nil || !strings.Contains(string(r.Payload), "Runtime.InvalidEntrypoint") {
		t.Fatalf("invoke = %s, %v", r.Payload, err)
	}
	for _, want := range []string{"START RequestId: " + req.RequestID, "END RequestId:", "REPORT RequestId:"} {
		if !strings.Contains(string(r.LogTail), want) {
			t.Errorf("tail lacks %q: %s", want, r.LogTail)
		}
	}
}

func TestTimeout(t *testing.T) {
	inv, rt, _ := newTestInvoker(t)
	c := cfg("f", "sleep")
	c.Timeout = 1
	r, err := inv.Invoke(context.Background(), request(c, `3000`))
	if err != nil || !strings.Contains(string(r.Payload), "Sandbox.Timedout") || !strings.Contains(string(r.Payload), "Task timed out after 1.00 seconds") {
		t.Fatalf("timeout = %s, %v", r.Payload, err)
	}
	waitUntil(t, func() bool { return rt.count() == 0 })
}

func TestProvisioned(t *testing.T) {
	inv, rt, _ := newTestInvoker(t)
	c := cfg("f", "echo")
	c.Version = "1"
	inv.Provision("f:1", c, 3)
	waitUntil(t, func() bool { r, _, _ := inv.ProvisionStatus("f:1"); return r == 3 })
	for _, e := range rt.live {
		if !strings.Contains(strings.Join(e.spec.Env, " "), "AWS_LAMBDA_INITIALIZATION_TYPE=provisioned-concurrency") {
			t.Errorf("provisioned environment has the wrong initialization type")
		}
	}
	r, err := inv.Invoke(context.Background(), request(c, `1`))
	if err != nil || r.ColdStart {
		t.Errorf("invoke of a provisioned version was cold: %+v %v", r, err)
	}
	inv.Retire("f", nil)
	if rt.count() != 3 {
		t.Errorf("Retire removed provisioned environments")
	}
	inv.Unprovision("f:1")
	inv.Retire("f", nil)
	if rt.count() != 0 {
		t.Errorf("unprovisioned environments survived Retire: %d", rt.count())
	}
}

func TestCloseKillsRunning(t *testing.T) {
	inv, _, _ := newTestInvoker(t)
	errc := make(chan error, 1)
	go func() {
		_, err := inv.Invoke(context.Background(), request(cfg("f", "sleep"), `10000`))
		errc <- err
	}()
	waitUntil(t, func() bool { return inv.Concurrency("f") == 1 })
	inv.Close(context.Background())
	select {
	case <-errc:
	case <-time.After(5 * time.Second):
		t.Fatal("a running invocation outlived Close")
	}
	if _, err := inv.Invoke(context.Background(), request(cfg("f", "echo"), `1`)); !errors.Is(err, apierr.Internal) {
		t.Errorf("invoke after Close = %v", err)
	}
}

func waitUntil(t *testing.T, ok func() bool) {
	t.Helper()
	for range 1000 {
		if ok() {
			return
		}
		time.Sleep(5 * time.Millisecond)
	}
	t.Fatal("condition not reached in 5s")
}

// TestFreezeAfter: an environment invoked again before FreezeAfter has
// passed is never frozen, so back-to-back invocations pay no thaw; one left
// idle is frozen and thawed by the next invocation.
func TestFreezeAfter(t *testing.T) {
	t.Run("invoked again within the delay", func(t *testing.T) {
		inv, rt, _ := newTestInvoker(t, func(o *Options) { o.FreezeIdle, o.FreezeAfter = true, time.Hour })
		c := cfg("f", "echo")
		for i := range 5 {
			if _, err := inv.Invoke(context.Background(), request(c, fmt.Sprint(i))); err != nil {
				t.Fatal(err)
			}
		}
		sb := rt.only(t)
		if sb.frozen.Load() || sb.thaws.Load() != 0 {
			t.Errorf("frozen %v, thawed %d times; want neither within FreezeAfter", sb.frozen.Load(), sb.thaws.Load())
		}
	})
	t.Run("idle past the delay", func(t *testing.T) {
		inv, rt, _ := newTestInvoker(t, func(o *Options) { o.FreezeIdle, o.FreezeAfter = true, time.Millisecond })
		c := cfg("f", "echo")
		if _, err := inv.Invoke(context.Background(), request(c, "1")); err != nil {
			t.Fatal(err)
		}
		sb := rt.only(t)
		for !sb.frozen.Load() {
			time.Sleep(time.Millisecond)
		}
		r, err := inv.Invoke(context.Background(), request(c, "2"))
		if err != nil || r.ColdStart || string(r.Payload) != "2" {
			t.Fatalf("invoke after freeze = %+v, %v", r, err)
		}
		if n := sb.thaws.Load(); n != 1 {
			t.Errorf("thawed %d times, want 1", n)
		}
	})
}

// TestProvisionConcurrently: Provision called again while an earlier call
// is still making environments (a PUT and the change it causes) makes no
// more than wanted.
func TestProvisionConcurrently(t *testing.T) {
	inv, rt, _ := newTestInvoker(t)
	c := cfg("f", "echo")
	c.Version = "1"
	var wg sync.WaitGroup
	for range 6 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			inv.Provision("f:1", c, 2)
		}()
	}
	wg.Wait()
	waitUntil(t, func() bool {
		r, _, _ := inv.ProvisionStatus("f:1")
		inv.mu.Lock()
		making := inv.provisioning["f:1"]
		inv.mu.Unlock()
		return r == 2 && making == 0
	})
	if n := rt.count(); n != 2 {
		t.Errorf("%d environments for a provisioned concurrency of 2", n)
	}
}

// TestProvisionLowered: lowering a provisioned concurrency hands the
// environments beyond it back to the on-demand pool.
func TestProvisionLowered(t *testing.T) {
	inv, rt, _ := newTestInvoker(t)
	c := cfg("f", "echo")
	c.Version = "1"
	inv.Provision("f:1", c, 3)
	waitUntil(t, func() bool { r, _, _ := inv.ProvisionStatus("f:1"); return r == 3 })
	inv.Provision("f:1", c, 1)
	if r, want, _ := inv.ProvisionStatus("f:1"); r != 1 || want != 1 {
		t.Fatalf("after lowering to 1: %d ready of %d", r, want)
	}
	inv.Retire("f", nil) // takes idle on-demand environments
	if n := rt.count(); n != 1 {
		t.Errorf("%d environments left, want the 1 still provisioned", n)
	}
}

// TestSuppressedInitSharesTheTimeout: an init retried within the first
// invocation (it overran the init timeout) takes from that invocation's
// function timeout, as in Lambda: 1 s of retried init and 1.5 s of
// handler, each within a 2 s timeout, overrun it together.
func TestSuppressedInitSharesTheTimeout(t *testing.T) {
	inv, _, _ := newTestInvoker(t, func(o *Options) { o.InitTimeout = 200 * time.Millisecond })
	c := cfg("f", "slow-init")
	c.Environment["INIT_MS"] = "1000"
	c.Timeout = 2
	r, err := inv.Invoke(context.Background(), request(c, `1500`))
	if err != nil || !strings.Contains(string(r.Payload), "Sandbox.Timedout") {
		t.Fatalf("invoke = %s, %v; want the timeout the retried init and the handler share", r.Payload, err)
	}
	// With 4 s, both fit (with room for a slow machine).
	c.Timeout = 4
	c.RevisionID = "r2"
	if r, err := inv.Invoke(context.Background(), request(c, `1500`)); err != nil || r.FunctionError != "" {
		t.Fatalf("invoke with room for both = %s, %v", r.Payload, err)
	}
}

// TestRetireKeepsCurrent: Retire takes the environments of configurations
// that are gone (idle ones at once, busy ones when they finish) and leaves
// those of the current ones serving.
func TestRetireKeepsCurrent(t *testing.T) {
	inv, rt, _ := newTestInvoker(t)
	v1, v2 := cfg("f", "sleep"), cfg("f", "sleep")
	v1.Version, v2.Version = "1", "2"
	for _, c := range []function.Config{v1, v2} {
		if _, err := inv.Invoke(context.Background(), request(c, `1`)); err != nil {
			t.Fatal(err)
		}
	}
	done := make(chan error, 1)
	go func() { _, err := inv.Invoke(context.Background(), request(v2, `300`)); done <- err }()
	waitUntil(t, func() bool { return inv.Concurrency("f") == 1 })
	// v2 (reused for the slow call, or a second one) is gone; v1 stays.
	if live, _ := inv.Stats(); live < 2 {
		t.Fatalf("%d live environments before Retire, want at least 2", live)
	}
	inv.Retire("f", []function.Config{v1})
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	waitUntil(t, func() bool { return rt.count() == 1 })
	r, err := inv.Invoke(context.Background(), request(v1, `1`))
	if err != nil || r.ColdStart {
		t.Errorf("v1 after a Retire that kept it: cold %v, %v", r != nil && r.ColdStart, err)
	}
	inv.Retire("f", nil) // the function is gone
	waitUntil(t, func() bool { return rt.count() == 0 })
}

// TestInitOutputStaysInit checks that what a runtime writes during its
// init is logged before the START line and attributed to no request, even
// when the pipe's reader has not taken it yet as the runtime asks for its
// first event.
func TestInitOutputStaysInit(t *testing.T) {
	store, err := logs.Open(logs.Options{Dir: t.TempDir(), PruneInterval: -1})
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	inv, _, _ := newTestInvoker(t, func(o *Options) { o.Logs = store })
	c := cfg("initlog", "late-init-output")
	req := request(c, "{}")
	if _, err := inv.Invoke(context.Background(), req); err != nil {
		t.Fatal(err)
	}
	var evs []logs.Event
	if err := store.Query(context.Background(), "initlog", logs.Query{}, func(e logs.Event) error {
		evs = append(evs, e)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if len(evs) < 2 || evs[0].Message != "fake init" || evs[0].RequestID != "" ||
		!strings.HasPrefix(evs[1].Message, "START RequestId: "+req.RequestID) {
		for _, e := range evs {
			t.Logf("%q request %q", e.Message, e.RequestID)
		}
		t.Fatal("want init's line first, attributed to no request, then START")
	}
}
