package schedule

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/kappa-run/kappa/internal/apierr"
	"github.com/kappa-run/kappa/internal/store"
	"github.com/kappa-run/kappa/internal/store/memstore"
)

// fakeClock moves only when told; every Set wakes every waiter (the
// scheduler re-checks what is due, so early wake-ups are harmless).
type fakeClock struct {
	mu      sync.Mutex
	now     time.Time
	waiters []chan time.Time
	// moved is set by Set and taken by the next After, which fires at
	// once: a Set between the scheduler's Now and After would otherwise
	// wake nobody.
	moved bool
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) After(time.Duration) <-chan time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	ch := make(chan time.Time, 1)
	if c.moved {
		c.moved = false
		ch <- c.now
		return ch
	}
	c.waiters = append(c.waiters, ch)
	return ch
}

func (c *fakeClock) Set(t time.Time) {
	c.mu.Lock()
	c.now = t
	c.moved = true
	ws := c.waiters
	c.waiters = nil
	c.mu.Unlock()
	for _, w := range ws {
		w <- t
	}
}

type fire struct {
	arn, id string
	payload []byte
}

type fakeInvoker struct {
	mu    sync.Mutex
	fires []fire
	fail  int // fail this many calls first
	// failAfter, when set to n, fails the n-th call (once).
	failAfter int
}

func (f *fakeInvoker) InvokeAsync(_ context.Context, arn, id string, payload []byte) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.fail > 0 {
		f.fail--
		return errors.New("queue unavailable")
	}
	if f.failAfter > 0 {
		if f.failAfter--; f.failAfter == 0 {
			return errors.New("queue unavailable")
		}
	}
	f.fires = append(f.fires, fire{arn, id, payload})
	return nil
}

func (f *fakeInvoker) snapshot() []fire {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]fire(nil), f.fires...)
}

// waitFires waits (in real time) until n fires happened, and checks no
// more come.
func (f *fakeInvoker) waitFires(t *testing.T, n int) []fire {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for len(f.snapshot()) < n && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	time.Sleep(30 * time.Millisecond)
	got := f.snapshot()
	if len(got) != n {
		t.Fatalf("%d fires, want %d", len(got), n)
	}
	return got
}

const fnARN = "arn:aws:lambda:us-east-1:000000000000:function:tick"

type rig struct {
	bucket store.Bucket
	clock  *fakeClock
	inv    *fakeInvoker
}

func newRig(t *testing.T, start string) *rig {
	b, _ := memstore.New().Bucket(context.Background(), "s")
	return &rig{bucket: b, clock: &fakeClock{now: utc(start)}, inv: &fakeInvoker{}}
}

func (r *rig) start(t *testing.T, mutate ...func(*Options)) *Scheduler {
	t.Helper()
	o := Options{Bucket: r.bucket, Invoker: r.inv, Region: "us-east-1", Account: "000000000000", Clock: r.clock, RetryDelay: time.Second}
	for _, m := range mutate {
		m(&o)
	}
	s := New(o)
	if err := s.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Close)
	return s
}

func rateInput(expr string) Input {
	return Input{ScheduleExpression: expr, Target: &Target{Arn: fnARN}}
}

func eventTime(t *testing.T, f fire) string {
	t.Helper()
	var ev ScheduledEvent
	if err := json.Unmarshal(f.payload, &ev); err != nil {
		t.Fatal(err)
	}
	return ev.Time
}

func TestSchedulerFiresScheduledEvents(t *testing.T) {
	r := newRig(t, "2024-01-01T12:00:30Z")
	s := r.start(t)
	if _, err := s.Create(context.Background(), "every-minute", rateInput("rate(1 minute)")); err != nil {
		t.Fatal(err)
	}
	if got := s.NextFire("every-minute"); !got.Equal(utc("2024-01-01T12:01:00Z")) {
		t.Fatalf("next fire %v, want 12:01 (creation rounded up to the minute)", got)
	}
	r.clock.Set(utc("2024-01-01T12:00:59Z"))
	r.inv.waitFires(t, 0)
	r.clock.Set(utc("2024-01-01T12:01:00Z"))
	f := r.inv.waitFires(t, 1)[0]
	var ev map[string]any
	if err := json.Unmarshal(f.payload, &ev); err != nil {
		t.Fatal(err)
	}
	want := map[string]any{
		"version": "0", "id": f.id, "detail-type": "Scheduled Event", "source": "aws.events",
		"account": "000000000000", "time": "2024-01-01T12:01:00Z", "region": "us-east-1",
		"resources": []any{"arn:aws:scheduler:us-east-1:000000000000:schedule/default/every-minute"},
		"detail":    map[string]any{},
	}
	if fmt.Sprint(ev) != fmt.Sprint(want) || f.arn != fnARN {
		t.Errorf("fired %s %v\nwant %v", f.arn, ev, want)
	}
	// Keys in EventBridge's order.
	if !strings.HasPrefix(string(f.payload), `{"version":"0","id":"`) || !strings.Contains(string(f.payload), `"detail-type":"Scheduled Event","source":"aws.events","account"`) {
		t.Errorf("payload %s", f.payload)
	}
	r.clock.Set(utc("2024-01-01T12:03:10Z"))
	fires := r.inv.waitFires(t, 3)
	if eventTime(t, fires[1]) != "2024-01-01T12:02:00Z" || eventTime(t, fires[2]) != "2024-01-01T12:03:00Z" {
		t.Errorf("ticks %s, %s", eventTime(t, fires[1]), eventTime(t, fires[2]))
	}
	if fires[1].id == fires[2].id || fires[0].id == fires[1].id {
		t.Error("ticks share a request id")
	}
}

func TestSchedulerCatchesUpOnceAfterRestart(t *testing.T) {
	r := newRig(t, "2024-01-01T12:00:30Z")
	s := r.start(t)
	if _, err := s.Create(context.Background(), "m", rateInput("rate(1 minute)")); err != nil {
		t.Fatal(err)
	}
	r.clock.Set(utc("2024-01-01T12:01:00Z"))
	first := r.inv.waitFires(t, 1)
	s.Close()

	// Down from 12:01:00 to 12:05:30: ticks 12:02 … 12:05 are missed.
	r.clock.Set(utc("2024-01-01T12:05:30Z"))
	r.start(t)
	fires := r.inv.waitFires(t, 5)
	for i, want := range []string{"12:02", "12:03", "12:04", "12:05"} {
		if got := eventTime(t, fires[i+1]); got != "2024-01-01T"+want+":00Z" {
			t.Errorf("catch-up tick %d at %s, want %s", i, got, want)
		}
	}
	// A second restart at the same time fires nothing again, and the
	// ids of ticks do not depend on the process.
	r2 := r.start(t)
	r.inv.waitFires(t, 5)
	if first[0].id != fires[0].id {
		t.Error("first tick's id changed")
	}
	if got := r2.NextFire("m"); !got.Equal(utc("2024-01-01T12:06:00Z")) {
		t.Errorf("next fire after catch-up %v", got)
	}
}

func TestSchedulerCatchUpCap(t *testing.T) {
	r := newRig(t, "2024-01-01T12:00:30Z")
	s := r.start(t, func(o *Options) { o.MaxCatchUp = 3 })
	if _, err := s.Create(context.Background(), "m", rateInput("rate(1 minute)")); err != nil {
		t.Fatal(err)
	}
	s.Close()
	r.clock.Set(utc("2024-01-01T12:10:30Z"))
	r.start(t, func(o *Options) { o.MaxCatchUp = 3 })
	fires := r.inv.waitFires(t, 3)
	if eventTime(t, fires[0]) != "2024-01-01T12:08:00Z" || eventTime(t, fires[2]) != "2024-01-01T12:10:00Z" {
		t.Errorf("kept ticks %s … %s, want the latest three", eventTime(t, fires[0]), eventTime(t, fires[2]))
	}
}

func TestSchedulerRetriesAFailedFire(t *testing.T) {
	r := newRig(t, "2024-01-01T12:00:30Z")
	r.inv.fail = 1
	s := r.start(t)
	if _, err := s.Create(context.Background(), "m", rateInput("rate(5 minutes)")); err != nil {
		t.Fatal(err)
	}
	r.clock.Set(utc("2024-01-01T12:01:00Z"))
	r.inv.waitFires(t, 0)
	r.clock.Set(utc("2024-01-01T12:01:01Z")) // RetryDelay later
	f := r.inv.waitFires(t, 1)[0]
	if eventTime(t, f) != "2024-01-01T12:01:00Z" {
		t.Errorf("retried tick %s", eventTime(t, f))
	}
}

func TestSchedulerCronInZoneWithInput(t *testing.T) {
	r := newRig(t, "2024-03-08T00:00:00Z")
	s := r.start(t)
	in := Input{ScheduleExpression: "cron(0 9 ? * MON-FRI *)", ScheduleExpressionTimezone: "America/New_York",
		Target: &Target{Arn: fnARN, Input: strPtr(`{"job":"report"}`)}}
	if _, err := s.Create(context.Background(), "report", in); err != nil {
		t.Fatal(err)
	}
	// Friday 9:00 EST, then (DST starts Sunday) Monday 9:00 EDT.
	if got := s.NextFire("report"); !got.Equal(utc("2024-03-08T14:00:00Z")) {
		t.Fatalf("next %v", got)
	}
	r.clock.Set(utc("2024-03-08T14:00:00Z"))
	f := r.inv.waitFires(t, 1)[0]
	if string(f.payload) != `{"job":"report"}` {
		t.Errorf("payload %s, want the schedule's Input", f.payload)
	}
	if got := s.NextFire("report"); !got.Equal(utc("2024-03-11T13:00:00Z")) {
		t.Errorf("next %v, want Monday 13:00Z", got)
	}
}

func TestSchedulerUpdateAndDisable(t *testing.T) {
	r := newRig(t, "2024-01-01T12:00:30Z")
	s := r.start(t)
	ctx := context.Background()
	if _, err := s.Create(ctx, "m", rateInput("rate(1 minute)")); err != nil {
		t.Fatal(err)
	}
	in := rateInput("rate(1 minute)")
	in.State = Disabled
	if _, err := s.Update(ctx, "m", in); err != nil {
		t.Fatal(err)
	}
	r.clock.Set(utc("2024-01-01T12:05:00Z"))
	r.inv.waitFires(t, 0)
	in.State = Enabled
	sc, err := s.Update(ctx, "m", in)
	if err != nil || sc.Generation != 2 {
		t.Fatalf("Update = %+v, %v", sc, err)
	}
	// Re-enabled: the disabled period is not caught up.
	r.clock.Set(utc("2024-01-01T12:06:00Z"))
	fires := r.inv.waitFires(t, 1)
	if eventTime(t, fires[0]) != "2024-01-01T12:06:00Z" {
		t.Errorf("tick %s", eventTime(t, fires[0]))
	}
	if list := s.List(ctx, "", Enabled); len(list) != 1 || list[0].Name != "m" {
		t.Errorf("List = %v", list)
	}
	if err := s.Delete(ctx, "m"); err != nil {
		t.Fatal(err)
	}
	r.clock.Set(utc("2024-01-01T12:09:00Z"))
	r.inv.waitFires(t, 1)
}

func strPtr(s string) *string { return &s }

func TestSchedulerValidation(t *testing.T) {
	r := newRig(t, "2024-01-01T12:00:00Z")
	s := r.start(t)
	ctx := context.Background()
	if _, err := s.Create(ctx, "ok", rateInput("rate(1 hour)")); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name, sched string
		in          Input
		kind        apierr.Kind
		want        string
	}{
		{"bad name", "a b", rateInput("rate(1 hour)"), apierr.Validation, "name"},
		{"exists", "ok", rateInput("rate(1 hour)"), apierr.Conflict, "already exists"},
		{"no expression", "x", Input{Target: &Target{Arn: fnARN}}, apierr.Validation, "ScheduleExpression is required"},
		{"bad expression", "x", rateInput("rate(1 hours)"), apierr.Validation, "Invalid Schedule Expression"},
		{"bad zone", "x", Input{ScheduleExpression: "rate(1 hour)", ScheduleExpressionTimezone: "Mars/Olympus", Target: &Target{Arn: fnARN}}, apierr.Validation, "time zone"},
		{"no target", "x", Input{ScheduleExpression: "rate(1 hour)"}, apierr.Validation, "Target.Arn"},
		{"queue target", "x", Input{ScheduleExpression: "rate(1 hour)", Target: &Target{Arn: "arn:aws:sqs:us-east-1:000000000000:q"}}, apierr.Validation, "function ARN"},
		{"other region", "x", Input{ScheduleExpression: "rate(1 hour)", Target: &Target{Arn: "arn:aws:lambda:eu-west-1:000000000000:function:f"}}, apierr.Validation, "outside"},
		{"input not json", "x", Input{ScheduleExpression: "rate(1 hour)", Target: &Target{Arn: fnARN, Input: strPtr("hello")}}, apierr.Validation, "JSON"},
		{"bad state", "x", Input{ScheduleExpression: "rate(1 hour)", State: "ON", Target: &Target{Arn: fnARN}}, apierr.Validation, "State"},
		{"other group", "x", Input{ScheduleExpression: "rate(1 hour)", GroupName: "g", Target: &Target{Arn: fnARN}}, apierr.NotFound, "group"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := s.Create(ctx, tt.sched, tt.in)
			if e := apierr.As(err); e == nil || e.Kind != tt.kind || !strings.Contains(e.Message, tt.want) {
				t.Fatalf("Create = %v, want %s with %q", err, tt.kind, tt.want)
			}
		})
	}
	if _, err := s.Get(ctx, "nope"); !errors.Is(err, apierr.NotFound) {
		t.Errorf("Get missing: %v", err)
	}
	if err := s.Delete(ctx, "nope"); !errors.Is(err, apierr.NotFound) {
		t.Errorf("Delete missing: %v", err)
	}
	if _, err := s.Update(ctx, "nope", rateInput("rate(1 hour)")); !errors.Is(err, apierr.NotFound) {
		t.Errorf("Update missing: %v", err)
	}
}

func TestTickID(t *testing.T) {
	sc := &Schedule{Name: "a", CreationDate: utc("2024-01-01T00:00:00Z")}
	a, b := tickID(sc, utc("2024-01-01T00:01:00Z")), tickID(sc, utc("2024-01-01T00:01:00Z"))
	c := tickID(sc, utc("2024-01-01T00:02:00Z"))
	if a != b || a == c || len(a) != 36 || a[14] != '5' {
		t.Errorf("ids %s %s %s", a, b, c)
	}
}

// TestSchedulerExtendedEndDate: a schedule past its EndDate that is given
// a later one fires from then on, not the ticks of while it had ended.
func TestSchedulerExtendedEndDate(t *testing.T) {
	r := newRig(t, "2024-01-01T12:00:30Z")
	s := r.start(t)
	ctx := context.Background()
	in := rateInput("rate(1 minute)")
	end := utc("2024-01-01T12:02:30Z")
	in.EndDate = &end
	if _, err := s.Create(ctx, "m", in); err != nil {
		t.Fatal(err)
	}
	r.clock.Set(utc("2024-01-01T12:03:00Z"))
	r.inv.waitFires(t, 2) // 12:01 and 12:02
	r.clock.Set(utc("2024-01-01T13:00:00Z"))
	later := utc("2024-01-02T00:00:00Z")
	in.EndDate = &later
	if _, err := s.Update(ctx, "m", in); err != nil {
		t.Fatal(err)
	}
	r.clock.Set(utc("2024-01-01T13:01:00Z"))
	fires := r.inv.waitFires(t, 3)
	if got := eventTime(t, fires[2]); got != "2024-01-01T13:01:00Z" {
		t.Errorf("first tick after the extension %s, want 13:01 (no catching up the hour it had ended)", got)
	}
}

// TestSchedulerPartialCatchUpFailure: when queueing fails halfway through
// a catch-up, the retry starts at the tick that failed; the ticks queued
// before it are not queued again.
func TestSchedulerPartialCatchUpFailure(t *testing.T) {
	r := newRig(t, "2024-01-01T12:00:30Z")
	s := r.start(t)
	if _, err := s.Create(context.Background(), "m", rateInput("rate(1 minute)")); err != nil {
		t.Fatal(err)
	}
	s.Close()
	r.inv.failAfter = 3 // the third queueing fails, once
	r.clock.Set(utc("2024-01-01T12:05:30Z"))
	r.start(t)
	r.inv.waitFires(t, 2)
	r.clock.Set(utc("2024-01-01T12:05:31Z")) // RetryDelay later
	fires := r.inv.waitFires(t, 5)
	seen := map[string]bool{}
	for _, f := range fires {
		if seen[f.id] {
			t.Fatalf("tick %s queued twice: %v", eventTime(t, f), fires)
		}
		seen[f.id] = true
	}
}
