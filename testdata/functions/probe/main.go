// Command probe is a Lambda function (aws-lambda-go) that end-to-end tests
// drive: the event's "op" selects what it does inside its environment and
// the result reports what it saw.
package main

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/aws/aws-lambda-go/lambda"
	"github.com/aws/aws-lambda-go/lambdacontext"
)

// envID identifies this execution environment (chosen at init).
var envID = func() string {
	var b [8]byte
	rand.Read(b[:])
	return hex.EncodeToString(b[:])
}()

type event struct {
	Op    string `json:"op"`
	Ms    int    `json:"ms"`
	MB    int    `json:"mb"`
	Addr  string `json:"addr"`
	Conns int    `json:"conns"`
	Path  string `json:"path"`
	Text  string `json:"text"`
	Bytes int    `json:"bytes"`
	// Log, when set, is printed to stdout before the op runs, so that
	// tests can find the function's own output in the log tail of any op.
	Log string `json:"log"`

	// A function URL request (HTTP payload v2.0); see urlResponse.
	Version               string            `json:"version"`
	RouteKey              string            `json:"routeKey"`
	RawPath               string            `json:"rawPath"`
	RawQueryString        string            `json:"rawQueryString"`
	Cookies               []string          `json:"cookies"`
	Headers               map[string]string `json:"headers"`
	QueryStringParameters map[string]string `json:"queryStringParameters"`
	RequestContext        map[string]any    `json:"requestContext"`
	Body                  string            `json:"body"`
	IsBase64Encoded       bool              `json:"isBase64Encoded"`

	// An SQS batch from an event source mapping; see sqsBatch.
	Records []sqsRecord `json:"Records"`
}

// sqsRecord is one message of an SQS batch event.
type sqsRecord struct {
	MessageID      string            `json:"messageId"`
	Body           string            `json:"body"`
	EventSource    string            `json:"eventSource"`
	EventSourceARN string            `json:"eventSourceARN"`
	Attributes     map[string]string `json:"attributes"`
}

// sqsBatch prints a line per record, "sqs-record body=<body>
// count=<ApproximateReceiveCount> source=<eventSourceARN> batch=<n>
// id=<messageId>", and
// reports the records whose body starts with "fail" as batch item
// failures (ReportBatchItemFailures); a body "error" fails the whole
// batch with a function error.
func sqsBatch(recs []sqsRecord) (map[string]any, error) {
	failures := []map[string]string{}
	for _, r := range recs {
		fmt.Printf("sqs-record body=%s count=%s source=%s batch=%d id=%s\n", r.Body, r.Attributes["ApproximateReceiveCount"], r.EventSourceARN, len(recs), r.MessageID)
		if r.Body == "error" {
			return nil, errors.New("probe fails the batch on purpose")
		}
		if r.Body == "slow" {
			time.Sleep(5 * time.Second) // a batch long enough to act on while it runs
		}
		if strings.HasPrefix(r.Body, "fail") {
			failures = append(failures, map[string]string{"itemIdentifier": r.MessageID})
		}
	}
	return map[string]any{"batchItemFailures": failures}, nil
}

func handle(ctx context.Context, ev event) (map[string]any, error) {
	if ev.RouteKey == "$default" {
		return urlResponse(ev)
	}
	if len(ev.Records) > 0 && ev.Records[0].EventSource == "aws:sqs" {
		return sqsBatch(ev.Records)
	}
	if ev.Op == "flaky" {
		return flaky(ev)
	}
	if ev.Op == "noop" {
		// As little work as the runtime allows: for load and leak tests.
		return map[string]any{"env": envID}, nil
	}
	lc, _ := lambdacontext.FromContext(ctx)
	if ev.Log != "" {
		fmt.Println(ev.Log)
	}
	out := map[string]any{"env": envID, "op": ev.Op, "version": os.Getenv("PROBE_VERSION"),
		"beforeSnapshot": hooks.beforeSnapshot, "afterRestore": hooks.afterRestore, "restoreId": hooks.restoreID}
	if lc != nil {
		out["requestId"] = lc.AwsRequestID
		out["arn"] = lc.InvokedFunctionArn
		out["clientContext"] = lc.ClientContext.Custom
	}
	switch ev.Op {
	case "", "echo":
		out["text"] = ev.Text
	case "env":
		out["environ"] = os.Environ()
		out["uid"] = os.Getuid()
		out["gid"] = os.Getgid()
		out["cwd"], _ = os.Getwd()
		out["hostname"], _ = os.Hostname()
		out["traceId"] = os.Getenv("_X_AMZN_TRACE_ID")
		if dl, ok := ctx.Deadline(); ok {
			out["deadlineMs"] = time.Until(dl).Milliseconds()
		}
	case "error":
		return nil, errors.New("probe failed on purpose: " + ev.Text)
	case "panic":
		panic("probe panics on purpose")
	case "exit":
		os.Exit(3)
	case "sleep":
		time.Sleep(time.Duration(ev.Ms) * time.Millisecond)
	case "tmp":
		// What this environment's /tmp holds, then a file of its own there;
		// the environment is held ms, so that concurrent calls need their own.
		ents, _ := os.ReadDir("/tmp")
		names := []string{}
		for _, e := range ents {
			names = append(names, e.Name())
		}
		out["tmp"] = names
		if lc != nil {
			out["ok"] = os.WriteFile("/tmp/"+lc.AwsRequestID, nil, 0o644) == nil
		}
		time.Sleep(time.Duration(ev.Ms) * time.Millisecond)
	case "oom":
		var hold [][]byte
		for i := 0; i < ev.MB; i++ {
			b := make([]byte, 1<<20)
			for j := range b {
				b[j] = byte(j)
			}
			hold = append(hold, b)
		}
		out["held"] = len(hold)
	case "write":
		err := os.WriteFile(ev.Path, []byte("x"), 0o644)
		out["ok"] = err == nil
		if err != nil {
			out["err"] = err.Error()
		}
	case "pids":
		ents, _ := os.ReadDir("/proc")
		var pids []string
		for _, e := range ents {
			if e.Name()[0] >= '0' && e.Name()[0] <= '9' {
				pids = append(pids, e.Name())
			}
		}
		out["pids"] = pids
	case "status":
		b, _ := os.ReadFile("/proc/self/status")
		out["status"] = string(b)
		l, _ := os.ReadFile("/proc/self/limits")
		out["limits"] = string(l)
	case "connect":
		c, err := net.DialTimeout("tcp", ev.Addr, 500*time.Millisecond)
		out["ok"] = err == nil
		if err == nil {
			c.Close()
		} else {
			out["err"] = err.Error()
		}
	case "flood":
		// Holds ev.Conns connections to this environment's Runtime API
		// open at once, each asking for /ping, and counts those answered:
		// a function that opens too many must not spend the server's.
		var conns []net.Conn
		served := 0
		for range ev.Conns {
			c, err := net.DialTimeout("tcp", os.Getenv("AWS_LAMBDA_RUNTIME_API"), time.Second)
			if err != nil {
				break
			}
			conns = append(conns, c)
			c.SetDeadline(time.Now().Add(2 * time.Second))
			fmt.Fprintf(c, "GET /2018-06-01/ping HTTP/1.1\r\nHost: x\r\n\r\n")
			if b := make([]byte, 12); func() bool { _, err := io.ReadFull(c, b); return err == nil }() && string(b) == "HTTP/1.1 200" {
				served++
			}
		}
		for _, c := range conns {
			c.Close()
		}
		out["opened"] = len(conns)
		out["served"] = served
	case "log":
		for _, line := range strings.Split(ev.Text, "\n") {
			fmt.Println(line)
		}
		fmt.Fprintln(os.Stderr, "stderr:", ev.Text)
	case "syscalls":
		// What the seccomp filter answers: keyctl is denied outright,
		// personality is allowed only for a few arguments (0xffffffff
		// queries); without the filter all three succeed.
		errno := func(_, _ uintptr, e syscall.Errno) string {
			if e == 0 {
				return "ok"
			}
			return e.Error()
		}
		out["keyctl"] = errno(syscall.Syscall(syscall.SYS_KEYCTL, 0, ^uintptr(2), 0)) // KEYCTL_GET_KEYRING_ID, KEY_SPEC_SESSION_KEYRING
		out["personalityQuery"] = errno(syscall.Syscall(syscall.SYS_PERSONALITY, 0xffffffff, 0, 0))
		out["personalityOther"] = errno(syscall.Syscall(syscall.SYS_PERSONALITY, 0x12345, 0, 0))
	case "big":
		out["blob"] = strings.Repeat("x", ev.Bytes)
	default:
		return nil, fmt.Errorf("unknown op %q", ev.Op)
	}
	return out, nil
}

// urlResponse answers a function URL request by its path: /json returns
// an object without statusCode (Lambda's default mapping), /binary a
// base64 body, /status/<code> that status, /error a function error, /cors
// a response that sets its own CORS header; anything else echoes the event
// as the JSON body of a structured response with a header and a cookie.
func urlResponse(ev event) (map[string]any, error) {
	switch {
	case ev.RawPath == "/json":
		return map[string]any{"message": "default mapping"}, nil
	case ev.RawPath == "/binary":
		b := make([]byte, 256)
		for i := range b {
			b[i] = byte(i)
		}
		return map[string]any{"statusCode": 200, "headers": map[string]string{"content-type": "application/octet-stream"},
			"body": base64.StdEncoding.EncodeToString(b), "isBase64Encoded": true}, nil
	case strings.HasPrefix(ev.RawPath, "/status/"):
		code, _ := strconv.Atoi(strings.TrimPrefix(ev.RawPath, "/status/"))
		return map[string]any{"statusCode": code, "body": "status " + strconv.Itoa(code)}, nil
	case ev.RawPath == "/error":
		return nil, errors.New("probe fails the URL request on purpose")
	case ev.RawPath == "/cors":
		return map[string]any{"statusCode": 200, "headers": map[string]string{"Access-Control-Allow-Origin": "https://function.example"}, "body": "cors"}, nil
	}
	echo, _ := json.Marshal(map[string]any{
		"version": ev.Version, "routeKey": ev.RouteKey, "rawPath": ev.RawPath, "rawQueryString": ev.RawQueryString,
		"cookies": ev.Cookies, "headers": ev.Headers, "queryStringParameters": ev.QueryStringParameters,
		"requestContext": ev.RequestContext, "body": ev.Body, "isBase64Encoded": ev.IsBase64Encoded, "env": envID,
	})
	return map[string]any{"statusCode": 201, "headers": map[string]string{"content-type": "application/json", "x-probe": "url"},
		"cookies": []string{"probe=1; Path=/", "second=2"}, "body": string(echo)}, nil
}

// flaky fails the first time it sees a text in this environment and
// succeeds after: for retries of asynchronous invocations.
func flaky(ev event) (map[string]any, error) {
	mark := "/tmp/flaky-" + ev.Text
	if _, err := os.Stat(mark); err != nil {
		os.WriteFile(mark, nil, 0o600)
		return nil, errors.New("probe flaky fails the first time: " + ev.Text)
	}
	return map[string]any{"env": envID, "op": "flaky", "text": ev.Text, "recovered": true}, nil
}

func main() {
	fmt.Println("probe init", envID)
	if os.Getenv("PROBE_INIT_FAIL") == "1" {
		// A function whose init always fails: the runtime exits before it
		// ever asks for an event.
		fmt.Println("probe init fails on purpose")
		os.Exit(1)
	}
	if d, err := time.ParseDuration(os.Getenv("PROBE_INIT_SLEEP")); err == nil {
		// A slow init, as SnapStart is for: restored environments skip it.
		time.Sleep(d)
	}
	if h := os.Getenv("PROBE_SNAPSTART_HOOKS"); h != "" && os.Getenv("AWS_LAMBDA_INITIALIZATION_TYPE") == "snap-start" {
		snapStartHooks(h)
	}
	lambda.Start(handle)
}

// hooks counts the SnapStart hooks this process ran (see snapStartHooks);
// every response but noop's reports them.
var hooks struct {
	beforeSnapshot, afterRestore int
	restoreID                    string // drawn by the after-restore hook
}

// snapStartHooks does what a runtime interface client with SnapStart
// hooks does (the Java, Python and .NET ones), which aws-lambda-go does
// not: after init, the before-snapshot hook, then GET /restore/next, which
// returns once the snapshot was taken and restored; then the after-restore
// hook, which mode "fail" makes fail (reported to /restore/error before
// the process exits) and mode "hang" never finish.
func snapStartHooks(mode string) {
	api := "http://" + os.Getenv("AWS_LAMBDA_RUNTIME_API") + "/2018-06-01/runtime/restore/"
	hooks.beforeSnapshot++
	resp, err := http.Get(api + "next")
	if err != nil {
		fmt.Println("probe restore/next:", err)
		os.Exit(1)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		fmt.Println("probe restore/next:", resp.Status)
		os.Exit(1)
	}
	hooks.afterRestore++
	var b [8]byte
	rand.Read(b[:])
	hooks.restoreID = hex.EncodeToString(b[:])
	switch mode {
	case "hang":
		time.Sleep(time.Hour)
	case "fail":
		req, _ := http.NewRequest(http.MethodPost, api+"error",
			strings.NewReader(`{"errorMessage":"probe afterRestore fails on purpose","errorType":"Probe.AfterRestore"}`))
		req.Header.Set("Lambda-Runtime-Function-Error-Type", "Probe.AfterRestore")
		if resp, err := http.DefaultClient.Do(req); err == nil {
			resp.Body.Close()
		}
		os.Exit(1)
	}
}
