package lambdaapi

import (
	"context"
	"encoding/json"
	"strings"
	"testing"

	"github.com/kappa-run/kappa/internal/apierr"
	"github.com/kappa-run/kappa/internal/eventsource"
)

// fakeEventSources records what the API hands it; the eventsource package
// tests the mappings themselves, the e2e tests the whole path.
type fakeEventSources struct{ last eventsource.Input }

func (f *fakeEventSources) Create(_ context.Context, in eventsource.Input) (eventsource.Mapping, error) {
	f.last = in
	if len(in.Unsupported) > 0 {
		return eventsource.Mapping{}, apierr.New(apierr.InvalidParameter, "%s does not apply", in.Unsupported[0])
	}
	return eventsource.Mapping{UUID: "11111111-1111-1111-1111-111111111111", Function: "f", Queue: "q", BatchSize: 10,
		State: eventsource.StateCreating, ReportFailures: true}, nil
}

func (f *fakeEventSources) Get(_ context.Context, id string) (eventsource.Mapping, error) {
	return eventsource.Mapping{}, apierr.New(apierr.NotFound, "The resource you requested does not exist.")
}

func (f *fakeEventSources) Update(ctx context.Context, id string, in eventsource.Input) (eventsource.Mapping, error) {
	f.last = in
	return f.Get(ctx, id)
}

func (f *fakeEventSources) Delete(ctx context.Context, id string) (eventsource.Mapping, error) {
	return f.Get(ctx, id)
}

func (f *fakeEventSources) List(context.Context, string, string) ([]eventsource.Mapping, error) {
	return nil, nil
}

func TestEventSourceMappingRequests(t *testing.T) {
	a, _, _ := newTestAPI(t)
	es := &fakeEventSources{}
	a.opts.EventSources = es
	const base = "/2015-03-31/event-source-mappings"
	rec := do(t, a, "POST", base, `{"FunctionName":"f","EventSourceArn":"arn:aws:sqs:us-east-1:000000000000:q","BatchSize":5,"FunctionResponseTypes":["ReportBatchItemFailures"]}`)
	var out esmWire
	if rec.Code != 202 || json.Unmarshal(rec.Body.Bytes(), &out) != nil {
		t.Fatalf("create: %d %s", rec.Code, rec.Body)
	}
	if out.State != "Creating" || out.EventSourceArn != "arn:aws:sqs:us-east-1:000000000000:q" ||
		out.FunctionArn != "arn:aws:lambda:us-east-1:000000000000:function:f" ||
		out.EventSourceMappingArn != "arn:aws:lambda:us-east-1:000000000000:event-source-mapping:"+out.UUID ||
		len(out.FunctionResponseTypes) != 1 || out.StateTransitionReason != "USER_INITIATED" {
		t.Errorf("create answer %+v", out)
	}
	if in := es.last; *in.BatchSize != 5 || *in.Function != "f" || len(*in.FunctionResponseTypes) != 1 || in.Enabled != nil {
		t.Errorf("input %+v", in)
	}
	for _, tt := range []struct {
		name, method, path, body string
		status                   int
		typ                      string
	}{
		{"malformed", "POST", base, `{"BatchSize":`, 400, "InvalidRequestContentException"},
		{"wrong type", "POST", base, `{"BatchSize":"ten"}`, 400, "InvalidRequestContentException"},
		{"stream member", "POST", base, `{"FunctionName":"f","StartingPosition":"LATEST"}`, 400, "InvalidParameterValueException"},
		{"filter", "POST", base, `{"FunctionName":"f","FilterCriteria":{"Filters":[{"Pattern":"{}"}]}}`, 400, "InvalidParameterValueException"},
		{"unknown uuid", "GET", base + "/00000000-0000-0000-0000-000000000000", "", 404, "ResourceNotFoundException"},
		{"hostile uuid", "GET", base + "/..%2F..%2Fx", "", 404, "ResourceNotFoundException"},
		{"update unknown", "PUT", base + "/00000000-0000-0000-0000-000000000000", `{"Enabled":false}`, 404, "ResourceNotFoundException"},
		{"delete unknown", "DELETE", base + "/x", "", 404, "ResourceNotFoundException"},
		{"list bad MaxItems", "GET", base + "?MaxItems=0", "", 400, "ValidationException"},
		{"list", "GET", base + "/", "", 200, ""},
	} {
		rec := do(t, a, tt.method, tt.path, tt.body)
		if rec.Code != tt.status || rec.Header().Get("X-Amzn-ErrorType") != tt.typ {
			t.Errorf("%s: %d %q %s; want %d %q", tt.name, rec.Code, rec.Header().Get("X-Amzn-ErrorType"), rec.Body, tt.status, tt.typ)
		}
	}
	// Empty members of other kinds of source, as Terraform may send them,
	// are not refused.
	do(t, a, "POST", base, `{"FunctionName":"f","FilterCriteria":{"Filters":[]},"DestinationConfig":{"OnFailure":{}},"BisectBatchOnFunctionError":false}`)
	if len(es.last.Unsupported) != 0 {
		t.Errorf("empty members refused: %v", es.last.Unsupported)
	}
	do(t, a, "POST", base, `{"FunctionName":"f","ScalingConfig":{"MaximumConcurrency":7}}`)
	if es.last.MaxConcurrency == nil || *es.last.MaxConcurrency != 7 {
		t.Errorf("ScalingConfig not passed on: %v", es.last.MaxConcurrency)
	}
	if !strings.Contains(do(t, a, "GET", base, "").Body.String(), `"EventSourceMappings":[]`) {
		t.Error("empty list is not []")
	}
}
