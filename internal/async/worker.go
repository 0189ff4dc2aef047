package async

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/google/uuid"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/kappa-run/kappa/internal/apierr"
	"github.com/kappa-run/kappa/internal/function"
	"github.com/kappa-run/kappa/internal/invoker"
)

// Dispatcher timing.
const (
	fetchWait = 5 * time.Second  // one pull request's expiry
	idleExit  = 30 * time.Second // a dispatcher with nothing to do for this long stops
)

// dispatcher delivers one function's events: it pulls as many as the
// function may run at once and hands each to a goroutine.
type dispatcher struct {
	s      *Service
	fn     string
	kicked bool // under s.mu: new events since the dispatcher last looked
	wake   chan struct{}
	cons   jetstream.Consumer

	mu         sync.Mutex
	inflight   int
	pauseUntil time.Time
}

func consumerName(fn string) string { return "fn-" + fn }

func (d *dispatcher) run() {
	defer d.s.wg.Done()
	ctx := d.s.ctx
	log := d.s.log.With("function", d.fn)
	var idleSince time.Time
	for ctx.Err() == nil {
		if d.cons == nil {
			cons, err := d.s.stream.CreateOrUpdateConsumer(ctx, jetstream.ConsumerConfig{
				Durable:       consumerName(d.fn),
				Description:   "asynchronous invocations of " + d.fn,
				FilterSubject: subjectPrefix + d.fn,
				AckPolicy:     jetstream.AckExplicitPolicy,
				AckWait:       d.s.opts.AckWait,
				MaxDeliver:    -1,
				MaxAckPending: 100_000,
			})
			if err != nil {
				log.Warn("creating the event consumer", "err", err)
				sleep(ctx, time.Second)
				continue
			}
			d.cons = cons
		}
		if wait := d.paused(); wait > 0 {
			sleep(ctx, wait)
			continue
		}
		free := d.limit(ctx) - d.running()
		if free <= 0 {
			select {
			case <-d.wake:
			case <-ctx.Done():
			case <-time.After(time.Second): // the limit may have changed
			}
			continue
		}
		d.s.mu.Lock()
		d.kicked = false
		d.s.mu.Unlock()
		fctx, cancel := context.WithTimeout(ctx, fetchWait)
		batch, err := d.cons.Fetch(free, jetstream.FetchContext(fctx))
		n := 0
		if err == nil {
			for msg := range batch.Messages() {
				n++
				d.start(msg)
			}
		}
		cancel()
		if err != nil && ctx.Err() == nil {
			log.Warn("fetching events", "err", err)
			d.cons = nil // recreated on the next round, should it be gone
			sleep(ctx, time.Second)
			continue
		}
		if n > 0 {
			idleSince = time.Time{}
			continue
		}
		if idleSince.IsZero() {
			idleSince = time.Now()
		}
		if time.Since(idleSince) >= idleExit && d.mayStop(ctx) {
			return
		}
	}
}

// mayStop removes the dispatcher when it has nothing left to deliver: no
// event running, pending or waiting for redelivery, and no kick since it
// last fetched.
func (d *dispatcher) mayStop(ctx context.Context) bool {
	if d.running() > 0 {
		return false
	}
	info, err := d.cons.Info(ctx)
	if err != nil || info.NumPending > 0 || info.NumAckPending > 0 {
		return false
	}
	d.s.mu.Lock()
	defer d.s.mu.Unlock()
	if d.kicked {
		return false
	}
	delete(d.s.disp, d.fn)
	if _, err := d.s.opts.Functions.Get(ctx, d.fn); isKind(err, apierr.NotFound) {
		// The function is gone: so is its consumer. A function created
		// again under the name gets a new one.
		d.s.stream.DeleteConsumer(ctx, consumerName(d.fn))
	}
	return true
}

// limit is how many of the function's events may run at once.
func (d *dispatcher) limit(ctx context.Context) int {
	n := d.s.opts.FunctionConcurrency
	if fn, err := d.s.opts.Functions.Get(ctx, d.fn); err == nil && fn.ReservedConcurrency != nil {
		n = min(n, max(1, *fn.ReservedConcurrency))
	}
	return n
}

func (d *dispatcher) running() int {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.inflight
}

func (d *dispatcher) paused() time.Duration {
	d.mu.Lock()
	defer d.mu.Unlock()
	return time.Until(d.pauseUntil)
}

// pause stops fetching for wait (after a throttle).
func (d *dispatcher) pause(wait time.Duration) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if until := time.Now().Add(wait); until.After(d.pauseUntil) {
		d.pauseUntil = until
	}
}

func (d *dispatcher) start(msg jetstream.Msg) {
	d.mu.Lock()
	d.inflight++
	d.mu.Unlock()
	d.s.work.Add(1)
	go func() {
		defer d.s.work.Done()
		defer func() {
			d.mu.Lock()
			d.inflight--
			d.mu.Unlock()
			select {
			case d.wake <- struct{}{}:
			default:
			}
		}()
		d.s.handle(d, msg)
	}()
}

func sleep(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
	case <-ctx.Done():
	}
}

// heartbeat tells JetStream every AckWait/3 that msg is still being
// handled, until the returned stop is called.
func (s *Service) heartbeat(msg jetstream.Msg) (stop func()) {
	done := make(chan struct{})
	go func() {
		t := time.NewTicker(s.opts.AckWait / 3)
		defer t.Stop()
		for {
			select {
			case <-t.C:
				msg.InProgress()
			case <-done:
				return
			}
		}
	}()
	return func() { close(done) }
}

// handle runs one delivery of an event and settles the message.
func (s *Service) handle(d *dispatcher, msg jetstream.Msg) {
	// Work already started finishes even when the server stops.
	ctx := context.WithoutCancel(s.ctx)
	ev, err := decodeEvent(msg.Headers(), msg.Data())
	if err != nil {
		s.log.Error("dropping an unreadable event", "err", err)
		msg.Term()
		return
	}
	if wait := ev.NotBefore.Sub(s.opts.Now()); wait > 0 {
		msg.NakWithDelay(wait)
		return
	}
	if handled, final := s.handled(ctx, ev); handled {
		// Handled before a crash lost the ack: acknowledge, do not rerun.
		// A delivery that ended in a retry leaves the payload to the
		// re-queued event; only a final outcome frees it.
		s.log.Info("asynchronous invocation already handled; acknowledging its redelivery", "function", ev.Function, "requestId", ev.RequestID)
		if final {
			s.ack(ctx, msg, ev)
		} else {
			s.ack(ctx, msg, nil)
		}
		return
	}
	stop := s.heartbeat(msg)
	defer stop()
	select {
	case s.global <- struct{}{}:
		defer func() { <-s.global }()
	case <-s.ctx.Done():
		return // redelivered after a restart
	}
	log := s.log.With("function", ev.Function, "requestId", ev.RequestID)
	cfg := s.effectiveConfig(ctx, ev.Function, ev.Qualifier)
	deadline := ev.Accepted.Add(cfg.MaxAge())
	// The payload first, even for an event past its age: its destination
	// record and dead-letter message carry it.
	if ev.payloadObject != "" {
		if ev.Payload, err = s.objects.GetBytes(ctx, ev.payloadObject); err != nil {
			if errors.Is(err, jetstream.ErrObjectNotFound) {
				log.Error("dropping an event whose payload is gone", "err", err)
				msg.Term()
				return
			}
			s.backOff(d, msg, ev, cfg, deadline, 500, err)
			return
		}
	}
	if !s.opts.Now().Before(deadline) {
		s.finish(ctx, msg, ev, cfg, EventAgeExceeded, nil)
		return
	}
	if ev.Invokes == 0 {
		s.metrics().AsyncEventAge(ev.Function, s.opts.Now().Sub(ev.Accepted))
	}
	target, err := s.opts.Functions.Resolve(ctx, function.Ref{Name: ev.Function, Qualifier: ev.Qualifier})
	if isKind(err, apierr.NotFound) {
		log.Warn("dropping an event of a function that no longer exists", "err", err)
		s.ack(ctx, msg, ev)
		return
	}
	if err != nil {
		s.backOff(d, msg, ev, cfg, deadline, 500, err)
		return
	}
	if ev.Chain >= function.MaxChain && s.terminates(ctx, ev.Function) {
		log.Warn("recursive loop detected in a chain of destinations; the event is stopped (PutFunctionRecursionConfig RecursiveLoop=Allow lets it run)",
			"invocationInChain", ev.Chain+1)
		ev.Last.StatusCode = 400
		s.finish(ctx, msg, ev, cfg, RecursiveInvocation, nil)
		return
	}
	resp, err := s.opts.Invoker.Invoke(ctx, invoker.Request{
		Config:     target.Config,
		Reserved:   target.Reserved,
		Unreserved: s.opts.Functions.UnreservedCached(),
		RequestID:  ev.RequestID,
		Payload:    ev.Payload,
		InvokedARN: s.opts.Functions.ARN(ev.Function, ev.Qualifier),
		TraceID:    ev.TraceID,
	})
	if s.ctx.Err() != nil && (err != nil || resp.FunctionError != "") {
		// The server stopped under it (its environment was shut down at
		// the end of the drain): not the function's failure. Left
		// unacknowledged, it is delivered again after the restart.
		log.Info("asynchronous invocation interrupted by the shutdown; it will be delivered again")
		return
	}
	if err != nil {
		status := 500
		if isKind(err, apierr.TooManyRequests) {
			status = 429
		}
		s.backOff(d, msg, ev, cfg, deadline, status, err)
		return
	}
	ev.Invokes++
	ev.Last = Outcome{StatusCode: 200, ExecutedVersion: resp.ExecutedVersion, FunctionError: resp.FunctionError}
	if resp.FunctionError == "" {
		s.finish(ctx, msg, ev, cfg, Success, resp.Payload)
		return
	}
	ev.Errors++
	if ev.Errors > cfg.Retries() {
		s.finish(ctx, msg, ev, cfg, RetriesExhausted, resp.Payload)
		return
	}
	next := s.opts.Now().Add(time.Duration(ev.Errors) * s.opts.RetryDelay)
	if next.After(deadline) {
		s.finish(ctx, msg, ev, cfg, EventAgeExceeded, resp.Payload)
		return
	}
	ev.NotBefore = next
	if err := s.publish(ctx, ev, fmt.Sprintf("%s-r%d", ev.RequestID, ev.Invokes)); err != nil {
		// Not re-queued: deliver this message again later (the function
		// runs once more than configured; at-least-once allows it).
		log.Warn("re-queueing a failed event", "err", err)
		msg.NakWithDelay(s.opts.RetryDelay)
		return
	}
	log.Info("asynchronous invocation failed; retrying", "attempt", ev.Invokes, "retryIn", next.Sub(s.opts.Now()).Round(time.Millisecond))
	s.markHandled(ctx, ev, false)
	s.ack(ctx, msg, nil)
}

// terminates reports whether function fn stops recursive loops (its
// RecursiveLoop is not Allow); one it cannot read does.
func (s *Service) terminates(ctx context.Context, fn string) bool {
	f, err := s.opts.Functions.Get(ctx, fn)
	return err != nil || f.Recursion() != function.RecursiveLoopAllow
}

// backOff returns an event that could not run (throttle, platform error)
// to the queue after an exponential back-off, or ends it when that would
// take it past its maximum age.
func (s *Service) backOff(d *dispatcher, msg jetstream.Msg, ev *Event, cfg *Config, deadline time.Time, status int, cause error) {
	n := uint64(1)
	if md, err := msg.Metadata(); err == nil && md.NumDelivered > 0 {
		n = md.NumDelivered
	}
	delay := s.opts.BackoffMax
	if n < 32 {
		delay = min(s.opts.BackoffMax, s.opts.BackoffMin<<(n-1))
	}
	ev.Last.StatusCode = status
	if s.opts.Now().Add(delay).After(deadline) {
		s.finish(context.WithoutCancel(s.ctx), msg, ev, cfg, EventAgeExceeded, nil)
		return
	}
	s.log.Debug("asynchronous invocation deferred", "function", ev.Function, "requestId", ev.RequestID,
		"status", status, "retryIn", delay, "err", cause)
	if status == 429 {
		d.pause(delay)
	}
	msg.NakWithDelay(delay)
}

// finish hands an event's final outcome to its destination (or dead-letter
// queue) and acknowledges it.
func (s *Service) finish(ctx context.Context, msg jetstream.Msg, ev *Event, cfg *Config, condition string, response []byte) {
	log := s.log.With("function", ev.Function, "requestId", ev.RequestID)
	if condition != Success {
		log.Warn("asynchronous invocation failed for good", "condition", condition, "invocations", ev.Invokes)
		s.metrics().AsyncEventDropped(ev.Function, condition)
	}
	dest := ""
	if cfg != nil {
		dest = cfg.Destinations.OnFailure
		if condition == Success {
			dest = cfg.Destinations.OnSuccess
		}
	}
	if dest != "" && condition == RecursiveInvocation {
		// A function destination would carry the chain on.
		if d, err := ParseDestination(dest, s.opts.Region, s.opts.Account); err == nil && d.Function != "" {
			log.Warn("the stopped event's on-failure destination is a function, which would go on with the loop; not sent", "destination", dest)
			dest = ""
		}
	}
	// A destination and a dead-letter queue both get theirs: Lambda's
	// destinations work "in addition to or instead of" a DLQ. A delivery
	// is tried a few times before the record is given up for lost: a
	// failed one is not worth running the function again for.
	if dest != "" {
		rec := newRecord(ev, s.opts.Functions.ARN(ev.Function, qualifierOrLatest(ev.Qualifier)), condition, response, s.opts.Now())
		if err := s.tryDelivery(ctx, func() error { return s.deliver(ctx, dest, rec, ev) }); err != nil {
			log.Error("delivering to the destination failed; the record is lost", "destination", dest, "err", err)
		}
	}
	if condition != Success && s.opts.DeadLetter != nil {
		version := ev.Last.ExecutedVersion
		if version == "" {
			version = ev.Qualifier
		}
		if dlq := s.opts.DeadLetter(ctx, ev.Function, version); dlq != "" {
			if err := s.tryDelivery(ctx, func() error { return s.deadLetter(ctx, dlq, ev) }); err != nil {
				log.Error("sending to the dead-letter queue failed; the event is lost", "target", dlq, "err", err)
			}
		}
	}
	s.markHandled(ctx, ev, true)
	s.ack(ctx, msg, ev)
}

// deliveryTries and deliveryRetryDelay bound how a destination or
// dead-letter delivery is tried: 3 times, 0.2 s then 0.4 s apart.
var (
	deliveryTries      = 3
	deliveryRetryDelay = 200 * time.Millisecond
)

// tryDelivery runs send until it succeeds, fails for good (a destination
// that does not exist, a record it refuses) or was tried deliveryTries
// times, and returns its last error.
func (s *Service) tryDelivery(ctx context.Context, send func() error) error {
	var err error
	for i := range deliveryTries {
		if err = send(); err == nil || isKind(err, apierr.NotFound) || isKind(err, apierr.InvalidParameter) {
			return err
		}
		if i < deliveryTries-1 {
			sleep(ctx, deliveryRetryDelay<<i)
		}
	}
	return err
}

// handled reports whether this delivery attempt of ev was handled before,
// and whether that outcome was final (not a retry re-queued).
func (s *Service) handled(ctx context.Context, ev *Event) (handled, final bool) {
	if ev.doneKey == "" {
		return false, false
	}
	e, err := s.done.Get(ctx, ev.doneKey)
	if err != nil {
		return false, false
	}
	return true, string(e.Value()) != doneRetried
}

// doneRetried marks a delivery attempt that ended by re-queueing a retry.
const doneRetried = "retried"

// markHandled durably records that this delivery attempt of ev has its
// outcome stored; only then is the message acknowledged. JetStream's ack
// itself may not survive a crash, the marker does.
func (s *Service) markHandled(ctx context.Context, ev *Event, final bool) {
	if ev.doneKey == "" {
		return
	}
	var v []byte
	if !final {
		v = []byte(doneRetried)
	}
	if _, err := s.done.Put(ctx, ev.doneKey, v); err != nil {
		s.log.Warn("recording a handled event; it may run again after a crash", "requestId", ev.RequestID, "err", err)
	}
}

// ack acknowledges msg and, for an event that is done, frees its stored
// payload.
func (s *Service) ack(ctx context.Context, msg jetstream.Msg, done *Event) {
	if err := msg.DoubleAck(ctx); err != nil {
		s.log.Warn("acknowledging an event; it may be delivered again", "err", err)
	}
	if done != nil && done.payloadObject != "" {
		if err := s.objects.Delete(ctx, done.payloadObject); err != nil && !errors.Is(err, jetstream.ErrObjectNotFound) {
			s.log.Warn("deleting a stored payload", "err", err)
		}
	}
}

// deliver sends a record to a function (as an asynchronous invocation) or
// a queue.
func (s *Service) deliver(ctx context.Context, arn string, rec *Record, ev *Event) error {
	d, err := ParseDestination(arn, s.opts.Region, s.opts.Account)
	if err != nil {
		return err
	}
	if d.Queue != "" {
		b, dropped := rec.marshalWithin(s.maxMsg - 1024)
		if dropped {
			s.log.Warn("destination record too large for a queue message; payloads dropped", "requestId", ev.RequestID)
		}
		_, err := s.queues.Send(ctx, d.Queue, b)
		return err
	}
	if _, err := s.opts.Functions.Get(ctx, d.Function); err != nil {
		return err
	}
	b, dropped := rec.marshalWithin(MaxPayload)
	if dropped {
		s.log.Warn("destination record larger than an event payload; payloads dropped", "requestId", ev.RequestID)
	}
	return s.Enqueue(ctx, &Event{RequestID: uuid.NewString(), Function: d.Function, Qualifier: d.Qualifier, Payload: b, TraceID: ev.TraceID,
		Chain: ev.Chain + 1})
}

// deadLetter sends the bare event payload to a dead-letter queue.
func (s *Service) deadLetter(ctx context.Context, arn string, ev *Event) error {
	d, err := ParseDestination(arn, s.opts.Region, s.opts.Account)
	if err != nil {
		return err
	}
	if d.Queue == "" {
		return fmt.Errorf("dead-letter target %s is not a queue", arn)
	}
	_, err = s.queues.Send(ctx, d.Queue, ev.Payload)
	return err
}
