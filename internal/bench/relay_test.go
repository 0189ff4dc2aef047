package bench

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/lambda"
)

// relayRuntimeArg makes the test binary a runtime: run by ServeRelay as
// `<test binary> kappa-relay-runtime`, TestMain serves a real
// aws-lambda-go handler instead of running the tests.
const relayRuntimeArg = "kappa-relay-runtime"

type relayEvent struct {
	N    int  `json:"n"`
	Fail bool `json:"fail"`
}

func TestMain(m *testing.M) {
	if os.Args[len(os.Args)-1] == relayRuntimeArg && os.Getenv("AWS_LAMBDA_RUNTIME_API") != "" {
		lambda.Start(func(ev relayEvent) (map[string]int, error) {
			if ev.Fail {
				return nil, errors.New("failed on purpose")
			}
			return map[string]int{"n": ev.N, "pid": os.Getpid()}, nil
		})
		return
	}
	os.Exit(m.Run())
}

// startTestRelay runs ServeRelay with runtimes copies of this test binary
// as aws-lambda-go runtimes, until the test ends.
func startTestRelay(t *testing.T, opts RelayOptions) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		opts.Argv = []string{os.Args[0], relayRuntimeArg}
		done <- ServeRelay(ctx, ln, opts)
	}()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("ServeRelay: %v", err)
			}
		case <-time.After(10 * time.Second):
			t.Error("ServeRelay did not return within 10s of its context's end")
		}
	})
	return "http://" + ln.Addr().String()
}

func relayPost(t *testing.T, url string, body []byte) (*http.Response, []byte) {
	t.Helper()
	resp, err := http.Post(url, "application/json", bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp, b
}

// TestRelayInvokes checks that the relay hands each invocation to a
// runtime and its response back to the right caller, concurrently, and
// passes function errors on as Invoke does.
func TestRelayInvokes(t *testing.T) {
	url := startTestRelay(t, RelayOptions{Runtimes: 3})
	var wg sync.WaitGroup
	for i := range 30 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			resp, err := http.Post(url+"/invoke", "application/json", strings.NewReader(fmt.Sprintf(`{"n":%d}`, i)))
			if err != nil {
				t.Error(err)
				return
			}
			defer resp.Body.Close()
			var out map[string]int
			if err := json.NewDecoder(resp.Body).Decode(&out); err != nil || resp.StatusCode != 200 || out["n"] != i {
				t.Errorf("invocation %d: HTTP %d, %v, err %v", i, resp.StatusCode, out, err)
			}
		}()
	}
	wg.Wait()

	resp, body := relayPost(t, url+"/invoke", []byte(`{"fail":true}`))
	if resp.StatusCode != 200 || resp.Header.Get("X-Amz-Function-Error") != "Unhandled" || !bytes.Contains(body, []byte("failed on purpose")) {
		t.Errorf("function error: HTTP %d, X-Amz-Function-Error %q, body %s", resp.StatusCode, resp.Header.Get("X-Amz-Function-Error"), body)
	}
}

// TestRelayRefusesBadRequests checks the relay's answers to requests no
// runtime or caller should send.
func TestRelayRefusesBadRequests(t *testing.T) {
	url := startTestRelay(t, RelayOptions{Runtimes: 1})
	tests := []struct {
		name   string
		method string
		path   string
		body   []byte
		want   int
	}{
		{"response for an unknown request id", "POST", "/2018-06-01/runtime/invocation/424242/response", []byte("{}"), http.StatusBadRequest},
		{"error for an unknown request id", "POST", "/2018-06-01/runtime/invocation/424242/error", []byte("{}"), http.StatusBadRequest},
		{"unknown invocation verb", "POST", "/2018-06-01/runtime/invocation/1/other", nil, http.StatusNotFound},
		{"no request id", "POST", "/2018-06-01/runtime/invocation/", nil, http.StatusNotFound},
		{"path traversal", "POST", "/2018-06-01/runtime/invocation/../../invoke", nil, http.StatusNotFound},
		{"unknown path", "GET", "/2018-06-01/runtime/other", nil, http.StatusNotFound},
		{"GET of /invoke", "GET", "/invoke", nil, http.StatusNotFound},
		{"event over 6 MB", "POST", "/invoke", bytes.Repeat([]byte("x"), relayMaxBody+1), http.StatusRequestEntityTooLarge},
		{"init error", "POST", "/2018-06-01/runtime/init/error", []byte(`{"errorMessage":"x"}`), http.StatusAccepted},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			req, err := http.NewRequest(tc.method, url+tc.path, bytes.NewReader(tc.body))
			if err != nil {
				t.Fatal(err)
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != tc.want {
				t.Errorf("HTTP %d, want %d", resp.StatusCode, tc.want)
			}
		})
	}
	// The relay still serves after them.
	if resp, body := relayPost(t, url+"/invoke", []byte(`{"n":7}`)); resp.StatusCode != 200 || !bytes.HasPrefix(body, []byte(`{"n":7,`)) {
		t.Errorf("invoke after bad requests: HTTP %d %s", resp.StatusCode, body)
	}
}

func TestServeRelayNeedsRuntimes(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	if err := ServeRelay(context.Background(), ln, RelayOptions{Runtimes: 1}); err == nil {
		t.Error("no command: want an error")
	}
	if err := ServeRelay(context.Background(), ln, RelayOptions{Argv: []string{"/bin/true"}}); err == nil {
		t.Error("no runtimes: want an error")
	}
}

// TestRelayCold checks that a cold relay runs every invocation, one after
// another or at once, in a runtime process of its own, and kills each
// once it has answered.
func TestRelayCold(t *testing.T) {
	url := startTestRelay(t, RelayOptions{Cold: true})
	invoke := func(n int) int {
		resp, err := http.Post(url+"/invoke", "application/json", strings.NewReader(fmt.Sprintf(`{"n":%d}`, n)))
		if err != nil {
			t.Error(err)
			return 0
		}
		defer resp.Body.Close()
		var out map[string]int
		if err := json.NewDecoder(resp.Body).Decode(&out); err != nil || resp.StatusCode != 200 || out["n"] != n {
			t.Errorf("invocation %d: HTTP %d, %v, err %v", n, resp.StatusCode, out, err)
		}
		return out["pid"]
	}
	pids := map[int]bool{}
	for i := range 3 {
		pids[invoke(i)] = true
	}
	var mu sync.Mutex
	var wg sync.WaitGroup
	for i := range 5 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			pid := invoke(10 + i)
			mu.Lock()
			pids[pid] = true
			mu.Unlock()
		}()
	}
	wg.Wait()
	if len(pids) != 8 || pids[0] {
		t.Fatalf("8 invocations ran in the processes %v, want 8 of their own", pids)
	}
	for pid := range pids {
		deadline := time.Now().Add(10 * time.Second)
		for {
			if _, err := os.Stat(fmt.Sprintf("/proc/%d", pid)); errors.Is(err, os.ErrNotExist) {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("runtime %d still runs 10s after its invocation", pid)
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
}

// TestServeRelayStopsRuntimesOnError checks that a relay whose listener
// fails returns its error and kills the runtimes it started rather than
// waiting on them.
func TestServeRelayStopsRuntimesOnError(t *testing.T) {
	sleep, err := exec.LookPath("sleep")
	if err != nil {
		t.Skip("needs sleep(1)")
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ln.Close()
	done := make(chan error, 1)
	go func() {
		done <- ServeRelay(context.Background(), ln, RelayOptions{Argv: []string{sleep, "60"}, Runtimes: 2})
	}()
	select {
	case err := <-done:
		if err == nil {
			t.Error("ServeRelay on a closed listener returned no error")
		}
	case <-time.After(20 * time.Second):
		t.Fatal("ServeRelay on a closed listener still waits for its runtimes after 20s")
	}
}
