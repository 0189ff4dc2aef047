package daemon

import (
	"context"
	"encoding/json"
	"errors"
	"math"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/kappa-run/kappa/internal/apierr"
	"github.com/kappa-run/kappa/internal/config"
	"github.com/kappa-run/kappa/internal/console"
	"github.com/kappa-run/kappa/internal/invoker"
	"github.com/kappa-run/kappa/internal/logs"
	"github.com/kappa-run/kappa/internal/metrics"
	"github.com/kappa-run/kappa/internal/sandbox"
	"github.com/kappa-run/kappa/internal/tracing"
)

// observability feeds metrics and traces from the invoker and serves the
// read-only observation surfaces: /metrics, the /kappa/logs, /kappa/metrics
// and /kappa/billing JSON APIs, and the web console at /.
//
// It is the invoker's Observer, wraps the invoker for the Invoke API (to
// learn the alias, time the whole request and trace it), and wraps the
// sandbox runtime (to count the memory of live environments).
type observability struct {
	metrics *metrics.Metrics
	traces  *tracing.Exporter // nil: no OTLP endpoint configured
	logs    *logs.Store
	runtime *countingRuntime
	inv     atomic.Pointer[invoker.Invoker]
	now     func() time.Time
	// pending maps the request id of an invocation running through the
	// wrapper to what the wrapper knows of it.
	pending sync.Map

	logAPI     http.Handler
	metricsAPI http.Handler
	prom       http.Handler
	console    http.Handler
}

// pendingInvocation is shared by the wrapper and the Observer calls the
// invoker makes on the invocation's goroutine.
type pendingInvocation struct {
	alias string
	mu    sync.Mutex
	rec   *invoker.Record
	// later: Invoke returned before the record (Response.ReportLater);
	// Invoked then traces it and forgets it.
	later bool
}

func newObservability(cfg config.Server, store *logs.Store, rt sandbox.Runtime) (*observability, error) {
	o := &observability{logs: store, runtime: &countingRuntime{Runtime: rt}, now: time.Now}
	o.metrics = metrics.New(metrics.Options{Host: o})
	if cfg.OTLPEndpoint != "" {
		exp, err := tracing.NewExporter(tracing.Options{Endpoint: cfg.OTLPEndpoint,
			Resource: map[string]string{"service.name": "kappa", "cloud.region": cfg.Region, "cloud.account.id": cfg.Account}})
		if err != nil {
			return nil, err
		}
		o.traces = exp
	}
	o.logAPI = store.Handler("/kappa/logs")
	o.metricsAPI = o.metrics.APIHandler()
	o.prom = o.metrics.Handler()
	o.console = console.Handler()
	return o, nil
}

// attach gives the observer the invoker it reports on.
func (o *observability) attach(inv *invoker.Invoker) { o.inv.Store(inv) }

// wrap returns the invoker as the Invoke API should see it.
func (o *observability) wrap(inv *invoker.Invoker) *observedInvoker {
	return &observedInvoker{Invoker: inv, o: o}
}

// close flushes the trace exporter.
func (o *observability) close(ctx context.Context) {
	if o.traces != nil {
		o.traces.Close(ctx)
	}
}

// owns reports whether o serves path.
func (o *observability) owns(p string) bool {
	return p == "/" || p == "/metrics" || p == "/kappa/billing" || p == "/favicon.ico" ||
		strings.HasPrefix(p, "/console/") || p == "/kappa/logs" || strings.HasPrefix(p, "/kappa/logs/") ||
		strings.HasPrefix(p, "/kappa/metrics/")
}

func (o *observability) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	p := r.URL.Path
	switch {
	case p == "/metrics":
		o.prom.ServeHTTP(w, r)
	case p == "/kappa/logs" || strings.HasPrefix(p, "/kappa/logs/"):
		o.logAPI.ServeHTTP(w, r)
	case p == "/kappa/billing" || strings.HasPrefix(p, "/kappa/metrics/"):
		o.metricsAPI.ServeHTTP(w, r)
	default:
		o.console.ServeHTTP(w, r)
	}
}

// Invoked is the invoker's report of an invocation that ran.
func (o *observability) Invoked(r invoker.Record) {
	alias := ""
	var p *pendingInvocation
	later := false
	if v, ok := o.pending.Load(r.RequestID); ok {
		p = v.(*pendingInvocation)
		alias = p.alias
		p.mu.Lock()
		rec := r
		p.rec = &rec
		later = p.later
		p.mu.Unlock()
		if later {
			o.pending.Delete(r.RequestID)
		}
	}
	conc := 0
	if inv := o.inv.Load(); inv != nil {
		conc = inv.Concurrency(r.Function)
	}
	o.metrics.Invoked(metrics.Invocation{
		Labels: metrics.Labels{Function: r.Function, Version: r.Version, Alias: alias},
		Start:  r.Start, Duration: r.Duration, Billed: r.Billed, Init: r.InitDuration, Cold: r.Cold,
		Status: r.Status, MemoryMB: r.MemoryMB, Concurrency: conc,
	})
	if (p == nil || later) && o.traces != nil {
		// Not through the wrapper (another caller of the invoker): trace
		// the phases the record knows.
		x, ok := tracing.ParseXRay(r.TraceID)
		if !ok || x.Sampled == "0" {
			return
		}
		invokeStart := phaseStart(r)
		o.traces.Export(tracing.InvocationSpans(tracing.Invocation{
			Header: x, RequestSpan: tracing.NewSpanID(), InvokeSpan: tracing.NewSpanID(),
			Function: r.Function, Version: r.Version, RequestID: r.RequestID,
			Start: invokeStart.Add(-r.InitDuration), End: invokeStart.Add(r.Duration), Ran: true,
			InvokeStart: invokeStart, Duration: r.Duration, Init: r.InitDuration, Cold: r.Cold,
			Status: r.Status, ErrorType: r.ErrorType,
		})...)
	}
}

// phaseStart is when a record's invoke phase began. Record.Start is the
// invoke phase's start today; should the invoker come to fill QueueWait
// (documented as the time from acceptance), Start+QueueWait is.
func phaseStart(r invoker.Record) time.Time {
	if r.QueueWait > 0 {
		return r.Start.Add(r.QueueWait)
	}
	return r.Start
}

// Throttled is the invoker's report of a 429.
func (o *observability) Throttled(function, reason string) { o.metrics.Throttled(function, reason) }

// Environments implements metrics.Host.
func (o *observability) Environments() metrics.Environments {
	e := metrics.Environments{MemoryMB: o.runtime.committedMB.Load(), Spare: int(o.runtime.spares.Load())}
	inv := o.inv.Load()
	if inv == nil {
		return e
	}
	e.Live, e.Idle = inv.Stats()
	for _, owner := range inv.Provisioned() {
		ready, _, _ := inv.ProvisionStatus(owner)
		e.Provisioned += ready
	}
	return e
}

// Provisioned implements metrics.Host; owners are "function:qualifier".
func (o *observability) Provisioned() []metrics.Provisioned {
	inv := o.inv.Load()
	if inv == nil {
		return nil
	}
	var out []metrics.Provisioned
	for _, owner := range inv.Provisioned() {
		fn, q, ok := strings.Cut(owner, ":")
		if !ok {
			continue
		}
		ready, want, _ := inv.ProvisionStatus(owner)
		out = append(out, metrics.Provisioned{Function: fn, Qualifier: q, Allocated: ready, Requested: want})
	}
	return out
}

// observedInvoker is the invoker as the Invoke API sees it: every other
// method is the invoker's own.
type observedInvoker struct {
	*invoker.Invoker
	o *observability
}

// Invoke runs req through the invoker, counting it as running for its
// duration, and traces it when an OTLP endpoint is configured: the
// runtime's trace header then names Kappa's invoke span as its Parent, so
// the function's own spans nest under it.
func (oi *observedInvoker) Invoke(ctx context.Context, req invoker.Request) (*invoker.Response, error) {
	o := oi.o
	start := o.now()
	l := metrics.Labels{Function: req.Config.Name, Version: req.Config.Version, Alias: aliasOf(req.InvokedARN)}
	var x tracing.XRay
	var reqSpan, invokeSpan tracing.SpanID
	traced := false
	if o.traces != nil {
		var ok bool
		if req.TraceID == "" {
			x, ok = tracing.XRay{Trace: tracing.NewTraceID(start), Sampled: "1"}, true
		} else if x, ok = tracing.ParseXRay(req.TraceID); ok && x.Sampled == "0" {
			ok = false // the caller decided not to record this one
		}
		if ok {
			traced = true
			reqSpan, invokeSpan = tracing.NewSpanID(), tracing.NewSpanID()
			rt := x
			rt.Parent = invokeSpan
			req.TraceID = rt.String()
		}
	}
	p := &pendingInvocation{alias: l.Alias}
	o.pending.Store(req.RequestID, p)
	o.metrics.Begin(l)
	resp, err := oi.Invoker.Invoke(ctx, req)
	o.metrics.End(l)
	end := o.now()
	p.mu.Lock()
	rec := p.rec
	later := rec == nil && resp != nil && resp.ReportLater
	p.later = later
	p.mu.Unlock()
	if later {
		// Invoked records, traces and forgets it when it ends.
		return resp, err
	}
	o.pending.Delete(req.RequestID)

	if resp != nil && rec == nil {
		// The invocation failed before its invoke phase (its environment
		// did not start): the invoker does not report those.
		billed := time.Duration(math.Ceil(float64(resp.Duration)/float64(time.Millisecond))) * time.Millisecond
		o.metrics.Invoked(metrics.Invocation{Labels: l, Start: start, Duration: resp.Duration, Billed: billed,
			Cold: true, Status: "failure", MemoryMB: req.Config.MemorySize})
	}
	if !traced {
		return resp, err
	}
	ti := tracing.Invocation{
		Header: x, RequestSpan: reqSpan, InvokeSpan: invokeSpan,
		Function: l.Function, Version: l.Version, Alias: l.Alias, RequestID: req.RequestID, ARN: req.InvokedARN,
		Start: start, End: end,
	}
	switch {
	case err != nil:
		ti.Status = "failure"
		if e := apierr.As(err); e != nil && e.Kind == apierr.TooManyRequests {
			ti.Status, ti.ErrorType = "throttled", e.Reason
		}
	case rec != nil:
		ti.Ran = true
		ti.InvokeStart, ti.Duration, ti.Init, ti.Cold = phaseStart(*rec), rec.Duration, rec.InitDuration, rec.Cold
		ti.Status, ti.ErrorType = rec.Status, rec.ErrorType
	default:
		ti.Status, ti.Cold, ti.ErrorType = "failure", true, errorTypeOf(resp.Payload)
	}
	o.traces.Export(tracing.InvocationSpans(ti)...)
	return resp, err
}

func errorTypeOf(payload []byte) string {
	var v struct {
		ErrorType string `json:"errorType"`
	}
	json.Unmarshal(payload, &v)
	return v.ErrorType
}

// aliasOf returns the alias of a qualified function ARN, or "" when it is
// unqualified or qualified by a version.
func aliasOf(arn string) string {
	parts := strings.Split(arn, ":")
	if len(parts) != 8 {
		return ""
	}
	q := parts[7]
	if q == "$LATEST" {
		return ""
	}
	if _, err := strconv.Atoi(q); err == nil {
		return ""
	}
	return q
}

// countingRuntime counts the environments it created that still exist:
// started ones (live environments, whose MemorySize is committed) and
// created-but-not-started ones (the invoker's spares).
type countingRuntime struct {
	sandbox.Runtime
	committedMB atomic.Int64 // started, not destroyed
	spares      atomic.Int64 // created, not started, not destroyed
}

func (r *countingRuntime) Create(ctx context.Context, spec sandbox.Spec) (sandbox.Sandbox, error) {
	sb, err := r.Runtime.Create(ctx, spec)
	if err != nil {
		return nil, err
	}
	r.spares.Add(1)
	return &countedSandbox{Sandbox: sb, r: r, mb: int64(spec.MemoryMB)}, nil
}

type countedSandbox struct {
	sandbox.Sandbox
	r       *countingRuntime
	mb      int64
	mu      sync.Mutex
	started bool
	gone    bool
}

func (s *countedSandbox) Start(ctx context.Context) error {
	s.mu.Lock()
	if !s.started && !s.gone {
		s.started = true
		s.r.spares.Add(-1)
		s.r.committedMB.Add(s.mb)
	}
	s.mu.Unlock()
	return s.Sandbox.Start(ctx)
}

func (s *countedSandbox) Destroy(ctx context.Context) error {
	err := s.Sandbox.Destroy(ctx)
	s.mu.Lock()
	if !s.gone {
		s.gone = true
		if s.started {
			s.r.committedMB.Add(-s.mb)
		} else {
			s.r.spares.Add(-1)
		}
	}
	s.mu.Unlock()
	return err
}

// DialContext forwards to the wrapped sandbox's, so telemetry still reaches
// subscribers inside the environment.
func (s *countedSandbox) DialContext(ctx context.Context, network, addr string) (net.Conn, error) {
	if d, ok := s.Sandbox.(sandbox.Dialer); ok {
		return d.DialContext(ctx, network, addr)
	}
	var d net.Dialer
	_, port, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, err
	}
	return d.DialContext(ctx, network, net.JoinHostPort("127.0.0.1", port))
}

// Snapshots forwards to the wrapped runtime's (sandbox.Snapshotter).
func (r *countingRuntime) Snapshots() error {
	if s, ok := r.Runtime.(sandbox.Snapshotter); ok {
		return s.Snapshots()
	}
	return errors.New("the sandbox runtime cannot take snapshots")
}

// Unwrap returns the counted sandbox, whose optional interfaces
// (sandbox.As) the invoker uses directly.
func (s *countedSandbox) Unwrap() sandbox.Sandbox { return s.Sandbox }
