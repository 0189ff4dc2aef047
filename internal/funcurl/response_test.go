package funcurl

import (
	"net/http"
	"reflect"
	"strings"
	"testing"
)

func TestMapResponse(t *testing.T) {
	tests := []struct {
		name    string
		payload string
		status  int
		header  http.Header
		body    string
		err     string
	}{
		{name: "string", payload: `"Hello, world!"`, status: 200,
			header: http.Header{"Content-Type": {"application/json"}}, body: `"Hello, world!"`},
		{name: "json without statusCode", payload: `{"message":"Hello, world!"}`, status: 200,
			header: http.Header{"Content-Type": {"application/json"}}, body: `{"message":"Hello, world!"}`},
		{name: "array", payload: `[1,2]`, status: 200, header: http.Header{"Content-Type": {"application/json"}}, body: `[1,2]`},
		{name: "null", payload: `null`, status: 200, header: http.Header{"Content-Type": {"application/json"}}, body: `null`},
		{name: "not json", payload: `plain`, status: 200, header: http.Header{"Content-Type": {"application/json"}}, body: `plain`},
		{name: "custom", payload: `{"statusCode":201,"headers":{"Content-Type":"application/json","My-Custom-Header":"Custom Value"},"body":"{\"message\":\"Hello, world!\"}","isBase64Encoded":false}`,
			status: 201, header: http.Header{"Content-Type": {"application/json"}, "My-Custom-Header": {"Custom Value"}}, body: `{"message":"Hello, world!"}`},
		{name: "cookies", payload: `{"statusCode":200,"headers":{"content-type":"text/plain"},"cookies":["Cookie_1=Value1; Expires=21 Oct 2021 07:48 GMT","Cookie_2=Value2; Max-Age=78000"],"body":"ok"}`,
			status: 200, header: http.Header{"Content-Type": {"text/plain"}, "Set-Cookie": {"Cookie_1=Value1; Expires=21 Oct 2021 07:48 GMT", "Cookie_2=Value2; Max-Age=78000"}}, body: "ok"},
		{name: "base64 body", payload: `{"statusCode":200,"headers":{"Content-Type":"image/png"},"body":"AAEC/w==","isBase64Encoded":true}`,
			status: 200, header: http.Header{"Content-Type": {"image/png"}}, body: "\x00\x01\x02\xff"},
		{name: "default content type", payload: `{"statusCode":204}`, status: 204, header: http.Header{"Content-Type": {"application/json"}}, body: ""},
		{name: "string status and number header", payload: `{"statusCode":"404","headers":{"X-N":5,"X-B":true},"body":"nf"}`,
			status: 404, header: http.Header{"Content-Type": {"application/json"}, "X-N": {"5"}, "X-B": {"true"}}, body: "nf"},
		{name: "object body", payload: `{"statusCode":200,"body":{"a":1}}`, status: 200, header: http.Header{"Content-Type": {"application/json"}}, body: `{"a":1}`},
		{name: "hop headers dropped", payload: `{"statusCode":200,"headers":{"Content-Length":"99","Transfer-Encoding":"chunked","X-Ok":"1"}}`,
			status: 200, header: http.Header{"Content-Type": {"application/json"}, "X-Ok": {"1"}}},
		{name: "header injection dropped", payload: `{"statusCode":200,"headers":{"X-A":"1\r\nX-B: 2"},"cookies":["a=b\r\nX-C: 3"]}`,
			status: 200, header: http.Header{"Content-Type": {"application/json"}}},
		{name: "bad status", payload: `{"statusCode":99}`, err: "not an HTTP status"},
		{name: "status not a number", payload: `{"statusCode":"abc"}`, err: "not an HTTP status"},
		{name: "bad base64", payload: `{"statusCode":200,"body":"!!","isBase64Encoded":true}`, err: "base64"},
		{name: "header not a string", payload: `{"statusCode":200,"headers":{"X":{"a":1}}}`, err: "header"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := MapResponse([]byte(tt.payload))
			if tt.err != "" {
				if err == nil || !strings.Contains(err.Error(), tt.err) {
					t.Fatalf("MapResponse = %+v, %v; want error %q", got, err, tt.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got.Status != tt.status || !reflect.DeepEqual(got.Header, tt.header) || string(got.Body) != tt.body {
				t.Fatalf("MapResponse = %d %v %q; want %d %v %q", got.Status, got.Header, got.Body, tt.status, tt.header, tt.body)
			}
		})
	}
}

func FuzzMapResponse(f *testing.F) {
	for _, s := range []string{`"x"`, `{"statusCode":200,"body":"aGk=","isBase64Encoded":true,"cookies":["a=b"]}`, `{"statusCode":"201","headers":{"a":"b"}}`, `{`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, payload []byte) {
		r, err := MapResponse(payload)
		if err != nil {
			return
		}
		if r.Status < 100 || r.Status > 599 || r.Header.Get("Content-Type") == "" {
			t.Fatalf("MapResponse(%q) = %d %v", payload, r.Status, r.Header)
		}
		for k, vs := range r.Header {
			for _, v := range vs {
				if strings.ContainsAny(k+v, "\r\n") {
					t.Fatalf("header %q: %q lets a function inject headers", k, v)
				}
			}
		}
	})
}

func TestMapPrelude(t *testing.T) {
	tests := []struct {
		name    string
		prelude string
		status  int
		header  map[string]string
		wantErr bool
	}{
		{"empty", "", 200, map[string]string{"Content-Type": "application/octet-stream"}, false},
		{"headers without a statusCode", `{"headers":{"x-a":"1"},"cookies":["c=1"]}`, 200,
			map[string]string{"X-A": "1", "Set-Cookie": "c=1", "Content-Type": "application/octet-stream"}, false},
		{"lower-case content-type", `{"statusCode":201,"headers":{"content-type":"text/plain"}}`, 201,
			map[string]string{"Content-Type": "text/plain"}, false},
		{"bad status", `{"statusCode":99}`, 0, nil, true},
		{"not an object", `[1]`, 0, nil, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			head, err := MapPrelude([]byte(tc.prelude))
			if tc.wantErr {
				if err == nil {
					t.Fatalf("MapPrelude(%s) = %+v, want an error", tc.prelude, head)
				}
				return
			}
			if err != nil || head.Status != tc.status || head.Body != nil {
				t.Fatalf("MapPrelude(%s) = %+v, %v", tc.prelude, head, err)
			}
			for k, v := range tc.header {
				if got := head.Header.Get(k); got != v {
					t.Errorf("%s = %q, want %q", k, got, v)
				}
			}
		})
	}
}
