package schedule

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/kappa-run/kappa/internal/apierr"
	"github.com/kappa-run/kappa/internal/store"
)

// Invoker queues an asynchronous invocation of a function ARN; the
// daemon's adapter over the async service implements it. It returns once
// the invocation is stored.
type Invoker interface {
	InvokeAsync(ctx context.Context, functionARN, requestID string, payload []byte) error
}

// Clock tells the time and waits; tests pass a fake so that they never
// sleep for minutes.
type Clock interface {
	Now() time.Time
	After(d time.Duration) <-chan time.Time
}

type realClock struct{}

func (realClock) Now() time.Time                         { return time.Now() }
func (realClock) After(d time.Duration) <-chan time.Time { return time.After(d) }

// Options configure a Scheduler.
type Options struct {
	Bucket  store.Bucket
	Invoker Invoker
	Region  string
	Account string
	// MaxCatchUp caps the missed ticks fired per schedule after downtime
	// (the latest ones are kept). Default 60.
	MaxCatchUp int
	// RetryDelay is the wait after a tick could not be queued. Default 5 s.
	RetryDelay time.Duration
	Clock      Clock
	Logger     *slog.Logger
}

// Scheduler stores schedules and fires their ticks. Safe for concurrent
// use; Start it before use and Close it before the store.
type Scheduler struct {
	opts Options
	log  *slog.Logger

	mu      sync.Mutex
	entries map[string]*entry
	wake    chan struct{}
	ctx     context.Context
	cancel  context.CancelFunc
	done    chan struct{}
}

// entry is a schedule with its parsed timing and next tick.
type entry struct {
	s      *Schedule
	rev    uint64
	p      parsed
	next   time.Time // zero: none
	holdTo time.Time // after a failed fire: not before
}

// New returns a Scheduler.
func New(opts Options) *Scheduler {
	if opts.Clock == nil {
		opts.Clock = realClock{}
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.MaxCatchUp <= 0 {
		opts.MaxCatchUp = 60
	}
	if opts.RetryDelay <= 0 {
		opts.RetryDelay = 5 * time.Second
	}
	ctx, cancel := context.WithCancel(context.Background())
	return &Scheduler{opts: opts, log: opts.Logger, entries: map[string]*entry{},
		wake: make(chan struct{}, 1), ctx: ctx, cancel: cancel, done: make(chan struct{})}
}

func key(name string) string { return "sched." + name }

// Start loads every schedule and starts firing; ticks missed while the
// server was down fire first.
func (s *Scheduler) Start(ctx context.Context) error {
	keys, err := s.opts.Bucket.Keys(ctx, "sched")
	if err != nil {
		return err
	}
	s.mu.Lock()
	for _, k := range keys {
		e, err := s.load(ctx, strings.TrimPrefix(k, "sched."))
		if err != nil {
			s.log.Error("skipping an unreadable schedule", "key", k, "err", err)
			continue
		}
		s.entries[e.s.Name] = e
	}
	s.mu.Unlock()
	go s.run()
	return nil
}

// Close stops firing.
func (s *Scheduler) Close() {
	s.cancel()
	<-s.done
}

func (s *Scheduler) load(ctx context.Context, name string) (*entry, error) {
	v, err := s.opts.Bucket.Get(ctx, key(name))
	if err != nil {
		return nil, err
	}
	var sc Schedule
	if err := json.Unmarshal(v.Value, &sc); err != nil {
		return nil, err
	}
	in := sc.input()
	p, err := in.validate(s.opts.Region, s.opts.Account)
	if err != nil {
		return nil, err
	}
	e := &entry{s: &sc, rev: v.Revision, p: p}
	e.plan()
	return e, nil
}

func (sc *Schedule) input() Input {
	fw := sc.FlexibleTimeWindow
	t := sc.Target
	return Input{Description: sc.Description, ScheduleExpression: sc.ScheduleExpression,
		ScheduleExpressionTimezone: sc.ScheduleExpressionTimezone, StartDate: sc.StartDate, EndDate: sc.EndDate,
		State: sc.State, Target: &t, FlexibleTimeWindow: &fw}
}

// plan computes the next tick after the last one fired.
func (e *entry) plan() {
	e.next = time.Time{}
	if e.s.State != Enabled {
		return
	}
	if t, ok := e.s.next(e.p, e.s.LastFired); ok {
		e.next = t
	}
}

func (s *Scheduler) poke() {
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

func (s *Scheduler) run() {
	defer close(s.done)
	for {
		s.mu.Lock()
		var soonest time.Time
		for _, e := range s.entries {
			at := e.next
			if at.IsZero() {
				continue
			}
			if e.holdTo.After(at) {
				at = e.holdTo
			}
			if soonest.IsZero() || at.Before(soonest) {
				soonest = at
			}
		}
		s.mu.Unlock()
		var timer <-chan time.Time
		if !soonest.IsZero() {
			d := soonest.Sub(s.opts.Clock.Now())
			if d <= 0 {
				s.fireDue()
				continue
			}
			timer = s.opts.Clock.After(d)
		}
		select {
		case <-timer:
			s.fireDue()
		case <-s.wake:
		case <-s.ctx.Done():
			return
		}
	}
}

// fireDue fires every tick that is due.
func (s *Scheduler) fireDue() {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.opts.Clock.Now()
	for _, e := range s.entries {
		if !e.next.IsZero() && !e.next.After(now) && !e.holdTo.After(now) {
			s.fire(e, now)
		}
	}
}

// fire fires e's due ticks, oldest first, at most MaxCatchUp of them, and
// records each one once it is queued.
func (s *Scheduler) fire(e *entry, now time.Time) {
	log := s.log.With("schedule", e.s.Name)
	var due []time.Time
	skipped := 0
	for t, steps := e.next, 0; !t.IsZero() && !t.After(now); steps++ {
		if steps > 1_000_000 {
			// Hopelessly far behind: skip to now.
			skipped += len(due)
			due = nil
			e.s.LastFired = now
			break
		}
		due = append(due, t)
		if len(due) > s.opts.MaxCatchUp {
			due = due[1:]
			skipped++
		}
		var ok bool
		if t, ok = e.s.next(e.p, t); !ok {
			break
		}
	}
	if skipped > 0 {
		log.Warn("schedule missed more ticks than it catches up; skipping the oldest", "skipped", skipped, "firing", len(due))
	}
	arn := e.s.Target.Arn
	for _, tick := range due {
		id := tickID(e.s, tick)
		if err := s.opts.Invoker.InvokeAsync(s.ctx, arn, id, e.s.payload(id, tick, s.opts.Region, s.opts.Account)); err != nil {
			log.Warn("queueing a scheduled invocation failed; retrying", "tick", tick, "err", err)
			e.holdTo = now.Add(s.opts.RetryDelay)
			if tick != due[0] {
				// The retry starts at this tick, not at the ones queued.
				e.next = tick
			}
			return
		}
		log.Debug("scheduled invocation queued", "tick", tick, "requestId", id)
		e.s.LastFired = tick
		if err := s.save(e); err != nil {
			log.Warn("recording a fired tick failed; it may fire again after a restart", "tick", tick, "err", err)
		}
	}
	if len(due) == 0 && skipped > 0 {
		s.save(e)
	}
	e.holdTo = time.Time{}
	e.plan()
}

// save writes e under its revision (the scheduler is the only writer).
func (s *Scheduler) save(e *entry) error {
	b, _ := json.Marshal(e.s)
	rev, err := s.opts.Bucket.Update(context.Background(), key(e.s.Name), b, e.rev)
	if err != nil {
		return err
	}
	e.rev = rev
	return nil
}

func (s *Scheduler) notFound(name string) error {
	return apierr.New(apierr.NotFound, "Schedule %s does not exist.", name)
}

func (s *Scheduler) checkName(name string) error {
	if !ValidName(name) {
		return validationError("1 validation error detected: Value '%s' at 'name' failed to satisfy constraint: Member must satisfy regular expression pattern: ^[0-9a-zA-Z-_.]+$ and have length 1-64", name)
	}
	return nil
}

// Create stores a new schedule. Ticks at or before now are not fired.
func (s *Scheduler) Create(ctx context.Context, name string, in Input) (*Schedule, error) {
	if err := s.checkName(name); err != nil {
		return nil, err
	}
	p, err := in.validate(s.opts.Region, s.opts.Account)
	if err != nil {
		return nil, err
	}
	now := s.opts.Clock.Now().UTC()
	sc := &Schedule{Name: name, CreationDate: now, LastModificationDate: now, LastFired: now}
	sc.apply(in)
	b, _ := json.Marshal(sc)
	s.mu.Lock()
	defer s.mu.Unlock()
	rev, err := s.opts.Bucket.Create(ctx, key(name), b)
	if errors.Is(err, store.ErrExists) {
		return nil, apierr.New(apierr.Conflict, "Schedule %s already exists.", name)
	}
	if err != nil {
		return nil, apierr.Wrap(apierr.Internal, err, "store schedule")
	}
	e := &entry{s: sc, rev: rev, p: p}
	e.plan()
	s.entries[name] = e
	s.poke()
	c := *sc
	return &c, nil
}

func (sc *Schedule) apply(in Input) {
	sc.Description = in.Description
	sc.ScheduleExpression = in.ScheduleExpression
	sc.ScheduleExpressionTimezone = in.ScheduleExpressionTimezone
	sc.StartDate, sc.EndDate = in.StartDate, in.EndDate
	sc.State = in.State
	sc.Target = *in.Target
	sc.FlexibleTimeWindow = *in.FlexibleTimeWindow
}

// Update replaces a schedule's settings. When its timing changes or it is
// re-enabled, ticks up to now are not fired.
func (s *Scheduler) Update(ctx context.Context, name string, in Input) (*Schedule, error) {
	if err := s.checkName(name); err != nil {
		return nil, err
	}
	p, err := in.validate(s.opts.Region, s.opts.Account)
	if err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	e := s.entries[name]
	if e == nil {
		return nil, s.notFound(name)
	}
	sc := *e.s
	old := e.s
	sc.apply(in)
	now := s.opts.Clock.Now().UTC()
	// A schedule that ended (no next tick, e.g. past its EndDate) and is
	// extended starts from now, as a re-enabled one does: the ticks of
	// while it had ended are not fired late.
	timing := old.ScheduleExpression != sc.ScheduleExpression || old.ScheduleExpressionTimezone != sc.ScheduleExpressionTimezone ||
		!sameTime(old.StartDate, sc.StartDate) || old.State != Enabled && sc.State == Enabled || e.next.IsZero()
	if timing {
		sc.LastFired = now
	}
	sc.LastModificationDate = now
	sc.Generation++
	b, _ := json.Marshal(&sc)
	rev, err := s.opts.Bucket.Update(ctx, key(name), b, e.rev)
	if err != nil {
		return nil, apierr.Wrap(apierr.Internal, err, "store schedule")
	}
	e.s, e.rev, e.p, e.holdTo = &sc, rev, p, time.Time{}
	e.plan()
	s.poke()
	c := sc
	return &c, nil
}

func sameTime(a, b *time.Time) bool {
	return a == nil && b == nil || a != nil && b != nil && a.Equal(*b)
}

// Get returns a schedule.
func (s *Scheduler) Get(_ context.Context, name string) (*Schedule, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	e := s.entries[name]
	if e == nil {
		return nil, s.notFound(name)
	}
	c := *e.s
	return &c, nil
}

// NextFire returns a schedule's next tick (zero when none).
func (s *Scheduler) NextFire(name string) time.Time {
	s.mu.Lock()
	defer s.mu.Unlock()
	if e := s.entries[name]; e != nil {
		return e.next
	}
	return time.Time{}
}

// Delete removes a schedule.
func (s *Scheduler) Delete(ctx context.Context, name string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.entries[name] == nil {
		return s.notFound(name)
	}
	if err := s.opts.Bucket.Delete(ctx, key(name)); err != nil {
		return apierr.Wrap(apierr.Internal, err, "delete schedule")
	}
	delete(s.entries, name)
	s.poke()
	return nil
}

// List returns the schedules whose name starts with prefix and whose state
// is state ("" for any), sorted by name.
func (s *Scheduler) List(_ context.Context, prefix, state string) []*Schedule {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []*Schedule
	for name, e := range s.entries {
		if strings.HasPrefix(name, prefix) && (state == "" || e.s.State == state) {
			c := *e.s
			out = append(out, &c)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}
