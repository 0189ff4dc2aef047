package lambdaapi

import (
	"encoding/json"
	"fmt"
	"net/url"
	"strings"
	"testing"
	"unicode"
	"unicode/utf8"

	"github.com/kappa-run/kappa/internal/apierr"
)

func TestTagsAPI(t *testing.T) {
	a, _, _ := newTestAPI(t)
	createF(t, a)
	tagsPath := "/2017-03-31/tags/" + url.PathEscape(fArn)
	fifty := map[string]string{}
	for i := range 50 {
		fifty[fmt.Sprintf("k%d", i)] = "v"
	}
	tooMany, _ := json.Marshal(map[string]any{"Tags": fifty})
	tests := []struct {
		name, method, path, body string
		status                   int
		typ                      string
		want                     string // a substring of the body
	}{
		{name: "list from create", method: "GET", path: tagsPath, status: 200, want: `{"Tags":{"team":"a"}}`},
		{name: "tag", method: "POST", path: tagsPath, body: `{"Tags":{"env":"dev","team":"b"}}`, status: 204},
		{name: "list after tag", method: "GET", path: tagsPath, status: 200, want: `{"Tags":{"env":"dev","team":"b"}}`},
		{name: "get function shows tags", method: "GET", path: "/2015-03-31/functions/f", status: 200, want: `"Tags":{"env":"dev","team":"b"}`},
		{name: "untag", method: "DELETE", path: tagsPath + "?tagKeys=env&tagKeys=absent", status: 204},
		{name: "list after untag", method: "GET", path: tagsPath, status: 200, want: `{"Tags":{"team":"b"}}`},
		{name: "unescaped ARN", method: "GET", path: "/2017-03-31/tags/" + fArn, status: 200, want: `"team":"b"`},
		{name: "malformed json", method: "POST", path: tagsPath, body: `{"Tags":{"a":`, status: 400, typ: "InvalidRequestContentException"},
		{name: "tags not a map", method: "POST", path: tagsPath, body: `{"Tags":["a"]}`, status: 400, typ: "InvalidRequestContentException"},
		{name: "oversized body", method: "POST", path: tagsPath, body: `{"Tags":{"a":"` + strings.Repeat("v", maxControlBody) + `"}}`, status: 413, typ: "RequestTooLargeException"},
		{name: "no tags member", method: "POST", path: tagsPath, body: `{}`, status: 400, typ: "ValidationException", want: "Value null at 'tags'"},
		{name: "empty tags", method: "POST", path: tagsPath, body: `{"Tags":{}}`, status: 400, typ: "InvalidParameterValueException"},
		{name: "over the limit", method: "POST", path: tagsPath, body: string(tooMany), status: 400, typ: "InvalidParameterValueException", want: "tag limit"},
		{name: "aws prefix", method: "POST", path: tagsPath, body: `{"Tags":{"aws:owner":"x"}}`, status: 400, typ: "InvalidParameterValueException"},
		{name: "NUL in key", method: "POST", path: tagsPath, body: `{"Tags":{"a\u0000b":"x"}}`, status: 400, typ: "ValidationException"},
		{name: "long key", method: "POST", path: tagsPath, body: `{"Tags":{"` + strings.Repeat("k", 129) + `":"x"}}`, status: 400, typ: "ValidationException"},
		{name: "bare name", method: "POST", path: "/2017-03-31/tags/f", body: `{"Tags":{"a":"b"}}`, status: 400, typ: "ValidationException", want: "at 'resource'"},
		{name: "qualified ARN", method: "POST", path: tagsPath + "%3A1", body: `{"Tags":{"a":"b"}}`, status: 400, typ: "InvalidParameterValueException"},
		{name: "qualified ARN list", method: "GET", path: tagsPath + "%3A%24LATEST", status: 400, typ: "InvalidParameterValueException"},
		{name: "other region", method: "GET", path: "/2017-03-31/tags/arn:aws:lambda:eu-west-1:000000000000:function:f", status: 400, typ: "InvalidParameterValueException"},
		{name: "unknown function", method: "POST", path: tagsPath + "x", body: `{"Tags":{"a":"b"}}`, status: 404, typ: "ResourceNotFoundException"},
		{name: "unknown function untag", method: "DELETE", path: tagsPath + "x?tagKeys=a", status: 404, typ: "ResourceNotFoundException"},
		{name: "untag without tagKeys", method: "DELETE", path: tagsPath, status: 400, typ: "ValidationException", want: "Value null at 'tagKeys'"},
		{name: "untag empty key", method: "DELETE", path: tagsPath + "?tagKeys=", status: 400, typ: "ValidationException"},
		{name: "untag hostile key", method: "DELETE", path: tagsPath + "?tagKeys=%00%0A", status: 400, typ: "ValidationException"},
		{name: "list unchanged by refusals", method: "GET", path: tagsPath, status: 200, want: `{"Tags":{"team":"b"}}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rec := do(t, a, tt.method, tt.path, tt.body)
			if rec.Code != tt.status || rec.Header().Get("X-Amzn-ErrorType") != tt.typ || !strings.Contains(rec.Body.String(), tt.want) {
				t.Fatalf("= %d %q %.300s; want %d %q containing %q", rec.Code, rec.Header().Get("X-Amzn-ErrorType"), rec.Body, tt.status, tt.typ, tt.want)
			}
		})
	}
}

func FuzzTagInput(f *testing.F) {
	f.Add([]byte(`{"Tags":{"team":"a","env":""}}`), "tagKeys=team&tagKeys=env")
	f.Add([]byte(`{"Tags":{"aws:x":"y"}}`), "tagKeys=")
	f.Add([]byte(`{"Tags":{"a\u0000":"\n"}}`), "tagKeys=%00&tagKeys=%ZZ")
	f.Add([]byte(`{"Tags":null}`), "")
	f.Fuzz(func(t *testing.T, body []byte, query string) {
		tags, err := parseTagResource(body)
		if err != nil && apierr.As(err) == nil {
			t.Fatalf("non-API error %v", err)
		}
		if err == nil {
			if len(tags) > 50 {
				t.Fatalf("accepted %d tags", len(tags))
			}
			for k, v := range tags {
				checkTagKey(t, k)
				if utf8.RuneCountInString(v) > 256 || strings.ContainsFunc(v, unicode.IsControl) {
					t.Fatalf("accepted value %q", v)
				}
				if strings.HasPrefix(strings.ToLower(k), "aws:") {
					t.Fatalf("accepted reserved key %q", k)
				}
			}
		}
		q, perr := url.ParseQuery(query)
		if perr != nil {
			return
		}
		keys, err := parseTagKeys(q)
		if err != nil {
			if apierr.As(err) == nil {
				t.Fatalf("non-API error %v", err)
			}
			return
		}
		if keys == nil {
			t.Fatal("accepted a missing tagKeys")
		}
		for _, k := range keys {
			checkTagKey(t, k)
		}
	})
}

func checkTagKey(t *testing.T, k string) {
	t.Helper()
	if n := utf8.RuneCountInString(k); n < 1 || n > 128 || strings.ContainsFunc(k, unicode.IsControl) {
		t.Fatalf("accepted key %q", k)
	}
}
