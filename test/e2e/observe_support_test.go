package e2e

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// This file holds what the observability tests (logs, metrics, traces, CLI,
// console) share: the log API, a /metrics scraper, an OTLP/HTTP receiver
// and a runner for the kappa CLI.

// logEvent is one line of GET /kappa/logs/{function}.
type logEvent struct {
	Time      time.Time `json:"time"`
	Stream    string    `json:"stream"`
	RequestID string    `json:"requestId"`
	Type      string    `json:"type"`
	Message   string    `json:"message"`
}

// logs queries the log API; params are query parameters.
func (s *server) logs(t testing.TB, fname string, params url.Values) []logEvent {
	t.Helper()
	resp, err := http.Get(s.URL("/kappa/logs/" + fname + "?" + params.Encode()))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "application/x-ndjson" {
		b, _ := io.ReadAll(resp.Body)
		t.Fatalf("GET /kappa/logs/%s: %d %s %s", fname, resp.StatusCode, resp.Header.Get("Content-Type"), b)
	}
	var out []logEvent
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		var e logEvent
		if err := json.Unmarshal(sc.Bytes(), &e); err != nil {
			t.Fatalf("log API line %q: %v", sc.Text(), err)
		}
		out = append(out, e)
	}
	return out
}

// waitLogs polls the log API until cond holds for the events.
func (s *server) waitLogs(t testing.TB, fname string, params url.Values, what string, cond func([]logEvent) bool) []logEvent {
	t.Helper()
	var evs []logEvent
	deadline := time.Now().Add(10 * time.Second)
	for {
		evs = s.logs(t, fname, params)
		if cond(evs) {
			return evs
		}
		if time.Now().After(deadline) {
			t.Fatalf("log API never showed %s; last answer:\n%s", what, eventLines(evs))
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func eventLines(evs []logEvent) string {
	var b strings.Builder
	for _, e := range evs {
		b.WriteString(e.Type + " " + e.RequestID + " " + e.Message + "\n")
	}
	return b.String()
}

// scrape reads /metrics and parses it with Prometheus' own parser.
func (s *server) scrape(t testing.TB) map[string]*dto.MetricFamily {
	t.Helper()
	resp, err := http.Get(s.URL("/metrics"))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/plain") {
		t.Fatalf("GET /metrics: %d %s", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	p := expfmt.NewTextParser(model.LegacyValidation)
	fams, err := p.TextToMetricFamilies(resp.Body)
	if err != nil {
		t.Fatalf("parse /metrics: %v", err)
	}
	return fams
}

// sample returns the value of the sample of family whose labels include
// want (counter, gauge, or a histogram's count), and whether one exists.
func sample(fams map[string]*dto.MetricFamily, family string, want map[string]string) (float64, bool) {
	f := fams[family]
	if f == nil {
		return 0, false
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
		switch {
		case m.Counter != nil:
			return m.Counter.GetValue(), true
		case m.Gauge != nil:
			return m.Gauge.GetValue(), true
		case m.Histogram != nil:
			return float64(m.Histogram.GetSampleCount()), true
		}
	}
	return 0, false
}

// otlpReceiver is an OTLP/HTTP receiver on loopback that keeps the spans
// posted to /v1/traces.
type otlpReceiver struct {
	srv   *httptest.Server
	mu    sync.Mutex
	spans []otlpSpan
}

type otlpSpan struct {
	TraceID      string `json:"traceId"`
	SpanID       string `json:"spanId"`
	ParentSpanID string `json:"parentSpanId"`
	Name         string `json:"name"`
	Start        string `json:"startTimeUnixNano"`
	End          string `json:"endTimeUnixNano"`
	Attributes   []struct {
		Key   string `json:"key"`
		Value struct {
			StringValue *string `json:"stringValue"`
			BoolValue   *bool   `json:"boolValue"`
		} `json:"value"`
	} `json:"attributes"`
	Status struct {
		Code int `json:"code"`
	} `json:"status"`
}

func (sp otlpSpan) attr(k string) string {
	for _, a := range sp.Attributes {
		if a.Key == k {
			switch {
			case a.Value.StringValue != nil:
				return *a.Value.StringValue
			case a.Value.BoolValue != nil:
				if *a.Value.BoolValue {
					return "true"
				}
				return "false"
			}
		}
	}
	return ""
}

func newOTLPReceiver(t testing.TB) *otlpReceiver {
	r := &otlpReceiver{}
	r.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		if req.Method != http.MethodPost || req.URL.Path != "/v1/traces" || req.Header.Get("Content-Type") != "application/json" {
			http.Error(w, "want POST /v1/traces application/json", http.StatusBadRequest)
			return
		}
		var body struct {
			ResourceSpans []struct {
				ScopeSpans []struct {
					Spans []otlpSpan `json:"spans"`
				} `json:"scopeSpans"`
			} `json:"resourceSpans"`
		}
		if err := json.NewDecoder(req.Body).Decode(&body); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		r.mu.Lock()
		for _, rs := range body.ResourceSpans {
			for _, ss := range rs.ScopeSpans {
				r.spans = append(r.spans, ss.Spans...)
			}
		}
		r.mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		w.Write([]byte(`{}`))
	}))
	t.Cleanup(r.srv.Close)
	return r
}

// trace returns the spans received for a trace id (32 hex).
func (r *otlpReceiver) trace(traceID string) []otlpSpan {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []otlpSpan
	for _, s := range r.spans {
		if s.TraceID == traceID {
			out = append(out, s)
		}
	}
	return out
}

// kappa runs the CLI against the server with stdin and returns its
// output and exit code.
func (s *server) kappa(t testing.TB, stdin string, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	cmd := exec.Command(kappaBin, args...)
	cmd.Env = append(os.Environ(), "KAPPA_ENDPOINT=http://"+s.addr)
	cmd.Stdin = strings.NewReader(stdin)
	var o, e bytes.Buffer
	cmd.Stdout, cmd.Stderr = &o, &e
	err := cmd.Run()
	var ee *exec.ExitError
	switch {
	case err == nil:
	case errors.As(err, &ee):
		code = ee.ExitCode()
	default:
		t.Fatalf("run kappa %v: %v", args, err)
	}
	return o.String(), e.String(), code
}
