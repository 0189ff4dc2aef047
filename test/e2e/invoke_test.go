package e2e

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"strings"
	"sync"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/lambda"
	"github.com/aws/aws-sdk-go-v2/service/lambda/types"
)

// invoke calls fname with payload and decodes a JSON object result.
func invoke(t *testing.T, s *server, fname string, payload any, opts ...func(*lambda.InvokeInput)) (*lambda.InvokeOutput, map[string]any) {
	t.Helper()
	b, _ := json.Marshal(payload)
	in := &lambda.InvokeInput{FunctionName: aws.String(fname), Payload: b}
	for _, o := range opts {
		o(in)
	}
	out, err := s.Lambda.Invoke(context.Background(), in)
	if err != nil {
		t.Fatalf("Invoke %s: %v", fname, err)
	}
	var m map[string]any
	json.Unmarshal(out.Payload, &m)
	return out, m
}

func withTail(in *lambda.InvokeInput) { in.LogType = types.LogTypeTail }

func tailOf(t *testing.T, out *lambda.InvokeOutput) string {
	t.Helper()
	if out.LogResult == nil {
		t.Fatal("no LogResult with LogType Tail")
	}
	b, err := base64.StdEncoding.DecodeString(*out.LogResult)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestInvokeEndToEnd(t *testing.T) {
	s := startServer(t)
	img := s.pushProbe(t, "probe:v1", "PROBE_VERSION=1")
	fn := s.createFunction(t, "probe", img)
	if fn.Code == nil || aws.ToString(fn.Code.ImageUri) != img || !strings.Contains(aws.ToString(fn.Code.ResolvedImageUri), "@sha256:") {
		t.Errorf("GetFunction Code = %+v, want ImageUri %s and a ResolvedImageUri by digest", fn.Code, img)
	}

	out, res := invoke(t, s, "probe", map[string]any{"op": "echo", "text": "hi"}, withTail)
	if out.StatusCode != 200 || res["text"] != "hi" || out.FunctionError != nil {
		t.Fatalf("Invoke = %d %s (err %v), want 200 echo", out.StatusCode, out.Payload, out.FunctionError)
	}
	if aws.ToString(out.ExecutedVersion) != "$LATEST" {
		t.Errorf("ExecutedVersion = %q", aws.ToString(out.ExecutedVersion))
	}
	tail := tailOf(t, out)
	for _, want := range []string{"START RequestId: ", "Version: $LATEST", "END RequestId: ", "REPORT RequestId: ", "Billed Duration: ", "Memory Size: 128 MB", "Max Memory Used: ", "Init Duration: "} {
		if !strings.Contains(tail, want) {
			t.Errorf("cold tail lacks %q:\n%s", want, tail)
		}
	}
	if !strings.Contains(tail, "probe init") {
		t.Errorf("tail lacks the function's init output:\n%s", tail)
	}

	// Warm: the same environment, no Init Duration.
	out2, res2 := invoke(t, s, "probe", map[string]any{"op": "log", "text": "line one"}, withTail)
	if res2["env"] != res["env"] {
		t.Errorf("second invoke ran in env %v, want warm env %v", res2["env"], res["env"])
	}
	tail2 := tailOf(t, out2)
	if strings.Contains(tail2, "Init Duration") {
		t.Errorf("warm invoke reports Init Duration:\n%s", tail2)
	}
	if !strings.Contains(tail2, "line one") || !strings.Contains(tail2, "stderr: line one") {
		t.Errorf("tail lacks the function's stdout/stderr:\n%s", tail2)
	}
}

func TestInvokeContext(t *testing.T) {
	s := startServer(t)
	img := s.pushProbe(t, "probe:ctx")
	s.createFunction(t, "ctx", img, func(in *lambda.CreateFunctionInput) {
		in.MemorySize = aws.Int32(256)
		in.Environment = &types.Environment{Variables: map[string]string{"GREETING": "hello"}}
	})
	cc := base64.StdEncoding.EncodeToString([]byte(`{"custom":{"k":"v"}}`))
	out, res := invoke(t, s, "ctx", map[string]any{"op": "env"}, func(in *lambda.InvokeInput) {
		in.ClientContext = aws.String(cc)
	})
	if out.FunctionError != nil {
		t.Fatalf("function error: %s", out.Payload)
	}
	env := map[string]string{}
	for _, kv := range res["environ"].([]any) {
		k, v, _ := strings.Cut(kv.(string), "=")
		env[k] = v
	}
	want := map[string]string{
		"GREETING":                        "hello",
		"AWS_LAMBDA_FUNCTION_NAME":        "ctx",
		"AWS_LAMBDA_FUNCTION_MEMORY_SIZE": "256",
		"AWS_LAMBDA_FUNCTION_VERSION":     "$LATEST",
		"AWS_LAMBDA_RUNTIME_API":          "127.0.0.1:9001",
		"AWS_REGION":                      "us-east-1",
		"AWS_LAMBDA_LOG_GROUP_NAME":       "/aws/lambda/ctx",
		"LAMBDA_TASK_ROOT":                "/var/task",
		"TZ":                              ":UTC",
		"AWS_LAMBDA_INITIALIZATION_TYPE":  "on-demand",
	}
	for k, v := range want {
		if env[k] != v {
			t.Errorf("env %s = %q, want %q", k, env[k], v)
		}
	}
	if !strings.Contains(env["AWS_LAMBDA_LOG_STREAM_NAME"], "/[$LATEST]") {
		t.Errorf("AWS_LAMBDA_LOG_STREAM_NAME = %q", env["AWS_LAMBDA_LOG_STREAM_NAME"])
	}
	if res["uid"].(float64) == 0 {
		t.Errorf("function runs as root")
	}
	if res["cwd"] != "/var/task" {
		t.Errorf("cwd = %v, want /var/task", res["cwd"])
	}
	if !strings.HasPrefix(res["traceId"].(string), "Root=1-") {
		t.Errorf("_X_AMZN_TRACE_ID = %v", res["traceId"])
	}
	if res["arn"] != "arn:aws:lambda:us-east-1:000000000000:function:ctx" {
		t.Errorf("invoked ARN = %v", res["arn"])
	}
	if cc, _ := res["clientContext"].(map[string]any); cc["k"] != "v" {
		t.Errorf("client context custom = %v", res["clientContext"])
	}
	if ms, _ := res["deadlineMs"].(float64); ms < 5000 || ms > 10000 {
		t.Errorf("deadline in %v ms, want within the 10 s timeout", ms)
	}
}

func TestConcurrentInvokesGetOwnEnvironments(t *testing.T) {
	s := startServer(t)
	img := s.pushProbe(t, "probe:conc")
	s.createFunction(t, "conc", img)
	const n = 4
	envs := make(chan string, n)
	var wg sync.WaitGroup
	for range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			out, res := invoke(t, s, "conc", map[string]any{"op": "sleep", "ms": 1500})
			env, ok := res["env"].(string)
			if !ok {
				t.Errorf("invoke failed: %s", out.Payload)
			}
			envs <- env
		}()
	}
	wg.Wait()
	close(envs)
	seen := map[string]bool{}
	for e := range envs {
		seen[e] = true
	}
	if len(seen) != n {
		t.Errorf("%d concurrent invokes ran in %d environments, want %d", n, len(seen), n)
	}
}
