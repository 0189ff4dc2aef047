package rie

import (
	"encoding/json"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// freePort returns a loopback port that was free a moment ago.
func freePort(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// rieProc is a `kappa rie` subprocess.
type rieProc struct {
	cmd    *exec.Cmd
	out    *syncBuffer
	url    string
	exited chan error
}

func startRIE(t *testing.T, argv0 string, env []string, args ...string) *rieProc {
	t.Helper()
	port := freePort(t)
	api := freePort(t)
	full := append([]string{"--runtime-api-address", "127.0.0.1:" + strconv.Itoa(api),
		"--runtime-interface-emulator-address", "127.0.0.1:" + strconv.Itoa(port)}, args...)
	if filepath.Base(argv0) != "aws-lambda-rie" {
		full = append([]string{"rie"}, full...)
	}
	p := &rieProc{cmd: exec.Command(argv0, full...), out: &syncBuffer{}, url: "http://127.0.0.1:" + strconv.Itoa(port), exited: make(chan error, 1)}
	p.cmd.Env = append(os.Environ(), env...)
	p.cmd.Stdout, p.cmd.Stderr = p.out, p.out
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { p.exited <- p.cmd.Wait() }()
	t.Cleanup(func() {
		_ = p.cmd.Process.Kill()
		<-p.exited
		if t.Failed() {
			t.Logf("kappa rie output:\n%s", p.out)
		}
	})
	deadline := time.Now().Add(10 * time.Second)
	for {
		c, err := net.Dial("tcp", "127.0.0.1:"+strconv.Itoa(port))
		if err == nil {
			c.Close()
			return p
		}
		if time.Now().After(deadline) {
			t.Fatalf("kappa rie does not listen: %v\n%s", err, p.out)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func (p *rieProc) invoke(t *testing.T, body string) result {
	t.Helper()
	start := time.Now()
	resp, err := http.Post(p.url+invokePath, "application/json", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var b strings.Builder
	_, _ = io.Copy(&b, resp.Body)
	return result{resp.StatusCode, resp.Header, b.String(), time.Since(start)}
}

// waitReports waits until the output holds n REPORT lines: an invocation
// prints its REPORT once its extensions are done, after the reply.
func (p *rieProc) waitReports(t *testing.T, n int) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for len(reports(p.out.String())) < n {
		if time.Now().After(deadline) {
			t.Fatalf("no %d REPORT lines in 10s:\n%s", n, p.out)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// stop sends SIGTERM and waits for the exit.
func (p *rieProc) stop(t *testing.T) time.Duration {
	t.Helper()
	start := time.Now()
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case err := <-p.exited:
		p.exited <- err
		if err != nil {
			t.Errorf("kappa rie exited with %v", err)
		}
	case <-time.After(15 * time.Second):
		t.Fatal("kappa rie did not stop")
	}
	return time.Since(start)
}

type lifecycleRecord struct {
	Register struct {
		AccountID    string `json:"accountId"`
		FunctionName string `json:"functionName"`
	} `json:"register"`
	Events []struct {
		At    int64 `json:"atMs"`
		Event struct {
			EventType      string `json:"eventType"`
			RequestID      string `json:"requestId"`
			ShutdownReason string `json:"shutdownReason"`
			DeadlineMs     int64  `json:"deadlineMs"`
			Tracing        *struct {
				Type  string `json:"type"`
				Value string `json:"value"`
			} `json:"tracing"`
		} `json:"event"`
	} `json:"events"`
}

type telemetryRecord struct {
	Events []struct {
		Type   string          `json:"type"`
		Record json.RawMessage `json:"record"`
	} `json:"events"`
}

func readJSON(t *testing.T, path string, v any) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("read %s: %v", path, err)
	}
	if err := json.Unmarshal(b, v); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
}

// TestKappaRIEExtensions runs `kappa rie` with two external extensions from
// testdata/extensions: lifecycle (INVOKE and SHUTDOWN, slow to init and
// after each invoke) and telemetry (a Telemetry API subscriber), and checks
// the event sequences and the lifecycle timing.
func TestKappaRIEExtensions(t *testing.T) {
	kappa := build(t, "../../cmd/kappa")
	fn := build(t, "../../testdata/functions/stream")
	extDir, recDir := t.TempDir(), t.TempDir()
	for _, ext := range []string{"lifecycle", "telemetry"} {
		b, err := os.ReadFile(build(t, "../../testdata/extensions/"+ext))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(extDir, ext), b, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	// The extension's post-invoke work is long enough that a warm reply
	// coming before it is done is plain even on a loaded machine.
	const initMs, invokeMs = 300, 1500
	p := startRIE(t, kappa, []string{"KAPPA_TEST_RECORD_DIR=" + recDir, "KAPPA_TEST_INIT_MS=" + strconv.Itoa(initMs),
		"KAPPA_TEST_INVOKE_MS=" + strconv.Itoa(invokeMs), "AWS_LAMBDA_FUNCTION_NAME=exttest"},
		"--extensions-dir", extDir, fn)

	r1 := p.invoke(t, `{"op":"log","lines":["line one","line two"]}`)
	if r1.status != 200 || r1.body != `{"ok":true}` {
		t.Fatalf("invoke 1: %d %s", r1.status, r1.body)
	}
	if r1.took < initMs*time.Millisecond {
		t.Errorf("cold invoke took %s: init did not wait for the extension (%d ms)", r1.took, initMs)
	}
	// The first invocation is over (its REPORT follows the extension's
	// work), so the second one runs warm in the same environment.
	p.waitReports(t, 1)
	r2 := p.invoke(t, `{"op":"echo","data":2}`)
	if r2.status != 200 || r2.body != `{"data":2,"ok":true}` {
		t.Fatalf("invoke 2: %d %s", r2.status, r2.body)
	}
	if r2.took > invokeMs*time.Millisecond*3/4 {
		t.Errorf("warm invoke answered after %s: the response waited for the extension", r2.took)
	}
	p.waitReports(t, 2) // the extension is back in /event/next before SHUTDOWN
	if took := p.stop(t); took > 5*time.Second {
		t.Errorf("shutdown took %s", took)
	}

	// REPORT: the warm invocation's Duration covers the extension's work.
	reps := reports(p.out.String())
	if len(reps) != 2 {
		t.Fatalf("%d REPORT lines:\n%s", len(reps), p.out)
	}
	if reps[0][3] == "" || reps[1][3] != "" {
		t.Errorf("Init Duration on %q and %q; want the first only", reps[0][3], reps[1][3])
	}
	line2 := ""
	for _, l := range strings.Split(p.out.String(), "\n") {
		if strings.HasPrefix(l, "REPORT RequestId: "+reps[1][1]) {
			line2 = l
		}
	}
	var d float64
	if i := strings.Index(line2, "Duration: "); i >= 0 {
		d, _ = strconv.ParseFloat(strings.Fields(line2[i+len("Duration: "):])[0], 64)
	}
	if d < invokeMs {
		t.Errorf("warm REPORT Duration %.2f ms < the extension's %d ms: %q", d, invokeMs, line2)
	}

	var lc lifecycleRecord
	readJSON(t, filepath.Join(recDir, "lifecycle.json"), &lc)
	if lc.Register.AccountID != AccountID || lc.Register.FunctionName != "exttest" {
		t.Errorf("register response %+v", lc.Register)
	}
	var seq []string
	for _, e := range lc.Events {
		seq = append(seq, e.Event.EventType)
	}
	if strings.Join(seq, " ") != "INVOKE INVOKE SHUTDOWN" {
		t.Fatalf("lifecycle events %v", seq)
	}
	for i, e := range lc.Events[:2] {
		if e.Event.RequestID != reps[i][1] || e.Event.Tracing == nil || e.Event.Tracing.Type != "X-Amzn-Trace-Id" || e.Event.Tracing.Value == "" {
			t.Errorf("INVOKE %d: %+v", i, e.Event)
		}
	}
	sd := lc.Events[2]
	if sd.Event.ShutdownReason != "spindown" {
		t.Errorf("shutdownReason %q", sd.Event.ShutdownReason)
	}
	if grace := sd.Event.DeadlineMs - sd.At; grace < 1500 || grace > 2100 {
		t.Errorf("SHUTDOWN deadline %d ms after delivery, want about 2000 (external extensions)", grace)
	}

	var tr telemetryRecord
	readJSON(t, filepath.Join(recDir, "telemetry.json"), &tr)
	var types []string
	pos := map[string]int{}
	for i, e := range tr.Events {
		key := e.Type
		if e.Type == "function" {
			var s string
			_ = json.Unmarshal(e.Record, &s)
			key = "function:" + s
		}
		var rec struct {
			RequestID string `json:"requestId"`
		}
		_ = json.Unmarshal(e.Record, &rec)
		if rec.RequestID != "" {
			key += ":" + rec.RequestID
		}
		if _, ok := pos[key]; !ok {
			pos[key] = i
		}
		types = append(types, e.Type)
	}
	if len(types) == 0 || types[0] != "platform.initStart" {
		t.Fatalf("telemetry starts with %v", types)
	}
	before := func(a, b string) {
		t.Helper()
		pa, oka := pos[a]
		pb, okb := pos[b]
		if !oka || !okb || pa >= pb {
			t.Errorf("want %s (%d, %v) before %s (%d, %v); types %v", a, pa, oka, b, pb, okb, types)
		}
	}
	id1, id2 := reps[0][1], reps[1][1]
	before("platform.initStart", "platform.extension")
	before("platform.extension", "platform.initRuntimeDone")
	before("platform.initRuntimeDone", "platform.initReport")
	before("platform.initReport", "platform.start:"+id1)
	before("platform.start:"+id1, "function:line one")
	before("function:line one", "function:line two")
	before("function:line two", "platform.runtimeDone:"+id1)
	before("platform.runtimeDone:"+id1, "platform.report:"+id1)
	before("platform.report:"+id1, "platform.start:"+id2)
	before("platform.start:"+id2, "platform.runtimeDone:"+id2)
	before("platform.runtimeDone:"+id2, "platform.report:"+id2)
	for _, e := range tr.Events {
		if e.Type != "platform.report" {
			continue
		}
		var rep struct {
			RequestID string `json:"requestId"`
			Status    string `json:"status"`
			Metrics   struct {
				DurationMs      float64  `json:"durationMs"`
				MemorySizeMB    int      `json:"memorySizeMB"`
				MaxMemoryUsedMB int      `json:"maxMemoryUsedMB"`
				InitDurationMs  *float64 `json:"initDurationMs"`
			} `json:"metrics"`
		}
		_ = json.Unmarshal(e.Record, &rep)
		if rep.Status != "success" || rep.Metrics.MemorySizeMB != 3008 || rep.Metrics.MaxMemoryUsedMB < 1 || rep.Metrics.MaxMemoryUsedMB >= 3008 {
			t.Errorf("report %s", e.Record)
		}
		if (rep.Metrics.InitDurationMs != nil) != (rep.RequestID == id1) {
			t.Errorf("report %s: initDurationMs on the cold start only", e.Record)
		}
	}
	foundExt := false
	for _, e := range tr.Events {
		foundExt = foundExt || e.Type == "extension" && strings.Contains(string(e.Record), "[lifecycle] event INVOKE")
	}
	if !foundExt {
		t.Errorf("no extension log line in the telemetry: %v", types)
	}
}

// TestAWSLambdaRIEName runs the kappa binary under the name aws-lambda-rie
// without the rie subcommand, as /lambda-entrypoint.sh does.
func TestAWSLambdaRIEName(t *testing.T) {
	kappa := build(t, "../../cmd/kappa")
	link := filepath.Join(t.TempDir(), "aws-lambda-rie")
	if err := os.Symlink(kappa, link); err != nil {
		t.Fatal(err)
	}
	p := startRIE(t, link, nil, "--extensions-dir", t.TempDir(), build(t, "../../testdata/functions/stream"))
	if r := p.invoke(t, `{"op":"echo","data":"rie"}`); r.status != 200 || r.body != `{"data":"rie","ok":true}` {
		t.Fatalf("invoke: %d %s", r.status, r.body)
	}
	p.stop(t)
}
