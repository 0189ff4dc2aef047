package lambdaapi

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/kappa-run/kappa/internal/apierr"
	"github.com/kappa-run/kappa/internal/function"
	"github.com/kappa-run/kappa/internal/image"
	"github.com/kappa-run/kappa/internal/invoker"
	"github.com/kappa-run/kappa/internal/store/memstore"
)

// fakeInvoker echoes the payload; it stands in for environments in these
// unit tests of request handling (the e2e tests run real ones).
// It holds no state: asynchronous invocations call it from several workers.
type fakeInvoker struct{}

func (f *fakeInvoker) Invoke(_ context.Context, req invoker.Request) (*invoker.Response, error) {
	return &invoker.Response{Payload: req.Payload, ContentType: "application/json", ExecutedVersion: "$LATEST", LogTail: []byte("log")}, nil
}

// pendingImages never finishes a pull, so functions stay Pending.
type pendingImages struct{}

func (pendingImages) Pull(ctx context.Context, _, _ string) (*image.Image, error) {
	<-ctx.Done()
	return nil, ctx.Err()
}

func (pendingImages) CheckPlatform(context.Context, string, string) error { return nil }

func newTestAPI(t testing.TB) (*API, *fakeInvoker, *function.Service) {
	t.Helper()
	b, _ := memstore.New().Bucket(context.Background(), "f")
	svc := function.NewService(function.Options{Bucket: b, Images: pendingImages{}, Region: "us-east-1", Account: "000000000000"})
	t.Cleanup(svc.Close)
	inv := &fakeInvoker{}
	return New(Options{Functions: svc, Invoker: inv, Region: "us-east-1", Account: "000000000000", MaxConcurrency: 10}), inv, svc
}

func do(t *testing.T, h http.Handler, method, path, body string, hdr ...string) *httptest.ResponseRecorder {
	t.Helper()
	req := httptest.NewRequest(method, path, strings.NewReader(body))
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	return rec
}

func TestErrorRenderer(t *testing.T) {
	tests := []struct {
		err      error
		status   int
		typ      string
		kindBody string
	}{
		{apierr.New(apierr.NotFound, "Function not found: x"), 404, "ResourceNotFoundException", "User"},
		{apierr.New(apierr.Validation, "1 validation error detected"), 400, "ValidationException", "User"},
		{apierr.New(apierr.Conflict, "exists"), 409, "ResourceConflictException", "User"},
		{apierr.New(apierr.RequestTooLarge, "big"), 413, "RequestTooLargeException", "User"},
		{apierr.New(apierr.PreconditionFailed, "rev"), 412, "PreconditionFailedException", "User"},
		{&apierr.Error{Kind: apierr.TooManyRequests, Message: "Rate Exceeded.", Reason: "ConcurrentInvocationLimitExceeded", RetryAfterSeconds: 1}, 429, "TooManyRequestsException", "User"},
		{errors.New("secret internal detail"), 500, "ServiceException", "Service"},
	}
	for _, tt := range tests {
		t.Run(tt.typ, func(t *testing.T) {
			rec := httptest.NewRecorder()
			writeError(rec, testLogger(), tt.err)
			if rec.Code != tt.status || rec.Header().Get("X-Amzn-ErrorType") != tt.typ {
				t.Fatalf("got %d %s, want %d %s", rec.Code, rec.Header().Get("X-Amzn-ErrorType"), tt.status, tt.typ)
			}
			var body map[string]string
			if err := json.Unmarshal(rec.Body.Bytes(), &body); err != nil {
				t.Fatal(err)
			}
			if body["Type"] != tt.kindBody {
				t.Errorf("Type = %q", body["Type"])
			}
			if strings.Contains(rec.Body.String(), "secret internal detail") {
				t.Errorf("internal cause leaked: %s", rec.Body)
			}
			if tt.status == 429 && (rec.Header().Get("Retry-After") != "1" || body["Reason"] != "ConcurrentInvocationLimitExceeded") {
				t.Errorf("429 lacks Retry-After or Reason: %v %s", rec.Header(), rec.Body)
			}
		})
	}
}

func TestRequestValidation(t *testing.T) {
	a, _, _ := newTestAPI(t)
	create := `{"FunctionName":"f","Role":"arn:aws:iam::000000000000:role/r","PackageType":"Image","Code":{"ImageUri":"localhost:1/x:1"}}`
	tests := []struct {
		name, method, path, body string
		hdr                      []string
		status                   int
		typ                      string
	}{
		{"malformed json", "POST", "/2015-03-31/functions", `{"FunctionName":`, nil, 400, "InvalidRequestContentException"},
		{"wrong type", "POST", "/2015-03-31/functions", `{"MemorySize":"big"}`, nil, 400, "InvalidRequestContentException"},
		{"memory range", "POST", "/2015-03-31/functions", strings.Replace(create, `"Role"`, `"MemorySize":10241,"Role"`, 1), nil, 400, "ValidationException"},
		{"sns dead-letter target", "POST", "/2015-03-31/functions", withMember(create, `"DeadLetterConfig":{"TargetArn":"arn:aws:sns:us-east-1:000000000000:t"}`), nil, 400, "InvalidParameterValueException"},
		{"dead-letter queue elsewhere", "POST", "/2015-03-31/functions", withMember(create, `"DeadLetterConfig":{"TargetArn":"arn:aws:sqs:eu-west-1:000000000000:dead"}`), nil, 400, "InvalidParameterValueException"},
		{"function as dead-letter target", "POST", "/2015-03-31/functions", withMember(create, `"DeadLetterConfig":{"TargetArn":"arn:aws:lambda:us-east-1:000000000000:function:g"}`), nil, 400, "InvalidParameterValueException"},
		{"vpc", "POST", "/2015-03-31/functions", withMember(create, `"VpcConfig":{"SubnetIds":["subnet-1"],"SecurityGroupIds":["sg-1"]}`), nil, 400, "InvalidParameterValueException"},
		{"kms key", "POST", "/2015-03-31/functions", withMember(create, `"KMSKeyArn":"arn:aws:kms:us-east-1:000000000000:key/k"`), nil, 400, "InvalidParameterValueException"},
		{"efs", "POST", "/2015-03-31/functions", withMember(create, `"FileSystemConfigs":[{"Arn":"arn:aws:elasticfilesystem:us-east-1:000000000000:access-point/fsap-1","LocalMountPath":"/mnt/x"}]`), nil, 400, "InvalidParameterValueException"},
		{"create ok", "POST", "/2015-03-31/functions", create, nil, 201, ""},
		// Empty VpcConfig and KMSKeyArn are what Terraform sends for none.
		{"empty vpc", "POST", "/2015-03-31/functions", strings.Replace(withMember(create, `"VpcConfig":{"SubnetIds":[],"SecurityGroupIds":[]},"KMSKeyArn":""`), `"f"`, `"g"`, 1), nil, 201, ""},
		{"update vpc", "PUT", "/2015-03-31/functions/f/configuration", `{"VpcConfig":{"SubnetIds":["subnet-1"]}}`, nil, 400, "InvalidParameterValueException"},
		{"update sns dead-letter target", "PUT", "/2015-03-31/functions/f/configuration", `{"DeadLetterConfig":{"TargetArn":"arn:aws:sns:us-east-1:000000000000:t"}}`, nil, 400, "InvalidParameterValueException"},
		{"list bad FunctionVersion", "GET", "/2015-03-31/functions/?FunctionVersion=SOME", "", nil, 400, "ValidationException"},
		{"delete provisioned without qualifier", "DELETE", "/2019-09-30/functions/f/provisioned-concurrency", "", nil, 400, "ValidationException"},
		{"delete alias bad name", "DELETE", "/2015-03-31/functions/f/aliases/a%24b", "", nil, 400, "ValidationException"},
		{"duplicate", "POST", "/2015-03-31/functions", create, nil, 409, "ResourceConflictException"},
		{"unknown function", "GET", "/2015-03-31/functions/nope", "", nil, 404, "ResourceNotFoundException"},
		{"bad name", "GET", "/2015-03-31/functions/bad%20name", "", nil, 400, "ValidationException"},
		{"unknown version", "GET", "/2015-03-31/functions/f?Qualifier=7", "", nil, 404, "ResourceNotFoundException"},
		{"bad qualifier", "GET", "/2015-03-31/functions/f?Qualifier=a%2Fb", "", nil, 400, "ValidationException"},
		{"list bad MaxItems", "GET", "/2015-03-31/functions/?MaxItems=0", "", nil, 400, "ValidationException"},
		{"invoke pending", "POST", "/2015-03-31/functions/f/invocations", `{}`, nil, 409, "ResourceConflictException"},
		{"invoke bad type", "POST", "/2015-03-31/functions/f/invocations", `{}`, []string{"X-Amz-Invocation-Type", "Sometimes"}, 400, "ValidationException"},
		{"invoke bad log type", "POST", "/2015-03-31/functions/f/invocations", `{}`, []string{"X-Amz-Log-Type", "All"}, 400, "ValidationException"},
		{"invoke not json", "POST", "/2015-03-31/functions/f/invocations", `not json`, nil, 400, "InvalidRequestContentException"},
		{"invoke bad client context", "POST", "/2015-03-31/functions/f/invocations", `{}`, []string{"X-Amz-Client-Context", "!!"}, 400, "InvalidParameterValueException"},
		{"invoke too large", "POST", "/2015-03-31/functions/f/invocations", `"` + strings.Repeat("x", MaxSyncPayload) + `"`, nil, 413, "RequestTooLargeException"},
		{"unknown operation", "GET", "/2099-01-01/things", "", nil, 404, "UnknownOperationException"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rec := do(t, a, tt.method, tt.path, tt.body, tt.hdr...)
			if rec.Code != tt.status || rec.Header().Get("X-Amzn-ErrorType") != tt.typ {
				t.Fatalf("got %d %q %s; want %d %q", rec.Code, rec.Header().Get("X-Amzn-ErrorType"), rec.Body, tt.status, tt.typ)
			}
			if rec.Header().Get("X-Amzn-Requestid") == "" {
				t.Error("no x-amzn-RequestId")
			}
		})
	}
}

// withMember adds a member to a JSON object.
func withMember(obj, member string) string {
	return strings.Replace(obj, "{", "{"+member+",", 1)
}

func TestListPagination(t *testing.T) {
	a, _, _ := newTestAPI(t)
	for _, n := range []string{"c", "a", "e", "b", "d"} {
		body := `{"FunctionName":"` + n + `","Role":"arn:aws:iam::000000000000:role/r","PackageType":"Image","Code":{"ImageUri":"localhost:1/x:1"}}`
		if rec := do(t, a, "POST", "/2015-03-31/functions", body); rec.Code != 201 {
			t.Fatalf("create %s: %d %s", n, rec.Code, rec.Body)
		}
	}
	var names []string
	marker := ""
	for pages := 0; pages < 10; pages++ {
		rec := do(t, a, "GET", "/2015-03-31/functions/?MaxItems=2&Marker="+marker, "")
		var out listFunctionsResponse
		json.Unmarshal(rec.Body.Bytes(), &out)
		for _, f := range out.Functions {
			names = append(names, f.FunctionName)
		}
		if out.NextMarker == nil {
			break
		}
		marker = *out.NextMarker
	}
	if strings.Join(names, ",") != "a,b,c,d,e" {
		t.Errorf("paged names = %v", names)
	}
}

func FuzzInvokeRequest(f *testing.F) {
	f.Add("f", "RequestResponse", "Tail", "", []byte(`{"a":1}`))
	f.Add("f:$LATEST", "DryRun", "None", "e30=", []byte(``))
	f.Add("arn:aws:lambda:us-east-1:000000000000:function:f", "Event", "", "!!", []byte(`[1,2`))
	f.Add("%00", "x", "y", "z", []byte{0xff, 0xfe})
	a, _, _ := newTestAPI(f)
	f.Fuzz(func(t *testing.T, name, typ, logType, cc string, body []byte) {
		req := httptest.NewRequest("POST", "/2015-03-31/functions/f/invocations", bytes.NewReader(body))
		req.SetPathValue("name", name)
		req.Header.Set("X-Amz-Invocation-Type", typ)
		req.Header.Set("X-Amz-Log-Type", logType)
		req.Header.Set("X-Amz-Client-Context", cc)
		ir, gotType, err := a.parseInvoke(req)
		if err != nil {
			if apierr.As(err) == nil {
				t.Fatalf("parseInvoke returned a non-API error: %v", err)
			}
			return
		}
		if gotType != "RequestResponse" && gotType != "Event" && gotType != "DryRun" {
			t.Fatalf("accepted invocation type %q", gotType)
		}
		if len(ir.payload) > MaxSyncPayload || (len(ir.payload) > 0 && !json.Valid(ir.payload)) {
			t.Fatalf("accepted bad payload")
		}
	})
}

// readyImages pulls every image at once, so functions become Active.
type readyImages struct{}

func (readyImages) Pull(context.Context, string, string) (*image.Image, error) {
	return &image.Image{Digest: "sha256:" + strings.Repeat("a", 64), Config: image.Config{Entrypoint: []string{"/bootstrap"}}}, nil
}

func (readyImages) CheckPlatform(context.Context, string, string) error { return nil }

// TestListFunctionsAllVersions: FunctionVersion=ALL lists each function's
// $LATEST and then its published versions, paged with the marker.
func TestListFunctionsAllVersions(t *testing.T) {
	b, _ := memstore.New().Bucket(context.Background(), "f")
	svc := function.NewService(function.Options{Bucket: b, Images: readyImages{}, Region: "us-east-1", Account: "000000000000"})
	t.Cleanup(svc.Close)
	a := New(Options{Functions: svc, Invoker: &fakeInvoker{}, Region: "us-east-1", Account: "000000000000", MaxConcurrency: 10})
	for _, name := range []string{"b", "a-x", "a"} {
		body := `{"FunctionName":"` + name + `","Role":"arn:aws:iam::000000000000:role/r","PackageType":"Image","Code":{"ImageUri":"localhost:1/x:1"},"Publish":true}`
		if rec := do(t, a, "POST", "/2015-03-31/functions", body); rec.Code != 201 {
			t.Fatalf("create %s: %d %s", name, rec.Code, rec.Body)
		}
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		vs, _ := svc.Versions(context.Background(), "a")
		vb, _ := svc.Versions(context.Background(), "b")
		vx, _ := svc.Versions(context.Background(), "a-x")
		if len(vs) == 2 && len(vb) == 2 && len(vx) == 2 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("version 1 of every function was not published in 10s")
		}
		time.Sleep(5 * time.Millisecond)
	}
	list := func(query string) []string {
		var got []string
		marker := ""
		for range 10 {
			path := "/2015-03-31/functions/?MaxItems=2" + query
			if marker != "" {
				path += "&Marker=" + url.QueryEscape(marker)
			}
			rec := do(t, a, "GET", path, "")
			var out struct {
				Functions  []struct{ FunctionName, Version string }
				NextMarker *string
			}
			if rec.Code != 200 || json.Unmarshal(rec.Body.Bytes(), &out) != nil {
				t.Fatalf("list %s: %d %s", path, rec.Code, rec.Body)
			}
			for _, f := range out.Functions {
				got = append(got, f.FunctionName+":"+f.Version)
			}
			if out.NextMarker == nil {
				return got
			}
			marker = *out.NextMarker
		}
		t.Fatalf("list %s: too many pages: %v", query, got)
		return nil
	}
	if got, want := list(""), []string{"a:$LATEST", "a-x:$LATEST", "b:$LATEST"}; !slices.Equal(got, want) {
		t.Errorf("ListFunctions = %v, want %v", got, want)
	}
	if got, want := list("&FunctionVersion=ALL"), []string{"a:$LATEST", "a:1", "a-x:$LATEST", "a-x:1", "b:$LATEST", "b:1"}; !slices.Equal(got, want) {
		t.Errorf("ListFunctions ALL = %v, want %v", got, want)
	}
}
