// Command probe is a Lambda function (aws-lambda-go) that end-to-end tests
// drive: the event's "op" selects what it does inside its environment and
// the result reports what it saw.
package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"os"
	"strings"
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
	Path  string `json:"path"`
	Text  string `json:"text"`
	Bytes int    `json:"bytes"`
	// Log, when set, is printed to stdout before the op runs, so that
	// tests can find the function's own output in the log tail of any op.
	Log string `json:"log"`
}

func handle(ctx context.Context, ev event) (map[string]any, error) {
	lc, _ := lambdacontext.FromContext(ctx)
	if ev.Log != "" {
		fmt.Println(ev.Log)
	}
	out := map[string]any{"env": envID, "op": ev.Op, "version": os.Getenv("PROBE_VERSION")}
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
	case "connect":
		c, err := net.DialTimeout("tcp", ev.Addr, 500*time.Millisecond)
		out["ok"] = err == nil
		if err == nil {
			c.Close()
		} else {
			out["err"] = err.Error()
		}
	case "log":
		for _, line := range strings.Split(ev.Text, "\n") {
			fmt.Println(line)
		}
		fmt.Fprintln(os.Stderr, "stderr:", ev.Text)
	case "big":
		out["blob"] = strings.Repeat("x", ev.Bytes)
	default:
		return nil, fmt.Errorf("unknown op %q", ev.Op)
	}
	return out, nil
}

func main() {
	fmt.Println("probe init", envID)
	lambda.Start(handle)
}
