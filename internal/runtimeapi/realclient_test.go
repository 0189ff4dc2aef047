package runtimeapi

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// TestRealClient runs testdata/echo, an aws-lambda-go function, as a
// subprocess against a Server on a loopback listener.
func TestRealClient(t *testing.T) {
	bin := buildEcho(t)

	t.Run("echo, context, error, panic", func(t *testing.T) {
		s, ts := newTestServer(t, Options{})
		proc := startEcho(t, bin, ts.Listener.Addr().String())
		if err := s.WaitInit(t.Context()); err != nil {
			t.Fatalf("WaitInit: %v\n%s", err, proc.output())
		}

		for i := range 3 {
			data := fmt.Sprintf(`{"n":%d,"s":"héllo <&>"}`, i)
			res := proc.invoke(t, s, fmt.Sprintf("echo-%d", i), `{"op":"echo","data":`+data+`}`)
			if res.ErrorType != "" || string(res.Payload) != `{"data":`+data+`}` {
				t.Fatalf("echo %d: %q %s", i, res.ErrorType, res.Payload)
			}
		}

		inv := testInvocation("ctx-1")
		inv.Payload = []byte(`{"op":"context"}`)
		inv.TenantID = "tenant-9"
		inv.ClientContext = `{"custom":{"k":"v"}}`
		inv.Deadline = time.Now().Add(time.Minute).Truncate(time.Millisecond)
		res := proc.invokeWith(t, s, inv)
		var got response
		if err := json.Unmarshal(res.Payload, &got); err != nil || res.ErrorType != "" {
			t.Fatalf("context: %q %s (%v)", res.ErrorType, res.Payload, err)
		}
		want := response{RequestID: "ctx-1", FunctionARN: testARN, DeadlineMs: inv.Deadline.UnixMilli(),
			TraceID: testTrace, TenantID: "tenant-9", ClientCustom: map[string]string{"k": "v"}}
		if fmt.Sprint(got) != fmt.Sprint(want) {
			t.Errorf("context seen by the function:\n got %+v\nwant %+v", got, want)
		}

		res = proc.invoke(t, s, "err-1", `{"op":"error","message":"boom"}`)
		wantFunctionError(t, res, "customError", "boom")

		res = proc.invoke(t, s, "panic-1", `{"op":"panic","message":"kaboom"}`)
		wantFunctionError(t, res, "string", "kaboom")
		if err := proc.waitExit(t); err == nil {
			t.Errorf("function exited cleanly after a panic, want an error exit")
		}
	})

	t.Run("response too large", func(t *testing.T) {
		s, ts := newTestServer(t, Options{MaxResponseBytes: 1 << 10})
		proc := startEcho(t, bin, ts.Listener.Addr().String())
		res := proc.invoke(t, s, "big-1", `{"op":"big","size":4096}`)
		const want = `{"errorMessage":"Response payload size exceeded maximum allowed payload size (1024 bytes).","errorType":"Function.ResponseSizeTooLarge"}`
		if res.ErrorType != string(FunctionResponseSizeTooLarge) || string(res.Payload) != want {
			t.Errorf("Result %q %s, want %s", res.ErrorType, res.Payload, want)
		}
		// aws-lambda-go treats the 413 as fatal.
		if err := proc.waitExit(t); err == nil {
			t.Errorf("function exited cleanly after a 413")
		}
	})
}

// response is testdata/echo's answer.
type response struct {
	Data         json.RawMessage   `json:"data,omitempty"`
	RequestID    string            `json:"requestId,omitempty"`
	FunctionARN  string            `json:"functionArn,omitempty"`
	DeadlineMs   int64             `json:"deadlineMs,omitempty"`
	TraceID      string            `json:"traceId,omitempty"`
	TenantID     string            `json:"tenantId,omitempty"`
	ClientCustom map[string]string `json:"clientCustom,omitempty"`
}

func wantFunctionError(t *testing.T, res Result, typ, msg string) {
	t.Helper()
	var e struct {
		ErrorMessage string `json:"errorMessage"`
		ErrorType    string `json:"errorType"`
	}
	if err := json.Unmarshal(res.Payload, &e); err != nil {
		t.Fatalf("error payload %s: %v", res.Payload, err)
	}
	// aws-lambda-go posts /error without Lambda-Runtime-Function-Error-Type.
	if res.ErrorType != string(ErrorUnhandled) || e.ErrorType != typ || e.ErrorMessage != msg {
		t.Errorf("Result %q %s, want Unhandled with errorType %q, errorMessage %q", res.ErrorType, res.Payload, typ, msg)
	}
}

func buildEcho(t *testing.T) string {
	t.Helper()
	goBin, err := exec.LookPath("go")
	if err != nil {
		t.Skip("needs the go command to build testdata/echo")
	}
	bin := filepath.Join(t.TempDir(), "echo")
	cmd := exec.CommandContext(t.Context(), goBin, "build", "-o", bin, "./testdata/echo")
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build ./testdata/echo: %v\n%s", err, out)
	}
	return bin
}

type echoProc struct {
	cmd    *exec.Cmd
	exited chan error
	mu     sync.Mutex
	out    bytes.Buffer
}

// startEcho runs bin with AWS_LAMBDA_RUNTIME_API=addr; it is killed at the
// end of the test.
func startEcho(t *testing.T, bin, addr string) *echoProc {
	t.Helper()
	p := &echoProc{cmd: exec.Command(bin), exited: make(chan error, 1)}
	for _, kv := range os.Environ() {
		// Start from a clean Lambda environment: no inherited runtime
		// settings (_LAMBDA_SERVER_PORT would switch to the legacy RPC mode).
		if strings.HasPrefix(kv, "AWS_LAMBDA_") || strings.HasPrefix(kv, "_LAMBDA_") || strings.HasPrefix(kv, "_X_AMZN_") {
			continue
		}
		p.cmd.Env = append(p.cmd.Env, kv)
	}
	p.cmd.Env = append(p.cmd.Env, "AWS_LAMBDA_RUNTIME_API="+addr)
	p.cmd.Stdout = lockedWriter{&p.mu, &p.out}
	p.cmd.Stderr = lockedWriter{&p.mu, &p.out}
	if err := p.cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", bin, err)
	}
	go func() { p.exited <- p.cmd.Wait() }()
	t.Cleanup(func() {
		_ = p.cmd.Process.Kill()
		<-p.exited
		if t.Failed() {
			t.Logf("function output:\n%s", p.output())
		}
	})
	return p
}

func (p *echoProc) output() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.out.String()
}

func (p *echoProc) invoke(t *testing.T, s *Server, id, payload string) Result {
	t.Helper()
	inv := testInvocation(id)
	inv.Payload = []byte(payload)
	inv.Deadline = time.Now().Add(time.Minute)
	return p.invokeWith(t, s, inv)
}

func (p *echoProc) invokeWith(t *testing.T, s *Server, inv Invocation) Result {
	t.Helper()
	got := receive(t, invokeAsync(t.Context(), s, inv))
	if got.err != nil {
		t.Fatalf("Invoke %s: %v\n%s", inv.RequestID, got.err, p.output())
	}
	return got.res
}

func (p *echoProc) waitExit(t *testing.T) error {
	t.Helper()
	select {
	case err := <-p.exited:
		p.exited <- err // for the cleanup
		return err
	case <-time.After(10 * time.Second):
		t.Fatalf("function did not exit\n%s", p.output())
		return nil
	}
}
