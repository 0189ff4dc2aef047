package metrics

import (
	"encoding/json"
	"math"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

type fakeHost struct {
	env  Environments
	prov []Provisioned
}

func (h fakeHost) Environments() Environments { return h.env }
func (h fakeHost) Provisioned() []Provisioned { return h.prov }

type clock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *clock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.now }
func (c *clock) add(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	c.mu.Unlock()
}

// scrape serves /metrics and parses it back with Prometheus' own parser.
func scrape(t *testing.T, m *Metrics) map[string]*dto.MetricFamily {
	t.Helper()
	rec := httptest.NewRecorder()
	m.Handler().ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	if rec.Code != 200 {
		t.Fatalf("/metrics = %d", rec.Code)
	}
	p := expfmt.NewTextParser(model.LegacyValidation)
	fams, err := p.TextToMetricFamilies(rec.Body)
	if err != nil {
		t.Fatalf("parse exposition: %v", err)
	}
	return fams
}

// value finds the sample of family name whose labels include want.
func value(t *testing.T, fams map[string]*dto.MetricFamily, name string, want map[string]string) *dto.Metric {
	t.Helper()
	f := fams[name]
	if f == nil {
		t.Fatalf("no metric family %s", name)
	}
next:
	for _, m := range f.Metric {
		got := map[string]string{}
		for _, l := range m.Label {
			got[l.GetName()] = l.GetValue()
		}
		for k, v := range want {
			if got[k] != v {
				continue next
			}
		}
		return m
	}
	t.Fatalf("no %s sample with labels %v", name, want)
	return nil
}

func TestExposition(t *testing.T) {
	c := &clock{now: time.Unix(1_700_000_000, 0)}
	host := fakeHost{
		env:  Environments{Live: 5, Idle: 3, Provisioned: 2, Spare: 1, MemoryMB: 640},
		prov: []Provisioned{{Function: "f", Qualifier: "live", Allocated: 2, Requested: 2}},
	}
	m := New(Options{Host: host, Now: c.Now})
	live := Labels{"f", "1", "live"}
	m.Begin(live)
	m.Invoked(Invocation{Labels: live, Start: c.Now(), Duration: 20 * time.Millisecond, Billed: 521 * time.Millisecond,
		Init: 500 * time.Millisecond, Cold: true, Status: "success", MemoryMB: 512})
	m.Invoked(Invocation{Labels: live, Start: c.Now(), Duration: 3 * time.Second, Billed: 3000 * time.Millisecond,
		Status: "timeout", MemoryMB: 512})
	m.Invoked(Invocation{Labels: Labels{"f", "$LATEST", ""}, Start: c.Now(), Duration: time.Millisecond,
		Billed: time.Millisecond, Status: "error", MemoryMB: 128})
	m.Throttled("f", "ReservedFunctionConcurrentInvocationLimitExceeded")
	m.AsyncEventReceived("f", "1", "live")
	m.AsyncEventDropped("f", "EventAgeExceeded")
	m.AsyncEventAge("f", 90*time.Second)
	m.ESMMessages("f", "retried", 3)

	fams := scrape(t, m)
	fl := map[string]string{"function": "f", "version": "1", "alias": "live"}
	tests := []struct {
		name   string
		family string
		labels map[string]string
		get    func(*dto.Metric) float64
		want   float64
	}{
		{"invocations", "kappa_invocations_total", fl, counter, 2},
		{"invocations of $LATEST", "kappa_invocations_total", map[string]string{"version": "$LATEST"}, counter, 1},
		{"timeouts are errors", "kappa_errors_total", map[string]string{"alias": "live", "status": "timeout"}, counter, 1},
		{"function errors", "kappa_errors_total", map[string]string{"version": "$LATEST", "status": "error"}, counter, 1},
		{"throttles", "kappa_throttles_total", map[string]string{"reason": "ReservedFunctionConcurrentInvocationLimitExceeded"}, counter, 1},
		{"duration count", "kappa_duration_seconds", fl, histCount, 2},
		{"duration sum", "kappa_duration_seconds", fl, histSum, 3.02},
		{"cold starts", "kappa_cold_starts_total", fl, counter, 1},
		{"init duration", "kappa_init_duration_seconds", map[string]string{"function": "f", "version": "1"}, histSum, .5},
		{"concurrency", "kappa_concurrent_executions", fl, gauge, 1},
		{"pc utilization", "kappa_provisioned_concurrency_utilization", map[string]string{"qualifier": "live"}, gauge, .5},
		{"pc executions", "kappa_provisioned_concurrent_executions", map[string]string{"qualifier": "live"}, gauge, 1},
		{"billed seconds", "kappa_billed_duration_seconds_total", map[string]string{"function": "f"}, counter, 3.522},
		{"GB-seconds", "kappa_billed_gb_seconds_total", map[string]string{"function": "f"}, counter, (0.521+3)*0.5 + 0.001/8},
		{"async received", "kappa_async_events_received_total", fl, counter, 1},
		{"async dropped", "kappa_async_events_dropped_total", map[string]string{"reason": "EventAgeExceeded"}, counter, 1},
		{"async age", "kappa_async_event_age_seconds", map[string]string{"function": "f"}, histSum, 90},
		{"esm retried", "kappa_esm_messages_total", map[string]string{"function": "f", "result": "retried"}, counter, 3},
		{"live environments", "kappa_environments_live", nil, gauge, 5},
		{"idle environments", "kappa_environments_idle", nil, gauge, 3},
		{"busy environments", "kappa_environments_busy", nil, gauge, 2},
		{"provisioned environments", "kappa_environments_provisioned", nil, gauge, 2},
		{"spare environments", "kappa_environments_spare", nil, gauge, 1},
		{"memory committed", "kappa_memory_committed_bytes", nil, gauge, 640 << 20},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := tt.get(value(t, fams, tt.family, tt.labels))
			if math.Abs(got-tt.want) > 1e-9 {
				t.Errorf("%s%v = %v, want %v", tt.family, tt.labels, got, tt.want)
			}
		})
	}
	if fams["go_goroutines"] == nil || fams["process_cpu_seconds_total"] == nil {
		t.Errorf("Go runtime and process collectors are missing")
	}
	m.End(live)
	if got := gauge(value(t, scrape(t, m), "kappa_concurrent_executions", fl)); got != 0 {
		t.Errorf("concurrency after End = %v", got)
	}
}

func counter(m *dto.Metric) float64   { return m.GetCounter().GetValue() }
func gauge(m *dto.Metric) float64     { return m.GetGauge().GetValue() }
func histCount(m *dto.Metric) float64 { return float64(m.GetHistogram().GetSampleCount()) }
func histSum(m *dto.Metric) float64   { return m.GetHistogram().GetSampleSum() }

func TestHistoryWindowAndPercentiles(t *testing.T) {
	c := &clock{now: time.Unix(1_700_000_000, 0).Truncate(time.Minute)}
	m := New(Options{Now: c.Now})
	l := Labels{Function: "f", Version: "$LATEST"}
	for i := 1; i <= 100; i++ {
		m.Begin(l)
		m.Invoked(Invocation{Labels: l, Start: c.Now(), Duration: time.Duration(i) * time.Millisecond,
			Billed: time.Duration(i) * time.Millisecond, Status: "success", MemoryMB: 1024, Concurrency: i})
	}
	for range 100 {
		m.End(l)
	}
	m.Throttled("f", "x")
	c.add(2 * time.Minute)
	m.Invoked(Invocation{Labels: l, Start: c.Now(), Duration: time.Second, Billed: time.Second, Status: "error", Cold: true, MemoryMB: 1024})

	s := m.Series("f")
	if len(s) != buckets {
		t.Fatalf("series has %d buckets", len(s))
	}
	first, last := s[buckets-3], s[buckets-1]
	if first.Invocations != 100 || first.Throttles != 1 || first.Concurrency != 100 || s[buckets-2].Invocations != 0 {
		t.Errorf("bucket two minutes ago = %+v", first)
	}
	// Percentiles are estimates from √2-wide bins: within 20%.
	for _, p := range []struct {
		name      string
		got, want float64
	}{{"p50", first.P50Ms, 50}, {"p90", first.P90Ms, 90}, {"p99", first.P99Ms, 99}, {"mean", first.MeanMs, 50.5}} {
		if math.Abs(p.got-p.want)/p.want > .2 {
			t.Errorf("%s = %.2f ms, want about %.0f", p.name, p.got, p.want)
		}
	}
	if last.Invocations != 1 || last.Errors != 1 || last.ColdStarts != 1 || !last.Time.Equal(c.Now().Truncate(time.Minute)) {
		t.Errorf("current bucket = %+v", last)
	}
	sum := m.Summaries()
	if len(sum) != 1 || sum[0].Invocations != 101 || sum[0].Errors != 1 || len(sum[0].Spark) != buckets || sum[0].Spark[buckets-3] != 100 {
		t.Errorf("summary = %+v", sum)
	}
	// An hour later the old minutes have rolled out.
	c.add(time.Hour)
	if s := m.Summaries(); s[0].Invocations != 0 {
		t.Errorf("an hour later the summary still counts %d invocations", s[0].Invocations)
	}
	b := m.Billings()
	wantGBs := (5050.0/1000 + 1) * 1.0
	if len(b) != 1 || b[0].Invocations != 101 || math.Abs(b[0].GBSeconds-wantGBs) > 1e-9 || b[0].GBSecondsLastHour != 0 {
		t.Errorf("billing = %+v, want %v GB-s in total and none in the last hour", b, wantGBs)
	}
}

func TestAPI(t *testing.T) {
	c := &clock{now: time.Unix(1_700_000_000, 0)}
	m := New(Options{Now: c.Now, Host: fakeHost{env: Environments{Live: 1}}})
	m.Invoked(Invocation{Labels: Labels{Function: "f<script>"}, Start: c.Now(), Duration: time.Millisecond,
		Billed: 2 * time.Millisecond, Status: "success", MemoryMB: 2048})
	srv := httptest.NewServer(m.APIHandler())
	defer srv.Close()
	tests := []struct {
		path   string
		status int
		check  func(map[string]any) bool
	}{
		{"/kappa/metrics/functions", 200, func(v map[string]any) bool {
			fns := v["functions"].([]any)
			return len(fns) == 1 && fns[0].(map[string]any)["function"] == "f<script>" && v["host"].(map[string]any)["live"] == 1.0
		}},
		{"/kappa/metrics/functions/f%3Cscript%3E", 200, func(v map[string]any) bool {
			s := v["series"].([]any)
			return len(s) == buckets && s[buckets-1].(map[string]any)["invocations"] == 1.0
		}},
		{"/kappa/billing", 200, func(v map[string]any) bool {
			tot := v["total"].(map[string]any)
			return tot["billedMs"] == 2.0 && math.Abs(tot["gbSeconds"].(float64)-0.004) < 1e-9
		}},
		{"/kappa/nothing", 404, nil},
	}
	for _, tt := range tests {
		resp, err := http.Get(srv.URL + tt.path)
		if err != nil {
			t.Fatal(err)
		}
		var v map[string]any
		json.NewDecoder(resp.Body).Decode(&v)
		resp.Body.Close()
		if resp.StatusCode != tt.status || tt.check != nil && !tt.check(v) {
			t.Errorf("GET %s = %d %v", tt.path, resp.StatusCode, v)
		}
	}
}
