package e2e

import (
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/lambda"
)

// TestSparesStayWithTheirConfiguration makes the environments of two
// functions, and of two versions of one of them, exit again and again so
// that every next invocation is a cold start — served, on a default
// server, by a created-ahead sandbox (a spare) — and checks that every
// environment ran for exactly one function, version and configuration, and
// saw that one's values.
func TestSparesStayWithTheirConfiguration(t *testing.T) {
	s := startServer(t)
	img := s.pushProbe(t, "spares:v1")
	s.createFunction(t, "sp-a", img)
	s.createFunction(t, "sp-b", img)
	setEnv(t, s, "sp-a", map[string]string{"MARK": "a-v1"})
	publish(t, s, "sp-a")
	setEnv(t, s, "sp-a", map[string]string{"MARK": "a-latest"})
	setEnv(t, s, "sp-b", map[string]string{"MARK": "b"})
	targets := []struct{ name, qualifier, version, mark string }{
		{"sp-a", "", "$LATEST", "a-latest"},
		{"sp-a", "1", "1", "a-v1"},
		{"sp-b", "", "$LATEST", "b"},
	}
	qualify := func(q string) func(*lambda.InvokeInput) {
		return func(in *lambda.InvokeInput) {
			if q != "" {
				in.Qualifier = aws.String(q)
			}
		}
	}
	served := map[string]string{} // environment id → "function:version"
	for range 4 {
		for _, tg := range targets {
			// The runtime exits mid-invocation: the environment is gone.
			if out, _ := invoke(t, s, tg.name, map[string]any{"op": "exit"}, qualify(tg.qualifier)); out.FunctionError == nil {
				t.Fatalf("%s:%s: exit op returned no function error", tg.name, tg.version)
			}
		}
		// Give the spares time to be made. (Not a timing assertion: without
		// them the invocations below are ordinary cold starts, and the
		// count at the end says so.)
		time.Sleep(500 * time.Millisecond)
		for _, tg := range targets {
			who := tg.name + ":" + tg.version
			out, res := invoke(t, s, tg.name, map[string]any{"op": "env"}, qualify(tg.qualifier))
			if out.FunctionError != nil {
				t.Fatalf("%s: %s", who, out.Payload)
			}
			vars := map[string]string{}
			environ, _ := res["environ"].([]any)
			for _, kv := range environ {
				k, v, _ := strings.Cut(kv.(string), "=")
				vars[k] = v
			}
			if vars["AWS_LAMBDA_FUNCTION_NAME"] != tg.name || vars["AWS_LAMBDA_FUNCTION_VERSION"] != tg.version || vars["MARK"] != tg.mark {
				t.Errorf("%s ran in an environment of %s:%s with MARK=%q", who,
					vars["AWS_LAMBDA_FUNCTION_NAME"], vars["AWS_LAMBDA_FUNCTION_VERSION"], vars["MARK"])
			}
			if !strings.Contains(vars["AWS_LAMBDA_LOG_STREAM_NAME"], "["+tg.version+"]") {
				t.Errorf("%s ran with log stream %q", who, vars["AWS_LAMBDA_LOG_STREAM_NAME"])
			}
			env, _ := res["env"].(string)
			if prev, ok := served[env]; ok && prev != who {
				t.Errorf("environment %s served %s and %s", env, prev, who)
			}
			served[env] = who
		}
	}
	if n := strings.Count(s.Log(), "cold start from a spare"); n == 0 {
		t.Error("no cold start started a spare: the fast path was not exercised")
	} else {
		t.Logf("%d cold starts started a spare", n)
	}
}
