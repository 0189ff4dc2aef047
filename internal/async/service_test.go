package async

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/kappa-run/kappa/internal/apierr"
	"github.com/kappa-run/kappa/internal/function"
	"github.com/kappa-run/kappa/internal/invoker"
	"github.com/kappa-run/kappa/internal/leakcheck"
	"github.com/kappa-run/kappa/internal/store/jetstream"
)

// TestMain fails the package when goroutines outlive the tests.
func TestMain(m *testing.M) { os.Exit(leakcheck.Run(m)) }

const (
	region  = "us-east-1"
	account = "000000000000"
)

// fakeFunctions holds Active functions by name.
type fakeFunctions struct {
	mu  sync.Mutex
	fns map[string]*function.Function
}

func newFakeFunctions(names ...string) *fakeFunctions {
	f := &fakeFunctions{fns: map[string]*function.Function{}}
	for _, n := range names {
		f.add(n, nil)
	}
	return f
}

func (f *fakeFunctions) add(name string, reserved *int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.fns[name] = &function.Function{
		Latest:              function.Config{Name: name, Version: "$LATEST", State: function.StateActive, Timeout: 3},
		ReservedConcurrency: reserved,
	}
}

func (f *fakeFunctions) Get(_ context.Context, name string) (*function.Function, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	fn, ok := f.fns[name]
	if !ok {
		return nil, apierr.New(apierr.NotFound, "Function not found: %s", name)
	}
	return fn, nil
}

func (f *fakeFunctions) Config(ctx context.Context, ref function.Ref) (function.Config, error) {
	fn, err := f.Get(ctx, ref.Name)
	if err != nil {
		return function.Config{}, err
	}
	if ref.Qualifier != "" && ref.Qualifier != "$LATEST" && ref.Qualifier != "live" {
		return function.Config{}, apierr.New(apierr.NotFound, "Function not found: %s:%s", ref.Name, ref.Qualifier)
	}
	return fn.Latest, nil
}

func (f *fakeFunctions) Resolve(ctx context.Context, ref function.Ref) (function.Target, error) {
	c, err := f.Config(ctx, ref)
	if err != nil {
		return function.Target{}, err
	}
	fn, _ := f.Get(ctx, ref.Name)
	return function.Target{Config: c, Reserved: fn.ReservedConcurrency}, nil
}

func (f *fakeFunctions) ARN(name, q string) string { return function.ARN(region, account, name, q) }
func (f *fakeFunctions) UnreservedCached() int     { return 1000 }

// fakeInvoker runs invocations with a handler and records them.
type fakeInvoker struct {
	mu      sync.Mutex
	calls   []invoker.Request
	times   []time.Time
	handler func(req invoker.Request, n int) (*invoker.Response, error)
}

func (f *fakeInvoker) Invoke(_ context.Context, req invoker.Request) (*invoker.Response, error) {
	f.mu.Lock()
	f.calls = append(f.calls, req)
	f.times = append(f.times, time.Now())
	n := len(f.calls)
	h := f.handler
	f.mu.Unlock()
	if h == nil {
		return ok(req.Payload), nil
	}
	return h(req, n)
}

func (f *fakeInvoker) count() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.calls)
}

func ok(payload []byte) *invoker.Response {
	return &invoker.Response{Payload: payload, ContentType: "application/json", ExecutedVersion: "$LATEST"}
}

func fnError() *invoker.Response {
	return &invoker.Response{Payload: []byte(`{"errorType":"Boom","errorMessage":"failed on purpose"}`),
		FunctionError: "Unhandled", ExecutedVersion: "$LATEST"}
}

type harness struct {
	svc *Service
	fns *fakeFunctions
	inv *fakeInvoker
	now atomic.Int64 // offset added to the clock, in ns
}

func newHarness(t *testing.T, mutate ...func(*Options)) *harness {
	t.Helper()
	ctx := context.Background()
	st, err := jetstream.Open(ctx, jetstream.Options{Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	bucket, err := st.Bucket(ctx, "async")
	if err != nil {
		t.Fatal(err)
	}
	h := &harness{fns: newFakeFunctions("f", "g"), inv: &fakeInvoker{}}
	opts := Options{
		JetStream: st.JetStream(), Bucket: bucket, Functions: h.fns, Invoker: h.inv,
		Region: region, Account: account,
		RetryDelay: 50 * time.Millisecond, BackoffMin: 20 * time.Millisecond, BackoffMax: 200 * time.Millisecond,
		AckWait: 3 * time.Second,
		Now:     func() time.Time { return time.Now().Add(time.Duration(h.now.Load())) },
	}
	for _, m := range mutate {
		m(&opts)
	}
	h.svc = New(opts)
	if err := h.svc.Start(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
		h.svc.Close(cctx)
		st.Close()
	})
	return h
}

func (h *harness) enqueue(t *testing.T, fn string, payload string) string {
	t.Helper()
	id := uuid.NewString()
	if err := h.svc.Enqueue(context.Background(), &Event{RequestID: id, Function: fn, Payload: []byte(payload)}); err != nil {
		t.Fatal(err)
	}
	return id
}

func (h *harness) configure(t *testing.T, fn string, in ConfigInput) {
	t.Helper()
	if _, err := h.svc.PutConfig(context.Background(), fn, "", in); err != nil {
		t.Fatal(err)
	}
}

func queueARN(name string) *string {
	s := "arn:aws:sqs:" + region + ":" + account + ":" + name
	return &s
}
func ptr[T any](v T) *T { return &v }

// eventually polls cond until it holds (a correctness wait, not a timing
// assertion: the deadline only bounds a hung test).
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); !cond(); time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("never: %s", what)
		}
	}
}

// records waits for n records on queue and decodes them.
func (h *harness) records(t *testing.T, queue string, n int) []Record {
	t.Helper()
	var out []Record
	var after uint64
	deadline := time.Now().Add(15 * time.Second)
	for len(out) < n {
		if time.Now().After(deadline) {
			t.Fatalf("queue %s: %d records after 15s, want %d", queue, len(out), n)
		}
		msgs, err := h.svc.Queues().Read(context.Background(), queue, after, 100, 200*time.Millisecond)
		if err != nil && !strings.Contains(err.Error(), "not found") {
			t.Fatal(err)
		}
		for _, m := range msgs {
			var r Record
			if err := json.Unmarshal(m.Body, &r); err != nil {
				t.Fatalf("record %s: %v", m.Body, err)
			}
			out = append(out, r)
			after = m.Seq
		}
	}
	return out
}

func TestSuccessGoesToOnSuccess(t *testing.T) {
	h := newHarness(t)
	h.configure(t, "f", ConfigInput{OnSuccess: queueARN("ok"), OnFailure: queueARN("bad")})
	id := h.enqueue(t, "f", `{"n":1}`)
	r := h.records(t, "ok", 1)[0]
	if r.Version != "1.0" || r.RequestContext.RequestID != id || r.RequestContext.Condition != Success ||
		r.RequestContext.ApproximateInvokeCount != 1 || r.RequestContext.FunctionArn != "arn:aws:lambda:us-east-1:000000000000:function:f:$LATEST" {
		t.Errorf("record = %+v", r)
	}
	if string(r.RequestPayload) != `{"n":1}` || string(r.ResponsePayload) != `{"n":1}` {
		t.Errorf("payloads = %s / %s", r.RequestPayload, r.ResponsePayload)
	}
	if r.ResponseContext != (ResponseContext{StatusCode: 200, ExecutedVersion: "$LATEST"}) {
		t.Errorf("responseContext = %+v", r.ResponseContext)
	}
	if _, err := time.Parse("2006-01-02T15:04:05.000Z", r.Timestamp); err != nil {
		t.Errorf("timestamp %q: %v", r.Timestamp, err)
	}
	if req := h.inv.calls[0]; req.RequestID != id || req.InvokedARN != "arn:aws:lambda:us-east-1:000000000000:function:f" {
		t.Errorf("invoked with %+v", req)
	}
}

func TestRetriesExhausted(t *testing.T) {
	tests := []struct {
		name    string
		retries *int
		want    int
	}{
		{"default two retries", nil, 3},
		{"one retry", ptr(1), 2},
		{"no retries", ptr(0), 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(t)
			h.inv.handler = func(invoker.Request, int) (*invoker.Response, error) { return fnError(), nil }
			h.configure(t, "f", ConfigInput{MaximumRetryAttempts: tt.retries, OnFailure: queueARN("dlq")})
			id := h.enqueue(t, "f", `{}`)
			r := h.records(t, "dlq", 1)[0]
			if r.RequestContext.Condition != RetriesExhausted || r.RequestContext.ApproximateInvokeCount != tt.want || r.RequestContext.RequestID != id {
				t.Errorf("requestContext = %+v, want RetriesExhausted after %d", r.RequestContext, tt.want)
			}
			if r.ResponseContext.FunctionError != "Unhandled" || r.ResponseContext.StatusCode != 200 || !bytes.Contains(r.ResponsePayload, []byte("failed on purpose")) {
				t.Errorf("response = %+v %s", r.ResponseContext, r.ResponsePayload)
			}
			if n := h.inv.count(); n != tt.want {
				t.Errorf("%d invocations, want %d", n, tt.want)
			}
			// The n-th retry waits n × RetryDelay.
			for i := 1; i < len(h.inv.times); i++ {
				if gap := h.inv.times[i].Sub(h.inv.times[i-1]); gap < time.Duration(i)*50*time.Millisecond {
					t.Errorf("retry %d came %v after the previous attempt, want ≥ %v", i, gap, time.Duration(i)*50*time.Millisecond)
				}
				if h.inv.calls[i].RequestID != id {
					t.Errorf("retry %d has request id %s, want %s", i, h.inv.calls[i].RequestID, id)
				}
			}
		})
	}
}

func TestRetryThenSuccess(t *testing.T) {
	h := newHarness(t)
	h.inv.handler = func(req invoker.Request, n int) (*invoker.Response, error) {
		if n == 1 {
			return fnError(), nil
		}
		return ok([]byte(`"fine"`)), nil
	}
	h.configure(t, "f", ConfigInput{OnSuccess: queueARN("ok")})
	h.enqueue(t, "f", `{}`)
	r := h.records(t, "ok", 1)[0]
	if r.RequestContext.ApproximateInvokeCount != 2 || r.ResponseContext.FunctionError != "" || string(r.ResponsePayload) != `"fine"` {
		t.Errorf("record = %+v %s", r.RequestContext, r.ResponsePayload)
	}
}

func TestThrottlesAreRetriedNotCounted(t *testing.T) {
	h := newHarness(t)
	h.inv.handler = func(req invoker.Request, n int) (*invoker.Response, error) {
		if n <= 3 {
			return nil, &apierr.Error{Kind: apierr.TooManyRequests, Message: "Rate Exceeded."}
		}
		return ok(req.Payload), nil
	}
	h.configure(t, "f", ConfigInput{MaximumRetryAttempts: ptr(0), OnSuccess: queueARN("ok")})
	h.enqueue(t, "f", `{}`)
	r := h.records(t, "ok", 1)[0]
	if r.RequestContext.Condition != Success || r.RequestContext.ApproximateInvokeCount != 1 {
		t.Errorf("record = %+v", r.RequestContext)
	}
	if n := h.inv.count(); n != 4 {
		t.Errorf("%d attempts, want 3 throttled and 1 run", n)
	}
	// Back-off doubles from BackoffMin.
	for i, want := range []time.Duration{20, 40, 80} {
		if gap := h.inv.times[i+1].Sub(h.inv.times[i]); gap < want*time.Millisecond {
			t.Errorf("attempt %d came %v after a throttle, want ≥ %v", i+2, gap, want*time.Millisecond)
		}
	}
}

func TestEventAgeExceeded(t *testing.T) {
	t.Run("expired while queued", func(t *testing.T) {
		h := newHarness(t)
		h.configure(t, "f", ConfigInput{MaximumEventAgeInSeconds: ptr(60), OnFailure: queueARN("late")})
		id := uuid.NewString()
		// Accepted 61 s ago, as if it had waited in the queue that long.
		ev := &Event{RequestID: id, Function: "f", Payload: []byte(`{}`), Accepted: time.Now().Add(-61 * time.Second)}
		if err := h.svc.Enqueue(context.Background(), ev); err != nil {
			t.Fatal(err)
		}
		r := h.records(t, "late", 1)[0]
		if r.RequestContext.RequestID != id || r.RequestContext.Condition != EventAgeExceeded || r.RequestContext.ApproximateInvokeCount != 0 {
			t.Errorf("record = %+v", r.RequestContext)
		}
		if n := h.inv.count(); n != 0 {
			t.Errorf("%d invocations of an expired event", n)
		}
	})
	t.Run("throttled until too old", func(t *testing.T) {
		h := newHarness(t, func(o *Options) { o.BackoffMin, o.BackoffMax = 100*time.Millisecond, 100*time.Millisecond })
		h.configure(t, "f", ConfigInput{MaximumEventAgeInSeconds: ptr(60), OnFailure: queueARN("late")})
		h.inv.handler = func(req invoker.Request, n int) (*invoker.Response, error) {
			h.now.Add(int64(20 * time.Second)) // each throttle costs 20 s of event age
			return nil, &apierr.Error{Kind: apierr.TooManyRequests, Message: "Rate Exceeded."}
		}
		h.enqueue(t, "f", `{}`)
		r := h.records(t, "late", 1)[0]
		if r.RequestContext.Condition != EventAgeExceeded || r.ResponseContext.StatusCode != 429 || r.RequestContext.ApproximateInvokeCount != 0 {
			t.Errorf("record = %+v %+v", r.RequestContext, r.ResponseContext)
		}
	})
	t.Run("retry would come too late", func(t *testing.T) {
		h := newHarness(t, func(o *Options) { o.RetryDelay = time.Minute })
		h.configure(t, "f", ConfigInput{MaximumEventAgeInSeconds: ptr(60), OnFailure: queueARN("late")})
		h.inv.handler = func(invoker.Request, int) (*invoker.Response, error) { return fnError(), nil }
		h.enqueue(t, "f", `{}`)
		r := h.records(t, "late", 1)[0]
		if r.RequestContext.Condition != EventAgeExceeded || r.RequestContext.ApproximateInvokeCount != 1 || r.ResponseContext.FunctionError != "Unhandled" {
			t.Errorf("record = %+v %+v", r.RequestContext, r.ResponseContext)
		}
	})
}

func TestFunctionDestination(t *testing.T) {
	h := newHarness(t)
	fArn := "arn:aws:lambda:us-east-1:000000000000:function:g"
	h.configure(t, "f", ConfigInput{OnSuccess: &fArn})
	h.configure(t, "g", ConfigInput{OnSuccess: queueARN("chain")})
	id := h.enqueue(t, "f", `{"hop":1}`)
	r := h.records(t, "chain", 1)[0]
	if !strings.HasSuffix(r.RequestContext.FunctionArn, ":function:g:$LATEST") {
		t.Errorf("final record from %s, want g", r.RequestContext.FunctionArn)
	}
	var inner Record
	if err := json.Unmarshal(r.RequestPayload, &inner); err != nil || inner.RequestContext.RequestID != id || string(inner.RequestPayload) != `{"hop":1}` {
		t.Errorf("g was invoked with %s (%v), want f's record", r.RequestPayload, err)
	}
}

func TestPayloadLimits(t *testing.T) {
	h := newHarness(t)
	h.configure(t, "f", ConfigInput{OnSuccess: queueARN("ok")})
	// Exactly 1 MB: more than one NATS message holds with the headers.
	big := append(append([]byte(`"`), bytes.Repeat([]byte("x"), MaxPayload-2)...), '"')
	h.inv.handler = func(req invoker.Request, n int) (*invoker.Response, error) {
		return ok([]byte(`{"len":` + fmt.Sprint(len(req.Payload)) + `}`)), nil
	}
	if err := h.svc.Enqueue(context.Background(), &Event{RequestID: uuid.NewString(), Function: "f", Payload: big}); err != nil {
		t.Fatalf("1 MB payload: %v", err)
	}
	r := h.records(t, "ok", 1)[0]
	if string(r.ResponsePayload) != fmt.Sprintf(`{"len":%d}`, MaxPayload) {
		t.Errorf("function saw %s, want the whole 1 MB payload", r.ResponsePayload)
	}
	if len(r.RequestPayload) != 4 || string(r.RequestPayload) != "null" {
		t.Errorf("record kept a %d-byte requestPayload; want it dropped to fit a message", len(r.RequestPayload))
	}
	err := h.svc.Enqueue(context.Background(), &Event{RequestID: uuid.NewString(), Function: "f", Payload: append(big, ' ')})
	if !isKind(err, apierr.RequestTooLarge) {
		t.Errorf("1 MB + 1 payload: %v, want RequestTooLarge", err)
	}
	// The stored payload is freed once the event is done: after its
	// record went out and the event was marked handled and acknowledged.
	eventually(t, "the stored payload freed after delivery", func() bool {
		l, _ := h.svc.objects.List(context.Background())
		return len(l) == 0
	})
}

func TestConcurrencyCaps(t *testing.T) {
	h := newHarness(t, func(o *Options) { o.FunctionConcurrency, o.Concurrency = 3, 4 })
	h.fns.add("r", ptr(1))
	var mu sync.Mutex
	running, peak := map[string]int{}, map[string]int{}
	total, peakTotal := 0, 0
	// The first three invocations wait until three run at once, so that a
	// parallel drain shows it however slowly a loaded machine starts them
	// (a serial one does not get there). The wait stays under AckWait.
	three := make(chan struct{})
	h.inv.handler = func(req invoker.Request, n int) (*invoker.Response, error) {
		fn := req.Config.Name
		mu.Lock()
		running[fn]++
		total++
		peak[fn] = max(peak[fn], running[fn])
		if total >= 3 && peakTotal < 3 {
			close(three)
		}
		peakTotal = max(peakTotal, total)
		mu.Unlock()
		if n <= 3 {
			select {
			case <-three:
			case <-time.After(2 * time.Second):
			}
		}
		time.Sleep(30 * time.Millisecond)
		mu.Lock()
		running[fn]--
		total--
		mu.Unlock()
		return ok(nil), nil
	}
	for _, fn := range []string{"f", "g", "r"} {
		h.configure(t, fn, ConfigInput{OnSuccess: queueARN("done")})
	}
	for i := 0; i < 12; i++ {
		for _, fn := range []string{"f", "g", "r"} {
			h.enqueue(t, fn, `{}`)
		}
	}
	h.records(t, "done", 36)
	mu.Lock()
	defer mu.Unlock()
	if peak["f"] > 3 || peak["g"] > 3 || peak["r"] > 1 || peakTotal > 4 {
		t.Errorf("peaks f=%d g=%d r=%d total=%d; want ≤3, ≤3, ≤1 (reserved), ≤4", peak["f"], peak["g"], peak["r"], peakTotal)
	}
	if peakTotal < 3 {
		t.Errorf("peak concurrency %d: the queue did not drain in parallel", peakTotal)
	}
}

func TestDeletedFunctionDropsEvents(t *testing.T) {
	h := newHarness(t)
	h.configure(t, "f", ConfigInput{OnSuccess: queueARN("ok")})
	h.fns.mu.Lock()
	delete(h.fns.fns, "f")
	h.fns.mu.Unlock()
	h.enqueue(t, "f", `{}`)
	time.Sleep(300 * time.Millisecond)
	if n := h.inv.count(); n != 0 {
		t.Errorf("%d invocations of a deleted function", n)
	}
	h.svc.FunctionDeleted(context.Background(), "f")
	if cfgs, _ := h.svc.configs.list(context.Background(), "f"); len(cfgs) != 0 {
		t.Errorf("configs left after delete: %v", cfgs)
	}
}

func TestResumeAfterRestart(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	open := func(inv *fakeInvoker) (*Service, func()) {
		st, err := jetstream.Open(ctx, jetstream.Options{Dir: dir})
		if err != nil {
			t.Fatal(err)
		}
		bucket, _ := st.Bucket(ctx, "async")
		svc := New(Options{JetStream: st.JetStream(), Bucket: bucket, Functions: newFakeFunctions("f"), Invoker: inv,
			Region: region, Account: account, AckWait: time.Second, RetryDelay: 10 * time.Millisecond})
		if err := svc.Start(ctx); err != nil {
			t.Fatal(err)
		}
		return svc, func() {
			cctx, cancel := context.WithTimeout(ctx, 100*time.Millisecond)
			defer cancel()
			svc.Close(cctx)
			st.Close()
		}
	}
	// First run: the function blocks, so nothing is acknowledged before
	// the server goes away.
	block := make(chan struct{})
	defer close(block)
	first := &fakeInvoker{handler: func(invoker.Request, int) (*invoker.Response, error) { <-block; return ok(nil), nil }}
	svc, stop := open(first)
	if _, err := svc.PutConfig(ctx, "f", "", ConfigInput{OnSuccess: queueARN("ok")}); err != nil {
		t.Fatal(err)
	}
	ids := map[string]bool{}
	for i := 0; i < 20; i++ {
		id := uuid.NewString()
		ids[id] = true
		if err := svc.Enqueue(ctx, &Event{RequestID: id, Function: "f", Payload: []byte(`{}`)}); err != nil {
			t.Fatal(err)
		}
	}
	for first.count() == 0 {
		time.Sleep(10 * time.Millisecond)
	}
	stop()

	second := &fakeInvoker{}
	svc, stop = open(second)
	defer stop()
	h := &harness{svc: svc}
	for _, r := range h.records(t, "ok", 20) {
		delete(ids, r.RequestContext.RequestID)
	}
	if len(ids) != 0 {
		t.Errorf("%d events not delivered after the restart", len(ids))
	}
}

func TestHandledAttemptIsNotRerun(t *testing.T) {
	h := newHarness(t)
	h.configure(t, "f", ConfigInput{OnSuccess: queueARN("ok")})
	// As if a crash lost the ack of an attempt whose outcome was stored.
	id := uuid.NewString()
	if _, err := h.svc.done.Put(context.Background(), doneKey(id, 0), nil); err != nil {
		t.Fatal(err)
	}
	if err := h.svc.Enqueue(context.Background(), &Event{RequestID: id, Function: "f", Payload: []byte(`{}`)}); err != nil {
		t.Fatal(err)
	}
	other := h.enqueue(t, "f", `{}`)
	r := h.records(t, "ok", 1)[0]
	time.Sleep(200 * time.Millisecond)
	if r.RequestContext.RequestID != other || h.inv.count() != 1 {
		t.Errorf("the handled attempt ran again: %d invocations, record of %s", h.inv.count(), r.RequestContext.RequestID)
	}
}

// TestHandledRedeliveryKeepsRetriedPayload: when a crash loses the ack of an
// attempt, its redelivery is acknowledged without running it; the stored
// payload is freed only if that attempt's outcome was final, since an
// attempt that re-queued a retry left the payload to the retry.
func TestHandledRedeliveryKeepsRetriedPayload(t *testing.T) {
	tests := []struct {
		name   string
		marker []byte
		want   int // payload objects left
	}{
		{"attempt re-queued a retry", []byte(doneRetried), 1},
		{"attempt was final", nil, 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t)
			h.configure(t, "f", ConfigInput{OnSuccess: queueARN("ok")})
			id := uuid.NewString()
			if _, err := h.svc.done.Put(context.Background(), doneKey(id, 0), tc.marker); err != nil {
				t.Fatal(err)
			}
			big := append(append([]byte(`"`), bytes.Repeat([]byte("x"), MaxPayload-2)...), '"')
			if err := h.svc.Enqueue(context.Background(), &Event{RequestID: id, Function: "f", Payload: big}); err != nil {
				t.Fatal(err)
			}
			other := h.enqueue(t, "f", `{}`)
			if r := h.records(t, "ok", 1)[0]; r.RequestContext.RequestID != other {
				t.Fatalf("record of %s, want only the other event's", r.RequestContext.RequestID)
			}
			// Both deliveries settled: nothing pending or awaiting an ack.
			deadline := time.Now().Add(10 * time.Second)
			for {
				cons, err := h.svc.stream.Consumer(context.Background(), consumerName("f"))
				if err == nil {
					if ci, err := cons.Info(context.Background()); err == nil && ci.NumPending == 0 && ci.NumAckPending == 0 {
						break
					}
				}
				if time.Now().After(deadline) {
					t.Fatal("the deliveries did not settle")
				}
				time.Sleep(20 * time.Millisecond)
			}
			if l, _ := h.svc.objects.List(context.Background()); len(l) != tc.want {
				t.Errorf("%d payload objects left, want %d", len(l), tc.want)
			}
			if n := h.inv.count(); n != 1 {
				t.Errorf("%d invocations, want only the other event's", n)
			}
		})
	}
}

// TestFailureGoesToDestinationAndDeadLetter: with both an OnFailure
// destination and a dead-letter queue, an event that fails for good is
// recorded in both ("in addition to or instead of a dead-letter queue").
// The dead-letter queue is that of the version that ran the event.
func TestFailureGoesToDestinationAndDeadLetter(t *testing.T) {
	h := newHarness(t, func(o *Options) {
		o.DeadLetter = func(_ context.Context, fn, version string) string {
			if fn == "f" && version == "3" {
				return *queueARN("dead")
			}
			return *queueARN("wrong")
		}
	})
	h.inv.handler = func(invoker.Request, int) (*invoker.Response, error) {
		r := fnError()
		r.ExecutedVersion = "3"
		return r, nil
	}
	h.configure(t, "f", ConfigInput{MaximumRetryAttempts: ptr(0), OnFailure: queueARN("failures")})
	id := h.enqueue(t, "f", `{"n":1}`)
	if r := h.records(t, "failures", 1)[0]; r.RequestContext.RequestID != id || r.RequestContext.Condition != RetriesExhausted {
		t.Errorf("destination record = %+v", r.RequestContext)
	}
	deadline := time.Now().Add(15 * time.Second)
	for {
		msgs, _ := h.svc.Queues().Read(context.Background(), "dead", 0, 10, 200*time.Millisecond)
		if len(msgs) == 1 && string(msgs[0].Body) == `{"n":1}` {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("dead-letter queue holds %d messages, want the event", len(msgs))
		}
	}
}

// TestAgedOutEventKeepsItsStoredPayload: an event whose payload is stored
// beside its message (too large to ride in it) and that is found past its
// maximum age on a redelivery still hands its payload to the dead-letter
// queue.
func TestAgedOutEventKeepsItsStoredPayload(t *testing.T) {
	h := newHarness(t, func(o *Options) {
		o.DeadLetter = func(context.Context, string, string) string { return *queueARN("dead") }
	})
	h.svc.maxMsg = 4096 // so that this payload is stored beside its message
	h.inv.handler = func(_ invoker.Request, n int) (*invoker.Response, error) {
		go func() { // past the 60 s age once the throttle is backed off, by the redelivery
			time.Sleep(5 * time.Millisecond)
			h.now.Add(int64(2 * time.Minute))
		}()
		return nil, apierr.New(apierr.TooManyRequests, "throttled")
	}
	h.configure(t, "f", ConfigInput{MaximumEventAgeInSeconds: ptr(60)})
	payload := `{"pad":"` + strings.Repeat("p", 8000) + `"}`
	h.enqueue(t, "f", payload)
	deadline := time.Now().Add(15 * time.Second)
	for {
		msgs, _ := h.svc.Queues().Read(context.Background(), "dead", 0, 10, 200*time.Millisecond)
		if len(msgs) == 1 {
			if string(msgs[0].Body) != payload {
				t.Fatalf("dead-letter message is %d bytes, want the %d-byte payload", len(msgs[0].Body), len(payload))
			}
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("dead-letter queue holds %d messages, want the event", len(msgs))
		}
	}
}

// TestRecursiveLoopStopped: a function whose success destination is itself
// runs function.MaxChain times for one event; the next invocation of the
// chain is stopped and the event goes to the on-failure destination (as a
// RecursiveInvocationException record) and the dead-letter queue, as in
// Lambda.
func TestRecursiveLoopStopped(t *testing.T) {
	h := newHarness(t, func(o *Options) {
		o.DeadLetter = func(context.Context, string, string) string { return *queueARN("loop-dead") }
	})
	self := "arn:aws:lambda:us-east-1:000000000000:function:f"
	h.configure(t, "f", ConfigInput{OnSuccess: &self, OnFailure: queueARN("loops")})
	id := h.enqueue(t, "f", `{"start":1}`)
	r := h.records(t, "loops", 1)[0]
	if r.RequestContext.Condition != RecursiveInvocation || r.ResponseContext.StatusCode != 400 {
		t.Errorf("record %+v %+v, want condition %s and status 400", r.RequestContext, r.ResponseContext, RecursiveInvocation)
	}
	if n := h.inv.count(); n != function.MaxChain {
		t.Errorf("%d invocations of the loop, want %d", n, function.MaxChain)
	}
	// The stopped event carries the chain back to the first one.
	inner := r
	for range function.MaxChain {
		var next Record
		if err := json.Unmarshal(inner.RequestPayload, &next); err != nil {
			break
		}
		inner = next
	}
	if inner.RequestContext.RequestID != id {
		t.Errorf("innermost record of request %s, want the first event %s", inner.RequestContext.RequestID, id)
	}
	eventually(t, "the stopped event in the dead-letter queue", func() bool {
		msgs, _ := h.svc.Queues().Read(context.Background(), "loop-dead", 0, 10, 100*time.Millisecond)
		return len(msgs) == 1
	})
}

// TestRecursiveLoopAllowed: with RecursiveLoop Allow the chain goes on past
// function.MaxChain (until, here, the function fails).
func TestRecursiveLoopAllowed(t *testing.T) {
	h := newHarness(t)
	h.fns.mu.Lock()
	h.fns.fns["f"].RecursiveLoop = function.RecursiveLoopAllow
	h.fns.mu.Unlock()
	stop := function.MaxChain + 4
	h.inv.handler = func(req invoker.Request, n int) (*invoker.Response, error) {
		if n == stop {
			return fnError(), nil
		}
		return ok(req.Payload), nil
	}
	self := "arn:aws:lambda:us-east-1:000000000000:function:f"
	h.configure(t, "f", ConfigInput{MaximumRetryAttempts: ptr(0), OnSuccess: &self, OnFailure: queueARN("allowed")})
	h.enqueue(t, "f", `{}`)
	if r := h.records(t, "allowed", 1)[0]; r.RequestContext.Condition != RetriesExhausted {
		t.Errorf("condition %s, want the function's own failure, %s", r.RequestContext.Condition, RetriesExhausted)
	}
	if n := h.inv.count(); n != stop {
		t.Errorf("%d invocations, want %d", n, stop)
	}
}
