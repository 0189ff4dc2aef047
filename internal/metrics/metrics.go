package metrics

import (
	"math"
	"net/http"
	"sort"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Labels name what an invocation ran: the function, the version that ran,
// and the alias it was invoked through ("" when none, or unknown).
type Labels struct {
	Function string
	Version  string
	Alias    string
}

// Invocation is the outcome of one invocation that ran.
type Invocation struct {
	Labels
	// Start is when the invocation began.
	Start time.Time
	// Duration is the invoke phase; Billed the billed duration (1 ms
	// granularity, including Init on a cold start of an image function).
	Duration time.Duration
	Billed   time.Duration
	// Init is the init phase of a cold start (0 when warm).
	Init time.Duration
	Cold bool
	// Status is success, error (function error), timeout or failure.
	Status   string
	MemoryMB int
	// Concurrency is how many invocations of the function were running
	// as this one finished, itself included (0: unknown); the history
	// keeps each minute's maximum.
	Concurrency int
}

// Host reports the state of the host's execution environments; the daemon
// implements it over the invoker and the sandbox runtime.
type Host interface {
	// Environments counts environments: Live exist or are being created,
	// Idle wait for an invocation, Provisioned are kept by provisioned
	// concurrency; MemoryMB is the sum of the MemorySize of live ones.
	Environments() Environments
	// Provisioned lists provisioned-concurrency targets.
	Provisioned() []Provisioned
}

// Environments is a Host's environment counts.
type Environments struct {
	Live, Idle, Provisioned int
	// Spare counts created-but-not-started environments kept ready for
	// cold starts (not live).
	Spare    int
	MemoryMB int64
}

// Provisioned is one provisioned-concurrency target: Qualifier is a
// version number or an alias name.
type Provisioned struct {
	Function  string
	Qualifier string
	Allocated int
	Requested int
}

// Options configure Metrics.
type Options struct {
	// Host, when set, feeds the host gauges and provisioned-concurrency
	// utilization.
	Host Host
	// Now is the clock of the history buffers (default time.Now).
	Now func() time.Time
}

// Metrics holds Kappa's Prometheus collectors (the Lambda metric set plus
// host gauges and billing) and a one-hour, one-minute-resolution history
// per function for the console. Safe for concurrent use; every method is
// cheap enough to call on an invocation's path.
//
// The Prometheus names and their Lambda counterparts:
//
//	kappa_invocations_total{function,version,alias}           Invocations
//	kappa_errors_total{function,version,alias,status}         Errors (status error|timeout|failure)
//	kappa_throttles_total{function,reason}                    Throttles
//	kappa_duration_seconds{function,version,alias}            Duration (histogram)
//	kappa_concurrent_executions{function,version,alias}       ConcurrentExecutions
//	kappa_provisioned_concurrency_utilization{function,qualifier}  ProvisionedConcurrencyUtilization
//	kappa_provisioned_concurrent_executions{function,qualifier}    ProvisionedConcurrentExecutions
//	kappa_cold_starts_total{function,version,alias}           (cold starts)
//	kappa_init_duration_seconds{function,version}             InitDuration (histogram)
//	kappa_async_events_received_total{function,version,alias} AsyncEventsReceived
//	kappa_async_events_dropped_total{function,reason}         AsyncEventsDropped
//	kappa_async_event_age_seconds{function}                   AsyncEventAge (histogram)
//	kappa_esm_messages_total{function,result}                 event source mapping messages (result succeeded|retried)
//	kappa_billed_duration_seconds_total{function}             billed time (1 ms granularity)
//	kappa_billed_gb_seconds_total{function}                   GB-seconds = billed seconds × MemorySize/1024
//	kappa_environments_{live,idle,busy,provisioned,spare}     host gauges
//	kappa_memory_committed_bytes                              sum of MemorySize of started environments
type Metrics struct {
	opts Options
	reg  *prometheus.Registry

	invocations  *prometheus.CounterVec
	errors       *prometheus.CounterVec
	throttles    *prometheus.CounterVec
	duration     *prometheus.HistogramVec
	coldStarts   *prometheus.CounterVec
	initDuration *prometheus.HistogramVec
	asyncRecv    *prometheus.CounterVec
	asyncDropped *prometheus.CounterVec
	asyncAge     *prometheus.HistogramVec
	esmMessages  *prometheus.CounterVec
	billedSec    *prometheus.CounterVec
	billedGBs    *prometheus.CounterVec

	mu         sync.Mutex
	inflight   map[Labels]int
	fnInflight map[string]int
	history    map[string]*history
	billing    map[string]*Billing
	started    time.Time
}

// New returns Metrics with every collector registered, including the Go
// runtime and process collectors.
func New(opts Options) *Metrics {
	if opts.Now == nil {
		opts.Now = time.Now
	}
	fva := []string{"function", "version", "alias"}
	m := &Metrics{
		opts: opts, reg: prometheus.NewRegistry(),
		invocations: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "kappa_invocations_total",
			Help: "Invocations that ran, successfully or not (Lambda Invocations)."}, fva),
		errors: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "kappa_errors_total",
			Help: "Invocations that ended in a function error, a timeout or a platform failure (Lambda Errors)."},
			append(fva[:3:3], "status")),
		throttles: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "kappa_throttles_total",
			Help: "Invocations refused with 429 TooManyRequestsException, by Reason (Lambda Throttles)."},
			[]string{"function", "reason"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "kappa_duration_seconds",
			Help:    "Time the function spent on an invocation, the invoke phase (Lambda Duration).",
			Buckets: durationBuckets}, fva),
		coldStarts: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "kappa_cold_starts_total",
			Help: "Invocations that started a new execution environment."}, fva),
		initDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "kappa_init_duration_seconds",
			Help:    "Init phase of cold starts (Lambda InitDuration).",
			Buckets: durationBuckets}, []string{"function", "version"}),
		asyncRecv: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "kappa_async_events_received_total",
			Help: "Events queued for asynchronous invocation (Lambda AsyncEventsReceived)."}, fva),
		asyncDropped: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "kappa_async_events_dropped_total",
			Help: "Asynchronous events dropped without a successful invocation, by reason (Lambda AsyncEventsDropped)."},
			[]string{"function", "reason"}),
		asyncAge: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "kappa_async_event_age_seconds",
			Help:    "Time from queueing an asynchronous event to invoking it (Lambda AsyncEventAge).",
			Buckets: ageBuckets}, []string{"function"}),
		esmMessages: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "kappa_esm_messages_total",
			Help: "Queue messages event source mappings handed to functions, by result: succeeded (done) or retried (back to the queue)."},
			[]string{"function", "result"}),
		billedSec: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "kappa_billed_duration_seconds_total",
			Help: "Billed duration: invoke phase rounded up to 1 ms, plus Init on cold starts."}, []string{"function"}),
		billedGBs: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "kappa_billed_gb_seconds_total",
			Help: "Billed GB-seconds: billed duration times MemorySize in GB (MB/1024)."}, []string{"function"}),
		inflight: map[Labels]int{}, fnInflight: map[string]int{}, history: map[string]*history{}, billing: map[string]*Billing{},
		started: opts.Now(),
	}
	m.reg.MustRegister(m.invocations, m.errors, m.throttles, m.duration, m.coldStarts, m.initDuration,
		m.asyncRecv, m.asyncDropped, m.asyncAge, m.esmMessages, m.billedSec, m.billedGBs, stateCollector{m},
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

// durationBuckets span 1 ms to 15 min (Lambda's longest timeout).
var durationBuckets = []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 900}

// ageBuckets span 10 ms to 6 h (the longest MaximumEventAgeInSeconds).
var ageBuckets = []float64{.01, .1, 1, 10, 60, 300, 900, 1800, 3600, 7200, 14400, 21600}

// Handler serves /metrics in the Prometheus text (or, when asked,
// OpenMetrics) exposition format.
func (m *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{EnableOpenMetrics: true})
}

// Registry is the registry holding every collector, for packages that
// add their own.
func (m *Metrics) Registry() *prometheus.Registry { return m.reg }

// Begin counts an invocation as running (ConcurrentExecutions); every
// Begin is paired with an End.
func (m *Metrics) Begin(l Labels) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.inflight[l]++
	m.fnInflight[l.Function]++
}

// End counts an invocation as finished.
func (m *Metrics) End(l Labels) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.inflight[l]--
	if m.fnInflight[l.Function]--; m.fnInflight[l.Function] <= 0 {
		delete(m.fnInflight, l.Function)
	}
}

// Invoked records an invocation that ran.
func (m *Metrics) Invoked(inv Invocation) {
	l := inv.Labels
	m.invocations.WithLabelValues(l.Function, l.Version, l.Alias).Inc()
	if inv.Status != "" && inv.Status != "success" {
		m.errors.WithLabelValues(l.Function, l.Version, l.Alias, inv.Status).Inc()
	}
	m.duration.WithLabelValues(l.Function, l.Version, l.Alias).Observe(inv.Duration.Seconds())
	if inv.Cold {
		m.coldStarts.WithLabelValues(l.Function, l.Version, l.Alias).Inc()
		if inv.Init > 0 {
			m.initDuration.WithLabelValues(l.Function, l.Version).Observe(inv.Init.Seconds())
		}
	}
	// Billing counts whole milliseconds, as Lambda does.
	billedMs := int64(math.Ceil(float64(inv.Billed) / float64(time.Millisecond)))
	billed := float64(billedMs) / 1000
	gbs := billed * float64(inv.MemoryMB) / 1024
	m.billedSec.WithLabelValues(l.Function).Add(billed)
	m.billedGBs.WithLabelValues(l.Function).Add(gbs)

	m.mu.Lock()
	defer m.mu.Unlock()
	b := m.historyLocked(l.Function).at(inv.Start)
	b.Invocations++
	if inv.Status != "" && inv.Status != "success" {
		b.Errors++
	}
	if inv.Cold {
		b.ColdStarts++
	}
	b.observe(inv.Duration)
	b.concurrency(inv.Concurrency)
	b.GBSeconds += gbs
	bl := m.billing[l.Function]
	if bl == nil {
		bl = &Billing{Function: l.Function}
		m.billing[l.Function] = bl
	}
	bl.Invocations++
	bl.BilledMs += billedMs
	bl.GBSeconds += gbs
}

// Throttled records an invocation refused with a 429 and its Reason.
func (m *Metrics) Throttled(function, reason string) {
	m.throttles.WithLabelValues(function, reason).Inc()
	m.mu.Lock()
	defer m.mu.Unlock()
	m.historyLocked(function).at(m.opts.Now()).Throttles++
}

// AsyncEventReceived records an event queued for asynchronous invocation
// of a function's version, through alias ("" when none). For the async
// package.
func (m *Metrics) AsyncEventReceived(function, version, alias string) {
	m.asyncRecv.WithLabelValues(function, version, alias).Inc()
}

// AsyncEventDropped records an asynchronous event dropped without a
// successful invocation; reason is e.g. EventAgeExceeded,
// RetriesExhausted or QueueFull. For the async package.
func (m *Metrics) AsyncEventDropped(function, reason string) {
	m.asyncDropped.WithLabelValues(function, reason).Inc()
}

// AsyncEventAge records the time between queueing an event and invoking
// it. For the async package.
func (m *Metrics) AsyncEventAge(function string, age time.Duration) {
	m.asyncAge.WithLabelValues(function).Observe(age.Seconds())
}

// ESMMessages records n messages of an event source mapping that ended a
// batch with result: "succeeded" or "retried". For the eventsource
// package.
func (m *Metrics) ESMMessages(function, result string, n int) {
	m.esmMessages.WithLabelValues(function, result).Add(float64(n))
}

// Billing is one function's billed usage since the server started.
type Billing struct {
	Function    string  `json:"function"`
	Invocations int64   `json:"invocations"`
	BilledMs    int64   `json:"billedMs"`
	GBSeconds   float64 `json:"gbSeconds"`
	// GBSecondsLastHour is the usage of the last hour.
	GBSecondsLastHour float64 `json:"gbSecondsLastHour"`
}

// Billings returns every function's billed usage, by function name.
func (m *Metrics) Billings() []Billing {
	m.mu.Lock()
	defer m.mu.Unlock()
	now := m.opts.Now()
	out := make([]Billing, 0, len(m.billing))
	for fn, b := range m.billing {
		c := *b
		if h := m.history[fn]; h != nil {
			for _, bk := range h.window(now) {
				c.GBSecondsLastHour += bk.GBSeconds
			}
		}
		out = append(out, c)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Function < out[j].Function })
	return out
}

// Started is when the metrics (and billing totals) began.
func (m *Metrics) Started() time.Time { return m.started }

// concurrencyBy sums running invocations of a function by qualifier: an
// alias name matches the alias label, anything else the version.
func (m *Metrics) concurrencyBy(function, qualifier string) int {
	m.mu.Lock()
	defer m.mu.Unlock()
	n := 0
	for l, v := range m.inflight {
		if l.Function == function && (l.Alias == qualifier || l.Alias == "" && l.Version == qualifier) {
			n += v
		}
	}
	return n
}

// stateCollector reports gauges read at scrape time.
type stateCollector struct{ m *Metrics }

var (
	descConcurrent = prometheus.NewDesc("kappa_concurrent_executions",
		"Invocations running now (Lambda ConcurrentExecutions).", []string{"function", "version", "alias"}, nil)
	descPCUtil = prometheus.NewDesc("kappa_provisioned_concurrency_utilization",
		"Running invocations served by provisioned concurrency over the allocated environments (Lambda ProvisionedConcurrencyUtilization).",
		[]string{"function", "qualifier"}, nil)
	descPCExec = prometheus.NewDesc("kappa_provisioned_concurrent_executions",
		"Running invocations served by provisioned concurrency (Lambda ProvisionedConcurrentExecutions).",
		[]string{"function", "qualifier"}, nil)
	descPCAlloc = prometheus.NewDesc("kappa_provisioned_concurrency_allocated",
		"Initialised provisioned environments.", []string{"function", "qualifier"}, nil)
	descEnvLive = prometheus.NewDesc("kappa_environments_live",
		"Execution environments that exist or are being created.", nil, nil)
	descEnvIdle = prometheus.NewDesc("kappa_environments_idle",
		"Execution environments waiting for an invocation (warm).", nil, nil)
	descEnvBusy = prometheus.NewDesc("kappa_environments_busy",
		"Execution environments running an invocation or starting (live minus idle).", nil, nil)
	descEnvProv = prometheus.NewDesc("kappa_environments_provisioned",
		"Execution environments kept by provisioned concurrency.", nil, nil)
	descEnvSpare = prometheus.NewDesc("kappa_environments_spare",
		"Execution environments created ahead of a cold start and not started yet.", nil, nil)
	descMem = prometheus.NewDesc("kappa_memory_committed_bytes",
		"Sum of the MemorySize of live execution environments.", nil, nil)
)

func (c stateCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descConcurrent, descPCUtil, descPCExec, descPCAlloc,
		descEnvLive, descEnvIdle, descEnvBusy, descEnvProv, descEnvSpare, descMem} {
		ch <- d
	}
}

func (c stateCollector) Collect(ch chan<- prometheus.Metric) {
	m := c.m
	m.mu.Lock()
	type kv struct {
		l Labels
		n int
	}
	var running []kv
	for l, n := range m.inflight {
		running = append(running, kv{l, n})
	}
	m.mu.Unlock()
	for _, r := range running {
		ch <- prometheus.MustNewConstMetric(descConcurrent, prometheus.GaugeValue, float64(r.n),
			r.l.Function, r.l.Version, r.l.Alias)
	}
	if m.opts.Host == nil {
		return
	}
	for _, p := range m.opts.Host.Provisioned() {
		busy := min(m.concurrencyBy(p.Function, p.Qualifier), p.Allocated)
		util := 0.0
		if p.Allocated > 0 {
			util = float64(busy) / float64(p.Allocated)
		}
		ch <- prometheus.MustNewConstMetric(descPCUtil, prometheus.GaugeValue, util, p.Function, p.Qualifier)
		ch <- prometheus.MustNewConstMetric(descPCExec, prometheus.GaugeValue, float64(busy), p.Function, p.Qualifier)
		ch <- prometheus.MustNewConstMetric(descPCAlloc, prometheus.GaugeValue, float64(p.Allocated), p.Function, p.Qualifier)
	}
	e := m.opts.Host.Environments()
	ch <- prometheus.MustNewConstMetric(descEnvLive, prometheus.GaugeValue, float64(e.Live))
	ch <- prometheus.MustNewConstMetric(descEnvIdle, prometheus.GaugeValue, float64(e.Idle))
	ch <- prometheus.MustNewConstMetric(descEnvBusy, prometheus.GaugeValue, float64(max(e.Live-e.Idle, 0)))
	ch <- prometheus.MustNewConstMetric(descEnvProv, prometheus.GaugeValue, float64(e.Provisioned))
	ch <- prometheus.MustNewConstMetric(descEnvSpare, prometheus.GaugeValue, float64(e.Spare))
	ch <- prometheus.MustNewConstMetric(descMem, prometheus.GaugeValue, float64(e.MemoryMB)*(1<<20))
}
