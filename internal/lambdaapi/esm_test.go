package lambdaapi

import (
	"context"
	"encoding/json"
	"maps"
	"net/url"
	"strings"
	"testing"

	"github.com/kappa-run/kappa/internal/apierr"
	"github.com/kappa-run/kappa/internal/eventsource"
)

// fakeEventSources records what the API hands it; the eventsource package
// tests the mappings themselves, the e2e tests the whole path.
type fakeEventSources struct {
	last eventsource.Input
	tags map[string]map[string]string // by UUID
}

func (f *fakeEventSources) Tags(_ context.Context, id string) (map[string]string, error) {
	t, ok := f.tags[id]
	if !ok {
		return nil, apierr.New(apierr.NotFound, "no mapping %s", id)
	}
	return t, nil
}

func (f *fakeEventSources) TagResource(_ context.Context, id string, tags map[string]string) error {
	if _, ok := f.tags[id]; !ok {
		return apierr.New(apierr.NotFound, "no mapping %s", id)
	}
	maps.Copy(f.tags[id], tags)
	return nil
}

func (f *fakeEventSources) UntagResource(_ context.Context, id string, keys []string) error {
	if _, ok := f.tags[id]; !ok {
		return apierr.New(apierr.NotFound, "no mapping %s", id)
	}
	for _, k := range keys {
		delete(f.tags[id], k)
	}
	return nil
}

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

// TestEventSourceMappingTags: tags on CreateEventSourceMapping go to the
// mapping, checked as a function's; TagResource, UntagResource and ListTags
// on a mapping's ARN go to the mappings, not to the functions.
func TestEventSourceMappingTags(t *testing.T) {
	a, _, _ := newTestAPI(t)
	createF(t, a)
	const id = "11111111-1111-1111-1111-111111111111"
	es := &fakeEventSources{tags: map[string]map[string]string{id: {}}}
	a.opts.EventSources = es
	const base = "/2015-03-31/event-source-mappings"
	do(t, a, "POST", base, `{"FunctionName":"f","EventSourceArn":"arn:aws:sqs:us-east-1:000000000000:q","Tags":{"team":"a"}}`)
	if es.last.Tags["team"] != "a" {
		t.Errorf("create passed tags %v", es.last.Tags)
	}
	es.last = eventsource.Input{}
	do(t, a, "PUT", base+"/"+id, `{"Tags":{"team":"b"}}`)
	if es.last.Tags != nil {
		t.Errorf("update passed tags %v; Tags is create-only", es.last.Tags)
	}
	arn := "arn:aws:lambda:us-east-1:000000000000:event-source-mapping:" + id
	path := "/2017-03-31/tags/" + url.PathEscape(arn)
	for _, tt := range []struct {
		name, method, path, body string
		status                   int
		typ, want                string
	}{
		{"create with a reserved key", "POST", base, `{"FunctionName":"f","EventSourceArn":"arn:aws:sqs:us-east-1:000000000000:q","Tags":{"aws:x":"1"}}`, 400, "InvalidParameterValueException", ""},
		{"create with a control character", "POST", base, `{"FunctionName":"f","EventSourceArn":"arn:aws:sqs:us-east-1:000000000000:q","Tags":{"k":"\u0007"}}`, 400, "ValidationException", ""},
		{"tag", "POST", path, `{"Tags":{"env":"dev"}}`, 204, "", ""},
		{"list", "GET", path, "", 200, "", `{"Tags":{"env":"dev"}}`},
		{"unescaped", "GET", "/2017-03-31/tags/" + arn, "", 200, "", `"env":"dev"`},
		{"untag", "DELETE", path + "?tagKeys=env", "", 204, "", ""},
		{"list after untag", "GET", path, "", 200, "", `{"Tags":{}}`},
		{"function tags untouched", "GET", "/2017-03-31/tags/" + url.PathEscape(fArn), "", 200, "", `{"Tags":{"team":"a"}}`},
		{"unknown mapping", "GET", path[:len(path)-1] + "2", "", 404, "ResourceNotFoundException", ""},
		{"control character in the uuid", "GET", "/2017-03-31/tags/" + url.PathEscape("arn:aws:lambda:us-east-1:000000000000:event-source-mapping:"+id+"\n"), "", 404, "ResourceNotFoundException", ""},
		{"hostile uuid", "POST", "/2017-03-31/tags/" + url.PathEscape("arn:aws:lambda:us-east-1:000000000000:event-source-mapping:../../x"), `{"Tags":{"a":"b"}}`, 404, "ResourceNotFoundException", ""},
		{"other region", "GET", "/2017-03-31/tags/" + url.PathEscape("arn:aws:lambda:eu-west-1:000000000000:event-source-mapping:"+id), "", 404, "ResourceNotFoundException", ""},
		{"other account", "GET", "/2017-03-31/tags/" + url.PathEscape("arn:aws:lambda:us-east-1:111111111111:event-source-mapping:"+id), "", 404, "ResourceNotFoundException", ""},
	} {
		rec := do(t, a, tt.method, tt.path, tt.body)
		if rec.Code != tt.status || rec.Header().Get("X-Amzn-ErrorType") != tt.typ || !strings.Contains(rec.Body.String(), tt.want) {
			t.Errorf("%s: %d %q %s; want %d %q %q", tt.name, rec.Code, rec.Header().Get("X-Amzn-ErrorType"), rec.Body, tt.status, tt.typ, tt.want)
		}
	}
}
