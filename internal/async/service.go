package async

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/kappa-run/kappa/internal/apierr"
	"github.com/kappa-run/kappa/internal/function"
	"github.com/kappa-run/kappa/internal/invoker"
	"github.com/kappa-run/kappa/internal/store"
)

// Functions resolves the functions events are for; *function.Service
// implements it.
type Functions interface {
	Get(ctx context.Context, name string) (*function.Function, error)
	Config(ctx context.Context, ref function.Ref) (function.Config, error)
	Resolve(ctx context.Context, ref function.Ref) (function.Target, error)
	ARN(name, qualifier string) string
	UnreservedCached() int
}

// Invoker runs invocations; *invoker.Invoker implements it.
type Invoker interface {
	Invoke(ctx context.Context, req invoker.Request) (*invoker.Response, error)
}

// Options configure a Service. Durations left zero take Lambda's values.
type Options struct {
	JetStream jetstream.JetStream
	// Bucket holds event-invoke configurations.
	Bucket    store.Bucket
	Functions Functions
	Invoker   Invoker
	Region    string
	Account   string
	// RetryDelay is the wait before the first retry after a function
	// error; the n-th retry waits n×RetryDelay (Lambda: 1 min, then 2).
	RetryDelay time.Duration
	// BackoffMin and BackoffMax bound the exponential back-off after a
	// throttle or platform error (Lambda: 1 s … 5 min).
	BackoffMin, BackoffMax time.Duration
	// AckWait is how long a delivered, unacknowledged event waits before
	// it is delivered again (in-progress acks extend it while it runs;
	// after a crash it is the redelivery delay). Default 60 s.
	AckWait time.Duration
	// Concurrency caps asynchronous invocations running at once across all
	// functions (default 64); FunctionConcurrency caps them per function
	// (default 16), further capped by reserved concurrency.
	Concurrency         int
	FunctionConcurrency int
	// DeadLetter returns the dead-letter target ARN ("" for none) of the
	// function's version that handled the event: version is a number,
	// $LATEST, or, for an event that never ran, its qualifier ("" or an
	// alias). nil: no dead-letter queues.
	DeadLetter func(ctx context.Context, fn, version string) string
	// Metrics, when set, counts received and dropped events and their age
	// (*metrics.Metrics implements it).
	Metrics Metrics
	Logger  *slog.Logger
	Now     func() time.Time
}

// Metrics receives the asynchronous queue's measurements.
type Metrics interface {
	AsyncEventReceived(function, version, alias string)
	AsyncEventDropped(function, reason string)
	AsyncEventAge(function string, age time.Duration)
}

type nopMetrics struct{}

func (nopMetrics) AsyncEventReceived(string, string, string) {}
func (nopMetrics) AsyncEventDropped(string, string)          {}
func (nopMetrics) AsyncEventAge(string, time.Duration)       {}

// DoneMarkerTTL is how long the marker of a handled delivery attempt is
// kept. A crash can lose the acknowledgement of an attempt whose outcome was
// already stored; if the server is back within this time, the redelivered
// attempt is recognised and acknowledged without running again. After a
// longer outage it runs again (at-least-once). One marker is written per
// attempt, so the bound keeps the bucket small under load.
const DoneMarkerTTL = 15 * time.Minute

// Stream, subject and object store names.
const (
	streamName     = "KAPPA_ASYNC"
	subjectPrefix  = "kappa.async.fn."
	payloadsBucket = "KAPPA_ASYNC_PAYLOADS"
	doneBucket     = "KAPPA_ASYNC_DONE"
)

// Service accepts and delivers asynchronous invocations and keeps their
// configurations. Safe for concurrent use. Start it before use; Close it
// before closing the store.
type Service struct {
	opts    Options
	log     *slog.Logger
	js      jetstream.JetStream
	stream  jetstream.Stream
	objects jetstream.ObjectStore
	// done marks delivery attempts that were handled (outcome stored), so
	// that one redelivered after a crash lost its ack is acknowledged
	// without running again.
	done    jetstream.KeyValue
	configs *configs
	queues  *Queues
	// maxMsg is the largest message (headers and body) NATS accepts.
	maxMsg int

	global chan struct{} // Concurrency tokens

	ctx    context.Context // ends at Close: stops fetching
	cancel context.CancelFunc
	mu     sync.Mutex
	disp   map[string]*dispatcher
	wg     sync.WaitGroup // dispatchers
	work   sync.WaitGroup // events being handled
	closed bool
}

// New returns a Service; Start opens its stream and resumes delivery.
func New(opts Options) *Service {
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.RetryDelay <= 0 {
		opts.RetryDelay = time.Minute
	}
	if opts.BackoffMin <= 0 {
		opts.BackoffMin = time.Second
	}
	if opts.BackoffMax <= 0 {
		opts.BackoffMax = 5 * time.Minute
	}
	if opts.BackoffMax < opts.BackoffMin {
		opts.BackoffMax = opts.BackoffMin
	}
	if opts.AckWait <= 0 {
		opts.AckWait = time.Minute
	}
	if opts.Concurrency <= 0 {
		opts.Concurrency = 64
	}
	if opts.FunctionConcurrency <= 0 {
		opts.FunctionConcurrency = 16
	}
	ctx, cancel := context.WithCancel(context.Background())
	return &Service{
		opts: opts, log: opts.Logger, js: opts.JetStream,
		configs: &configs{bucket: opts.Bucket, now: opts.Now},
		queues:  NewQueues(opts.JetStream, opts.Region, opts.Account),
		global:  make(chan struct{}, opts.Concurrency),
		ctx:     ctx, cancel: cancel, disp: map[string]*dispatcher{},
	}
}

// Queues returns the Kappa queues destinations write to.
func (s *Service) Queues() *Queues { return s.queues }

// Start creates the event stream and payload store if needed and starts
// delivering every event left from a previous run.
func (s *Service) Start(ctx context.Context) error {
	var err error
	s.stream, err = s.js.CreateOrUpdateStream(ctx, jetstream.StreamConfig{
		Name:        streamName,
		Description: "Kappa asynchronous invocations",
		Subjects:    []string{subjectPrefix + ">"},
		Storage:     jetstream.FileStorage,
		Retention:   jetstream.WorkQueuePolicy,
		Duplicates:  2 * time.Minute,
	})
	if err != nil {
		return fmt.Errorf("open async stream: %w", err)
	}
	s.objects, err = s.js.CreateOrUpdateObjectStore(ctx, jetstream.ObjectStoreConfig{
		Bucket:      payloadsBucket,
		Description: "payloads of asynchronous invocations too large for one message",
		Storage:     jetstream.FileStorage,
	})
	if err != nil {
		return fmt.Errorf("open async payload store: %w", err)
	}
	s.done, err = s.js.CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{
		Bucket:      doneBucket,
		Description: "delivery attempts of asynchronous invocations already handled",
		TTL:         DoneMarkerTTL,
		Storage:     jetstream.FileStorage,
	})
	if err != nil {
		return fmt.Errorf("open async done markers: %w", err)
	}
	s.maxMsg = int(s.js.Conn().MaxPayload())
	si, err := s.stream.Info(ctx, jetstream.WithSubjectFilter(subjectPrefix+">"))
	if err != nil {
		return fmt.Errorf("read async stream: %w", err)
	}
	for subj, n := range si.State.Subjects {
		if n > 0 {
			s.kick(strings.TrimPrefix(subj, subjectPrefix))
		}
	}
	if si.State.Msgs > 0 {
		s.log.Info("resuming asynchronous invocations", "events", si.State.Msgs, "functions", len(si.State.Subjects))
	}
	s.collectPayloads(ctx)
	return nil
}

// collectPayloads deletes stored payloads older than any event can be: what
// a crash between storing a payload and its event left behind.
func (s *Service) collectPayloads(ctx context.Context) {
	l, err := s.objects.List(ctx)
	if err != nil {
		return
	}
	cutoff := s.opts.Now().Add(-MaxMaxAge*time.Second - time.Hour)
	for _, o := range l {
		if o.ModTime.Before(cutoff) {
			s.objects.Delete(ctx, o.Name)
		}
	}
}

// Close stops fetching events and waits, up to ctx's end, for the events
// being handled; those not finished are redelivered after a restart.
func (s *Service) Close(ctx context.Context) {
	s.mu.Lock()
	s.closed = true
	s.mu.Unlock()
	s.cancel()
	done := make(chan struct{})
	go func() {
		s.wg.Wait()
		s.work.Wait()
		close(done)
	}()
	select {
	case <-done:
	case <-ctx.Done():
		s.log.Warn("stopping with asynchronous invocations still running; they will be delivered again")
	}
}

// Enqueue stores ev durably and schedules its delivery. It sets
// ev.Accepted. The payload must be at most MaxPayload bytes.
func (s *Service) Enqueue(ctx context.Context, ev *Event) error {
	if len(ev.Payload) > MaxPayload {
		return apierr.New(apierr.RequestTooLarge, "Request must be smaller than %d bytes for the InvokeFunction operation", MaxPayload)
	}
	if ev.Accepted.IsZero() {
		ev.Accepted = s.opts.Now()
	}
	if err := s.publish(ctx, ev, ev.RequestID); err != nil {
		return apierr.Wrap(apierr.Internal, err, "store the event")
	}
	version, alias := ev.Qualifier, ""
	if version == "" {
		version = "$LATEST"
	} else if _, err := strconv.Atoi(version); err != nil && version != "$LATEST" {
		version, alias = "", ev.Qualifier
	}
	s.metrics().AsyncEventReceived(ev.Function, version, alias)
	s.kick(ev.Function)
	return nil
}

func (s *Service) metrics() Metrics {
	if s.opts.Metrics == nil {
		return nopMetrics{}
	}
	return s.opts.Metrics
}

// publish stores ev under msgID (JetStream drops a repeated msgID within
// its duplicate window).
func (s *Service) publish(ctx context.Context, ev *Event, msgID string) error {
	h := ev.header()
	body := ev.Payload
	if ev.payloadObject == "" && len(body)+headerSize(h)+512 > s.maxMsg {
		if _, err := s.objects.PutBytes(ctx, ev.RequestID, body); err != nil {
			return fmt.Errorf("store payload: %w", err)
		}
		ev.payloadObject = ev.RequestID
		h.Set(hPayloadObject, ev.payloadObject)
	}
	if ev.payloadObject != "" {
		body = nil
	}
	h.Set("Nats-Msg-Id", msgID)
	msg := natsMsg(subjectPrefix+ev.Function, h, body)
	_, err := s.js.PublishMsg(ctx, msg, jetstream.WithExpectStream(streamName))
	return err
}

// kick makes sure a dispatcher delivers fn's events.
func (s *Service) kick(fn string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return
	}
	if d := s.disp[fn]; d != nil {
		d.kicked = true
		return
	}
	d := &dispatcher{s: s, fn: fn, wake: make(chan struct{}, 1)}
	s.disp[fn] = d
	s.wg.Add(1)
	go d.run()
}

// Config API.

func qualifierOrLatest(q string) string {
	if q == "" {
		return function.LatestVersion
	}
	return q
}

// checkTarget checks that fn:qualifier exists and the destinations are
// reachable.
func (s *Service) checkTarget(ctx context.Context, fn, qualifier string, in ConfigInput) error {
	if _, err := s.opts.Functions.Config(ctx, function.Ref{Name: fn, Qualifier: qualifier}); err != nil {
		return err
	}
	for _, arn := range []*string{in.OnSuccess, in.OnFailure} {
		if arn == nil || *arn == "" {
			continue
		}
		d, err := ParseDestination(*arn, s.opts.Region, s.opts.Account)
		if err != nil {
			return err
		}
		if d.Queue != "" {
			if _, err := s.queues.Create(ctx, d.Queue); err != nil {
				return err
			}
		}
	}
	return nil
}

// PutConfig replaces the configuration of fn:qualifier (PutFunctionEventInvokeConfig).
func (s *Service) PutConfig(ctx context.Context, fn, qualifier string, in ConfigInput) (*Config, error) {
	return s.putConfig(ctx, fn, qualifier, in, false)
}

// UpdateConfig changes the fields in sets, creating the configuration when
// there is none (UpdateFunctionEventInvokeConfig).
func (s *Service) UpdateConfig(ctx context.Context, fn, qualifier string, in ConfigInput) (*Config, error) {
	return s.putConfig(ctx, fn, qualifier, in, true)
}

func (s *Service) putConfig(ctx context.Context, fn, qualifier string, in ConfigInput, partial bool) (*Config, error) {
	if err := in.Validate(); err != nil {
		return nil, err
	}
	qualifier = qualifierOrLatest(qualifier)
	if err := s.checkTarget(ctx, fn, qualifier, in); err != nil {
		return nil, err
	}
	return s.configs.put(ctx, fn, qualifier, in, partial)
}

func (s *Service) noConfig(fn, qualifier string) error {
	return apierr.New(apierr.NotFound, "The function %s doesn't have an EventInvokeConfig", s.opts.Functions.ARN(fn, qualifier))
}

// GetConfig returns the configuration of fn:qualifier.
func (s *Service) GetConfig(ctx context.Context, fn, qualifier string) (*Config, error) {
	qualifier = qualifierOrLatest(qualifier)
	if _, err := s.opts.Functions.Config(ctx, function.Ref{Name: fn, Qualifier: qualifier}); err != nil {
		return nil, err
	}
	cfg, _, err := s.configs.get(ctx, fn, qualifier)
	if err == nil && cfg == nil {
		err = s.noConfig(fn, qualifier)
	}
	return cfg, err
}

// DeleteConfig removes the configuration of fn:qualifier.
func (s *Service) DeleteConfig(ctx context.Context, fn, qualifier string) error {
	cfg, err := s.GetConfig(ctx, fn, qualifier)
	if err != nil {
		return err
	}
	return s.configs.delete(ctx, fn, cfg.Qualifier)
}

// ListConfigs returns every configuration of fn, sorted by qualifier.
func (s *Service) ListConfigs(ctx context.Context, fn string) ([]*Config, error) {
	if _, err := s.opts.Functions.Get(ctx, fn); err != nil {
		return nil, err
	}
	return s.configs.list(ctx, fn)
}

// FunctionDeleted forgets a deleted function: its configurations and its
// queued events (Lambda drops them too).
func (s *Service) FunctionDeleted(ctx context.Context, fn string) {
	cfgs, _ := s.configs.list(ctx, fn)
	for _, c := range cfgs {
		s.configs.delete(ctx, fn, c.Qualifier)
	}
	if s.stream != nil {
		if err := s.stream.Purge(ctx, jetstream.WithPurgeSubject(subjectPrefix+fn)); err != nil {
			s.log.Warn("dropping the events of a deleted function", "function", fn, "err", err)
		}
	}
}

// effectiveConfig is the configuration that governs an event for
// fn:qualifier, nil for the defaults.
func (s *Service) effectiveConfig(ctx context.Context, fn, qualifier string) *Config {
	cfg, _, err := s.configs.get(ctx, fn, qualifierOrLatest(qualifier))
	if err != nil {
		s.log.Warn("reading event invoke config; using defaults", "function", fn, "err", err)
	}
	return cfg
}

func isKind(err error, k apierr.Kind) bool { return apierr.As(err) != nil && errors.Is(err, k) }
