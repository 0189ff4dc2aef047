package lambdaapi

import (
	"encoding/json"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"unicode"

	"github.com/kappa-run/kappa/internal/apierr"
)

const fArn = "arn:aws:lambda:us-east-1:000000000000:function:f"

func createF(t *testing.T, a *API) {
	t.Helper()
	body := `{"FunctionName":"f","Role":"arn:aws:iam::000000000000:role/r","PackageType":"Image","Code":{"ImageUri":"localhost:1/x:1"},"Tags":{"team":"a"}}`
	if rec := do(t, a, "POST", "/2015-03-31/functions", body); rec.Code != 201 {
		t.Fatalf("create: %d %s", rec.Code, rec.Body)
	}
}

func TestPolicyAPI(t *testing.T) {
	a, _, _ := newTestAPI(t)
	createF(t, a)
	base := "/2015-03-31/functions/f/policy"
	add := `{"StatementId":"s3","Action":"lambda:InvokeFunction","Principal":"s3.amazonaws.com","SourceArn":"arn:aws:s3:::bucket","SourceAccount":"123456789012"}`
	var revision string
	tests := []struct {
		name, method, path, body string
		pathOf                   func() string // a path known only once earlier steps ran
		status                   int
		typ                      string
		check                    func(t *testing.T, body []byte)
	}{
		{name: "get before add", method: "GET", path: base, status: 404, typ: "ResourceNotFoundException",
			check: func(t *testing.T, body []byte) {
				if !strings.Contains(string(body), "The resource you requested does not exist.") {
					t.Errorf("body = %s", body)
				}
			}},
		{name: "add", method: "POST", path: base, body: add, status: 201,
			check: func(t *testing.T, body []byte) {
				var out struct{ Statement string }
				json.Unmarshal(body, &out)
				want := `{"Sid":"s3","Effect":"Allow","Principal":{"Service":"s3.amazonaws.com"},"Action":"lambda:InvokeFunction","Resource":"` + fArn + `",` +
					`"Condition":{"ArnLike":{"AWS:SourceArn":"arn:aws:s3:::bucket"},"StringEquals":{"AWS:SourceAccount":"123456789012"}}}`
				if out.Statement != want {
					t.Errorf("Statement\n got %s\nwant %s", out.Statement, want)
				}
			}},
		{name: "get", method: "GET", path: base, status: 200,
			check: func(t *testing.T, body []byte) {
				var out struct{ Policy, RevisionId string }
				json.Unmarshal(body, &out)
				var doc struct {
					Version, Id string
					Statement   []map[string]any
				}
				if err := json.Unmarshal([]byte(out.Policy), &doc); err != nil || doc.Version != "2012-10-17" || doc.Id != "default" ||
					len(doc.Statement) != 1 || doc.Statement[0]["Sid"] != "s3" || out.RevisionId == "" {
					t.Errorf("GetPolicy = %s (%v)", body, err)
				}
				revision = out.RevisionId
			}},
		{name: "duplicate", method: "POST", path: base, body: add, status: 409, typ: "ResourceConflictException"},
		{name: "$LATEST", method: "POST", path: base + "?Qualifier=$LATEST", body: add, status: 400, typ: "InvalidParameterValueException"},
		{name: "missing version", method: "POST", path: base + "?Qualifier=7", body: add, status: 404, typ: "ResourceNotFoundException"},
		{name: "qualifier mismatch", method: "POST", path: "/2015-03-31/functions/f:1/policy?Qualifier=2", body: add, status: 400, typ: "InvalidParameterValueException"},
		{name: "unknown function", method: "POST", path: "/2015-03-31/functions/nope/policy", body: add, status: 404, typ: "ResourceNotFoundException"},
		{name: "malformed json", method: "POST", path: base, body: `{"StatementId":`, status: 400, typ: "InvalidRequestContentException"},
		{name: "wrong type", method: "POST", path: base, body: `{"StatementId":1}`, status: 400, typ: "InvalidRequestContentException"},
		{name: "oversized body", method: "POST", path: base, body: `{"StatementId":"` + strings.Repeat("s", maxControlBody) + `"}`, status: 413, typ: "RequestTooLargeException"},
		{name: "empty body", method: "POST", path: base, status: 400, typ: "ValidationException"},
		{name: "bad principal", method: "POST", path: base, body: `{"StatementId":"x","Action":"lambda:InvokeFunction","Principal":"example.com"}`, status: 400, typ: "InvalidParameterValueException"},
		{name: "hostile statement id", method: "POST", path: base, body: `{"StatementId":"x\"}]}","Action":"lambda:InvokeFunction","Principal":"*"}`, status: 400, typ: "ValidationException"},
		{name: "bad auth type", method: "POST", path: base, body: `{"StatementId":"x","Action":"lambda:InvokeFunctionUrl","Principal":"*","FunctionUrlAuthType":"OPEN"}`, status: 400, typ: "ValidationException"},
		{name: "remove absent", method: "DELETE", path: base + "/nope", status: 404, typ: "ResourceNotFoundException"},
		{name: "remove bad sid", method: "DELETE", path: base + "/a%20b", status: 400, typ: "ValidationException"},
		{name: "remove stale revision", method: "DELETE", path: base + "/s3?RevisionId=stale", status: 412, typ: "PreconditionFailedException"},
		{name: "remove from missing version", method: "DELETE", path: base + "/s3?Qualifier=3", status: 404, typ: "ResourceNotFoundException"},
		{name: "remove with the current revision", method: "DELETE", status: 204,
			pathOf: func() string { return base + "/s3?RevisionId=" + url.QueryEscape(revision) }},
		{name: "get after remove", method: "GET", path: base, status: 404, typ: "ResourceNotFoundException"},
		{name: "remove again", method: "DELETE", path: base + "/s3", status: 404, typ: "ResourceNotFoundException"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := tt.path
			if tt.pathOf != nil {
				path = tt.pathOf()
			}
			rec := do(t, a, tt.method, path, tt.body)
			if rec.Code != tt.status || rec.Header().Get("X-Amzn-ErrorType") != tt.typ {
				t.Fatalf("= %d %q %.300s; want %d %q", rec.Code, rec.Header().Get("X-Amzn-ErrorType"), rec.Body, tt.status, tt.typ)
			}
			if tt.check != nil {
				tt.check(t, rec.Body.Bytes())
			}
		})
	}
	if revision == "" {
		t.Error("GetPolicy gave no RevisionId")
	}
}

var (
	fuzzSIDRE    = regexp.MustCompile(`^[a-zA-Z0-9-_]{1,100}$`)
	fuzzActionRE = regexp.MustCompile(`^(lambda:[*]|lambda:[a-zA-Z]+|[*])$`)
)

func FuzzPolicyInput(f *testing.F) {
	f.Add([]byte(`{"StatementId":"s3","Action":"lambda:InvokeFunction","Principal":"s3.amazonaws.com","SourceArn":"arn:aws:s3:::b","SourceAccount":"123456789012"}`))
	f.Add([]byte(`{"StatementId":"u","Action":"lambda:InvokeFunctionUrl","Principal":"*","FunctionUrlAuthType":"NONE","InvokedViaFunctionUrl":true}`))
	f.Add([]byte(`{"StatementId":"a","Action":"*","Principal":"123456789012","PrincipalOrgID":"o-abcdefghij","EventSourceToken":"t"}`))
	f.Add([]byte(`{"StatementId":"a\u0000","Action":"lambda:*","Principal":"arn:aws:iam::123456789012:role/x\n"}`))
	f.Add([]byte(`[]`))
	f.Fuzz(func(t *testing.T, body []byte) {
		in, err := parsePermission(body)
		if err != nil {
			if apierr.As(err) == nil {
				t.Fatalf("non-API error %v", err)
			}
			return
		}
		if !fuzzSIDRE.MatchString(in.StatementID) || !fuzzActionRE.MatchString(in.Action) {
			t.Fatalf("accepted statement id %q action %q", in.StatementID, in.Action)
		}
		for _, s := range []string{in.Principal, in.SourceArn, in.SourceAccount, in.EventSourceToken, in.PrincipalOrgID} {
			if strings.ContainsFunc(s, unicode.IsControl) {
				t.Fatalf("accepted a control character in %q", s)
			}
		}
		if in.Principal == "" || strings.ContainsFunc(in.Principal, unicode.IsSpace) {
			t.Fatalf("accepted principal %q", in.Principal)
		}
	})
}
