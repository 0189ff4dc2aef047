package lambdaapi

import (
	"strings"
	"testing"
)

func TestRecursionConfig(t *testing.T) {
	a, _, _ := newTestAPI(t)
	createF(t, a)
	const path = "/2024-08-31/functions/f/recursion-config"
	for _, tt := range []struct {
		name, method, path, body string
		status                   int
		typ, want                string
	}{
		{"default", "GET", path, "", 200, "", `{"RecursiveLoop":"Terminate"}`},
		{"allow", "PUT", path, `{"RecursiveLoop":"Allow"}`, 200, "", `{"RecursiveLoop":"Allow"}`},
		{"read back", "GET", path, "", 200, "", `{"RecursiveLoop":"Allow"}`},
		{"by ARN", "GET", "/2024-08-31/functions/arn:aws:lambda:us-east-1:000000000000:function:f/recursion-config", "", 200, "", `"Allow"`},
		{"outside the enum", "PUT", path, `{"RecursiveLoop":"Sometimes"}`, 400, "ValidationException", "[Allow, Terminate]"},
		{"lower case", "PUT", path, `{"RecursiveLoop":"allow"}`, 400, "ValidationException", ""},
		{"missing", "PUT", path, `{}`, 400, "ValidationException", "Value null at 'recursiveLoop'"},
		{"not a string", "PUT", path, `{"RecursiveLoop":1}`, 400, "InvalidRequestContentException", ""},
		{"malformed", "PUT", path, `{"RecursiveLoop":`, 400, "InvalidRequestContentException", ""},
		{"hostile", "PUT", path, `{"RecursiveLoop":"\u0000<script>"}`, 400, "ValidationException", ""},
		{"unchanged by refusals", "GET", path, "", 200, "", `{"RecursiveLoop":"Allow"}`},
		{"qualified", "PUT", "/2024-08-31/functions/f:1/recursion-config", `{"RecursiveLoop":"Allow"}`, 400, "InvalidParameterValueException", ""},
		{"unknown function", "GET", "/2024-08-31/functions/nope/recursion-config", "", 404, "ResourceNotFoundException", ""},
		{"unknown function put", "PUT", "/2024-08-31/functions/nope/recursion-config", `{"RecursiveLoop":"Allow"}`, 404, "ResourceNotFoundException", ""},
		{"terminate", "PUT", path, `{"RecursiveLoop":"Terminate"}`, 200, "", `{"RecursiveLoop":"Terminate"}`},
	} {
		rec := do(t, a, tt.method, tt.path, tt.body)
		if rec.Code != tt.status || rec.Header().Get("X-Amzn-ErrorType") != tt.typ || !strings.Contains(rec.Body.String(), tt.want) {
			t.Errorf("%s: %d %q %s; want %d %q %q", tt.name, rec.Code, rec.Header().Get("X-Amzn-ErrorType"), rec.Body, tt.status, tt.typ, tt.want)
		}
	}
}

// FuzzRecursionAndMappingBodies sends arbitrary bodies to
// PutFunctionRecursionConfig and CreateEventSourceMapping (with tags): each
// answer is a success or an AWS-shaped 4xx, never a server error, and the
// stored setting is always one Lambda knows.
func FuzzRecursionAndMappingBodies(f *testing.F) {
	f.Add([]byte(`{"RecursiveLoop":"Allow"}`), false)
	f.Add([]byte(`{"RecursiveLoop":null}`), false)
	f.Add([]byte(`{"FunctionName":"f","EventSourceArn":"arn:aws:sqs:us-east-1:000000000000:q","Tags":{"a":"b"}}`), true)
	f.Add([]byte(`{"FunctionName":"f","Tags":{"aws:x":"\u0000"},"ScalingConfig":{"MaximumConcurrency":-1}}`), true)
	f.Fuzz(func(t *testing.T, body []byte, mapping bool) {
		a, _, _ := newTestAPI(t)
		a.opts.EventSources = &fakeEventSources{tags: map[string]map[string]string{}}
		createF(t, a)
		path := "/2024-08-31/functions/f/recursion-config"
		method := "PUT"
		if mapping {
			path, method = "/2015-03-31/event-source-mappings", "POST"
		}
		rec := do(t, a, method, path, string(body))
		if rec.Code >= 500 || rec.Code >= 400 && rec.Header().Get("X-Amzn-ErrorType") == "" {
			t.Fatalf("%s %s %q = %d %s", method, path, body, rec.Code, rec.Body)
		}
		got := strings.TrimSpace(do(t, a, "GET", "/2024-08-31/functions/f/recursion-config", "").Body.String())
		if got != `{"RecursiveLoop":"Allow"}` && got != `{"RecursiveLoop":"Terminate"}` {
			t.Fatalf("after %q: %s", body, got)
		}
	})
}
