package runtimeapi

import (
	"bufio"
	"context"
	"encoding/json"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

const (
	pathTelemetry = "/2022-07-01/telemetry"
	pathLogs      = "/2020-08-15/logs"
)

func TestParseSubscription(t *testing.T) {
	tests := []struct {
		name   string
		legacy bool
		body   string
		want   string // error substring; "" = valid
		check  func(t *testing.T, c subscriptionConfig)
	}{
		{name: "http", body: `{"schemaVersion":"2022-12-13","destination":{"protocol":"HTTP","URI":"http://sandbox.localdomain:8080/t"},"types":["platform","function"]}`,
			check: func(t *testing.T, c subscriptionConfig) {
				if c.tcp || c.port != 8080 || !c.platform || !c.function || c.extension || c.maxItems != 1000 || c.maxBytes != 262144 || c.timeout != time.Second {
					t.Errorf("config %+v", c)
				}
			}},
		{name: "tcp, buffering", body: `{"schemaVersion":"2025-01-29","destination":{"protocol":"TCP","port":9999},"types":["extension"],"buffering":{"maxItems":10000,"maxBytes":1048576,"timeoutMs":25}}`,
			check: func(t *testing.T, c subscriptionConfig) {
				if !c.tcp || c.port != 9999 || !c.extension || c.maxItems != 10000 || c.maxBytes != 1048576 || c.timeout != 25*time.Millisecond {
					t.Errorf("config %+v", c)
				}
			}},
		{name: "2022-07-01, host sandbox", body: `{"schemaVersion":"2022-07-01","destination":{"protocol":"HTTP","URI":"http://sandbox:1234"},"types":["platform"]}`},
		{name: "legacy without schema", legacy: true, body: `{"destination":{"protocol":"HTTP","URI":"http://sandbox.localdomain:8080/lambda_logs"},"types":["platform","function"]}`,
			check: func(t *testing.T, c subscriptionConfig) {
				if c.maxItems != 10000 {
					t.Errorf("legacy maxItems %d, want 10000", c.maxItems)
				}
			}},
		{name: "no schema", body: `{"destination":{"protocol":"TCP","port":1},"types":["platform"]}`, want: "schemaVersion is required"},
		{name: "bad schema", body: `{"schemaVersion":"2021-03-18","destination":{"protocol":"TCP","port":1},"types":["platform"]}`, want: "is not supported"},
		{name: "no port; no types", body: `{"schemaVersion":"2022-12-13","destination":{"protocol":"HTTP","URI":"http://sandbox.localdomain"},"types":[]}`,
			want: "URI port is not provided; types should not be empty"},
		{name: "bad host", body: `{"schemaVersion":"2022-12-13","destination":{"protocol":"HTTP","URI":"http://example.com:80"},"types":["platform"]}`, want: "URI host must be sandbox.localdomain"},
		{name: "https", body: `{"schemaVersion":"2022-12-13","destination":{"protocol":"HTTP","URI":"https://sandbox.localdomain:80"},"types":["platform"]}`, want: "URI scheme must be http"},
		{name: "bad protocol", body: `{"schemaVersion":"2022-12-13","destination":{"protocol":"UDP","port":1},"types":["platform"]}`, want: "is not supported: use HTTP or TCP"},
		{name: "tcp port range", body: `{"schemaVersion":"2022-12-13","destination":{"protocol":"TCP","port":70000},"types":["platform"]}`, want: "port is not valid"},
		{name: "no destination", body: `{"schemaVersion":"2022-12-13","types":["platform"]}`, want: "destination is required"},
		{name: "bad type", body: `{"schemaVersion":"2022-12-13","destination":{"protocol":"TCP","port":1},"types":["metrics"]}`, want: `type "metrics" is not supported`},
		{name: "maxItems", body: `{"schemaVersion":"2022-12-13","destination":{"protocol":"TCP","port":1},"types":["platform"],"buffering":{"maxItems":999}}`, want: "buffering.maxItems must be between 1000 and 10000"},
		{name: "maxBytes", body: `{"schemaVersion":"2022-12-13","destination":{"protocol":"TCP","port":1},"types":["platform"],"buffering":{"maxBytes":2000000}}`, want: "buffering.maxBytes must be between 262144 and 1048576"},
		{name: "timeoutMs", body: `{"schemaVersion":"2022-12-13","destination":{"protocol":"TCP","port":1},"types":["platform"],"buffering":{"timeoutMs":24}}`, want: "buffering.timeoutMs must be between 25 and 30000"},
		{name: "not JSON", body: `{`, want: "not a valid JSON"},
		{name: "array", body: `[]`, want: "not a valid JSON"},
		{name: "wrong types", body: `{"types":"platform"}`, want: "not a valid JSON"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := parseSubscription([]byte(tt.body), tt.legacy)
			switch {
			case tt.want == "" && err != nil:
				t.Fatalf("error %v", err)
			case tt.want != "" && (err == nil || !strings.Contains(err.Error(), tt.want)):
				t.Fatalf("error %v, want %q", err, tt.want)
			}
			if tt.check != nil {
				tt.check(t, c)
			}
		})
	}
}

// collector is a telemetry subscriber over HTTP.
type collector struct {
	mu      sync.Mutex
	events  []telEvent
	batches int
	delay   time.Duration
	changed chan struct{}
}

type telEvent struct {
	Time   string          `json:"time"`
	Type   string          `json:"type"`
	Record json.RawMessage `json:"record"`
}

func newCollector(t *testing.T) (*collector, int) {
	c := &collector{changed: make(chan struct{}, 1)}
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodPost || r.Header.Get("Content-Type") != "application/json" {
			t.Errorf("%s with Content-Type %q", r.Method, r.Header.Get("Content-Type"))
		}
		var evs []telEvent
		if err := json.NewDecoder(r.Body).Decode(&evs); err != nil {
			t.Errorf("batch: %v", err)
		}
		time.Sleep(c.delay)
		c.add(evs...)
	}))
	t.Cleanup(ts.Close)
	return c, ts.Listener.Addr().(*net.TCPAddr).Port
}

func (c *collector) add(evs ...telEvent) {
	c.mu.Lock()
	c.batches++
	c.events = append(c.events, evs...)
	c.mu.Unlock()
	select {
	case c.changed <- struct{}{}:
	default:
	}
}

// waitFor waits until an event of type typ arrived and returns all so far.
func (c *collector) waitFor(t *testing.T, typ string) []telEvent {
	t.Helper()
	deadline := time.After(10 * time.Second)
	for {
		c.mu.Lock()
		evs := append([]telEvent(nil), c.events...)
		c.mu.Unlock()
		for _, e := range evs {
			if e.Type == typ {
				return evs
			}
		}
		select {
		case <-c.changed:
		case <-deadline:
			t.Fatalf("no %s; got %v", typ, types(evs))
		}
	}
}

func types(evs []telEvent) []string {
	var out []string
	for _, e := range evs {
		out = append(out, e.Type)
	}
	return out
}

func subBody(dest, typ string) []byte {
	return []byte(`{"schemaVersion":"2022-12-13","types":[` + typ + `],"buffering":{"timeoutMs":25},"destination":` + dest + `}`)
}

func httpDest(port int) string {
	return `{"protocol":"HTTP","URI":"http://sandbox.localdomain:` + strconv.Itoa(port) + `/in"}`
}

func TestTelemetrySubscribe(t *testing.T) {
	t.Run("validation error", func(t *testing.T) {
		_, ts := newTestServer(t, Options{})
		id := register(t, ts, "e")
		r := do(t, ts, http.MethodPut, pathTelemetry, []byte(`{"schemaVersion":"2022-12-13","types":[]}`), hdrExtIdentifier, id)
		wantAPIError(t, r, http.StatusBadRequest, errValidation)
	})
	t.Run("closed after init", func(t *testing.T) {
		s, ts := newTestServer(t, Options{})
		id := register(t, ts, "e")
		nextAsync(t.Context(), ts)
		extNextAsync(t.Context(), ts, id)
		if err := s.WaitInit(t.Context()); err != nil {
			t.Fatal(err)
		}
		body := subBody(httpDest(1), `"platform"`)
		wantAPIError(t, do(t, ts, http.MethodPut, pathTelemetry, body, hdrExtIdentifier, id), http.StatusForbidden, errTelemetrySubscriptionClosed)
		wantAPIError(t, do(t, ts, http.MethodPut, pathLogs, body, hdrExtIdentifier, id), http.StatusForbidden, errLogsSubscriptionClosed)
	})
}

// TestTelemetryHTTP subscribes during init and checks that the stream
// arrives in order, with the init backlog, filtered by type.
func TestTelemetryHTTP(t *testing.T) {
	s, ts := newTestServer(t, Options{})
	tel := s.Telemetry()
	tel.Platform(PlatformInitStart{InitializationType: "on-demand", Phase: "init", FunctionName: "fn"})
	tel.FunctionLog([]byte("init line"))
	all, allPort := newCollector(t)
	plat, platPort := newCollector(t)
	id := register(t, ts, "sub")
	r := do(t, ts, http.MethodPut, pathTelemetry, subBody(httpDest(allPort), `"platform","function","extension"`), hdrExtIdentifier, id)
	if r.status != 200 || string(r.body) != `"OK"` {
		t.Fatalf("subscribe: %d %s", r.status, r.body)
	}
	id2 := register(t, ts, "plat")
	if r := do(t, ts, http.MethodPut, pathTelemetry, subBody(httpDest(platPort), `"platform"`), hdrExtIdentifier, id2); r.status != 200 {
		t.Fatalf("subscribe: %d %s", r.status, r.body)
	}
	nextAsync(t.Context(), ts)
	extNextAsync(t.Context(), ts, id)
	extNextAsync(t.Context(), ts, id2)
	if err := s.WaitInit(t.Context()); err != nil {
		t.Fatal(err)
	}
	tel.Platform(PlatformInitReport{InitializationType: "on-demand", Phase: "init", Status: StatusSuccess, Metrics: InitReportMetrics{DurationMs: 12.5}})
	tel.Platform(PlatformStart{RequestID: "r1", Version: "$LATEST"})
	tel.FunctionLog([]byte("hello <world>"))
	tel.ExtensionLog("sub", []byte("ext line"))
	init := 3.25
	tel.Platform(PlatformReport{RequestID: "r1", Status: StatusSuccess, Metrics: ReportMetrics{DurationMs: 1.5, BilledDurationMs: 2, MemorySizeMB: 128, MaxMemoryUsedMB: 20, InitDurationMs: &init}})

	got := types(all.waitFor(t, "platform.report"))
	want := []string{"platform.initStart", "function", "platform.telemetrySubscription", "platform.telemetrySubscription",
		"platform.extension", "platform.extension", "platform.initReport", "platform.start", "function", "extension", "platform.report"}
	if strings.Join(got, " ") != strings.Join(want, " ") {
		t.Errorf("all types:\n got %v\nwant %v", got, want)
	}
	evs := plat.waitFor(t, "platform.report")
	for _, e := range evs {
		if !strings.HasPrefix(e.Type, "platform.") {
			t.Errorf("platform subscriber got %s", e.Type)
		}
	}
	for _, e := range all.waitFor(t, "platform.report") {
		switch e.Type {
		case "function":
			if string(e.Record) != `"init line"` && string(e.Record) != `"hello <world>"` {
				t.Errorf("function record %s", e.Record)
			}
		case "platform.report":
			if want := `{"requestId":"r1","status":"success","metrics":{"durationMs":1.5,"billedDurationMs":2,"memorySizeMB":128,"maxMemoryUsedMB":20,"initDurationMs":3.25}}`; string(e.Record) != want {
				t.Errorf("report record\n got %s\nwant %s", e.Record, want)
			}
		case "platform.telemetrySubscription":
			if !strings.Contains(string(e.Record), `"state":"Subscribed"`) {
				t.Errorf("subscription record %s", e.Record)
			}
		}
		if _, err := time.Parse(timeFormat, e.Time); err != nil {
			t.Errorf("time %q: %v", e.Time, err)
		}
	}
}

// TestTelemetryTCP delivers NDJSON over TCP through an injected dialer.
func TestTelemetryTCP(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	port := ln.Addr().(*net.TCPAddr).Port
	dialed := make(chan string, 4)
	s, ts := newTestServer(t, Options{DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
		dialed <- addr
		var d net.Dialer
		return d.DialContext(ctx, network, ln.Addr().String())
	}})
	id := register(t, ts, "tcp")
	dest := `{"protocol":"TCP","port":` + strconv.Itoa(port) + `}`
	if r := do(t, ts, http.MethodPut, pathTelemetry, subBody(dest, `"function"`), hdrExtIdentifier, id); r.status != 200 {
		t.Fatalf("subscribe: %d %s", r.status, r.body)
	}
	for i := range 3 {
		s.Telemetry().FunctionLog([]byte("line " + strconv.Itoa(i)))
	}
	conn, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	sc := bufio.NewScanner(conn)
	for i := range 3 {
		if !sc.Scan() {
			t.Fatalf("line %d: %v", i, sc.Err())
		}
		var e telEvent
		if err := json.Unmarshal(sc.Bytes(), &e); err != nil || e.Type != "function" || string(e.Record) != `"line `+strconv.Itoa(i)+`"` {
			t.Fatalf("line %d: %s (%v)", i, sc.Bytes(), err)
		}
	}
	if got := <-dialed; got != "sandbox.localdomain:"+strconv.Itoa(port) {
		t.Errorf("dialed %q", got)
	}
}

// TestLogsAPI checks the legacy Logs API's shapes.
func TestLogsAPI(t *testing.T) {
	s, ts := newTestServer(t, Options{})
	c, port := newCollector(t)
	id := register(t, ts, "logs")
	body := []byte(`{"types":["platform","function"],"buffering":{"timeoutMs":25},"destination":` + httpDest(port) + `}`)
	if r := do(t, ts, http.MethodPut, pathLogs, body, hdrExtIdentifier, id); r.status != 200 || string(r.body) != `"OK"` {
		t.Fatalf("subscribe: %d %s", r.status, r.body)
	}
	tel := s.Telemetry()
	tel.Platform(PlatformInitReport{Status: StatusSuccess})
	tel.Platform(PlatformStart{RequestID: "r1", Version: "$LATEST", Tracing: &TraceContext{Type: "X-Amzn-Trace-Id", Value: "v"}})
	tel.FunctionLog([]byte("hi"))
	tel.Platform(PlatformRuntimeDone{RequestID: "r1", Status: StatusSuccess, Metrics: &RuntimeDoneMetrics{DurationMs: 1}})
	tel.Platform(PlatformReport{RequestID: "r1", Status: StatusSuccess, Metrics: ReportMetrics{DurationMs: 1, BilledDurationMs: 1, MemorySizeMB: 128, MaxMemoryUsedMB: 9}})
	evs := c.waitFor(t, "platform.report")
	want := "platform.logsSubscription platform.start function platform.runtimeDone platform.end platform.report"
	if got := strings.Join(types(evs), " "); got != want {
		t.Fatalf("types %s, want %s", got, want)
	}
	records := map[string]string{}
	for _, e := range evs {
		records[e.Type] = string(e.Record)
	}
	for typ, want := range map[string]string{
		"platform.start":       `{"requestId":"r1","version":"$LATEST"}`,
		"platform.runtimeDone": `{"requestId":"r1","status":"success"}`,
		"platform.end":         `{"requestId":"r1"}`,
		"platform.report":      `{"requestId":"r1","metrics":{"durationMs":1,"billedDurationMs":1,"memorySizeMB":128,"maxMemoryUsedMB":9}}`,
	} {
		if records[typ] != want {
			t.Errorf("%s record %s, want %s", typ, records[typ], want)
		}
	}
}

// TestTelemetryDropped fills a slow subscriber's buffer and expects
// platform.logsDropped.
func TestTelemetryDropped(t *testing.T) {
	s, ts := newTestServer(t, Options{})
	c, port := newCollector(t)
	c.delay = 100 * time.Millisecond
	id := register(t, ts, "slow")
	if r := do(t, ts, http.MethodPut, pathTelemetry, subBody(httpDest(port), `"platform","function"`), hdrExtIdentifier, id); r.status != 200 {
		t.Fatalf("subscribe: %d %s", r.status, r.body)
	}
	for i := range 5000 {
		s.Telemetry().FunctionLog([]byte("line " + strconv.Itoa(i)))
	}
	evs := c.waitFor(t, "platform.logsDropped")
	for _, e := range evs {
		if e.Type == "platform.logsDropped" && !strings.Contains(string(e.Record), `"droppedRecords":`) {
			t.Errorf("record %s", e.Record)
		}
	}
}

// TestTelemetryFlush: Flush sends what is buffered without waiting for
// the timeout.
func TestTelemetryFlush(t *testing.T) {
	s, ts := newTestServer(t, Options{})
	c, port := newCollector(t)
	id := register(t, ts, "f")
	body := []byte(`{"schemaVersion":"2022-12-13","types":["function"],"buffering":{"timeoutMs":30000},"destination":` + httpDest(port) + `}`)
	if r := do(t, ts, http.MethodPut, pathTelemetry, body, hdrExtIdentifier, id); r.status != 200 {
		t.Fatalf("subscribe: %d %s", r.status, r.body)
	}
	s.Telemetry().FunctionLog([]byte("x"))
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
	defer cancel()
	if err := s.Telemetry().Flush(ctx); err != nil {
		t.Fatal(err)
	}
	c.mu.Lock()
	n := len(c.events)
	c.mu.Unlock()
	if n != 1 {
		t.Fatalf("%d events after Flush, want 1", n)
	}
}

func FuzzSubscriptionBody(f *testing.F) {
	for _, s := range []string{
		`{"schemaVersion":"2022-12-13","destination":{"protocol":"HTTP","URI":"http://sandbox.localdomain:8080/t"},"types":["platform"]}`,
		`{"schemaVersion":"2025-01-29","destination":{"protocol":"TCP","port":9999},"types":["extension"],"buffering":{"maxItems":1000,"maxBytes":262144,"timeoutMs":25}}`,
		`{"destination":{"protocol":"HTTP","URI":"http://[::1]:x"}}`, `{}`, `null`, `{"types":[null]}`,
	} {
		f.Add([]byte(s), false)
		f.Add([]byte(s), true)
	}
	f.Fuzz(func(t *testing.T, body []byte, legacy bool) {
		c, err := parseSubscription(body, legacy)
		if err != nil {
			if err.Error() == "" {
				t.Fatal("empty error")
			}
			return
		}
		if c.port < 1 || c.port > 65535 {
			t.Fatalf("port %d", c.port)
		}
		if len(c.types) == 0 || !(c.platform || c.function || c.extension) {
			t.Fatalf("no types: %+v", c)
		}
		if c.maxItems < minMaxItems || c.maxItems > maxMaxItems || c.maxBytes < minMaxBytes || c.maxBytes > maxMaxBytes ||
			c.timeout < minTimeout*time.Millisecond || c.timeout > maxTimeout*time.Millisecond {
			t.Fatalf("buffering out of range: %+v", c)
		}
		if !c.tcp && !strings.HasPrefix(c.uri, "http://") {
			t.Fatalf("uri %q", c.uri)
		}
	})
}
