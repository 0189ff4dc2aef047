package tracing

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/kappa-run/kappa/internal/leakcheck"
)

func TestMain(m *testing.M) { os.Exit(leakcheck.Run(m)) }

func TestParseXRay(t *testing.T) {
	tests := []struct {
		name, in string
		ok       bool
		out      string
	}{
		{"full", "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1",
			true, "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1"},
		{"root only", "Root=1-5759e988-bd862e3fe1be46a994272793", true, "Root=1-5759e988-bd862e3fe1be46a994272793"},
		{"any order, extra kept", "Sampled=0; Lineage=a:1;Root=1-5759e988-bd862e3fe1be46a994272793",
			true, "Root=1-5759e988-bd862e3fe1be46a994272793;Sampled=0;Lineage=a:1"},
		{"no root", "Parent=53995c3f42cd8ad8", false, ""},
		{"bad root", "Root=2-xyz", false, ""},
		{"bad parent", "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=zz", false, ""},
		{"empty", "", false, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			x, ok := ParseXRay(tt.in)
			if ok != tt.ok || ok && x.String() != tt.out {
				t.Errorf("ParseXRay(%q) = %q, %v", tt.in, x.String(), ok)
			}
		})
	}
	now := time.Unix(0x5759e988, 0)
	id := NewTraceID(now)
	if id.String()[:8] != "5759e988" {
		t.Errorf("NewTraceID does not start with the epoch: %s", id)
	}
}

func FuzzParseXRay(f *testing.F) {
	f.Add("Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1")
	f.Fuzz(func(t *testing.T, h string) {
		x, ok := ParseXRay(h)
		if !ok {
			return
		}
		y, ok := ParseXRay(x.String())
		if !ok || y.Trace != x.Trace || y.Parent != x.Parent {
			t.Fatalf("round trip of %q: %q", h, x.String())
		}
	})
}

// receiver is an in-test OTLP/HTTP receiver.
type receiver struct {
	mu     sync.Mutex
	spans  []map[string]any
	status int
}

func (r *receiver) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	if req.URL.Path != "/v1/traces" || req.Header.Get("Content-Type") != "application/json" {
		http.Error(w, "bad request", 400)
		return
	}
	var body struct {
		ResourceSpans []struct {
			Resource struct {
				Attributes []map[string]any `json:"attributes"`
			} `json:"resource"`
			ScopeSpans []struct {
				Spans []map[string]any `json:"spans"`
			} `json:"scopeSpans"`
		} `json:"resourceSpans"`
	}
	b, _ := io.ReadAll(req.Body)
	if err := json.Unmarshal(b, &body); err != nil {
		http.Error(w, err.Error(), 400)
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.status != 0 {
		w.WriteHeader(r.status)
		return
	}
	for _, rs := range body.ResourceSpans {
		for _, ss := range rs.ScopeSpans {
			r.spans = append(r.spans, ss.Spans...)
		}
	}
}

func (r *receiver) got() []map[string]any {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]map[string]any(nil), r.spans...)
}

func TestExportInvocationSpans(t *testing.T) {
	rcv := &receiver{}
	srv := httptest.NewServer(rcv)
	defer srv.Close()
	e, err := NewExporter(Options{Endpoint: srv.URL, Interval: 10 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	x, _ := ParseXRay("Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1")
	t0 := time.Unix(1_700_000_000, 0)
	inv := Invocation{
		Header: x, RequestSpan: NewSpanID(), InvokeSpan: NewSpanID(),
		Function: "fn", Version: "3", Alias: "live", RequestID: "req-1", ARN: "arn:aws:lambda:us-east-1:000000000000:function:fn:live",
		Start: t0, End: t0.Add(400 * time.Millisecond), Ran: true,
		InvokeStart: t0.Add(300 * time.Millisecond), Duration: 90 * time.Millisecond, Init: 250 * time.Millisecond, Cold: true,
		Status: "error", ErrorType: "Runtime.ExitError",
	}
	e.Export(InvocationSpans(inv)...)
	if err := e.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	spans := rcv.got()
	if len(spans) != 4 {
		t.Fatalf("received %d spans, want request, queue, init, invoke", len(spans))
	}
	byName := map[string]map[string]any{}
	for _, s := range spans {
		byName[s["name"].(string)] = s
		if s["traceId"] != "5759e988bd862e3fe1be46a994272793" {
			t.Errorf("span %s traceId %v", s["name"], s["traceId"])
		}
	}
	req := byName["Invoke fn"]
	if req == nil || req["parentSpanId"] != "53995c3f42cd8ad8" || req["kind"] != 2.0 {
		t.Fatalf("request span = %v", req)
	}
	for _, name := range []string{"queue", "init", "invoke"} {
		s := byName[name]
		if s == nil || s["parentSpanId"] != req["spanId"] {
			t.Errorf("%s span = %v, want a child of the request span", name, s)
		}
	}
	if byName["invoke"]["spanId"] != inv.InvokeSpan.String() {
		t.Errorf("invoke span id %v, want %s (the Parent the runtime saw)", byName["invoke"]["spanId"], inv.InvokeSpan)
	}
	ns := func(s map[string]any, k string) string { return s[k].(string) }
	if ns(byName["queue"], "startTimeUnixNano") != fmt.Sprint(t0.UnixNano()) ||
		ns(byName["queue"], "endTimeUnixNano") != fmt.Sprint(t0.Add(50*time.Millisecond).UnixNano()) ||
		ns(byName["init"], "endTimeUnixNano") != fmt.Sprint(t0.Add(300*time.Millisecond).UnixNano()) ||
		ns(byName["invoke"], "endTimeUnixNano") != fmt.Sprint(t0.Add(390*time.Millisecond).UnixNano()) {
		t.Errorf("phase times wrong: %v", spans)
	}
	if st := req["status"].(map[string]any); st["code"] != 2.0 || st["message"] != "Runtime.ExitError" {
		t.Errorf("request status = %v", st)
	}
	if sent, dropped, failed := e.Stats(); sent != 4 || dropped != 0 || failed != 0 {
		t.Errorf("stats = %d sent, %d dropped, %d failed", sent, dropped, failed)
	}
}

func TestExporterNeverBlocks(t *testing.T) {
	block := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { <-block }))
	defer srv.Close()
	defer close(block)
	e, _ := NewExporter(Options{Endpoint: srv.URL + "/v1/traces", QueueSize: 10, BatchSize: 5, Interval: time.Millisecond, Timeout: 100 * time.Millisecond})
	t0 := time.Now()
	for range 1000 {
		e.Export(Span{Name: "s", Trace: NewTraceID(t0), ID: NewSpanID(), Start: t0, End: t0})
	}
	if d := time.Since(t0); d > time.Second {
		t.Errorf("1000 exports to a stuck receiver took %v", d)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	e.Close(ctx)
	if _, dropped, _ := e.Stats(); dropped < 900 {
		t.Errorf("dropped %d spans of 1000 with a queue of 10", dropped)
	}
	if _, err := NewExporter(Options{Endpoint: "127.0.0.1:4318"}); err == nil {
		t.Errorf("an endpoint without scheme was accepted")
	}
}
