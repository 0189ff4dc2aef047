package funcurl

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"

	"github.com/kappa-run/kappa/internal/apierr"
	"github.com/kappa-run/kappa/internal/function"
	"github.com/kappa-run/kappa/internal/invoker"
	"github.com/kappa-run/kappa/internal/store/memstore"
)

type fakeFns struct{}

func (fakeFns) Config(_ context.Context, ref function.Ref) (function.Config, error) {
	if ref.Name != "f" || (ref.Qualifier != "" && ref.Qualifier != "$LATEST" && ref.Qualifier != "live") {
		return function.Config{}, apierr.New(apierr.NotFound, "Function not found: %s", ref.Name)
	}
	return function.Config{Name: "f", Version: "$LATEST", State: function.StateActive}, nil
}
func (f fakeFns) Get(ctx context.Context, name string) (*function.Function, error) {
	c, err := f.Config(ctx, function.Ref{Name: name})
	return &function.Function{Latest: c}, err
}
func (f fakeFns) Resolve(ctx context.Context, ref function.Ref) (function.Target, error) {
	c, err := f.Config(ctx, ref)
	return function.Target{Config: c}, err
}
func (fakeFns) ARN(name, q string) string { return function.ARN("us-east-1", "000000000000", name, q) }
func (fakeFns) UnreservedCached() int     { return 100 }

// echoInvoker returns the event it got, or what respond makes of it.
type echoInvoker struct {
	last    Event
	respond func(ev Event) (*invoker.Response, error)
}

func (e *echoInvoker) Invoke(_ context.Context, req invoker.Request) (*invoker.Response, error) {
	e.last = Event{}
	json.Unmarshal(req.Payload, &e.last)
	if e.respond != nil {
		return e.respond(e.last)
	}
	return &invoker.Response{Payload: req.Payload, ExecutedVersion: "$LATEST"}, nil
}

func newTestHandler(t *testing.T) (*Handler, *Configs, *echoInvoker) {
	t.Helper()
	b, _ := memstore.New().Bucket(context.Background(), "urls")
	cfgs := NewConfigs(b, fakeFns{}, func(id string) string { return "http://" + id + ".lambda-url.us-east-1.localhost:9070/" }, nil)
	inv := &echoInvoker{}
	h := NewHandler(HandlerOptions{Configs: cfgs, Functions: fakeFns{}, Invoker: inv, Region: "us-east-1", Account: "000000000000",
		Credentials: map[string]string{testCreds.AccessKeyID: testCreds.SecretAccessKey}})
	return h, cfgs, inv
}

func strp(s string) *string { return &s }

func TestConfigs(t *testing.T) {
	ctx := context.Background()
	_, cfgs, _ := newTestHandler(t)
	if _, err := cfgs.Create(ctx, "f", "", Input{}); !errorsIs(err, apierr.Validation) || !strings.Contains(err.Error(), "Value null at 'authType'") {
		t.Errorf("Create without AuthType: %v", err)
	}
	c, err := cfgs.Create(ctx, "f", "", Input{AuthType: strp(AuthNone)})
	if err != nil || len(c.ID) != 32 || c.InvokeMode != ModeBuffered || c.Qualifier != "$LATEST" {
		t.Fatalf("Create = %+v, %v", c, err)
	}
	if _, err := cfgs.Create(ctx, "f", "", Input{AuthType: strp(AuthNone)}); !errorsIs(err, apierr.Conflict) {
		t.Errorf("second Create: %v, want Conflict", err)
	}
	if _, err := cfgs.Create(ctx, "f", "live", Input{AuthType: strp(AuthIAM), InvokeMode: strp(ModeStream)}); err != nil {
		t.Fatal(err)
	}
	if _, err := cfgs.Create(ctx, "f", "1", Input{AuthType: strp(AuthNone)}); !errorsIs(err, apierr.Validation) {
		t.Errorf("Create on a version: %v, want ValidationException", err)
	}
	if _, err := cfgs.Create(ctx, "g", "", Input{AuthType: strp(AuthNone)}); !errorsIs(err, apierr.NotFound) {
		t.Errorf("Create on a missing function: %v", err)
	}
	u, err := cfgs.Update(ctx, "f", "", Input{Cors: &Cors{AllowOrigins: []string{"*"}}})
	if err != nil || u.AuthType != AuthNone || u.Cors == nil || !u.LastModifiedTime.After(c.CreationTime.Add(-time.Second)) {
		t.Fatalf("Update = %+v, %v", u, err)
	}
	got, err := cfgs.Lookup(ctx, c.ID)
	if err != nil || got.Cors == nil || got.FunctionName != "f" {
		t.Fatalf("Lookup = %+v, %v", got, err)
	}
	list, err := cfgs.List(ctx, "f")
	if err != nil || len(list) != 2 || list[0].Qualifier != "$LATEST" || list[1].Qualifier != "live" {
		t.Fatalf("List = %v, %v", list, err)
	}
	if err := cfgs.Delete(ctx, "f", ""); err != nil {
		t.Fatal(err)
	}
	if _, err := cfgs.Lookup(ctx, c.ID); !errorsIs(err, apierr.NotFound) {
		t.Errorf("Lookup after Delete: %v", err)
	}
	if _, err := cfgs.Get(ctx, "f", ""); !errorsIs(err, apierr.NotFound) {
		t.Errorf("Get after Delete: %v", err)
	}
}

func errorsIs(err error, k apierr.Kind) bool { e := apierr.As(err); return e != nil && e.Kind == k }

func TestInputValidate(t *testing.T) {
	long := strings.Repeat("h", 1025)
	tests := []struct {
		name string
		in   Input
		want string
	}{
		{"ok", Input{AuthType: strp("NONE"), InvokeMode: strp("RESPONSE_STREAM"), Cors: &Cors{AllowMethods: []string{"*"}, MaxAge: 86400}}, ""},
		{"bad auth", Input{AuthType: strp("IAM")}, "Member must satisfy enum value set: [NONE, AWS_IAM]"},
		{"bad mode", Input{AuthType: strp("NONE"), InvokeMode: strp("STREAM")}, "[BUFFERED, RESPONSE_STREAM]"},
		{"max age", Input{AuthType: strp("NONE"), Cors: &Cors{MaxAge: 86401}}, "cors.maxAge"},
		{"too many methods", Input{AuthType: strp("NONE"), Cors: &Cors{AllowMethods: []string{"a", "b", "c", "d", "e", "f", "g"}}}, "cors.allowMethods"},
		{"long method", Input{AuthType: strp("NONE"), Cors: &Cors{AllowMethods: []string{"OPTIONS"}}}, "cors.allowMethods.member"},
		{"long header", Input{AuthType: strp("NONE"), Cors: &Cors{AllowHeaders: []string{long}}}, "cors.allowHeaders.member"},
		{"empty origin", Input{AuthType: strp("NONE"), Cors: &Cors{AllowOrigins: []string{""}}}, "cors.allowOrigins.member"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.in.Validate(true)
			if tt.want == "" && err != nil || tt.want != "" && (err == nil || !strings.Contains(err.Error(), tt.want)) {
				t.Fatalf("Validate = %v, want %q", err, tt.want)
			}
		})
	}
}

func TestMatch(t *testing.T) {
	tests := []struct {
		host, path string
		id, raw    string
		ok         bool
	}{
		{"abc.lambda-url.us-east-1.localhost:9070", "/x/y", "abc", "/x/y", true},
		{"ABC.lambda-url.anything", "/", "abc", "/", true},
		{"127.0.0.1:9070", "/lambda-url/abc/x%20y", "abc", "/x%20y", true},
		{"127.0.0.1:9070", "/lambda-url/abc", "abc", "/", true},
		{"127.0.0.1:9070", "/lambda-url/", "", "", false},
		{"127.0.0.1:9070", "/2015-03-31/functions", "", "", false},
		{"lambda-url.x", "/", "", "", false},
	}
	for _, tt := range tests {
		r := httptest.NewRequest("GET", "http://x"+tt.path, nil)
		r.Host = tt.host
		id, raw, ok := Match(r)
		if id != tt.id || raw != tt.raw || ok != tt.ok {
			t.Errorf("Match(%s%s) = %q %q %v; want %q %q %v", tt.host, tt.path, id, raw, ok, tt.id, tt.raw, tt.ok)
		}
	}
}

func serve(h http.Handler, r *http.Request) *http.Response {
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, r)
	return rec.Result()
}

func TestHandlerNone(t *testing.T) {
	h, cfgs, inv := newTestHandler(t)
	c, err := cfgs.Create(context.Background(), "f", "", Input{AuthType: strp(AuthNone)})
	if err != nil {
		t.Fatal(err)
	}
	t.Run("by host", func(t *testing.T) {
		r := httptest.NewRequest("POST", "http://x/p/q?a=1&a=2", strings.NewReader(`{"k":1}`))
		r.Host = c.ID + ".lambda-url.us-east-1.localhost:9070"
		r.Header.Set("Content-Type", "application/json")
		r.Header.Set("Authorization", "Bearer secret")
		resp := serve(h, r)
		body, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "application/json" || resp.Header.Get("X-Amzn-Requestid") == "" {
			t.Fatalf("%d %v %s", resp.StatusCode, resp.Header, body)
		}
		ev := inv.last
		if ev.RawPath != "/p/q" || ev.QueryStringParameters["a"] != "1,2" || ev.Body != `{"k":1}` || ev.RequestContext.AccountID != "anonymous" ||
			ev.RequestContext.APIID != c.ID || ev.RequestContext.DomainName != c.ID+".lambda-url.us-east-1.localhost" ||
			ev.RequestContext.RequestID != resp.Header.Get("X-Amzn-Requestid") {
			t.Errorf("event = %+v", ev)
		}
		if _, ok := ev.Headers["authorization"]; ok {
			t.Error("the caller's Authorization header reached the function")
		}
	})
	t.Run("by path prefix", func(t *testing.T) {
		r := httptest.NewRequest("GET", "http://127.0.0.1:9070/lambda-url/"+c.ID+"/deep/path", nil)
		resp := serve(h, r)
		if resp.StatusCode != 200 || inv.last.RawPath != "/deep/path" || inv.last.RequestContext.DomainName != c.ID+".lambda-url.us-east-1.localhost" {
			t.Fatalf("%d rawPath %q domain %q", resp.StatusCode, inv.last.RawPath, inv.last.RequestContext.DomainName)
		}
	})
	t.Run("unknown id", func(t *testing.T) {
		r := httptest.NewRequest("GET", "http://127.0.0.1/lambda-url/zzzz/", nil)
		if resp := serve(h, r); resp.StatusCode != 404 {
			t.Fatalf("status %d", resp.StatusCode)
		}
	})
	t.Run("function error", func(t *testing.T) {
		inv.respond = func(Event) (*invoker.Response, error) {
			return &invoker.Response{Payload: []byte(`{"errorType":"x"}`), FunctionError: "Unhandled"}, nil
		}
		defer func() { inv.respond = nil }()
		resp := serve(h, httptest.NewRequest("GET", "http://127.0.0.1/lambda-url/"+c.ID+"/", nil))
		body, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != 502 || string(body) != "Internal Server Error" {
			t.Fatalf("%d %s", resp.StatusCode, body)
		}
	})
	t.Run("throttle", func(t *testing.T) {
		inv.respond = func(Event) (*invoker.Response, error) {
			return nil, &apierr.Error{Kind: apierr.TooManyRequests, Message: "Rate Exceeded."}
		}
		defer func() { inv.respond = nil }()
		if resp := serve(h, httptest.NewRequest("GET", "http://127.0.0.1/lambda-url/"+c.ID+"/", nil)); resp.StatusCode != 429 {
			t.Fatalf("status %d", resp.StatusCode)
		}
	})
	t.Run("structured response", func(t *testing.T) {
		inv.respond = func(Event) (*invoker.Response, error) {
			return &invoker.Response{Payload: []byte(`{"statusCode":201,"headers":{"x-a":"b"},"cookies":["c=d"],"body":"made"}`)}, nil
		}
		defer func() { inv.respond = nil }()
		resp := serve(h, httptest.NewRequest("PUT", "http://127.0.0.1/lambda-url/"+c.ID+"/", nil))
		body, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != 201 || resp.Header.Get("X-A") != "b" || resp.Header.Get("Set-Cookie") != "c=d" || string(body) != "made" {
			t.Fatalf("%d %v %s", resp.StatusCode, resp.Header, body)
		}
	})
}

func TestHandlerCors(t *testing.T) {
	h, cfgs, inv := newTestHandler(t)
	c, err := cfgs.Create(context.Background(), "f", "", Input{AuthType: strp(AuthIAM), Cors: &Cors{
		AllowOrigins: []string{"https://app.example"}, AllowMethods: []string{"GET", "POST"}, AllowHeaders: []string{"content-type", "x-amz-date"},
		ExposeHeaders: []string{"x-total"}, MaxAge: 600, AllowCredentials: true,
	}})
	if err != nil {
		t.Fatal(err)
	}
	target := "http://127.0.0.1:9070/lambda-url/" + c.ID + "/"
	tests := []struct {
		name            string
		origin, method  string
		headers         string
		wantAllowOrigin string
	}{
		{"allowed", "https://app.example", "POST", "Content-Type", "https://app.example"},
		{"other origin", "https://evil.example", "POST", "", ""},
		{"method not allowed", "https://app.example", "DELETE", "", ""},
		{"header not allowed", "https://app.example", "GET", "x-secret", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := httptest.NewRequest("OPTIONS", target, nil)
			r.Header.Set("Origin", tt.origin)
			r.Header.Set("Access-Control-Request-Method", tt.method)
			if tt.headers != "" {
				r.Header.Set("Access-Control-Request-Headers", tt.headers)
			}
			inv.last = Event{}
			resp := serve(h, r)
			if resp.StatusCode != 200 || resp.Header.Get("Access-Control-Allow-Origin") != tt.wantAllowOrigin {
				t.Fatalf("preflight = %d %v", resp.StatusCode, resp.Header)
			}
			if inv.last.Version != "" {
				t.Error("the preflight reached the function (and skipped AWS_IAM)")
			}
			if tt.wantAllowOrigin != "" && (resp.Header.Get("Access-Control-Allow-Methods") != "GET, POST" ||
				resp.Header.Get("Access-Control-Max-Age") != "600" || resp.Header.Get("Access-Control-Allow-Credentials") != "true") {
				t.Errorf("preflight headers %v", resp.Header)
			}
		})
	}
	t.Run("actual request", func(t *testing.T) {
		inv.respond = func(Event) (*invoker.Response, error) {
			return &invoker.Response{Payload: []byte(`{"statusCode":200,"headers":{"Access-Control-Allow-Origin":"*"}}`)}, nil
		}
		r := signedFor(t, "GET", target)
		r.Header.Set("Origin", "https://app.example")
		resp := serve(h, r)
		if resp.StatusCode != 200 || resp.Header.Get("Access-Control-Allow-Origin") != "https://app.example" || resp.Header.Get("Access-Control-Expose-Headers") != "x-total" {
			t.Fatalf("%d %v", resp.StatusCode, resp.Header)
		}
	})
}

// signedFor signs a request for the handler with the test credentials at
// the current time.
func signedFor(t *testing.T, method, target string) *http.Request {
	t.Helper()
	r := httptest.NewRequest(method, target, nil)
	sum := sha256.Sum256(nil)
	if err := v4.NewSigner().SignHTTP(context.Background(), testCreds, r, hex.EncodeToString(sum[:]), "lambda", "us-east-1", time.Now()); err != nil {
		t.Fatal(err)
	}
	return r
}

func TestHandlerIAM(t *testing.T) {
	h, cfgs, inv := newTestHandler(t)
	c, err := cfgs.Create(context.Background(), "f", "", Input{AuthType: strp(AuthIAM)})
	if err != nil {
		t.Fatal(err)
	}
	target := "http://127.0.0.1:9070/lambda-url/" + c.ID + "/x?y=1"
	if resp := serve(h, httptest.NewRequest("GET", target, nil)); resp.StatusCode != 403 {
		t.Fatalf("unsigned: %d", resp.StatusCode)
	}
	resp := serve(h, signedFor(t, "GET", target))
	if resp.StatusCode != 200 {
		t.Fatalf("signed: %d", resp.StatusCode)
	}
	a := inv.last.RequestContext.Authorizer
	if a == nil || a.IAM.AccessKey != testCreds.AccessKeyID || inv.last.RequestContext.AccountID != "000000000000" {
		t.Errorf("requestContext = %+v", inv.last.RequestContext)
	}
	r := signedFor(t, "POST", target)
	r.Body = io.NopCloser(bytes.NewReader([]byte("tampered")))
	if resp := serve(h, r); resp.StatusCode != 403 {
		t.Fatalf("tampered: %d", resp.StatusCode)
	}
}
