package eventsource

import (
	"context"
	"crypto/md5"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/kappa-run/kappa/internal/apierr"
	"github.com/kappa-run/kappa/internal/async"
	"github.com/kappa-run/kappa/internal/function"
	"github.com/kappa-run/kappa/internal/invoker"
	"github.com/kappa-run/kappa/internal/store"
	"github.com/kappa-run/kappa/internal/store/jetstream"
)

const (
	region  = "us-east-1"
	account = "000000000000"
)

// fakeFunctions knows a fixed set of functions; these unit tests of the
// mapping logic stand in for the function service (the e2e tests run
// real ones).
type fakeFunctions struct {
	mu  sync.Mutex
	fns map[string]bool
}

func (f *fakeFunctions) Get(_ context.Context, name string) (*function.Function, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if !f.fns[name] {
		return nil, apierr.New(apierr.NotFound, "Function not found: %s", name)
	}
	return &function.Function{Latest: function.Config{Name: name, Version: function.LatestVersion}}, nil
}

func (f *fakeFunctions) Config(ctx context.Context, ref function.Ref) (function.Config, error) {
	fn, err := f.Get(ctx, ref.Name)
	if err != nil {
		return function.Config{}, err
	}
	if ref.Qualifier != "" {
		return function.Config{}, apierr.New(apierr.NotFound, "Function not found: %s:%s", ref.Name, ref.Qualifier)
	}
	return fn.Latest, nil
}

func (f *fakeFunctions) Resolve(ctx context.Context, ref function.Ref) (function.Target, error) {
	fn, err := f.Get(ctx, ref.Name)
	if err != nil {
		return function.Target{}, err
	}
	return function.Target{Config: fn.Latest}, nil
}

func (f *fakeFunctions) ARN(name, q string) string { return function.ARN(region, account, name, q) }
func (f *fakeFunctions) UnreservedCached() int     { return 1000 }

// batch is one invocation the fake invoker received.
type batch struct {
	fn   string
	recs []sqsRecord
}

// fakeInvoker records batches and answers with handler.
type fakeInvoker struct {
	mu      sync.Mutex
	batches []batch
	handler func(recs []sqsRecord) (*invoker.Response, error)
}

func (f *fakeInvoker) Invoke(_ context.Context, req invoker.Request) (*invoker.Response, error) {
	var ev struct{ Records []sqsRecord }
	if err := json.Unmarshal(req.Payload, &ev); err != nil {
		return nil, err
	}
	f.mu.Lock()
	f.batches = append(f.batches, batch{fn: req.Config.Name, recs: ev.Records})
	h := f.handler
	f.mu.Unlock()
	if h != nil {
		return h(ev.Records)
	}
	return &invoker.Response{Payload: []byte(`null`), ExecutedVersion: "$LATEST"}, nil
}

// received returns every record delivered so far.
func (f *fakeInvoker) received() []sqsRecord {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []sqsRecord
	for _, b := range f.batches {
		out = append(out, b.recs...)
	}
	return out
}

// fakeMetrics counts messages by result.
type fakeMetrics struct {
	mu sync.Mutex
	n  map[string]int
}

func (f *fakeMetrics) ESMMessages(function, result string, n int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.n[function+"/"+result] += n
}

func (f *fakeMetrics) get(key string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.n[key]
}

type harness struct {
	metrics *fakeMetrics
	js      *jetstream.Store
	bucket  store.Bucket
	queues  *async.Queues
	fns     *fakeFunctions
	inv     *fakeInvoker
	svc     *Service
}

func newHarness(t *testing.T) *harness {
	t.Helper()
	ctx := context.Background()
	st, err := jetstream.Open(ctx, jetstream.Options{Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	bucket, err := st.Bucket(ctx, "esm")
	if err != nil {
		t.Fatal(err)
	}
	h := &harness{js: st, bucket: bucket, queues: async.NewQueues(st.JetStream(), region, account),
		fns: &fakeFunctions{fns: map[string]bool{"f": true, "g": true}}, inv: &fakeInvoker{}, metrics: &fakeMetrics{n: map[string]int{}}}
	h.start(t)
	t.Cleanup(func() {
		h.svc.Close(context.Background())
		st.Close()
	})
	return h
}

// start (re)starts the service on the harness's store.
func (h *harness) start(t *testing.T) {
	t.Helper()
	h.svc = New(Options{Bucket: h.bucket, JetStream: h.js.JetStream(), Functions: h.fns, Queues: h.queues,
		Invoker: h.inv, Region: region, Account: account, RetryDelay: 200 * time.Millisecond, Metrics: h.metrics})
	if err := h.svc.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
}

func (h *harness) send(t *testing.T, queue string, bodies ...string) {
	t.Helper()
	for _, b := range bodies {
		if _, err := h.queues.Send(context.Background(), queue, []byte(b)); err != nil {
			t.Fatal(err)
		}
	}
}

func ptr[T any](v T) *T { return &v }

func queueARN(q string) string { return "arn:aws:sqs:" + region + ":" + account + ":" + q }

// waitFor polls cond for up to 10 s.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not in 10s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func (h *harness) waitState(t *testing.T, id, state string) {
	t.Helper()
	waitFor(t, "state "+state, func() bool {
		m, err := h.svc.Get(context.Background(), id)
		return err == nil && m.State == state
	})
}

// bodies counts the deliveries of each body.
func bodies(recs []sqsRecord) map[string]int {
	out := map[string]int{}
	for _, r := range recs {
		out[r.Body]++
	}
	return out
}

func TestMappingDelivers(t *testing.T) {
	h := newHarness(t)
	ctx := context.Background()
	h.send(t, "in", "before")
	m, err := h.svc.Create(ctx, Input{Function: ptr("f"), EventSourceArn: queueARN("in"), BatchSize: ptr(3)})
	if err != nil {
		t.Fatal(err)
	}
	if m.State != StateCreating || m.BatchSize != 3 || !m.Enabled || m.Queue != "in" || m.Function != "f" {
		t.Fatalf("created %+v", m)
	}
	h.waitState(t, m.UUID, StateEnabled)
	h.send(t, "in", "a", "b", "c", "d")
	waitFor(t, "five messages", func() bool { return len(h.inv.received()) == 5 })
	recs := h.inv.received()
	// A new mapping starts at the queue's first message.
	if got := bodies(recs); got["before"] != 1 || got["a"] != 1 || got["d"] != 1 {
		t.Errorf("delivered %v", got)
	}
	h.inv.mu.Lock()
	for _, b := range h.inv.batches {
		if len(b.recs) > 3 {
			t.Errorf("a batch of %d records over BatchSize 3", len(b.recs))
		}
	}
	h.inv.mu.Unlock()
	r := recs[0]
	sum := md5.Sum([]byte(r.Body))
	if r.EventSource != "aws:sqs" || r.EventSourceARN != queueARN("in") || r.AWSRegion != region ||
		r.Attributes["ApproximateReceiveCount"] != "1" || r.Attributes["SenderId"] != account ||
		r.MD5OfBody != hex.EncodeToString(sum[:]) || len(r.MessageID) != 36 || r.ReceiptHandle == "" {
		t.Errorf("record %+v", r)
	}
	// Acknowledged: nothing comes again.
	time.Sleep(500 * time.Millisecond)
	if n := len(h.inv.received()); n != 5 {
		t.Errorf("%d deliveries after success, want 5", n)
	}
	if m, _ := h.svc.Get(ctx, m.UUID); m.LastResult != "OK" {
		t.Errorf("LastProcessingResult %q", m.LastResult)
	}
}

// TestBatchItemFailures: with ReportBatchItemFailures only the listed
// messages come again (with their receive count up); a function error
// sends the whole batch back.
func TestBatchItemFailures(t *testing.T) {
	h := newHarness(t)
	ctx := context.Background()
	h.inv.handler = func(recs []sqsRecord) (*invoker.Response, error) {
		var failed []map[string]string
		for _, r := range recs {
			if r.Body == "boom" && r.Attributes["ApproximateReceiveCount"] == "1" {
				return &invoker.Response{Payload: []byte(`{"errorMessage":"x"}`), FunctionError: "Unhandled"}, nil
			}
			if strings.HasPrefix(r.Body, "fail") && r.Attributes["ApproximateReceiveCount"] == "1" {
				failed = append(failed, map[string]string{"itemIdentifier": r.MessageID})
			}
		}
		b, _ := json.Marshal(map[string]any{"batchItemFailures": failed})
		return &invoker.Response{Payload: b}, nil
	}
	if _, err := h.queues.Create(ctx, "q"); err != nil {
		t.Fatal(err)
	}
	m, err := h.svc.Create(ctx, Input{Function: ptr("f"), EventSourceArn: queueARN("q"), BatchSize: ptr(10), Window: ptr(1),
		FunctionResponseTypes: &[]string{ReportBatchItemFailures}})
	if err != nil {
		t.Fatal(err)
	}
	h.send(t, "q", "ok1", "fail1", "ok2")
	waitFor(t, "fail1 again", func() bool { return bodies(h.inv.received())["fail1"] == 2 })
	if got := bodies(h.inv.received()); got["ok1"] != 1 || got["ok2"] != 1 {
		t.Errorf("delivered %v; only fail1 comes again", got)
	}
	for _, r := range h.inv.received() {
		if r.Body == "fail1" && r.Attributes["ApproximateReceiveCount"] == "2" {
			goto counted
		}
	}
	t.Error("fail1's second delivery does not count 2")
counted:
	// A function error: every record of the batch again.
	n := len(h.inv.received())
	h.send(t, "q", "boom")
	waitFor(t, "boom again", func() bool { return bodies(h.inv.received())["boom"] == 2 })
	time.Sleep(300 * time.Millisecond)
	if got := len(h.inv.received()) - n; got != 2 {
		t.Errorf("%d deliveries for boom, want 2", got)
	}
	// ok1, ok2, fail1 (second time), boom (second time) succeeded; fail1
	// and boom were retried once each.
	if s, r := h.metrics.get("f/succeeded"), h.metrics.get("f/retried"); s != 4 || r != 2 {
		t.Errorf("metrics: %d succeeded, %d retried; want 4 and 2", s, r)
	}
	_ = m
}

// TestDisableUpdateDelete: a disabled mapping delivers nothing and
// resumes where it stopped; an update changes the batch size; a deleted
// mapping is gone, its consumer too, and the queue keeps its messages.
func TestDisableUpdateDelete(t *testing.T) {
	h := newHarness(t)
	ctx := context.Background()
	if _, err := h.queues.Create(ctx, "q"); err != nil {
		t.Fatal(err)
	}
	m, err := h.svc.Create(ctx, Input{Function: ptr("f"), EventSourceArn: queueARN("q"), Enabled: ptr(false)})
	if err != nil {
		t.Fatal(err)
	}
	h.waitState(t, m.UUID, StateDisabled)
	h.send(t, "q", "x")
	time.Sleep(300 * time.Millisecond)
	if n := len(h.inv.received()); n != 0 {
		t.Fatalf("a disabled mapping delivered %d", n)
	}
	u, err := h.svc.Update(ctx, m.UUID, Input{Enabled: ptr(true), BatchSize: ptr(2)})
	if err != nil || u.State != StateEnabling || u.BatchSize != 2 {
		t.Fatalf("update = %+v, %v", u, err)
	}
	h.waitState(t, m.UUID, StateEnabled)
	waitFor(t, "x after enabling", func() bool { return bodies(h.inv.received())["x"] == 1 })
	if u, err := h.svc.Update(ctx, m.UUID, Input{Window: ptr(2)}); err != nil || u.State != StateUpdating {
		t.Fatalf("update = %+v, %v", u, err)
	}
	h.waitState(t, m.UUID, StateEnabled)

	d, err := h.svc.Delete(ctx, m.UUID)
	if err != nil || d.State != StateDeleting {
		t.Fatalf("delete = %+v, %v", d, err)
	}
	waitFor(t, "deleted", func() bool {
		_, err := h.svc.Get(ctx, m.UUID)
		return errors.Is(err, apierr.NotFound)
	})
	if _, err := h.js.JetStream().Consumer(ctx, async.QueueStream("q"), consumerName(m.UUID)); err == nil {
		t.Error("the deleted mapping's consumer is still there")
	}
	if q, err := h.queues.Get(ctx, "q"); err != nil || q.Messages != 1 {
		t.Errorf("queue after delete = %+v, %v; want its message kept", q, err)
	}
	if _, err := h.svc.Delete(ctx, m.UUID); !errors.Is(err, apierr.NotFound) {
		t.Errorf("second delete = %v", err)
	}
}

// TestRestartResumes: mappings survive a restart and go on from where
// they were; FunctionDeleted removes a deleted function's mappings.
func TestRestartResumes(t *testing.T) {
	h := newHarness(t)
	ctx := context.Background()
	if _, err := h.queues.Create(ctx, "r"); err != nil {
		t.Fatal(err)
	}
	m, err := h.svc.Create(ctx, Input{Function: ptr("g"), EventSourceArn: queueARN("r")})
	if err != nil {
		t.Fatal(err)
	}
	h.send(t, "r", "one")
	waitFor(t, "one", func() bool { return bodies(h.inv.received())["one"] == 1 })
	h.svc.Close(context.Background())
	h.send(t, "r", "two")
	h.start(t)
	waitFor(t, "two after the restart", func() bool { return bodies(h.inv.received())["two"] == 1 })
	if got := bodies(h.inv.received()); got["one"] != 1 {
		t.Errorf("after the restart: %v; one was delivered before", got)
	}
	if ms, _ := h.svc.List(ctx, "g", ""); len(ms) != 1 || ms[0].UUID != m.UUID || ms[0].State != StateEnabled {
		t.Fatalf("List(g) = %+v", ms)
	}
	h.fns.mu.Lock()
	delete(h.fns.fns, "g")
	h.fns.mu.Unlock()
	h.svc.FunctionDeleted(ctx, "g")
	waitFor(t, "mapping of a deleted function gone", func() bool {
		ms, _ := h.svc.List(ctx, "", "")
		return len(ms) == 0
	})
}

func TestCreateRefusals(t *testing.T) {
	h := newHarness(t)
	ctx := context.Background()
	if _, err := h.queues.Create(ctx, "q"); err != nil {
		t.Fatal(err)
	}
	if _, err := h.svc.Create(ctx, Input{Function: ptr("f"), EventSourceArn: queueARN("q")}); err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		name string
		in   Input
		kind apierr.Kind
	}{
		{"duplicate", Input{Function: ptr("f"), EventSourceArn: queueARN("q")}, apierr.Conflict},
		{"no function", Input{EventSourceArn: queueARN("q")}, apierr.Validation},
		{"unknown function", Input{Function: ptr("nope"), EventSourceArn: queueARN("q")}, apierr.NotFound},
		{"bad function name", Input{Function: ptr("a/b"), EventSourceArn: queueARN("q")}, apierr.Validation},
		{"unknown alias", Input{Function: ptr("g:nope"), EventSourceArn: queueARN("q")}, apierr.NotFound},
		{"kinesis", Input{Function: ptr("g"), EventSourceArn: "arn:aws:kinesis:us-east-1:000000000000:stream/s"}, apierr.InvalidParameter},
		{"other region", Input{Function: ptr("g"), EventSourceArn: "arn:aws:sqs:eu-west-1:000000000000:q"}, apierr.InvalidParameter},
		{"not an ARN", Input{Function: ptr("g"), EventSourceArn: "q"}, apierr.InvalidParameter},
		{"missing queue", Input{Function: ptr("g"), EventSourceArn: queueARN("none")}, apierr.InvalidParameter},
		{"batch 0", Input{Function: ptr("g"), EventSourceArn: queueARN("q"), BatchSize: ptr(0)}, apierr.Validation},
		{"batch 10001", Input{Function: ptr("g"), EventSourceArn: queueARN("q"), BatchSize: ptr(10001), Window: ptr(1)}, apierr.Validation},
		{"batch 11 without window", Input{Function: ptr("g"), EventSourceArn: queueARN("q"), BatchSize: ptr(11)}, apierr.InvalidParameter},
		{"window 301", Input{Function: ptr("g"), EventSourceArn: queueARN("q"), Window: ptr(301)}, apierr.Validation},
		{"response type", Input{Function: ptr("g"), EventSourceArn: queueARN("q"), FunctionResponseTypes: &[]string{"Everything"}}, apierr.Validation},
		{"stream member", Input{Function: ptr("g"), EventSourceArn: queueARN("q"), Unsupported: []string{"StartingPosition"}}, apierr.InvalidParameter},
	} {
		if _, err := h.svc.Create(ctx, tt.in); !errors.Is(err, tt.kind) {
			t.Errorf("%s: %v, want %s", tt.name, err, tt.kind)
		}
	}
	for _, id := range []string{"", "nope", "../x", "00000000-0000-0000-0000-000000000000"} {
		if _, err := h.svc.Get(ctx, id); !errors.Is(err, apierr.NotFound) {
			t.Errorf("Get(%q) = %v", id, err)
		}
		if _, err := h.svc.Update(ctx, id, Input{}); !errors.Is(err, apierr.NotFound) {
			t.Errorf("Update(%q) = %v", id, err)
		}
		if _, err := h.svc.Delete(ctx, id); !errors.Is(err, apierr.NotFound) {
			t.Errorf("Delete(%q) = %v", id, err)
		}
	}
}

func TestParseBatchItemFailures(t *testing.T) {
	ids := map[string]int{"a": 0, "b": 1}
	for _, tt := range []struct {
		payload string
		failed  []int
		ok      bool
	}{
		{"", nil, true},
		{"null", nil, true},
		{"{}", nil, true},
		{`{"batchItemFailures":null}`, nil, true},
		{`{"batchItemFailures":[]}`, nil, true},
		{`{"batchItemFailures":[{"itemIdentifier":"b"}]}`, []int{1}, true},
		{`{"batchItemFailures":[{"itemIdentifier":"a"},{"itemIdentifier":"b"}]}`, []int{0, 1}, true},
		{`{"batchItemFailures":[{"itemIdentifier":"c"}]}`, nil, false},
		{`{"batchItemFailures":[{"itemIdentifier":""}]}`, nil, false},
		{`{"batchItemFailures":[{"itemIdentifier":null}]}`, nil, false},
		{`{"batchItemFailures":[{"itemId":"a"}]}`, nil, false},
		{`{"batchItemFailures":[null]}`, nil, false},
		{`{"batchItemFailures":[{"itemIdentifier":1}]}`, nil, false},
		{`{"batchItemFailures":"a"}`, nil, false},
		{`"ok"`, nil, false},
		{`[1]`, nil, false},
		{`{"batchItemFailures":[`, nil, false},
	} {
		failed, ok := parseBatchItemFailures([]byte(tt.payload), ids)
		if ok != tt.ok || len(failed) != len(tt.failed) {
			t.Errorf("%s: %v, %v; want %v, %v", tt.payload, failed, ok, tt.failed, tt.ok)
			continue
		}
		for _, i := range tt.failed {
			if !failed[i] {
				t.Errorf("%s: %d not failed", tt.payload, i)
			}
		}
	}
}

func FuzzParseBatchItemFailures(f *testing.F) {
	for _, s := range []string{"", "null", "{}", `{"batchItemFailures":[{"itemIdentifier":"a"}]}`, `{"batchItemFailures":[{"itemIdentifier":null}]}`, `[`} {
		f.Add([]byte(s))
	}
	ids := map[string]int{"a": 0, "b": 1}
	f.Fuzz(func(t *testing.T, payload []byte) {
		failed, ok := parseBatchItemFailures(payload, ids)
		if !ok {
			return
		}
		for i := range failed {
			if i != 0 && i != 1 {
				t.Fatalf("index %d names no message of the batch", i)
			}
		}
	})
}

// gate holds every batch until release is closed and counts how many run
// at once.
type gate struct {
	mu        sync.Mutex
	now, most int
	release   chan struct{}
}

// gate makes the fake invoker wait at a new gate.
func (h *harness) gate() *gate {
	g := &gate{release: make(chan struct{})}
	h.inv.handler = func([]sqsRecord) (*invoker.Response, error) {
		g.mu.Lock()
		g.now++
		g.most = max(g.most, g.now)
		g.mu.Unlock()
		<-g.release
		g.mu.Lock()
		g.now--
		g.mu.Unlock()
		return &invoker.Response{Payload: []byte(`null`)}, nil
	}
	return g
}

func (g *gate) running() int { g.mu.Lock(); defer g.mu.Unlock(); return g.now }
func (g *gate) peak() int    { g.mu.Lock(); defer g.mu.Unlock(); return g.most }

// TestMaximumConcurrency: ScalingConfig.MaximumConcurrency lets that many
// batches run at once; without it they run one at a time.
func TestMaximumConcurrency(t *testing.T) {
	h := newHarness(t)
	ctx := context.Background()
	g := h.gate()
	if _, err := h.queues.Create(ctx, "c"); err != nil {
		t.Fatal(err)
	}
	for _, bad := range []int{1, 1001, -1} {
		if _, err := h.svc.Create(ctx, Input{Function: ptr("f"), EventSourceArn: queueARN("c"), MaxConcurrency: ptr(bad)}); !errors.Is(err, apierr.Validation) {
			t.Errorf("MaximumConcurrency %d: %v, want ValidationException", bad, err)
		}
	}
	m, err := h.svc.Create(ctx, Input{Function: ptr("f"), EventSourceArn: queueARN("c"), BatchSize: ptr(1), MaxConcurrency: ptr(3)})
	if err != nil || m.MaxConcurrency != 3 {
		t.Fatalf("create = %+v, %v", m, err)
	}
	h.send(t, "c", "1", "2", "3", "4", "5")
	waitFor(t, "three batches at once", func() bool { return g.running() == 3 })
	time.Sleep(200 * time.Millisecond) // a fourth would start now if it could
	if peak := g.peak(); peak != 3 {
		t.Errorf("peak %d batches at once, want MaximumConcurrency 3", peak)
	}
	close(g.release)
	waitFor(t, "all five", func() bool { return len(h.inv.received()) == 5 })
}

// TestLargeMessagesSplitBatches: a batch stops short of the 6 MB event
// limit; the messages it had no room for go in the next batch without
// being sent back (their receive count stays 1).
func TestLargeMessagesSplitBatches(t *testing.T) {
	h := newHarness(t)
	ctx := context.Background()
	if _, err := h.queues.Create(ctx, "big"); err != nil {
		t.Fatal(err)
	}
	body := strings.Repeat("x", 900<<10)
	for i := range 8 {
		h.send(t, "big", fmt.Sprintf("%d%s", i, body))
	}
	if _, err := h.svc.Create(ctx, Input{Function: ptr("f"), EventSourceArn: queueARN("big"), BatchSize: ptr(20), Window: ptr(1)}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "eight messages", func() bool { return len(h.inv.received()) == 8 })
	h.inv.mu.Lock()
	defer h.inv.mu.Unlock()
	if len(h.inv.batches) < 2 {
		t.Errorf("%d batches for 7.2 MB of messages, want them split", len(h.inv.batches))
	}
	for _, b := range h.inv.batches {
		size := 0
		for _, r := range b.recs {
			size += len(r.Body)
			if r.Attributes["ApproximateReceiveCount"] != "1" {
				t.Errorf("message %c received %s times before its first batch", r.Body[0], r.Attributes["ApproximateReceiveCount"])
			}
		}
		if size > maxEventBytes {
			t.Errorf("a batch of %d bytes of bodies", size)
		}
	}
}

// TestToggleWaitsForTheBatch: a mapping disabled while a batch runs stays
// Disabling until the batch ends and, as in Lambda, refuses changes and
// deletion meanwhile (ResourceInUseException); enabled again, it never
// runs a second batch beside the first.
func TestToggleWaitsForTheBatch(t *testing.T) {
	h := newHarness(t)
	ctx := context.Background()
	g := h.gate()
	if _, err := h.queues.Create(ctx, "t"); err != nil {
		t.Fatal(err)
	}
	m, err := h.svc.Create(ctx, Input{Function: ptr("f"), EventSourceArn: queueARN("t"), BatchSize: ptr(1)})
	if err != nil {
		t.Fatal(err)
	}
	h.send(t, "t", "1", "2")
	waitFor(t, "the first batch", func() bool { return g.running() == 1 })
	if _, err := h.svc.Update(ctx, m.UUID, Input{Enabled: ptr(false)}); err != nil {
		t.Fatal(err)
	}
	if _, err := h.svc.Update(ctx, m.UUID, Input{Enabled: ptr(true)}); !errors.Is(err, apierr.InUse) {
		t.Errorf("enable while Disabling: %v, want ResourceInUseException", err)
	}
	if _, err := h.svc.Delete(ctx, m.UUID); !errors.Is(err, apierr.InUse) {
		t.Errorf("delete while Disabling: %v, want ResourceInUseException", err)
	}
	if got, _ := h.svc.Get(ctx, m.UUID); got.State != StateDisabling {
		t.Errorf("state %s while the batch runs, want Disabling", got.State)
	}
	close(g.release)
	h.waitState(t, m.UUID, StateDisabled)
	if _, err := h.svc.Update(ctx, m.UUID, Input{Enabled: ptr(true)}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "both messages", func() bool { return len(h.inv.received()) == 2 })
	h.waitState(t, m.UUID, StateEnabled)
	if peak := g.peak(); peak != 1 {
		t.Errorf("%d batches at once after a disable and enable, want 1", peak)
	}
}

// TestQueueRemadeMidBatch: a batch still running when its queue is
// deleted and made again settles nothing of the new queue (whose message
// numbers start over): a new message the function fails comes again even
// though the old batch succeeded meanwhile.
func TestQueueRemadeMidBatch(t *testing.T) {
	h := newHarness(t)
	ctx := context.Background()
	if _, err := h.queues.Create(ctx, "re"); err != nil {
		t.Fatal(err)
	}
	release, oldDone := make(chan struct{}), make(chan struct{})
	h.inv.handler = func(recs []sqsRecord) (*invoker.Response, error) {
		switch r := recs[0]; {
		case r.Body == "old":
			<-release
			close(oldDone)
		case r.Body == "new" && r.Attributes["ApproximateReceiveCount"] == "1":
			// Fails, after the old batch succeeded and settled what it
			// would.
			<-oldDone
			time.Sleep(300 * time.Millisecond)
			return &invoker.Response{Payload: []byte(`{"errorMessage":"x"}`), FunctionError: "Unhandled"}, nil
		}
		return &invoker.Response{Payload: []byte(`null`)}, nil
	}
	if _, err := h.svc.Create(ctx, Input{Function: ptr("f"), EventSourceArn: queueARN("re"), BatchSize: ptr(1), MaxConcurrency: ptr(2)}); err != nil {
		t.Fatal(err)
	}
	h.send(t, "re", "old")
	waitFor(t, "old", func() bool { return bodies(h.inv.received())["old"] == 1 })
	if err := h.queues.Delete(ctx, "re"); err != nil {
		t.Fatal(err)
	}
	h.send(t, "re", "new") // makes the queue again
	waitFor(t, "new", func() bool { return bodies(h.inv.received())["new"] == 1 })
	close(release)
	waitFor(t, "new again after its failure", func() bool { return bodies(h.inv.received())["new"] == 2 })
}

// TestHostileBodies: a message that is not valid UTF-8, or empty, is
// still delivered (as JSON can carry it) and settled, never stalling the
// mapping.
func TestHostileBodies(t *testing.T) {
	h := newHarness(t)
	ctx := context.Background()
	if _, err := h.queues.Create(ctx, "odd"); err != nil {
		t.Fatal(err)
	}
	if _, err := h.svc.Create(ctx, Input{Function: ptr("f"), EventSourceArn: queueARN("odd")}); err != nil {
		t.Fatal(err)
	}
	h.send(t, "odd", "\xff\xfe\x00bad", "", `"}]{`, "after")
	waitFor(t, "all four", func() bool { return len(h.inv.received()) == 4 })
	time.Sleep(500 * time.Millisecond)
	if got := bodies(h.inv.received()); len(h.inv.received()) != 4 || got["after"] != 1 || got[`"}]{`] != 1 || got[""] != 1 {
		t.Errorf("delivered %v", got)
	}
}

// failingPuts fails Put number failAt (counting from 1) once.
type failingPuts struct {
	store.Bucket
	n, failAt atomic.Int32
}

func (b *failingPuts) Put(ctx context.Context, k string, v []byte) (uint64, error) {
	if b.n.Add(1) == b.failAt.Load() {
		return 0, errors.New("nats: timeout")
	}
	return b.Bucket.Put(ctx, k, v)
}

// TestSettleWriteRetried: a mapping whose settling write fails once still
// settles (the write is retried), so that it does not refuse every later
// change with ResourceInUseException.
func TestSettleWriteRetried(t *testing.T) {
	h := newHarness(t)
	ctx := context.Background()
	fb := &failingPuts{Bucket: h.bucket}
	h.svc.Close(ctx)
	h.bucket = fb
	h.start(t)
	if _, err := h.queues.Create(ctx, "sq"); err != nil {
		t.Fatal(err)
	}
	m, err := h.svc.Create(ctx, Input{Function: ptr("f"), EventSourceArn: queueARN("sq")})
	if err != nil {
		t.Fatal(err)
	}
	h.waitState(t, m.UUID, StateEnabled)
	fb.n.Store(0)
	fb.failAt.Store(2) // the Update's own write passes, the settling one fails
	if _, err := h.svc.Update(ctx, m.UUID, Input{BatchSize: ptr(5)}); err != nil {
		t.Fatal(err)
	}
	h.waitState(t, m.UUID, StateEnabled)
	if fb.n.Load() < 3 {
		t.Errorf("%d writes; want the failed settling write retried", fb.n.Load())
	}
	if _, err := h.svc.Update(ctx, m.UUID, Input{BatchSize: ptr(6)}); err != nil {
		t.Errorf("update after the retried settle: %v", err)
	}
}

// TestUpdateWaitsForTheBatch: a mapping updated while a batch runs starts
// its new poller only once that batch is over, so it never runs a second
// batch beside the first.
func TestUpdateWaitsForTheBatch(t *testing.T) {
	h := newHarness(t)
	ctx := context.Background()
	g := h.gate()
	if _, err := h.queues.Create(ctx, "u"); err != nil {
		t.Fatal(err)
	}
	m, err := h.svc.Create(ctx, Input{Function: ptr("f"), EventSourceArn: queueARN("u"), BatchSize: ptr(1)})
	if err != nil {
		t.Fatal(err)
	}
	h.send(t, "u", "1", "2")
	waitFor(t, "the first batch", func() bool { return g.running() == 1 })
	if _, err := h.svc.Update(ctx, m.UUID, Input{BatchSize: ptr(2)}); err != nil {
		t.Fatal(err)
	}
	if got, _ := h.svc.Get(ctx, m.UUID); got.State != StateUpdating {
		t.Errorf("state %s while the batch runs, want Updating", got.State)
	}
	// Give a new poller that did not wait the time to start a batch.
	time.Sleep(200 * time.Millisecond)
	close(g.release)
	waitFor(t, "both messages", func() bool { return len(h.inv.received()) == 2 })
	h.waitState(t, m.UUID, StateEnabled)
	if peak := g.peak(); peak != 1 {
		t.Errorf("%d batches at once across an update, want 1", peak)
	}
}
