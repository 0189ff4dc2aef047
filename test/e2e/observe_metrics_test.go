package e2e

import (
	"context"
	"encoding/json"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/lambda"
)

// TestObserveMetricsAndTraces covers issue 7's metrics and traces: the
// Lambda metric set on /metrics per function, version and alias, host
// gauges, billing, and OTLP spans for every invocation with the trace
// header carried to the runtime.
func TestObserveMetricsAndTraces(t *testing.T) {
	rcv := newOTLPReceiver(t)
	s := newServer(t, "--otlp-endpoint", rcv.srv.URL)
	img := s.pushProbe(t, "probe:metrics")
	s.createFunction(t, "mfn", img)
	ctx := context.Background()

	// A traced invocation: the caller's trace id must reach the runtime,
	// with Kappa's invoke span as the Parent.
	const root = "1-5759e988-bd862e3fe1be46a994272793"
	const traceID = "5759e988bd862e3fe1be46a994272793"
	resp := s.do(t, "POST", "/2015-03-31/functions/mfn/invocations", []byte(`{"op":"env"}`),
		map[string]string{"X-Amzn-Trace-Id": "Root=" + root + ";Parent=53995c3f42cd8ad8;Sampled=1"})
	var res map[string]any
	if resp.status != 200 || json.Unmarshal(resp.body, &res) != nil {
		t.Fatalf("traced invoke: %d %s", resp.status, resp.body)
	}
	runtimeTrace, _ := res["traceId"].(string)
	if !strings.HasPrefix(runtimeTrace, "Root="+root+";Parent=") || !strings.Contains(runtimeTrace, "Sampled=1") {
		t.Errorf("the runtime saw _X_AMZN_TRACE_ID %q, want the caller's Root and Sampled", runtimeTrace)
	}
	mustInvoke(t, s, "mfn", map[string]any{"op": "echo"})
	// A streamed one is reported after Invoke returned: counted once.
	if r := invokeStream(t, s, "mfn", map[string]any{"op": "echo"}, false); r.complete == nil {
		t.Fatal("streamed invoke did not complete")
	}
	if _, res := invoke(t, s, "mfn", map[string]any{"op": "error", "text": "x"}); res["errorType"] == nil {
		t.Fatalf("error op did not fail: %v", res)
	}
	v1 := publish(t, s, "mfn")
	if _, err := s.Lambda.CreateAlias(ctx, &lambda.CreateAliasInput{FunctionName: aws.String("mfn"),
		Name: aws.String("live"), FunctionVersion: v1.Version}); err != nil {
		t.Fatal(err)
	}
	mustInvoke(t, s, "mfn", map[string]any{"op": "echo"}, withQualifier("live"))
	mustInvoke(t, s, "mfn", map[string]any{"op": "echo"}, withQualifier("live"))
	if _, err := s.Lambda.PutFunctionConcurrency(ctx, &lambda.PutFunctionConcurrencyInput{
		FunctionName: aws.String("mfn"), ReservedConcurrentExecutions: aws.Int32(0)}); err != nil {
		t.Fatal(err)
	}
	if _, _, err := tryInvoke(s, "mfn", map[string]any{"op": "echo"}); throttleOf(err) == nil {
		t.Fatalf("invoke with reserved concurrency 0 = %v, want a throttle", err)
	}
	if _, err := s.Lambda.DeleteFunctionConcurrency(ctx, &lambda.DeleteFunctionConcurrencyInput{FunctionName: aws.String("mfn")}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Lambda.PutProvisionedConcurrencyConfig(ctx, &lambda.PutProvisionedConcurrencyConfigInput{
		FunctionName: aws.String("mfn"), Qualifier: aws.String("live"), ProvisionedConcurrentExecutions: aws.Int32(1)}); err != nil {
		t.Fatal(err)
	}
	waitProvisionedReady(t, s, "mfn", "live")

	t.Run("metrics", func(t *testing.T) {
		fams := s.scrape(t)
		latest := map[string]string{"function": "mfn", "version": "$LATEST", "alias": ""}
		live := map[string]string{"function": "mfn", "version": "1", "alias": "live"}
		at := func(family string, labels map[string]string) float64 {
			v, ok := sample(fams, family, labels)
			if !ok {
				t.Errorf("no %s%v", family, labels)
			}
			return v
		}
		checks := []struct {
			name string
			got  float64
			ok   func(float64) bool
		}{
			{"invocations of $LATEST", at("kappa_invocations_total", latest), func(v float64) bool { return v == 4 }},
			{"invocations through the alias", at("kappa_invocations_total", live), func(v float64) bool { return v == 2 }},
			{"function errors", at("kappa_errors_total", map[string]string{"function": "mfn", "status": "error"}), func(v float64) bool { return v == 1 }},
			{"throttles", at("kappa_throttles_total", map[string]string{"function": "mfn",
				"reason": "ReservedFunctionConcurrentInvocationLimitExceeded"}), func(v float64) bool { return v == 1 }},
			{"duration histogram", at("kappa_duration_seconds", latest), func(v float64) bool { return v == 4 }},
			{"cold starts", at("kappa_cold_starts_total", latest), func(v float64) bool { return v == 1 }},
			{"init duration", at("kappa_init_duration_seconds", map[string]string{"function": "mfn", "version": "$LATEST"}), func(v float64) bool { return v == 1 }},
			{"concurrency at rest", at("kappa_concurrent_executions", latest), func(v float64) bool { return v == 0 }},
			{"provisioned allocated", at("kappa_provisioned_concurrency_allocated", map[string]string{"function": "mfn", "qualifier": "live"}), func(v float64) bool { return v == 1 }},
			{"provisioned utilization at rest", at("kappa_provisioned_concurrency_utilization", map[string]string{"qualifier": "live"}), func(v float64) bool { return v == 0 }},
			{"live environments", at("kappa_environments_live", nil), func(v float64) bool { return v >= 1 }},
			{"idle environments", at("kappa_environments_idle", nil), func(v float64) bool { return v >= 1 }},
			{"provisioned environments", at("kappa_environments_provisioned", nil), func(v float64) bool { return v == 1 }},
			{"memory committed", at("kappa_memory_committed_bytes", nil), func(v float64) bool {
				return v >= 128<<20 && math.Mod(v, 128<<20) == 0
			}},
			{"billed GB-seconds", at("kappa_billed_gb_seconds_total", map[string]string{"function": "mfn"}), func(v float64) bool { return v > 0 }},
			{"Go runtime", at("go_goroutines", nil), func(v float64) bool { return v > 0 }},
		}
		for _, c := range checks {
			if !c.ok(c.got) {
				t.Errorf("%s = %v", c.name, c.got)
			}
		}
		// Environments being torn down still hold their memory for a
		// moment: at rest, committed memory is 128 MB per live one.
		var mem, envs float64
		if !eventually(10*time.Second, func() bool {
			f := s.scrape(t)
			mem, _ = sample(f, "kappa_memory_committed_bytes", nil)
			envs, _ = sample(f, "kappa_environments_live", nil)
			return mem == envs*(128<<20)
		}) {
			t.Errorf("memory committed %v bytes with %v live environments of 128 MB", mem, envs)
		}
	})

	t.Run("billing and history APIs", func(t *testing.T) {
		code, body := get(t, s.URL("/kappa/billing"))
		var bill struct {
			Functions []struct {
				Function    string  `json:"function"`
				Invocations int     `json:"invocations"`
				BilledMs    int64   `json:"billedMs"`
				GBSeconds   float64 `json:"gbSeconds"`
			} `json:"functions"`
		}
		if code != 200 || json.Unmarshal([]byte(body), &bill) != nil || len(bill.Functions) != 1 {
			t.Fatalf("GET /kappa/billing: %d %s", code, body)
		}
		b := bill.Functions[0]
		if b.Function != "mfn" || b.Invocations != 6 || b.BilledMs < 6 || math.Abs(b.GBSeconds-float64(b.BilledMs)/1000*128/1024) > 1e-9 {
			t.Errorf("billing = %+v, want 6 invocations at 128 MB", b)
		}
		code, body = get(t, s.URL("/kappa/metrics/functions/mfn"))
		var series struct {
			Series []struct {
				Invocations int     `json:"invocations"`
				Errors      int     `json:"errors"`
				ColdStarts  int     `json:"coldStarts"`
				P50Ms       float64 `json:"p50Ms"`
			} `json:"series"`
		}
		if code != 200 || json.Unmarshal([]byte(body), &series) != nil || len(series.Series) != 60 {
			t.Fatalf("GET /kappa/metrics/functions/mfn: %d %.300s", code, body)
		}
		inv, errs := 0, 0
		for _, p := range series.Series {
			inv += p.Invocations
			errs += p.Errors
		}
		if inv != 6 || errs != 1 {
			t.Errorf("history counts %d invocations and %d errors, want 6 and 1", inv, errs)
		}
	})

	t.Run("spans", func(t *testing.T) {
		var spans []otlpSpan
		waitFor(t, 10*time.Second, "the traced invocation's spans", func() bool {
			spans = rcv.trace(traceID)
			return len(spans) >= 4
		})
		by := map[string]otlpSpan{}
		for _, sp := range spans {
			by[sp.Name] = sp
		}
		req, ok := by["Invoke mfn"]
		if !ok || req.ParentSpanID != "53995c3f42cd8ad8" || req.attr("faas.coldstart") != "true" || req.attr("faas.invocation_id") == "" {
			t.Fatalf("request span %+v", req)
		}
		for _, name := range []string{"queue", "init", "invoke"} {
			if sp, ok := by[name]; !ok || sp.ParentSpanID != req.SpanID || sp.Start > sp.End {
				t.Errorf("%s span %+v, want a child of the request span", name, sp)
			}
		}
		if !strings.Contains(runtimeTrace, "Parent="+by["invoke"].SpanID) {
			t.Errorf("the runtime's Parent is not the invoke span: %q vs %s", runtimeTrace, by["invoke"].SpanID)
		}
		// Invocations without a trace header are traced too, with a
		// generated trace id; the alias is an attribute.
		waitFor(t, 10*time.Second, "spans of the alias invocations", func() bool {
			rcv.mu.Lock()
			defer rcv.mu.Unlock()
			n := 0
			for _, sp := range rcv.spans {
				if sp.Name == "Invoke mfn" && sp.attr("kappa.alias") == "live" && sp.attr("faas.version") == "1" {
					n++
				}
			}
			return n == 2
		})
	})
}
