package funcurl

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
)

var (
	testNow   = time.Date(2024, 5, 1, 12, 0, 0, 0, time.UTC)
	testCreds = aws.Credentials{AccessKeyID: "AKIDKAPPATEST", SecretAccessKey: "s3cret/Key+value"}
)

func testVerifier() *Verifier {
	return &Verifier{Region: "us-east-1", Service: "lambda", Now: func() time.Time { return testNow },
		Secret: func(id string) (string, bool) {
			if id == testCreds.AccessKeyID {
				return testCreds.SecretAccessKey, true
			}
			return "", false
		}}
}

// signed builds a server-side request signed by the AWS SDK's signer (the
// oracle), with mutate applied after signing.
func signed(t *testing.T, method, target string, body []byte, opts ...func(*signOpts)) (*http.Request, []byte) {
	t.Helper()
	o := signOpts{region: "us-east-1", service: "lambda", at: testNow, creds: testCreds}
	for _, f := range opts {
		f(&o)
	}
	client, err := http.NewRequest(method, target, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	client.Header.Set("Content-Type", "application/json")
	client.Header.Set("X-Custom", "  a   b  ")
	sum := sha256.Sum256(body)
	s := v4.NewSigner()
	if o.presign {
		u, hdr, err := s.PresignHTTP(context.Background(), o.creds, client, hex.EncodeToString(sum[:]), o.service, o.region, o.at)
		if err != nil {
			t.Fatal(err)
		}
		client, _ = http.NewRequest(method, u, bytes.NewReader(body))
		for k, v := range hdr {
			client.Header[k] = v
		}
	} else if err := s.SignHTTP(context.Background(), o.creds, client, hex.EncodeToString(sum[:]), o.service, o.region, o.at); err != nil {
		t.Fatal(err)
	}
	// Re-read it as a server would.
	r := httptest.NewRequest(method, client.URL.RequestURI(), bytes.NewReader(body))
	r.Host = client.URL.Host
	r.Header = client.Header.Clone()
	if client.ContentLength > 0 {
		r.Header.Set("Content-Length", strconv.FormatInt(client.ContentLength, 10))
	}
	if o.mutate != nil {
		o.mutate(r)
	}
	if o.body != nil {
		body = o.body
	}
	return r, body
}

type signOpts struct {
	region, service string
	at              time.Time
	creds           aws.Credentials
	presign         bool
	mutate          func(*http.Request)
	body            []byte
}

func TestVerifySignedBySDK(t *testing.T) {
	tests := []struct {
		name, method, url string
		body              string
		opts              []func(*signOpts)
		wantErr           string
	}{
		{name: "post", method: "POST", url: "http://abc.lambda-url.us-east-1.localhost:9070/items?b=2&a=1", body: `{"x":1}`},
		{name: "get no body", method: "GET", url: "http://abc.lambda-url.us-east-1.localhost:9070/"},
		{name: "escaped path", method: "GET", url: "http://127.0.0.1:9070/lambda-url/abc/a%20b/c%2Fd?q=x%20y&q=a+b&empty="},
		{name: "unicode", method: "PUT", url: "http://abc.lambda-url.x:1/%C3%A9t%C3%A9?k=%E2%9C%93", body: "é"},
		{name: "presigned", method: "GET", url: "http://abc.lambda-url.us-east-1.localhost:9070/p?x=1&X-Amz-Expires=300",
			opts: []func(*signOpts){func(o *signOpts) { o.presign = true }}},
		{name: "tampered body", method: "POST", url: "http://h:1/", body: `{"x":1}`,
			opts: []func(*signOpts){func(o *signOpts) { o.body = []byte(`{"x":2}`) }}, wantErr: "does not match"},
		{name: "tampered query", method: "GET", url: "http://h:1/?a=1",
			opts: []func(*signOpts){func(o *signOpts) { o.mutate = func(r *http.Request) { r.URL.RawQuery = "a=2" } }}, wantErr: "does not match"},
		{name: "tampered path", method: "GET", url: "http://h:1/a",
			opts: []func(*signOpts){func(o *signOpts) { o.mutate = func(r *http.Request) { r.URL.Path, r.URL.RawPath = "/b", "" } }}, wantErr: "does not match"},
		{name: "tampered signed header", method: "GET", url: "http://h:1/",
			opts: []func(*signOpts){func(o *signOpts) { o.mutate = func(r *http.Request) { r.Header.Set("X-Custom", "c") } }}, wantErr: "does not match"},
		{name: "other host", method: "GET", url: "http://h:1/",
			opts: []func(*signOpts){func(o *signOpts) { o.mutate = func(r *http.Request) { r.Host = "evil:1" } }}, wantErr: "does not match"},
		{name: "wrong method", method: "GET", url: "http://h:1/",
			opts: []func(*signOpts){func(o *signOpts) { o.mutate = func(r *http.Request) { r.Method = "DELETE" } }}, wantErr: "does not match"},
		{name: "wrong secret", method: "GET", url: "http://h:1/",
			opts: []func(*signOpts){func(o *signOpts) { o.creds.SecretAccessKey = "nope" }}, wantErr: "does not match"},
		{name: "unknown key", method: "GET", url: "http://h:1/",
			opts: []func(*signOpts){func(o *signOpts) { o.creds.AccessKeyID = "AKIDOTHER" }}, wantErr: "unknown access key"},
		{name: "wrong region", method: "GET", url: "http://h:1/",
			opts: []func(*signOpts){func(o *signOpts) { o.region = "eu-west-1" }}, wantErr: "credential scope"},
		{name: "wrong service", method: "GET", url: "http://h:1/",
			opts: []func(*signOpts){func(o *signOpts) { o.service = "execute-api" }}, wantErr: "credential scope"},
		{name: "too old", method: "GET", url: "http://h:1/",
			opts: []func(*signOpts){func(o *signOpts) { o.at = testNow.Add(-16 * time.Minute) }}, wantErr: "expired"},
		{name: "from the future", method: "GET", url: "http://h:1/",
			opts: []func(*signOpts){func(o *signOpts) { o.at = testNow.Add(16 * time.Minute) }}, wantErr: "future"},
		{name: "presigned expired", method: "GET", url: "http://h:1/?X-Amz-Expires=60",
			opts: []func(*signOpts){func(o *signOpts) { o.presign, o.at = true, testNow.Add(-2*time.Minute) }}, wantErr: "expired"},
		{name: "presigned expiry past a Duration", method: "GET", url: "http://h:1/?X-Amz-Expires=9223372037",
			opts: []func(*signOpts){func(o *signOpts) { o.presign = true }}, wantErr: "X-Amz-Expires"},
		{name: "unsigned", method: "GET", url: "http://h:1/",
			opts: []func(*signOpts){func(o *signOpts) { o.mutate = func(r *http.Request) { r.Header.Del("Authorization") } }}, wantErr: "not signed"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var body []byte
			if tt.body != "" {
				body = []byte(tt.body)
			}
			r, body := signed(t, tt.method, tt.url, body, tt.opts...)
			key, err := testVerifier().Verify(r, body)
			if tt.wantErr == "" {
				if err != nil || key != testCreds.AccessKeyID {
					t.Fatalf("Verify = %q, %v; want %s", key, err, testCreds.AccessKeyID)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("Verify = %q, %v; want an error containing %q", key, err, tt.wantErr)
			}
		})
	}
}

// TestVerifyKnownAnswer checks the verifier against the example request
// of AWS's Signature Version 4 documentation (IAM ListUsers, 2015-08-30),
// independently of the SDK's signer.
func TestVerifyKnownAnswer(t *testing.T) {
	r := httptest.NewRequest("GET", "https://iam.amazonaws.com/?Action=ListUsers&Version=2010-05-08", nil)
	r.Header.Set("Content-Type", "application/x-www-form-urlencoded; charset=utf-8")
	r.Header.Set("X-Amz-Date", "20150830T123600Z")
	r.Header.Set("Authorization", "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/iam/aws4_request, "+
		"SignedHeaders=content-type;host;x-amz-date, Signature=5d672d79c15b13162d9279b0855cfba6789a8edb4c82c400e06b5924a6f2b5d7")
	v := &Verifier{Region: "us-east-1", Service: "iam", Now: func() time.Time { return time.Date(2015, 8, 30, 12, 40, 0, 0, time.UTC) },
		Secret: func(id string) (string, bool) { return "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY", id == "AKIDEXAMPLE" }}
	if key, err := v.Verify(r, nil); err != nil || key != "AKIDEXAMPLE" {
		t.Fatalf("Verify = %q, %v", key, err)
	}
}

// TestVerifyCanonicalForms checks the canonical URI candidates (encoded
// once more, as AWS SDKs do, and as sent, as curl does) and the canonical
// query.
func TestVerifyCanonicalForms(t *testing.T) {
	tests := []struct {
		rawPath string
		want    []string
	}{
		{"/", []string{"/"}},
		{"/a/b", []string{"/a/b"}},
		{"/a%20b", []string{"/a%2520b", "/a%20b"}},
		{"", []string{"/"}},
	}
	for _, tt := range tests {
		r := httptest.NewRequest("GET", "http://h"+tt.rawPath, nil)
		if tt.rawPath == "" {
			r.URL.Path, r.URL.RawPath = "", ""
		}
		got := canonicalURIs(r.URL)
		if strings.Join(got, " ") != strings.Join(tt.want, " ") {
			t.Errorf("canonicalURIs(%q) = %v, want %v", tt.rawPath, got, tt.want)
		}
	}
	if got := canonicalQuery("b=2&a=x+y&a=%41&X-Amz-Signature=zz&c", true); got != "a=A&a=x%20y&b=2&c=" {
		t.Errorf("canonicalQuery = %q", got)
	}
}

func FuzzParseAuthorization(f *testing.F) {
	f.Add("AWS4-HMAC-SHA256 Credential=AKID/20240501/us-east-1/lambda/aws4_request, SignedHeaders=host;x-amz-date, Signature=" + strings.Repeat("a", 64))
	f.Add("AWS4-HMAC-SHA256 Credential=a/b/c/d/e,SignedHeaders=,Signature=")
	f.Add("Basic dXNlcjpwYXNz")
	f.Fuzz(func(t *testing.T, h string) {
		p, err := parseAuthorization(h)
		if err != nil {
			return
		}
		if p.accessKey == "" || len(p.signature) != 64 || len(p.signedHeaders) == 0 {
			t.Fatalf("%q parsed to %+v", h, p)
		}
		// Verification of whatever parsed must not panic.
		r := httptest.NewRequest("GET", "http://h/", nil)
		r.Header.Set("Authorization", h)
		r.Header.Set("X-Amz-Date", "20240501T120000Z")
		testVerifier().Verify(r, nil)
	})
}
