package e2e

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/url"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
	"github.com/aws/aws-sdk-go-v2/service/lambda"
	"github.com/aws/aws-sdk-go-v2/service/lambda/types"
)

const (
	urlAccessKey = "AKIDKAPPAE2E"
	urlSecretKey = "e2e/secret+key"
)

// urlClient is an HTTP client that reaches every host name on the
// server's loopback address, as *.localhost resolves for browsers and
// curl: http://<id>.lambda-url.us-east-1.localhost:<port>/ works as is.
func urlClient(s *server) *http.Client {
	d := &net.Dialer{Timeout: 5 * time.Second}
	return &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{
		DialContext: func(ctx context.Context, network, _ string) (net.Conn, error) {
			return d.DialContext(ctx, network, s.addr)
		},
	}}
}

type urlResponse struct {
	status int
	header http.Header
	body   []byte
}

func urlDo(t *testing.T, c *http.Client, req *http.Request) urlResponse {
	t.Helper()
	resp, err := c.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", req.Method, req.URL, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return urlResponse{resp.StatusCode, resp.Header, b}
}

// TestFunctionURLs creates URLs through the SDK and calls them with Go's
// net/http and with curl, by host name and by path prefix, with AuthType
// NONE and AWS_IAM (SigV4), and checks the event the function received,
// the response mapping and CORS.
func TestFunctionURLs(t *testing.T) {
	s := newServer(t, "--iam-access-key-id", urlAccessKey, "--iam-secret-access-key", urlSecretKey)
	ctx := context.Background()
	img := s.pushProbe(t, "probe:url")
	s.createFunction(t, "web", img)
	s.createFunction(t, "private", img)
	client := urlClient(s)

	created, err := s.Lambda.CreateFunctionUrlConfig(ctx, &lambda.CreateFunctionUrlConfigInput{
		FunctionName: aws.String("web"), AuthType: types.FunctionUrlAuthTypeNone,
		Cors: &types.Cors{AllowOrigins: []string{"https://app.example"}, AllowMethods: []string{"GET", "POST"},
			AllowHeaders: []string{"content-type"}, ExposeHeaders: []string{"x-probe"}, MaxAge: aws.Int32(300)},
	})
	if err != nil {
		t.Fatal(err)
	}
	fnURL := aws.ToString(created.FunctionUrl)
	u, err := url.Parse(fnURL)
	if err != nil || !strings.HasSuffix(u.Hostname(), ".lambda-url.us-east-1.localhost") || u.Port() != strings.Split(s.addr, ":")[1] ||
		aws.ToString(created.FunctionArn) != fnARN("web") || created.InvokeMode != types.InvokeModeBuffered {
		t.Fatalf("CreateFunctionUrlConfig = %s %s %s", fnURL, aws.ToString(created.FunctionArn), created.InvokeMode)
	}
	urlID := strings.Split(u.Hostname(), ".")[0]

	t.Run("config API", func(t *testing.T) {
		_, err := s.Lambda.CreateFunctionUrlConfig(ctx, &lambda.CreateFunctionUrlConfigInput{FunctionName: aws.String("web"), AuthType: types.FunctionUrlAuthTypeNone})
		asWireError(t, err).check(t, "second CreateFunctionUrlConfig", 409, "ResourceConflictException")
		got, err := s.Lambda.GetFunctionUrlConfig(ctx, &lambda.GetFunctionUrlConfigInput{FunctionName: aws.String("web")})
		if err != nil || aws.ToString(got.FunctionUrl) != fnURL || got.Cors == nil || aws.ToInt32(got.Cors.MaxAge) != 300 || aws.ToString(got.LastModifiedTime) == "" {
			t.Errorf("Get = %+v, %v", got, err)
		}
		list, err := s.Lambda.ListFunctionUrlConfigs(ctx, &lambda.ListFunctionUrlConfigsInput{FunctionName: aws.String("web")})
		if err != nil || len(list.FunctionUrlConfigs) != 1 || aws.ToString(list.FunctionUrlConfigs[0].FunctionUrl) != fnURL {
			t.Errorf("List = %+v, %v", list, err)
		}
		_, err = s.Lambda.GetFunctionUrlConfig(ctx, &lambda.GetFunctionUrlConfigInput{FunctionName: aws.String("private")})
		asWireError(t, err).check(t, "Get of a function without URL", 404, "ResourceNotFoundException")
	})

	t.Run("event and response by host name", func(t *testing.T) {
		req, _ := http.NewRequest("POST", fnURL+"echo/deep?x=1&x=2&y=%20z", strings.NewReader(`{"hello":"url"}`))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("User-Agent", "kappa-e2e")
		req.Header.Add("X-Multi", "a")
		req.Header.Add("X-Multi", "b")
		req.Header.Set("Cookie", "c1=v1; c2=v2")
		r := urlDo(t, client, req)
		if r.status != 201 || r.header.Get("X-Probe") != "url" || strings.Join(r.header.Values("Set-Cookie"), "|") != "probe=1; Path=/|second=2" ||
			r.header.Get("X-Amzn-Requestid") == "" {
			t.Fatalf("response %d %v %s", r.status, r.header, r.body)
		}
		var ev struct {
			Version, RouteKey, RawPath, RawQueryString, Body string
			Cookies                                          []string
			Headers, QueryStringParameters                   map[string]string
			IsBase64Encoded                                  bool
			RequestContext                                   struct {
				AccountID, APIID, DomainName, DomainPrefix, RequestID, RouteKey, Stage, Time string
				TimeEpoch                                                                    int64
				HTTP                                                                         struct{ Method, Path, Protocol, SourceIP, UserAgent string }
			}
		}
		if err := json.Unmarshal(r.body, &ev); err != nil {
			t.Fatalf("echoed event %s: %v", r.body, err)
		}
		rc := ev.RequestContext
		checks := map[string][2]any{
			"version":             {ev.Version, "2.0"},
			"routeKey":            {ev.RouteKey, "$default"},
			"rawPath":             {ev.RawPath, "/echo/deep"},
			"rawQueryString":      {ev.RawQueryString, "x=1&x=2&y=%20z"},
			"query x":             {ev.QueryStringParameters["x"], "1,2"},
			"query y":             {ev.QueryStringParameters["y"], " z"},
			"cookies":             {strings.Join(ev.Cookies, "|"), "c1=v1|c2=v2"},
			"multi header":        {ev.Headers["x-multi"], "a,b"},
			"content-type":        {ev.Headers["content-type"], "application/json"},
			"host":                {ev.Headers["host"], u.Host},
			"no cookie header":    {ev.Headers["cookie"], ""},
			"body":                {ev.Body, `{"hello":"url"}`},
			"base64":              {ev.IsBase64Encoded, false},
			"accountId":           {rc.AccountID, "anonymous"},
			"apiId":               {rc.APIID, urlID},
			"domainPrefix":        {rc.DomainPrefix, urlID},
			"domainName":          {rc.DomainName, u.Hostname()},
			"requestId":           {rc.RequestID, r.header.Get("X-Amzn-Requestid")},
			"stage":               {rc.Stage, "$default"},
			"http.method":         {rc.HTTP.Method, "POST"},
			"http.path":           {rc.HTTP.Path, "/echo/deep"},
			"http.protocol":       {rc.HTTP.Protocol, "HTTP/1.1"},
			"http.sourceIp":       {rc.HTTP.SourceIP, "127.0.0.1"},
			"http.userAgent":      {rc.HTTP.UserAgent, "kappa-e2e"},
			"x-forwarded-for":     {ev.Headers["x-forwarded-for"], "127.0.0.1"},
			"x-forwarded-proto":   {ev.Headers["x-forwarded-proto"], "http"},
			"trace id present":    {ev.Headers["x-amzn-trace-id"] != "", true},
			"time layout":         {len(rc.Time), len("12/Mar/2020:19:03:58 +0000")},
			"timeEpoch is ms now": {time.Since(time.UnixMilli(rc.TimeEpoch)) < time.Minute, true},
		}
		for name, c := range checks {
			if c[0] != c[1] {
				t.Errorf("%s = %v, want %v", name, c[0], c[1])
			}
		}
	})

	t.Run("path prefix, default mapping, binary and errors", func(t *testing.T) {
		base := s.URL("/lambda-url/" + urlID)
		r := urlDo(t, client, mustRequest(t, "GET", base+"/json", nil))
		if r.status != 200 || r.header.Get("Content-Type") != "application/json" || string(r.body) != `{"message":"default mapping"}` {
			t.Errorf("/json = %d %v %s", r.status, r.header, r.body)
		}
		r = urlDo(t, client, mustRequest(t, "GET", base+"/binary", nil))
		if r.status != 200 || len(r.body) != 256 || r.body[255] != 255 || r.header.Get("Content-Type") != "application/octet-stream" {
			t.Errorf("/binary = %d %v %d bytes", r.status, r.header, len(r.body))
		}
		req := mustRequest(t, "PUT", base+"/echo", []byte{0, 1, 2, 0xff})
		req.Header.Set("Content-Type", "application/octet-stream")
		r = urlDo(t, client, req)
		var ev struct {
			Body            string
			IsBase64Encoded bool
			RawPath         string
		}
		json.Unmarshal(r.body, &ev)
		if !ev.IsBase64Encoded || ev.Body != "AAEC/w==" || ev.RawPath != "/echo" {
			t.Errorf("binary request became %+v", ev)
		}
		if r := urlDo(t, client, mustRequest(t, "GET", base+"/status/418", nil)); r.status != 418 || string(r.body) != "status 418" {
			t.Errorf("/status/418 = %d %s", r.status, r.body)
		}
		if r := urlDo(t, client, mustRequest(t, "GET", base+"/error", nil)); r.status != 502 || string(r.body) != "Internal Server Error" {
			t.Errorf("/error = %d %s", r.status, r.body)
		}
		if r := urlDo(t, client, mustRequest(t, "GET", s.URL("/lambda-url/0000000000000000000000000000nope/"), nil)); r.status != 404 {
			t.Errorf("unknown url-id = %d", r.status)
		}
	})

	t.Run("CORS", func(t *testing.T) {
		pre := mustRequest(t, "OPTIONS", fnURL+"echo", nil)
		pre.Header.Set("Origin", "https://app.example")
		pre.Header.Set("Access-Control-Request-Method", "POST")
		pre.Header.Set("Access-Control-Request-Headers", "Content-Type")
		r := urlDo(t, client, pre)
		if r.status != 200 || r.header.Get("Access-Control-Allow-Origin") != "https://app.example" || r.header.Get("Access-Control-Allow-Methods") != "GET, POST" ||
			r.header.Get("Access-Control-Allow-Headers") != "content-type" || r.header.Get("Access-Control-Max-Age") != "300" {
			t.Errorf("preflight = %d %v", r.status, r.header)
		}
		pre.Header.Set("Origin", "https://evil.example")
		if r := urlDo(t, client, pre); r.header.Get("Access-Control-Allow-Origin") != "" {
			t.Errorf("preflight from another origin allowed: %v", r.header)
		}
		get := mustRequest(t, "GET", fnURL+"cors", nil)
		get.Header.Set("Origin", "https://app.example")
		r = urlDo(t, client, get)
		if r.header.Get("Access-Control-Allow-Origin") != "https://app.example" || r.header.Get("Access-Control-Expose-Headers") != "x-probe" {
			t.Errorf("actual request CORS headers %v (the function's own must be replaced)", r.header)
		}
	})

	t.Run("curl", func(t *testing.T) {
		if _, err := exec.LookPath("curl"); err != nil {
			t.Skip("needs curl")
		}
		host, port := u.Hostname(), u.Port()
		out, err := exec.Command("curl", "-sS", "--max-time", "20", "-H", "Host: "+u.Host, "-d", `{"via":"curl"}`, "-H", "Content-Type: application/json",
			"http://"+s.addr+"/echo?from=curl").CombinedOutput()
		if err != nil || !strings.Contains(string(out), `"body":"{\"via\":\"curl\"}"`) || !strings.Contains(string(out), `"rawQueryString":"from=curl"`) {
			t.Errorf("curl -H Host: %v\n%s", err, out)
		}
		out, err = exec.Command("curl", "-sS", "--max-time", "20", "-i", "--resolve", host+":"+port+":127.0.0.1", fnURL+"json").CombinedOutput()
		if err != nil || !strings.Contains(string(out), "HTTP/1.1 200") || !strings.Contains(string(out), `{"message":"default mapping"}`) {
			t.Errorf("curl --resolve: %v\n%s", err, out)
		}
	})

	t.Run("AWS_IAM", func(t *testing.T) {
		c, err := s.Lambda.CreateFunctionUrlConfig(ctx, &lambda.CreateFunctionUrlConfigInput{FunctionName: aws.String("private"), AuthType: types.FunctionUrlAuthTypeAwsIam})
		if err != nil {
			t.Fatal(err)
		}
		target := aws.ToString(c.FunctionUrl) + "echo?q=1"
		if r := urlDo(t, client, mustRequest(t, "GET", target, nil)); r.status != 403 {
			t.Errorf("unsigned request = %d %s", r.status, r.body)
		}
		sign := func(req *http.Request, body []byte, secret string) {
			sum := sha256.Sum256(body)
			creds := aws.Credentials{AccessKeyID: urlAccessKey, SecretAccessKey: secret}
			if err := v4.NewSigner().SignHTTP(ctx, creds, req, hex.EncodeToString(sum[:]), "lambda", "us-east-1", time.Now()); err != nil {
				t.Fatal(err)
			}
		}
		body := []byte(`{"signed":true}`)
		req := mustRequest(t, "POST", target, body)
		req.Header.Set("Content-Type", "application/json")
		sign(req, body, urlSecretKey)
		r := urlDo(t, client, req)
		var ev struct {
			RequestContext struct {
				AccountID  string
				Authorizer struct {
					IAM struct{ AccessKey, AccountID string }
				}
			}
			Headers map[string]string
		}
		json.Unmarshal(r.body, &ev)
		if r.status != 201 || ev.RequestContext.Authorizer.IAM.AccessKey != urlAccessKey || ev.RequestContext.AccountID != "000000000000" {
			t.Errorf("signed request = %d %s", r.status, r.body)
		}
		if ev.Headers["authorization"] != "" {
			t.Error("the caller's Authorization header reached the function")
		}
		req = mustRequest(t, "POST", target, body)
		sign(req, body, "wrong secret")
		if r := urlDo(t, client, req); r.status != 403 {
			t.Errorf("request signed with a wrong secret = %d", r.status)
		}
		req = mustRequest(t, "POST", target, []byte(`{"signed":false}`))
		sign(req, body, urlSecretKey)
		if r := urlDo(t, client, req); r.status != 403 {
			t.Errorf("request with a body other than the signed one = %d", r.status)
		}
		if _, err := exec.LookPath("curl"); err == nil {
			out, err := exec.Command("curl", "-sS", "--max-time", "20", "--aws-sigv4", "aws:amz:us-east-1:lambda", "--user", urlAccessKey+":"+urlSecretKey,
				"--connect-to", "::"+s.addr,
				"-H", "Content-Type: application/json", "-d", `{"via":"curl-sigv4"}`, target).CombinedOutput()
			if err != nil || !strings.Contains(string(out), `"accessKey":"`+urlAccessKey+`"`) || !strings.Contains(string(out), `curl-sigv4`) {
				t.Errorf("curl --aws-sigv4: %v\n%s", err, out)
			}
		}
	})

	t.Run("deleted URL", func(t *testing.T) {
		if _, err := s.Lambda.DeleteFunctionUrlConfig(ctx, &lambda.DeleteFunctionUrlConfigInput{FunctionName: aws.String("web")}); err != nil {
			t.Fatal(err)
		}
		if r := urlDo(t, client, mustRequest(t, "GET", fnURL+"json", nil)); r.status != 404 {
			t.Errorf("deleted URL answered %d", r.status)
		}
	})
}

func mustRequest(t *testing.T, method, target string, body []byte) *http.Request {
	t.Helper()
	req, err := http.NewRequest(method, target, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	return req
}
