package tracing

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Span kinds and status codes of OTLP.
const (
	KindInternal = 1
	KindServer   = 2

	StatusUnset = 0
	StatusOK    = 1
	StatusError = 2
)

// Span is one finished span.
type Span struct {
	Trace      TraceID
	ID         SpanID
	Parent     SpanID // zero for a root span
	Name       string
	Kind       int
	Start, End time.Time
	// Attributes hold string, bool, int, int64 or float64 values.
	Attributes map[string]any
	Status     int
	Message    string
}

// Options configure an Exporter.
type Options struct {
	// Endpoint is the OTLP/HTTP base URL ("http://127.0.0.1:4318"); spans
	// are POSTed to <Endpoint>/v1/traces unless it already ends in
	// /v1/traces.
	Endpoint string
	// Headers are sent with every export (e.g. an authorization header).
	Headers map[string]string
	// Resource attributes; service.name defaults to "kappa".
	Resource map[string]string
	// BatchSize, QueueSize and Interval bound batching: an export is sent
	// when BatchSize spans wait or Interval passed; beyond QueueSize
	// waiting spans new ones are dropped (defaults 512, 8192, 1 s).
	BatchSize int
	QueueSize int
	Interval  time.Duration
	// Timeout caps one export request (default 10 s).
	Timeout time.Duration
	Client  *http.Client
	Logger  *slog.Logger
}

// Exporter sends spans to an OTLP/HTTP receiver as JSON
// (application/json, the OTLP/HTTP JSON encoding). Export never blocks:
// spans are queued and sent in batches by one goroutine; when the
// receiver is slow or down, the queue fills and further spans are dropped
// and counted. Safe for concurrent use.
type Exporter struct {
	opts    Options
	url     string
	log     *slog.Logger
	mu      sync.Mutex
	queue   []Span
	closed  bool
	wake    chan struct{}
	done    chan struct{}
	dropped atomic.Int64
	failed  atomic.Int64
	sent    atomic.Int64
}

// NewExporter returns an Exporter and starts its sending goroutine.
func NewExporter(opts Options) (*Exporter, error) {
	if !strings.HasPrefix(opts.Endpoint, "http://") && !strings.HasPrefix(opts.Endpoint, "https://") {
		return nil, fmt.Errorf("OTLP endpoint %q: want an http:// or https:// URL", opts.Endpoint)
	}
	if opts.BatchSize <= 0 {
		opts.BatchSize = 512
	}
	if opts.QueueSize <= 0 {
		opts.QueueSize = 8192
	}
	if opts.Interval <= 0 {
		opts.Interval = time.Second
	}
	if opts.Timeout <= 0 {
		opts.Timeout = 10 * time.Second
	}
	if opts.Client == nil {
		opts.Client = &http.Client{}
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	url := strings.TrimSuffix(opts.Endpoint, "/")
	if !strings.HasSuffix(url, "/v1/traces") {
		url += "/v1/traces"
	}
	e := &Exporter{opts: opts, url: url, log: opts.Logger, wake: make(chan struct{}, 1), done: make(chan struct{})}
	go e.run()
	return e, nil
}

// Export queues spans for sending.
func (e *Exporter) Export(spans ...Span) {
	e.mu.Lock()
	if e.closed {
		e.mu.Unlock()
		return
	}
	room := e.opts.QueueSize - len(e.queue)
	if room < len(spans) {
		e.dropped.Add(int64(len(spans) - max(room, 0)))
		spans = spans[:max(room, 0)]
	}
	e.queue = append(e.queue, spans...)
	full := len(e.queue) >= e.opts.BatchSize
	e.mu.Unlock()
	if full {
		select {
		case e.wake <- struct{}{}:
		default:
		}
	}
}

// Stats reports spans sent, dropped (queue full) and failed (receiver
// errors).
func (e *Exporter) Stats() (sent, dropped, failed int64) {
	return e.sent.Load(), e.dropped.Load(), e.failed.Load()
}

func (e *Exporter) run() {
	defer close(e.done)
	t := time.NewTicker(e.opts.Interval)
	defer t.Stop()
	for {
		select {
		case <-t.C:
		case <-e.wake:
		}
		e.mu.Lock()
		closed := e.closed
		e.mu.Unlock()
		for e.sendBatch() {
		}
		if closed {
			return
		}
	}
}

// sendBatch sends up to BatchSize queued spans; false when none waited.
func (e *Exporter) sendBatch() bool {
	e.mu.Lock()
	n := min(len(e.queue), e.opts.BatchSize)
	if n == 0 {
		e.mu.Unlock()
		return false
	}
	batch := append([]Span(nil), e.queue[:n]...)
	e.queue = append(e.queue[:0], e.queue[n:]...)
	e.mu.Unlock()
	if err := e.post(batch); err != nil {
		e.failed.Add(int64(len(batch)))
		e.log.Warn("OTLP export failed; spans dropped", "endpoint", e.url, "spans", len(batch), "err", err)
	} else {
		e.sent.Add(int64(len(batch)))
	}
	return true
}

func (e *Exporter) post(batch []Span) error {
	body, err := json.Marshal(e.encode(batch))
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), e.opts.Timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, e.url, bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	for k, v := range e.opts.Headers {
		req.Header.Set(k, v)
	}
	resp, err := e.opts.Client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("receiver answered %s", resp.Status)
	}
	return nil
}

// Close sends what is queued (until ctx ends) and stops the exporter.
func (e *Exporter) Close(ctx context.Context) error {
	e.mu.Lock()
	if e.closed {
		e.mu.Unlock()
		return nil
	}
	e.closed = true
	e.mu.Unlock()
	select {
	case e.wake <- struct{}{}:
	default:
	}
	select {
	case <-e.done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// The OTLP/HTTP JSON shapes (opentelemetry-proto, JSON mapping: ids are
// hex, 64-bit integers are decimal strings).
type (
	otlpRequest struct {
		ResourceSpans []otlpResourceSpans `json:"resourceSpans"`
	}
	otlpResourceSpans struct {
		Resource   otlpResource     `json:"resource"`
		ScopeSpans []otlpScopeSpans `json:"scopeSpans"`
	}
	otlpResource struct {
		Attributes []otlpKeyValue `json:"attributes"`
	}
	otlpScopeSpans struct {
		Scope otlpScope  `json:"scope"`
		Spans []otlpSpan `json:"spans"`
	}
	otlpScope struct {
		Name string `json:"name"`
	}
	otlpSpan struct {
		TraceID           string         `json:"traceId"`
		SpanID            string         `json:"spanId"`
		ParentSpanID      string         `json:"parentSpanId,omitempty"`
		Name              string         `json:"name"`
		Kind              int            `json:"kind"`
		StartTimeUnixNano string         `json:"startTimeUnixNano"`
		EndTimeUnixNano   string         `json:"endTimeUnixNano"`
		Attributes        []otlpKeyValue `json:"attributes,omitempty"`
		Status            otlpStatus     `json:"status"`
	}
	otlpStatus struct {
		Code    int    `json:"code,omitempty"`
		Message string `json:"message,omitempty"`
	}
	otlpKeyValue struct {
		Key   string       `json:"key"`
		Value otlpAnyValue `json:"value"`
	}
	otlpAnyValue struct {
		StringValue *string  `json:"stringValue,omitempty"`
		BoolValue   *bool    `json:"boolValue,omitempty"`
		IntValue    *string  `json:"intValue,omitempty"`
		DoubleValue *float64 `json:"doubleValue,omitempty"`
	}
)

func attr(k string, v any) otlpKeyValue {
	kv := otlpKeyValue{Key: k}
	switch x := v.(type) {
	case string:
		kv.Value.StringValue = &x
	case bool:
		kv.Value.BoolValue = &x
	case int:
		s := strconv.Itoa(x)
		kv.Value.IntValue = &s
	case int64:
		s := strconv.FormatInt(x, 10)
		kv.Value.IntValue = &s
	case float64:
		kv.Value.DoubleValue = &x
	default:
		s := fmt.Sprint(x)
		kv.Value.StringValue = &s
	}
	return kv
}

func attrs(m map[string]any) []otlpKeyValue {
	out := make([]otlpKeyValue, 0, len(m))
	for k, v := range m {
		out = append(out, attr(k, v))
	}
	// Stable order, for readers and tests.
	sort.Slice(out, func(i, j int) bool { return out[i].Key < out[j].Key })
	return out
}

func (e *Exporter) encode(batch []Span) otlpRequest {
	res := map[string]any{"service.name": "kappa"}
	for k, v := range e.opts.Resource {
		res[k] = v
	}
	spans := make([]otlpSpan, len(batch))
	for i, s := range batch {
		o := otlpSpan{
			TraceID: s.Trace.String(), SpanID: s.ID.String(), Name: s.Name, Kind: s.Kind,
			StartTimeUnixNano: strconv.FormatInt(s.Start.UnixNano(), 10),
			EndTimeUnixNano:   strconv.FormatInt(s.End.UnixNano(), 10),
			Attributes:        attrs(s.Attributes),
			Status:            otlpStatus{Code: s.Status, Message: s.Message},
		}
		if !s.Parent.IsZero() {
			o.ParentSpanID = s.Parent.String()
		}
		spans[i] = o
	}
	return otlpRequest{ResourceSpans: []otlpResourceSpans{{
		Resource:   otlpResource{Attributes: attrs(res)},
		ScopeSpans: []otlpScopeSpans{{Scope: otlpScope{Name: "github.com/kappa-run/kappa"}, Spans: spans}},
	}}}
}
