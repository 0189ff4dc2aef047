package rie

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	sdk "github.com/aws/aws-sdk-go-v2/aws/protocol/eventstream"
)

const (
	invokePath = "/2015-03-31/functions/function/invocations"
	streamPath = "/2021-11-15/functions/function/response-streaming-invocations"
)

// syncBuffer is a bytes.Buffer safe for concurrent use.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

// newEmulator serves an Emulator running testdata/functions/stream on a
// loopback httptest server.
func newEmulator(t *testing.T, mod func(*Config)) (*Emulator, *httptest.Server, *syncBuffer) {
	t.Helper()
	out := &syncBuffer{}
	cfg := Config{
		RuntimeAPIAddr: "127.0.0.1:0",
		Bootstrap:      []string{build(t, "../../testdata/functions/stream")},
		Cwd:            t.TempDir(),
		Env:            []string{"PATH=/usr/bin:/bin"},
		ExtensionsDir:  t.TempDir(),
		Stdout:         out,
	}
	if mod != nil {
		mod(&cfg)
	}
	em, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ts := httptest.NewServer(em.Handler())
	t.Cleanup(func() {
		ts.Close()
		em.Close(t.Context())
	})
	return em, ts, out
}

type result struct {
	status int
	header http.Header
	body   string
	took   time.Duration
}

func post(t *testing.T, ts *httptest.Server, path, body string, headers ...string) result {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, ts.URL+path, strings.NewReader(body))
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Set(headers[i], headers[i+1])
	}
	start := time.Now()
	resp, err := ts.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return result{resp.StatusCode, resp.Header, string(b), time.Since(start)}
}

var reportRE = regexp.MustCompile(`^REPORT RequestId: ([0-9a-f-]+)\tDuration: [0-9]+\.[0-9]{2} ms\tBilled Duration: [0-9]+ ms\tMemory Size: 3008 MB\tMax Memory Used: ([0-9]+) MB\t(Init Duration: [0-9]+\.[0-9]{2} ms\t)?$`)

// reports returns the REPORT lines of out.
func reports(out string) [][]string {
	var r [][]string
	for _, l := range strings.Split(out, "\n") {
		if m := reportRE.FindStringSubmatch(l); m != nil {
			r = append(r, m)
		}
	}
	return r
}

func waitOutput(t *testing.T, out *syncBuffer, want string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !strings.Contains(out.String(), want) {
		if time.Now().After(deadline) {
			t.Fatalf("no %q in output:\n%s", want, out)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// waitReports waits until out holds n REPORT lines (they come after the
// reply) and the pool has no busy slot, and returns the lines.
func waitReports(t *testing.T, em *Emulator, out *syncBuffer, n int) [][]string {
	t.Helper()
	idle := func() bool {
		em.pool.mu.Lock()
		defer em.pool.mu.Unlock()
		for _, s := range em.pool.slots {
			if s.busy {
				return false
			}
		}
		return true
	}
	deadline := time.Now().Add(10 * time.Second)
	for len(reports(out.String())) < n || !idle() {
		if time.Now().After(deadline) {
			t.Fatalf("no %d REPORT lines and an idle pool in 10s:\n%s", n, out)
		}
		time.Sleep(5 * time.Millisecond)
	}
	return reports(out.String())
}

func TestSequentialReusesEnvironment(t *testing.T) {
	em, ts, out := newEmulator(t, nil)
	var reps [][]string
	for i := range 5 {
		r := post(t, ts, invokePath, fmt.Sprintf(`{"op":"echo","data":%d}`, i))
		if r.status != 200 || r.body != fmt.Sprintf(`{"data":%d,"ok":true}`, i) || r.header.Get("X-Amz-Function-Error") != "" {
			t.Fatalf("invoke %d: %d %s", i, r.status, r.body)
		}
		// The environment is done (REPORT out, slot released) before the
		// next request: however slow the machine, that one finds it warm
		// rather than outwaiting finishingWait into a cold start.
		reps = waitReports(t, em, out, i+1)
	}
	if len(reps) != 5 {
		t.Fatalf("%d REPORT lines, want 5:\n%s", len(reps), out)
	}
	for i, m := range reps {
		if (m[3] != "") != (i == 0) {
			t.Errorf("REPORT %d: Init Duration %q; want it on the cold start only", i, m[3])
		}
		if m[2] == "0" || m[2] == "3008" {
			t.Errorf("Max Memory Used %s MB: not measured", m[2])
		}
	}
	if n := strings.Count(out.String(), "START RequestId: "); n != 5 {
		t.Errorf("%d START lines", n)
	}
}

func TestConcurrencyLimit(t *testing.T) {
	_, ts, out := newEmulator(t, func(c *Config) { c.MaxConcurrency = 2 })
	var wg sync.WaitGroup
	results := make([]result, 2)
	for i := range 2 {
		wg.Go(func() {
			results[i] = post(t, ts, invokePath, `{"op":"sleep","ms":3000}`)
		})
	}
	// Both run (each printed its START) and hold both environments for
	// seconds yet.
	deadline := time.Now().Add(10 * time.Second)
	for strings.Count(out.String(), "START RequestId: ") < 2 {
		if time.Now().After(deadline) {
			t.Fatalf("two invocations did not start in 10s:\n%s", out)
		}
		time.Sleep(5 * time.Millisecond)
	}
	r := post(t, ts, invokePath, `{"op":"sleep","ms":3000}`)
	wg.Wait()
	for i, r := range results {
		if r.status != 200 {
			t.Errorf("invoke %d: %d %s", i, r.status, r.body)
		}
	}
	if r.status != http.StatusTooManyRequests || r.header.Get("X-Amzn-ErrorType") != "TooManyRequestsException" ||
		!strings.Contains(r.body, `"Reason":"ConcurrentInvocationLimitExceeded"`) {
		t.Errorf("third invoke: %d %v %s, want 429", r.status, r.header, r.body)
	}
}

func TestEventInvocation(t *testing.T) {
	_, ts, out := newEmulator(t, nil)
	r := post(t, ts, invokePath, `{"op":"log","lines":["from an event"]}`, "X-Amz-Invocation-Type", "Event")
	if r.status != http.StatusAccepted || r.body != "" {
		t.Fatalf("Event: %d %q", r.status, r.body)
	}
	waitOutput(t, out, "from an event")
	if r := post(t, ts, invokePath, `{}`, "X-Amz-Invocation-Type", "DryRun"); r.status != http.StatusNoContent {
		t.Errorf("DryRun: %d", r.status)
	}
}

func TestTimeout(t *testing.T) {
	em, ts, out := newEmulator(t, func(c *Config) { c.Timeout = time.Second })
	r := post(t, ts, invokePath, `{"op":"sleep","ms":10000}`)
	if r.status != 200 || r.body != "Task timed out after 1.00 seconds" {
		t.Fatalf("timeout: %d %q", r.status, r.body)
	}
	// A sanity bound, well short of the function's 10 s: the answer came
	// at the timeout, not when the function was done.
	if r.took > 5*time.Second {
		t.Errorf("answered after %s", r.took)
	}
	waitOutput(t, out, "Task timed out after 1.00 seconds\n")
	// The environment was reset: the next invocation is a cold start.
	if r := post(t, ts, invokePath, `{"op":"echo","data":1}`); r.status != 200 || r.body != `{"data":1,"ok":true}` {
		t.Fatalf("after timeout: %d %s", r.status, r.body)
	}
	reps := waitReports(t, em, out, 2)
	if len(reps) != 2 || reps[1][3] == "" {
		t.Errorf("REPORT lines %v; want the second to be a cold start", reps)
	}
}

func TestRuntimeExit(t *testing.T) {
	_, ts, _ := newEmulator(t, nil)
	r := post(t, ts, invokePath, `{"op":"exit"}`)
	if r.status != 200 || r.header.Get("X-Amz-Function-Error") != "Unhandled" ||
		!strings.Contains(r.body, `"errorType":"Runtime.ExitError"`) || !strings.Contains(r.body, "exit status 3") {
		t.Fatalf("exit: %d %v %s", r.status, r.header, r.body)
	}
	if r := post(t, ts, invokePath, `{"op":"nope"}`); r.status != 200 || r.header.Get("X-Amz-Function-Error") != "Unhandled" ||
		!strings.Contains(r.body, "unknown op nope") {
		t.Fatalf("function error: %d %v %s", r.status, r.header, r.body)
	}
}

func TestHeaders(t *testing.T) {
	_, ts, _ := newEmulator(t, func(c *Config) {
		c.Bootstrap = []string{build(t, "../runtimeapi/testdata/echo")}
		c.FunctionName = "myfn"
	})
	cc := base64.StdEncoding.EncodeToString([]byte(`{"custom":{"k":"v"}}`))
	trace := "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1"
	r := post(t, ts, "/2015-03-31/functions/myfn/invocations", `{"op":"context"}`,
		"X-Amz-Client-Context", cc, "X-Amzn-Trace-Id", trace, "X-Amz-Tenant-Id", "tenant-1", "X-Amzn-RequestId", "my-request-1")
	var got struct {
		RequestID    string            `json:"requestId"`
		FunctionArn  string            `json:"functionArn"`
		TraceID      string            `json:"traceId"`
		TenantID     string            `json:"tenantId"`
		ClientCustom map[string]string `json:"clientCustom"`
	}
	if err := json.Unmarshal([]byte(r.body), &got); err != nil || r.status != 200 {
		t.Fatalf("%d %s (%v)", r.status, r.body, err)
	}
	if got.RequestID != "my-request-1" || got.FunctionArn != "arn:aws:lambda:us-east-1:012345678912:function:myfn" ||
		got.TraceID != trace || got.TenantID != "tenant-1" || got.ClientCustom["k"] != "v" {
		t.Errorf("context %+v", got)
	}
	if r := post(t, ts, invokePath, `{}`, "X-Amz-Client-Context", "%%%"); r.status != 500 {
		t.Errorf("bad client context: %d, want 500 as aws-lambda-rie", r.status)
	}
	big := `{"op":"echo","data":"` + strings.Repeat("x", 6<<20) + `"}`
	if r := post(t, ts, invokePath, big); r.status != http.StatusRequestEntityTooLarge {
		t.Errorf("7 MB request: %d", r.status)
	}
}

func TestLogTail(t *testing.T) {
	_, ts, _ := newEmulator(t, nil)
	r := post(t, ts, invokePath, `{"op":"log","lines":["tail me"]}`, "X-Amz-Log-Type", "Tail")
	tail, err := base64.StdEncoding.DecodeString(r.header.Get("X-Amz-Log-Result"))
	if err != nil || r.status != 200 {
		t.Fatalf("%d %v", r.status, err)
	}
	for _, want := range []string{"START RequestId: ", "tail me\n", "END RequestId: ", "REPORT RequestId: "} {
		if !strings.Contains(string(tail), want) {
			t.Errorf("tail %q lacks %q", tail, want)
		}
	}
}

// frames decodes an event stream with the AWS SDK's decoder.
func frames(t *testing.T, r io.Reader, each func(typ string, payload []byte)) {
	t.Helper()
	dec := sdk.NewDecoder()
	for {
		m, err := dec.Decode(r, nil)
		if err == io.EOF {
			return
		}
		if err != nil {
			t.Fatalf("decode: %v", err)
		}
		each(m.Headers.Get(":event-type").String(), m.Payload)
	}
}

func TestStreamEndpoint(t *testing.T) {
	_, ts, _ := newEmulator(t, nil)
	t.Run("slow stream", func(t *testing.T) {
		start := time.Now()
		// 1.5 s from the first chunk to the last: streamed, the first
		// frame comes a second more ahead of the end than checked below.
		resp, err := ts.Client().Post(ts.URL+streamPath, "application/json", strings.NewReader(`{"op":"stream","n":3,"ms":750}`))
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "application/vnd.amazon.eventstream" {
			t.Fatalf("%d %v", resp.StatusCode, resp.Header)
		}
		var got []string
		var firstAt time.Duration
		frames(t, resp.Body, func(typ string, p []byte) {
			if firstAt == 0 {
				firstAt = time.Since(start)
			}
			got = append(got, typ+":"+string(p))
		})
		want := []string{"PayloadChunk:chunk-0\n", "PayloadChunk:chunk-1\n", "PayloadChunk:chunk-2\n", "InvokeComplete:{}"}
		if strings.Join(got, "|") != strings.Join(want, "|") {
			t.Errorf("frames %q, want %q", got, want)
		}
		if total := time.Since(start); firstAt > total-500*time.Millisecond {
			t.Errorf("first frame at %s of %s: not streamed", firstAt, total)
		}
	})
	t.Run("mid-stream error", func(t *testing.T) {
		resp, err := ts.Client().Post(ts.URL+streamPath, "application/json", strings.NewReader(`{"op":"streamfail","n":1}`))
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var got []string
		frames(t, resp.Body, func(typ string, p []byte) { got = append(got, typ+":"+string(p)) })
		want := []string{"PayloadChunk:chunk-0\n", `InvokeComplete:{"ErrorCode":"midStreamError","ErrorDetails":"failed after streaming"}`}
		if strings.Join(got, "|") != strings.Join(want, "|") {
			t.Errorf("frames %q, want %q", got, want)
		}
	})
	t.Run("buffered result", func(t *testing.T) {
		resp, err := ts.Client().Post(ts.URL+streamPath, "application/json", strings.NewReader(`{"op":"echo","data":7}`))
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var got []string
		frames(t, resp.Body, func(typ string, p []byte) { got = append(got, typ+":"+string(p)) })
		if want := []string{`PayloadChunk:{"data":7,"ok":true}`, "InvokeComplete:{}"}; strings.Join(got, "|") != strings.Join(want, "|") {
			t.Errorf("frames %q, want %q", got, want)
		}
	})
}
