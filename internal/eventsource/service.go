package eventsource

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"maps"
	"sort"
	"sync"
	"time"

	"github.com/google/uuid"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/kappa-run/kappa/internal/apierr"
	"github.com/kappa-run/kappa/internal/async"
	"github.com/kappa-run/kappa/internal/function"
	"github.com/kappa-run/kappa/internal/invoker"
	"github.com/kappa-run/kappa/internal/store"
)

// Functions resolves the functions mappings invoke; *function.Service
// implements it.
type Functions interface {
	Config(ctx context.Context, ref function.Ref) (function.Config, error)
	Resolve(ctx context.Context, ref function.Ref) (function.Target, error)
	ARN(name, qualifier string) string
	UnreservedCached() int
}

// Queues tells whether a queue exists; *async.Queues implements it.
type Queues interface {
	Get(ctx context.Context, name string) (async.QueueInfo, error)
}

// Invoker runs invocations; *invoker.Invoker implements it.
type Invoker interface {
	Invoke(ctx context.Context, req invoker.Request) (*invoker.Response, error)
}

// Metrics counts what mappings do; *metrics.Metrics implements it.
type Metrics interface {
	ESMMessages(function, result string, n int)
}

// Options configure a Service.
type Options struct {
	Bucket    store.Bucket
	JetStream jetstream.JetStream
	Functions Functions
	Queues    Queues
	Invoker   Invoker
	Region    string
	Account   string
	// RetryDelay is how long a message whose batch failed waits before it
	// is delivered again (SQS's visibility timeout). Default 30 s.
	RetryDelay time.Duration
	// Metrics, when set, counts the messages handed to functions.
	Metrics Metrics
	Now     func() time.Time
	Logger  *slog.Logger
}

// Service stores mappings and runs their pollers. Safe for concurrent use;
// Start it before use and Close it before the store.
type Service struct {
	opts Options
	log  *slog.Logger

	mu       sync.Mutex
	mappings map[string]*Mapping
	// pollers holds the poller of each enabled mapping; latest the last
	// poller made for each mapping, which may still be finishing its batch
	// after a disable (the next one waits for it).
	pollers map[string]*poller
	latest  map[string]*poller
	closed  bool
	ctx     context.Context
	cancel  context.CancelFunc
	wg      sync.WaitGroup
}

// New returns a Service.
func New(opts Options) *Service {
	if opts.RetryDelay <= 0 {
		opts.RetryDelay = 30 * time.Second
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	ctx, cancel := context.WithCancel(context.Background())
	return &Service{opts: opts, log: opts.Logger, mappings: map[string]*Mapping{}, pollers: map[string]*poller{},
		latest: map[string]*poller{},
		ctx:    ctx, cancel: cancel}
}

func key(id string) string { return "esm." + id }

// Start loads the stored mappings, settles those a previous run left in a
// transition and starts the pollers of the enabled ones.
func (s *Service) Start(ctx context.Context) error {
	keys, err := s.opts.Bucket.Keys(ctx, "esm")
	if err != nil {
		return err
	}
	for _, k := range keys {
		e, err := s.opts.Bucket.Get(ctx, k)
		if errors.Is(err, store.ErrNotFound) {
			continue
		}
		if err != nil {
			return err
		}
		var m Mapping
		if err := json.Unmarshal(e.Value, &m); err != nil || !validUUID(m.UUID) {
			s.log.Warn("skipping an unreadable event source mapping", "key", k, "err", err)
			continue
		}
		s.mu.Lock()
		s.mappings[m.UUID] = &m
		if m.State == StateDeleting {
			s.settleDeleteLocked(m.UUID)
		} else {
			s.settleLocked(m.UUID)
		}
		s.mu.Unlock()
	}
	return nil
}

// Stop makes the pollers start no new batch; the server calls it as its
// shutdown begins.
func (s *Service) Stop() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.closed = true
	for _, p := range s.latest {
		p.stop()
	}
}

// Close stops the pollers and waits for the batches being invoked until
// ctx ends; then it interrupts them (their messages come again after the
// restart).
func (s *Service) Close(ctx context.Context) {
	s.Stop()
	done := make(chan struct{})
	go func() {
		s.wg.Wait()
		close(done)
	}()
	select {
	case <-done:
	case <-ctx.Done():
	}
	s.cancel()
	<-done
}

// inUse refuses to op a mapping in transition, as Lambda does: a change
// waits until the last one has settled (a disable, until the batch in
// flight has ended).
func inUse(m *Mapping, op string) error {
	if m.State == m.restingState() {
		return nil
	}
	return apierr.New(apierr.InUse, "Cannot %s the event source mapping %s while it is %s; retry when it is %s.",
		op, m.UUID, m.State, m.restingState())
}

func notFound(id string) error {
	return apierr.New(apierr.NotFound, "The resource you requested does not exist. (Service: Lambda, Status Code: 404, Request ID: %s)", id)
}

// queueOf maps an event source ARN to a Kappa queue of this region and
// account.
func (s *Service) queueOf(arn string) (string, error) {
	d, err := async.ParseDestination(arn, s.opts.Region, s.opts.Account)
	if err != nil || d.Queue == "" {
		return "", apierr.New(apierr.InvalidParameter,
			"Invalid event source ARN %s: Kappa's event sources are its queues, arn:aws:sqs:%s:%s:<name>", arn, s.opts.Region, s.opts.Account)
	}
	return d.Queue, nil
}

// function resolves a FunctionName to an existing function and qualifier.
func (s *Service) function(ctx context.Context, name string) (function.Ref, error) {
	ref, err := function.ParseRef(name, s.opts.Region, s.opts.Account)
	if err != nil {
		return function.Ref{}, err
	}
	if ref.Qualifier == function.LatestVersion {
		ref.Qualifier = ""
	}
	// The version or alias must exist, as in Lambda (a Pending function
	// is fine: its batches wait until it is Active).
	if _, err := s.opts.Functions.Config(ctx, ref); err != nil {
		return function.Ref{}, err
	}
	return ref, nil
}

// Create stores a new mapping in state Creating; it settles (Enabled or
// Disabled, its poller started) right after.
func (s *Service) Create(ctx context.Context, in Input) (Mapping, error) {
	if in.Function == nil || *in.Function == "" {
		return Mapping{}, apierr.New(apierr.Validation, "1 validation error detected: Value null at 'functionName' failed to satisfy constraint: Member must not be null")
	}
	m := Mapping{UUID: uuid.NewString(), BatchSize: DefaultBatchSize, Enabled: true, State: StateCreating,
		LastModified: s.opts.Now().UTC(), LastResult: "No records processed"}
	in.apply(&m)
	if err := in.check(&m); err != nil {
		return Mapping{}, err
	}
	queue, err := s.queueOf(in.EventSourceArn)
	if err != nil {
		return Mapping{}, err
	}
	ref, err := s.function(ctx, *in.Function)
	if err != nil {
		return Mapping{}, err
	}
	if _, err := s.opts.Queues.Get(ctx, queue); err != nil {
		if errors.Is(err, apierr.NotFound) {
			return Mapping{}, apierr.New(apierr.InvalidParameter, "Error occurred while ReceiveMessage: the queue %s does not exist", in.EventSourceArn)
		}
		return Mapping{}, err
	}
	m.Function, m.Qualifier, m.Queue = ref.Name, ref.Qualifier, queue
	if len(in.Tags) > 0 {
		m.Tags = maps.Clone(in.Tags)
	}

	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return Mapping{}, apierr.New(apierr.Internal, "the server is shutting down")
	}
	if err := s.conflictLocked(&m); err != nil {
		return Mapping{}, err
	}
	if err := s.put(ctx, &m, true); err != nil {
		return Mapping{}, err
	}
	s.mappings[m.UUID] = &m
	s.settleLocked(m.UUID)
	return m, nil
}

// conflictLocked refuses a second mapping of one queue to one function
// (and qualifier), as Lambda does for SQS; s.mu must be held.
func (s *Service) conflictLocked(m *Mapping) error {
	for _, o := range s.mappings {
		if o.UUID != m.UUID && o.Queue == m.Queue && o.Function == m.Function && o.Qualifier == m.Qualifier {
			return apierr.New(apierr.Conflict,
				"An event source mapping with SQS arn (\" arn:aws:sqs:%s:%s:%s \") and function (\" %s \") already exists. Please update or delete the existing mapping with UUID %s",
				s.opts.Region, s.opts.Account, m.Queue, m.Function, o.UUID)
		}
	}
	return nil
}

// put stores m.
func (s *Service) put(ctx context.Context, m *Mapping, create bool) error {
	b, _ := json.Marshal(m)
	var err error
	if create {
		_, err = s.opts.Bucket.Create(ctx, key(m.UUID), b)
	} else {
		_, err = s.opts.Bucket.Put(ctx, key(m.UUID), b)
	}
	if err != nil {
		return apierr.Wrap(apierr.Internal, err, "store event source mapping")
	}
	return nil
}

// Get returns one mapping.
func (s *Service) Get(_ context.Context, id string) (Mapping, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	m, ok := s.mappings[id]
	if !ok {
		return Mapping{}, notFound(id)
	}
	return *m, nil
}

// Update changes a mapping; it answers in state Updating (Enabling,
// Disabling) and settles right after.
func (s *Service) Update(ctx context.Context, id string, in Input) (Mapping, error) {
	if in.EventSourceArn != "" {
		return Mapping{}, apierr.New(apierr.InvalidParameter, "EventSourceArn cannot be updated")
	}
	var ref *function.Ref
	if in.Function != nil {
		r, err := s.function(ctx, *in.Function)
		if err != nil {
			return Mapping{}, err
		}
		ref = &r
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	cur, ok := s.mappings[id]
	if !ok || cur.State == StateDeleting {
		return Mapping{}, notFound(id)
	}
	if err := inUse(cur, "update"); err != nil {
		return Mapping{}, err
	}
	m := *cur
	in.apply(&m)
	if err := in.check(&m); err != nil {
		return Mapping{}, err
	}
	if ref != nil {
		m.Function, m.Qualifier = ref.Name, ref.Qualifier
		if err := s.conflictLocked(&m); err != nil {
			return Mapping{}, err
		}
	}
	switch {
	case m.Enabled && !cur.Enabled:
		m.State = StateEnabling
	case !m.Enabled && cur.Enabled:
		m.State = StateDisabling
	default:
		m.State = StateUpdating
	}
	m.LastModified = s.opts.Now().UTC()
	if err := s.put(ctx, &m, false); err != nil {
		return Mapping{}, err
	}
	s.mappings[id] = &m
	s.settleLocked(id)
	return m, nil
}

// Delete removes a mapping: it answers in state Deleting; the poller stops
// and its consumer is removed right after (the queue keeps its messages).
// As in Lambda, a mapping in transition (Creating, Enabling, Disabling,
// Updating) cannot be deleted yet: ResourceInUseException.
func (s *Service) Delete(ctx context.Context, id string) (Mapping, error) {
	return s.delete(ctx, id, false)
}

// delete is Delete; force deletes a mapping in transition too (its
// function is gone).
func (s *Service) delete(ctx context.Context, id string, force bool) (Mapping, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	cur, ok := s.mappings[id]
	if !ok || cur.State == StateDeleting {
		return Mapping{}, notFound(id)
	}
	if !force {
		if err := inUse(cur, "delete"); err != nil {
			return Mapping{}, err
		}
	}
	m := *cur
	m.State, m.LastModified = StateDeleting, s.opts.Now().UTC()
	if err := s.put(ctx, &m, false); err != nil {
		return Mapping{}, err
	}
	s.mappings[id] = &m
	s.settleDeleteLocked(id)
	return m, nil
}

// List returns the mappings of a function and/or queue ARN ("" for any),
// ordered by UUID.
func (s *Service) List(ctx context.Context, fn, sourceARN string) ([]Mapping, error) {
	var ref *function.Ref
	if fn != "" {
		r, err := function.ParseRef(fn, s.opts.Region, s.opts.Account)
		if err != nil {
			return nil, err
		}
		if r.Qualifier == function.LatestVersion {
			r.Qualifier = ""
		}
		ref = &r
	}
	queue := ""
	if sourceARN != "" {
		q, err := s.queueOf(sourceARN)
		if err != nil {
			return nil, nil // no mapping reads what is not a Kappa queue
		}
		queue = q
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []Mapping
	for _, m := range s.mappings {
		if ref != nil && (m.Function != ref.Name || ref.Qualifier != "" && m.Qualifier != ref.Qualifier) {
			continue
		}
		if queue != "" && m.Queue != queue {
			continue
		}
		out = append(out, *m)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].UUID < out[j].UUID })
	return out, nil
}

// FunctionDeleted deletes the mappings of a deleted function.
func (s *Service) FunctionDeleted(ctx context.Context, name string) {
	s.mu.Lock()
	var ids []string
	for id, m := range s.mappings {
		if m.Function == name && m.State != StateDeleting {
			ids = append(ids, id)
		}
	}
	s.mu.Unlock()
	for _, id := range ids {
		if _, err := s.delete(ctx, id, true); err != nil && !errors.Is(err, apierr.NotFound) {
			s.log.Warn("delete the event source mapping of a deleted function", "uuid", id, "function", name, "err", err)
		}
	}
}

// settleLocked moves a mapping out of its transition: the poller is
// (re)started for an enabled mapping, stopped for a disabled one, and the
// mapping is stored in its resting state; s.mu must be held.
func (s *Service) settleLocked(id string) {
	if s.closed {
		return
	}
	m, ok := s.mappings[id]
	if !ok {
		return
	}
	prev := s.latest[id] // running, or finishing its batch after a disable
	delete(s.pollers, id)
	if prev != nil {
		prev.stop()
	}
	var p *poller
	if m.Enabled {
		p = s.newPoller(*m)
		s.pollers[id] = p
		s.latest[id] = p
	}
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		if prev != nil {
			<-prev.done // its batch in flight ends first
		}
		s.storeResting(id)
		start := p != nil && s.pollers[id] == p && !s.closed
		s.mu.Unlock()
		if p == nil {
			return
		}
		if !start {
			p.finish() // replaced or closed before it ran
			return
		}
		p.run()
	}()
}

// storeResting stores mapping id in its resting state, retrying a write
// that failed: a mapping left in a transition would refuse every change
// (ResourceInUseException). It returns with s.mu held; a server closing
// meanwhile leaves the write to Start after the restart.
func (s *Service) storeResting(id string) {
	delay := 100 * time.Millisecond
	for {
		s.mu.Lock()
		cur, ok := s.mappings[id]
		if !ok || cur.State == StateDeleting || cur.State == cur.restingState() {
			return
		}
		next := *cur
		next.State = cur.restingState()
		err := s.put(s.ctx, &next, false)
		if err == nil {
			s.mappings[id] = &next
			return
		}
		if s.ctx.Err() != nil {
			return
		}
		s.mu.Unlock()
		s.log.Warn("settle an event source mapping; retrying", "uuid", id, "err", err, "retryIn", delay)
		select {
		case <-s.ctx.Done():
		case <-time.After(delay):
		}
		delay = min(2*delay, 5*time.Second)
	}
}

// settleDeleteLocked stops a deleted mapping's poller, then removes its
// consumer and record; s.mu must be held.
func (s *Service) settleDeleteLocked(id string) {
	if s.closed {
		return
	}
	p := s.latest[id]
	delete(s.pollers, id)
	delete(s.latest, id)
	if p != nil {
		p.stop()
	}
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		if p != nil {
			<-p.done
		}
		s.mu.Lock()
		m, ok := s.mappings[id]
		s.mu.Unlock()
		if !ok {
			return
		}
		if err := s.deleteConsumer(m.Queue, id); err != nil {
			s.log.Warn("delete the consumer of an event source mapping", "uuid", id, "err", err)
			return // Start tries again
		}
		if err := s.opts.Bucket.Delete(s.ctx, key(id)); err != nil {
			s.log.Warn("delete an event source mapping", "uuid", id, "err", err)
			return // Start tries again
		}
		s.mu.Lock()
		if cur := s.mappings[id]; cur != nil && cur.State == StateDeleting {
			delete(s.mappings, id)
		}
		s.mu.Unlock()
	}()
}
