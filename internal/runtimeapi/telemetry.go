package runtimeapi

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"net"
	"sync"
	"time"
)

// Telemetry is the telemetry stream of one environment: the events the
// Telemetry API (PUT /2022-07-01/telemetry) and the legacy Logs API (PUT
// /2020-08-15/logs) deliver to subscribed extensions. The Server emits
// platform.extension, platform.telemetrySubscription and
// platform.logsDropped itself; the invoker emits the lifecycle events and
// the log lines, in this order for one environment:
//
//	Platform(PlatformInitStart{…})         before starting the runtime
//	FunctionLog / ExtensionLog             for every line of output, any time
//	Platform(PlatformInitRuntimeDone{…})   when WaitInit returned
//	Platform(PlatformInitReport{…})
//	Platform(PlatformStart{…})             per invocation, before Invoke
//	Platform(PlatformRuntimeDone{…})       when the runtime's answer ended
//	Platform(PlatformReport{…})            when WaitInvokeDone returned
//
// Each subscriber gets the events of the types it chose, in emission order,
// batched as its buffering settings say: HTTP destinations get POSTs of a
// JSON array of {"time","type","record"}, TCP destinations one JSON object
// per line. Methods are safe for concurrent use and never block on a
// subscriber: a subscriber that falls behind its buffer loses events and is
// told so with platform.logsDropped. Events emitted while nobody subscribed
// are not kept.
type Telemetry struct {
	log  *slog.Logger
	now  func() time.Time
	dial func(ctx context.Context, network, addr string) (net.Conn, error)

	mu     sync.Mutex
	subs   map[string]*subscription // by extension name and API ("t:"/"l:" + name)
	closed bool
	// backlog keeps the events emitted during init (until endBacklog), so
	// that a subscriber, which can only subscribe during init, still gets
	// platform.initStart and the output that preceded its subscription.
	backlog      []backlogEvent
	backlogBytes int
	noBacklog    bool
}

type backlogEvent struct {
	cat    category
	now    string
	typ    string
	record any
}

// maxBacklog bounds the init backlog; events past it are not replayed.
const (
	maxBacklogEvents = 1000
	maxBacklogBytes  = 1 << 20
)

func newTelemetry(log *slog.Logger, now func() time.Time, dial func(ctx context.Context, network, addr string) (net.Conn, error)) *Telemetry {
	if dial == nil {
		dial = dialSandbox
	}
	return &Telemetry{log: log, now: now, dial: dial, subs: make(map[string]*subscription)}
}

// sandboxHosts are the host names a destination may use; each means "this
// environment".
var sandboxHosts = map[string]bool{"sandbox.localdomain": true, "sandbox": true, "localhost": true, "127.0.0.1": true}

// sandboxHost is the host every destination address is given to
// Options.DialContext with.
const sandboxHost = "sandbox.localdomain"

// dialSandbox is the default dialer: sandbox.localdomain is 127.0.0.1.
func dialSandbox(ctx context.Context, network, addr string) (net.Conn, error) {
	host, port, err := net.SplitHostPort(addr)
	if err == nil && sandboxHosts[host] {
		addr = net.JoinHostPort("127.0.0.1", port)
	}
	var d net.Dialer
	return d.DialContext(ctx, network, addr)
}

// Platform emits a platform event. The record types are the Platform*
// structs of this package.
func (t *Telemetry) Platform(ev PlatformEvent) {
	t.emit(catPlatform, ev.platformType(), ev)
}

// FunctionLog emits one line of the runtime's output (without its newline)
// as a "function" event.
func (t *Telemetry) FunctionLog(line []byte) {
	if t.quiet() {
		return
	}
	t.emit(catFunction, "function", string(bytes.ToValidUTF8(line, []byte("\uFFFD"))))
}

// ExtensionLog emits one line of an extension's output as an "extension"
// event. name is the extension's, for the debug log only: Lambda's record
// is the line.
func (t *Telemetry) ExtensionLog(_ string, line []byte) {
	if t.quiet() {
		return
	}
	t.emit(catExtension, "extension", string(bytes.ToValidUTF8(line, []byte("\uFFFD"))))
}

// Subscribed reports how many subscriptions are active.
func (t *Telemetry) Subscribed() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return len(t.subs)
}

// Flush sends every buffered event now and waits until the subscribers
// took them (or their delivery failed), or ctx ends. The invoker calls it
// (Shutdown does) so that the last report reaches the extensions before
// SHUTDOWN.
func (t *Telemetry) Flush(ctx context.Context) error {
	t.mu.Lock()
	var waits []chan struct{}
	for _, sub := range t.subs {
		waits = append(waits, sub.flush())
	}
	t.mu.Unlock()
	for _, w := range waits {
		select {
		case <-w:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	return nil
}

// close stops every sender; buffered events are dropped.
func (t *Telemetry) close() {
	t.mu.Lock()
	t.closed = true
	subs := t.subs
	t.subs = map[string]*subscription{}
	t.mu.Unlock()
	for _, sub := range subs {
		sub.stop()
	}
}

// subscribe starts delivering to cfg for extension name, replacing that
// extension's earlier subscription to the same API.
func (t *Telemetry) subscribe(name string, cfg subscriptionConfig) bool {
	sub := newSubscription(t, name, cfg)
	key := "t:" + name
	if cfg.legacy {
		key = "l:" + name
	}
	t.mu.Lock()
	if t.closed {
		t.mu.Unlock()
		return false
	}
	old := t.subs[key]
	t.subs[key] = sub
	for _, ev := range t.backlog {
		t.deliver(map[string]*subscription{key: sub}, ev.cat, ev.now, ev.typ, ev.record)
	}
	t.mu.Unlock()
	if old != nil {
		go old.stop()
	}
	sub.start()
	return true
}

// category is what a subscription's types select.
type category uint8

const (
	catPlatform category = iota + 1
	catFunction
	catExtension
)

// emit encodes one event and queues it for every subscriber of its
// category.
func (t *Telemetry) emit(cat category, typ string, record any) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.noBacklog && len(t.subs) == 0 {
		return // init is over and nobody listens: the usual case
	}
	now := t.now().UTC().Format(timeFormat)
	if !t.noBacklog && len(t.backlog) < maxBacklogEvents && t.backlogBytes < maxBacklogBytes {
		t.backlog = append(t.backlog, backlogEvent{cat, now, typ, record})
		if s, ok := record.(string); ok {
			t.backlogBytes += len(s)
		}
		t.backlogBytes += 64
	}
	t.deliver(t.subs, cat, now, typ, record)
}

// quiet reports whether an event would go nowhere: init is over and
// nobody has subscribed. Callers skip preparing the event then.
func (t *Telemetry) quiet() bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.noBacklog && len(t.subs) == 0
}

// endBacklog drops the init backlog; the Server calls it when init ends.
func (t *Telemetry) endBacklog() {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.noBacklog = true
	t.backlog, t.backlogBytes = nil, 0
}

// deliver queues one event for the subscriptions in subs that want it;
// t.mu must be held.
func (t *Telemetry) deliver(subs map[string]*subscription, cat category, now, typ string, record any) {
	var cur []byte
	var legacy [][]byte
	legacyDone := false
	for _, sub := range subs {
		if !sub.cfg.wants(cat) {
			continue
		}
		if sub.cfg.legacy {
			if !legacyDone {
				legacyDone = true
				if ltyp, lrec, ok := legacyEvent(typ, record); ok {
					for i := range ltyp {
						legacy = append(legacy, encodeEvent(now, ltyp[i], lrec[i]))
					}
				}
			}
			for _, e := range legacy {
				sub.enqueue(e)
			}
			continue
		}
		if _, onlyLegacy := record.(platformLogsSubscription); onlyLegacy {
			continue
		}
		if cur == nil {
			cur = encodeEvent(now, typ, record)
		}
		sub.enqueue(cur)
	}
}

// timeFormat is the events' "time": ISO 8601, milliseconds, UTC.
const timeFormat = "2006-01-02T15:04:05.000Z"

func encodeEvent(now, typ string, record any) []byte {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	_ = enc.Encode(struct {
		Time   string `json:"time"`
		Type   string `json:"type"`
		Record any    `json:"record"`
	}{now, typ, record})
	return bytes.TrimSuffix(b.Bytes(), []byte("\n"))
}

// legacyEvent maps an event to the Logs API's shapes: platform.start,
// platform.runtimeDone followed by platform.end, platform.report,
// platform.extension, platform.logsSubscription, platform.logsDropped and
// the log lines. The init events have no Logs API counterpart.
func legacyEvent(typ string, record any) ([]string, []any, bool) {
	switch r := record.(type) {
	case string:
		return []string{typ}, []any{r}, true
	case PlatformStart:
		return []string{"platform.start"}, []any{legacyStart{r.RequestID, r.Version}}, true
	case PlatformRuntimeDone:
		return []string{"platform.runtimeDone", "platform.end"},
			[]any{legacyRuntimeDone{r.RequestID, r.Status}, legacyEnd{r.RequestID}}, true
	case PlatformReport:
		return []string{"platform.report"}, []any{legacyReport{r.RequestID, r.Metrics}}, true
	case PlatformExtension, PlatformLogsDropped:
		return []string{typ}, []any{r}, true
	case platformLogsSubscription:
		return []string{"platform.logsSubscription"}, []any{PlatformTelemetrySubscription(r)}, true
	}
	return nil, nil, false
}

type legacyStart struct {
	RequestID string `json:"requestId"`
	Version   string `json:"version,omitempty"`
}

type legacyRuntimeDone struct {
	RequestID string `json:"requestId"`
	Status    string `json:"status"`
}

type legacyEnd struct {
	RequestID string `json:"requestId"`
}

type legacyReport struct {
	RequestID string        `json:"requestId"`
	Metrics   ReportMetrics `json:"metrics"`
}

// PlatformEvent is a platform event record: one of the Platform* types.
type PlatformEvent interface {
	platformType() string
}

// Statuses of platform.initRuntimeDone, initReport, runtimeDone and report.
const (
	StatusSuccess = "success"
	StatusError   = "error"   // a function error
	StatusFailure = "failure" // the platform failed (crash, extension error)
	StatusTimeout = "timeout"
)

// TraceContext is the "tracing" of a platform event.
type TraceContext struct {
	SpanID string `json:"spanId,omitempty"`
	Type   string `json:"type"` // "X-Amzn-Trace-Id"
	Value  string `json:"value"`
}

// Span is one entry of a platform event's "spans".
type Span struct {
	Name       string  `json:"name"`
	Start      string  `json:"start"` // time, as the events' "time"
	DurationMs float64 `json:"durationMs"`
}

// FormatTime renders t as an event time or a Span's start.
func FormatTime(t time.Time) string { return t.UTC().Format(timeFormat) }

// PlatformInitStart is platform.initStart: init begins.
type PlatformInitStart struct {
	InitializationType string `json:"initializationType"` // "on-demand"
	Phase              string `json:"phase"`              // "init"
	RuntimeVersion     string `json:"runtimeVersion,omitempty"`
	RuntimeVersionARN  string `json:"runtimeVersionArn,omitempty"`
	FunctionName       string `json:"functionName,omitempty"`
	FunctionVersion    string `json:"functionVersion,omitempty"`
}

// PlatformInitRuntimeDone is platform.initRuntimeDone: the runtime's init
// ended.
type PlatformInitRuntimeDone struct {
	InitializationType string `json:"initializationType"`
	Phase              string `json:"phase"`
	Status             string `json:"status"`
	ErrorType          string `json:"errorType,omitempty"`
	Spans              []Span `json:"spans,omitempty"`
}

// PlatformInitReport is platform.initReport: init as a whole ended.
type PlatformInitReport struct {
	InitializationType string            `json:"initializationType"`
	Phase              string            `json:"phase"`
	Status             string            `json:"status"`
	ErrorType          string            `json:"errorType,omitempty"`
	Metrics            InitReportMetrics `json:"metrics"`
	Spans              []Span            `json:"spans,omitempty"`
}

// InitReportMetrics are platform.initReport's metrics.
type InitReportMetrics struct {
	DurationMs float64 `json:"durationMs"`
}

// PlatformStart is platform.start: an invocation begins.
type PlatformStart struct {
	RequestID string        `json:"requestId"`
	Version   string        `json:"version,omitempty"`
	Tracing   *TraceContext `json:"tracing,omitempty"`
}

// PlatformRuntimeDone is platform.runtimeDone: the runtime's answer ended.
type PlatformRuntimeDone struct {
	RequestID string              `json:"requestId"`
	Status    string              `json:"status"`
	ErrorType string              `json:"errorType,omitempty"`
	Metrics   *RuntimeDoneMetrics `json:"metrics,omitempty"`
	Tracing   *TraceContext       `json:"tracing,omitempty"`
	Spans     []Span              `json:"spans,omitempty"`
}

// RuntimeDoneMetrics are platform.runtimeDone's metrics.
type RuntimeDoneMetrics struct {
	DurationMs    float64 `json:"durationMs"`
	ProducedBytes int64   `json:"producedBytes,omitempty"`
}

// PlatformReport is platform.report: the invocation is complete.
type PlatformReport struct {
	RequestID string        `json:"requestId"`
	Status    string        `json:"status"`
	ErrorType string        `json:"errorType,omitempty"`
	Metrics   ReportMetrics `json:"metrics"`
	Tracing   *TraceContext `json:"tracing,omitempty"`
	Spans     []Span        `json:"spans,omitempty"`
}

// ReportMetrics are platform.report's metrics; InitDurationMs only on a
// cold start.
type ReportMetrics struct {
	DurationMs       float64  `json:"durationMs"`
	BilledDurationMs int64    `json:"billedDurationMs"`
	MemorySizeMB     int      `json:"memorySizeMB"`
	MaxMemoryUsedMB  int      `json:"maxMemoryUsedMB"`
	InitDurationMs   *float64 `json:"initDurationMs,omitempty"`
}

// PlatformExtension is platform.extension: an extension finished its init.
type PlatformExtension struct {
	Name      string   `json:"name"`
	State     string   `json:"state"` // "Ready"
	Events    []string `json:"events"`
	ErrorType string   `json:"errorType,omitempty"`
}

// PlatformTelemetrySubscription is platform.telemetrySubscription: an
// extension subscribed to the Telemetry API.
type PlatformTelemetrySubscription struct {
	Name  string   `json:"name"`
	State string   `json:"state"` // "Subscribed"
	Types []string `json:"types"`
}

// platformLogsSubscription is the Logs API's platform.logsSubscription.
type platformLogsSubscription PlatformTelemetrySubscription

// PlatformLogsDropped is platform.logsDropped: a subscriber lost events.
type PlatformLogsDropped struct {
	Reason         string `json:"reason"`
	DroppedRecords int    `json:"droppedRecords"`
	DroppedBytes   int    `json:"droppedBytes"`
}

func (PlatformInitStart) platformType() string             { return "platform.initStart" }
func (PlatformInitRuntimeDone) platformType() string       { return "platform.initRuntimeDone" }
func (PlatformInitReport) platformType() string            { return "platform.initReport" }
func (PlatformStart) platformType() string                 { return "platform.start" }
func (PlatformRuntimeDone) platformType() string           { return "platform.runtimeDone" }
func (PlatformReport) platformType() string                { return "platform.report" }
func (PlatformExtension) platformType() string             { return "platform.extension" }
func (PlatformTelemetrySubscription) platformType() string { return "platform.telemetrySubscription" }
func (platformLogsSubscription) platformType() string      { return "platform.logsSubscription" }
func (PlatformLogsDropped) platformType() string           { return "platform.logsDropped" }
