package funcurl

import (
	"encoding/base64"
	"encoding/json"
	"net/http"
	"reflect"
	"strings"
	"testing"
	"time"
)

func TestBuildEvent(t *testing.T) {
	at := time.Date(2020, 3, 12, 19, 3, 58, 390_000_000, time.UTC)
	base := func() Request {
		return Request{
			Method: "POST", RawPath: "/my/path", RawQuery: "parameter1=value1&parameter1=value2&parameter2=value",
			Proto: "HTTP/1.1", Host: "abc.lambda-url.us-east-1.localhost:9070", Port: "9070",
			Header: http.Header{
				"Content-Type": {"application/json"}, "User-Agent": {"agent"},
				"Header2": {"value1", "value2"}, "Cookie": {"cookie1=a; cookie2=b"},
			},
			RemoteAddr: "127.0.0.1:5555", Body: []byte(`{"hello":"client"}`), Time: at,
			RequestID: "req-1", TraceID: "Root=1-5e6a8716-0123456789abcdef01234567", URLID: "abc",
			DomainName: "abc.lambda-url.us-east-1.localhost", AccountID: "anonymous",
		}
	}
	t.Run("lambda's example", func(t *testing.T) {
		ev := BuildEvent(base())
		want := Event{
			Version: "2.0", RouteKey: "$default", RawPath: "/my/path",
			RawQueryString: "parameter1=value1&parameter1=value2&parameter2=value",
			Cookies:        []string{"cookie1=a", "cookie2=b"},
			Headers: map[string]string{
				"content-type": "application/json", "user-agent": "agent", "header2": "value1,value2",
				"host": "abc.lambda-url.us-east-1.localhost:9070", "x-forwarded-for": "127.0.0.1",
				"x-forwarded-proto": "http", "x-forwarded-port": "9070",
				"x-amzn-trace-id": "Root=1-5e6a8716-0123456789abcdef01234567",
			},
			QueryStringParameters: map[string]string{"parameter1": "value1,value2", "parameter2": "value"},
			RequestContext: RequestContext{
				AccountID: "anonymous", APIID: "abc", DomainName: "abc.lambda-url.us-east-1.localhost", DomainPrefix: "abc",
				HTTP:      HTTPContext{Method: "POST", Path: "/my/path", Protocol: "HTTP/1.1", SourceIP: "127.0.0.1", UserAgent: "agent"},
				RequestID: "req-1", RouteKey: "$default", Stage: "$default",
				Time: "12/Mar/2020:19:03:58 +0000", TimeEpoch: 1584039838390,
			},
			Body: `{"hello":"client"}`,
		}
		if !reflect.DeepEqual(ev, want) {
			got, _ := json.MarshalIndent(ev, "", " ")
			t.Fatalf("event:\n%s", got)
		}
		// The wire shape: no body key when empty, isBase64Encoded always.
		var m map[string]any
		json.Unmarshal(MarshalEvent(ev), &m)
		if m["isBase64Encoded"] != false || m["requestContext"].(map[string]any)["http"].(map[string]any)["sourceIp"] != "127.0.0.1" {
			t.Errorf("wire event: %v", m)
		}
	})
	tests := []struct {
		name   string
		mutate func(*Request)
		check  func(t *testing.T, ev Event)
	}{
		{"binary body", func(r *Request) {
			r.Header.Set("Content-Type", "application/octet-stream")
			r.Body = []byte{0, 1, 2, 0xff}
		},
			func(t *testing.T, ev Event) {
				if !ev.IsBase64Encoded || ev.Body != base64.StdEncoding.EncodeToString([]byte{0, 1, 2, 0xff}) {
					t.Errorf("body %q base64 %v", ev.Body, ev.IsBase64Encoded)
				}
			}},
		{"form is base64", func(r *Request) {
			r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
			r.Body = []byte("a=1")
		},
			func(t *testing.T, ev Event) {
				if !ev.IsBase64Encoded || ev.Body != "YT0x" {
					t.Errorf("body %q base64 %v", ev.Body, ev.IsBase64Encoded)
				}
			}},
		{"text with charset", func(r *Request) { r.Header.Set("Content-Type", "text/plain; charset=utf-8"); r.Body = []byte("héllo") },
			func(t *testing.T, ev Event) {
				if ev.IsBase64Encoded || ev.Body != "héllo" {
					t.Errorf("body %q base64 %v", ev.Body, ev.IsBase64Encoded)
				}
			}},
		{"vendor json", func(r *Request) { r.Header.Set("Content-Type", "application/vnd.api+json") },
			func(t *testing.T, ev Event) {
				if ev.IsBase64Encoded {
					t.Error("+json body was base64-encoded")
				}
			}},
		{"invalid utf-8 text", func(r *Request) { r.Header.Set("Content-Type", "text/plain"); r.Body = []byte{0xff} },
			func(t *testing.T, ev Event) {
				if !ev.IsBase64Encoded {
					t.Error("invalid UTF-8 sent as text")
				}
			}},
		{"no body no query", func(r *Request) { r.Body, r.RawQuery, r.Method = nil, "", "GET" },
			func(t *testing.T, ev Event) {
				b := string(MarshalEvent(ev))
				if ev.QueryStringParameters != nil || strings.Contains(b, `"body"`) || strings.Contains(b, `"queryStringParameters"`) {
					t.Errorf("event %s", b)
				}
			}},
		{"escaped path and query", func(r *Request) { r.RawPath, r.RawQuery = "/a%20b", "q=x%20y&q=a+b&flag" },
			func(t *testing.T, ev Event) {
				if ev.RawPath != "/a%20b" || ev.RequestContext.HTTP.Path != "/a b" || ev.QueryStringParameters["q"] != "x y,a b" || ev.QueryStringParameters["flag"] != "" {
					t.Errorf("rawPath %q path %q query %v", ev.RawPath, ev.RequestContext.HTTP.Path, ev.QueryStringParameters)
				}
			}},
		{"forwarded for appends", func(r *Request) { r.Header.Set("X-Forwarded-For", "10.0.0.1") },
			func(t *testing.T, ev Event) {
				if ev.Headers["x-forwarded-for"] != "10.0.0.1, 127.0.0.1" {
					t.Errorf("x-forwarded-for %q", ev.Headers["x-forwarded-for"])
				}
			}},
		{"iam caller", func(r *Request) {
			r.AccountID = "000000000000"
			r.Caller = &IAMIdentity{AccessKey: "AK", AccountID: "000000000000"}
		},
			func(t *testing.T, ev Event) {
				b := string(MarshalEvent(ev))
				if ev.RequestContext.Authorizer == nil || !strings.Contains(b, `"authorizer":{"iam":{"accessKey":"AK","accountId":"000000000000","callerId":"","cognitoIdentity":null`) {
					t.Errorf("event %s", b)
				}
			}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := base()
			tt.mutate(&r)
			tt.check(t, BuildEvent(r))
		})
	}
}

func FuzzBuildEvent(f *testing.F) {
	f.Add("GET", "/a%20b", "x=1&x=2&y", "text/plain", "Cookie", "a=b; c", []byte("hi"))
	f.Add("POST", "/", "", "application/octet-stream", "X-Thing", "v", []byte{0, 0xff})
	f.Fuzz(func(t *testing.T, method, path, query, ctype, hname, hvalue string, body []byte) {
		h := http.Header{}
		h.Set("Content-Type", ctype)
		h.Add(hname, hvalue)
		ev := BuildEvent(Request{Method: method, RawPath: path, RawQuery: query, Header: h, Body: body,
			RemoteAddr: "127.0.0.1:1", Time: time.Unix(0, 0)})
		b := MarshalEvent(ev)
		var back Event
		if err := json.Unmarshal(b, &back); err != nil {
			t.Fatalf("event does not round-trip: %v\n%s", err, b)
		}
		if len(body) > 0 {
			got := []byte(back.Body)
			if back.IsBase64Encoded {
				var err error
				if got, err = base64.StdEncoding.DecodeString(back.Body); err != nil {
					t.Fatal(err)
				}
			}
			if string(got) != string(body) {
				t.Fatalf("body %q came back as %q", body, got)
			}
		}
		if back.Version != "2.0" || back.RawPath == "" {
			t.Fatalf("event %s", b)
		}
	})
}
