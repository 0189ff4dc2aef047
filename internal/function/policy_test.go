package function

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/kappa-run/kappa/internal/apierr"
	"github.com/kappa-run/kappa/internal/store/memstore"
)

func TestPermissionInputValidate(t *testing.T) {
	ok := PermissionInput{StatementID: "s3-invoke", Action: "lambda:InvokeFunction", Principal: "s3.amazonaws.com"}
	tests := []struct {
		name     string
		mutate   func(*PermissionInput)
		kind     apierr.Kind
		contains string
	}{
		{name: "valid", mutate: func(*PermissionInput) {}},
		{name: "every condition", mutate: func(in *PermissionInput) {
			in.SourceArn, in.SourceAccount = "arn:aws:s3:::bucket", "123456789012"
			in.EventSourceToken, in.PrincipalOrgID, in.FunctionURLAuthType = "tok.en-1", "o-abcdefghij", "NONE"
		}},
		{name: "action wildcard", mutate: func(in *PermissionInput) { in.Action = "lambda:*" }},
		{name: "account principal", mutate: func(in *PermissionInput) { in.Principal = "123456789012" }},
		{name: "role principal", mutate: func(in *PermissionInput) { in.Principal = "arn:aws:iam::123456789012:role/deployer" }},
		{name: "everyone", mutate: func(in *PermissionInput) { in.Principal = "*" }},
		{name: "no statement id", mutate: func(in *PermissionInput) { in.StatementID = "" }, kind: apierr.Validation, contains: "Value null at 'statementId'"},
		{name: "long statement id", mutate: func(in *PermissionInput) { in.StatementID = strings.Repeat("s", 101) }, kind: apierr.Validation, contains: "less than or equal to 100"},
		{name: "statement id with slash", mutate: func(in *PermissionInput) { in.StatementID = "a/b" }, kind: apierr.Validation, contains: "at 'statementId'"},
		{name: "no action", mutate: func(in *PermissionInput) { in.Action = "" }, kind: apierr.Validation, contains: "Value null at 'action'"},
		{name: "foreign action", mutate: func(in *PermissionInput) { in.Action = "s3:GetObject" }, kind: apierr.Validation, contains: "at 'action'"},
		{name: "no principal", mutate: func(in *PermissionInput) { in.Principal = "" }, kind: apierr.Validation, contains: "Value null at 'principal'"},
		{name: "principal with space", mutate: func(in *PermissionInput) { in.Principal = "s3 .amazonaws.com" }, kind: apierr.Validation, contains: "at 'principal'"},
		{name: "unknown principal", mutate: func(in *PermissionInput) { in.Principal = "evil.example.com" }, kind: apierr.InvalidParameter, contains: "principal was invalid"},
		{name: "NUL principal", mutate: func(in *PermissionInput) { in.Principal = "s3.amazonaws.com\x00" }, kind: apierr.InvalidParameter},
		{name: "bad source arn", mutate: func(in *PermissionInput) { in.SourceArn = "bucket" }, kind: apierr.Validation, contains: "at 'sourceArn'"},
		{name: "source arn with NUL", mutate: func(in *PermissionInput) { in.SourceArn = "arn:aws:s3:::b\x00" }, kind: apierr.Validation, contains: "at 'sourceArn'"},
		{name: "bad source account", mutate: func(in *PermissionInput) { in.SourceAccount = "12345" }, kind: apierr.Validation, contains: "at 'sourceAccount'"},
		{name: "bad org id", mutate: func(in *PermissionInput) { in.PrincipalOrgID = "org" }, kind: apierr.Validation, contains: "at 'principalOrgID'"},
		{name: "bad auth type", mutate: func(in *PermissionInput) { in.FunctionURLAuthType = "OPEN" }, kind: apierr.Validation, contains: "at 'functionUrlAuthType'"},
		{name: "long token", mutate: func(in *PermissionInput) { in.EventSourceToken = strings.Repeat("t", 257) }, kind: apierr.Validation, contains: "at 'eventSourceToken'"},
		{name: "three errors", mutate: func(in *PermissionInput) { in.StatementID, in.Action, in.Principal = "", "", "" }, kind: apierr.Validation, contains: "3 validation errors"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			in := ok
			tt.mutate(&in)
			err := in.Validate()
			if tt.kind == "" {
				if err != nil {
					t.Fatalf("refused: %v", err)
				}
				return
			}
			if !errors.Is(err, tt.kind) || !strings.Contains(err.Error(), tt.contains) {
				t.Fatalf("= %v, want %s containing %q", err, tt.kind, tt.contains)
			}
		})
	}
}

func TestStatementShape(t *testing.T) {
	tests := []struct {
		name string
		in   PermissionInput
		want string
	}{
		{"service with source", PermissionInput{StatementID: "s3", Action: "lambda:InvokeFunction", Principal: "s3.amazonaws.com",
			SourceArn: "arn:aws:s3:::b", SourceAccount: "123456789012"},
			`{"Sid":"s3","Effect":"Allow","Principal":{"Service":"s3.amazonaws.com"},"Action":"lambda:InvokeFunction","Resource":"R",` +
				`"Condition":{"ArnLike":{"AWS:SourceArn":"arn:aws:s3:::b"},"StringEquals":{"AWS:SourceAccount":"123456789012"}}}`},
		{"account", PermissionInput{StatementID: "x", Action: "lambda:GetFunction", Principal: "123456789012"},
			`{"Sid":"x","Effect":"Allow","Principal":{"AWS":"arn:aws:iam::123456789012:root"},"Action":"lambda:GetFunction","Resource":"R"}`},
		{"everyone via URL", PermissionInput{StatementID: "url", Action: "lambda:InvokeFunctionUrl", Principal: "*", FunctionURLAuthType: "NONE"},
			`{"Sid":"url","Effect":"Allow","Principal":"*","Action":"lambda:InvokeFunctionUrl","Resource":"R","Condition":{"StringEquals":{"lambda:FunctionUrlAuthType":"NONE"}}}`},
		{"alexa", PermissionInput{StatementID: "a", Action: "lambda:InvokeFunction", Principal: "alexa-connectedhome.amazon.com", EventSourceToken: "amzn1.ask.skill.1", InvokedViaFunctionURL: true},
			`{"Sid":"a","Effect":"Allow","Principal":{"Service":"alexa-connectedhome.amazon.com"},"Action":"lambda:InvokeFunction","Resource":"R",` +
				`"Condition":{"Bool":{"lambda:InvokedViaFunctionUrl":"true"},"StringEquals":{"lambda:EventSourceToken":"amzn1.ask.skill.1"}}}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			st, err := tt.in.statement("R")
			if err != nil {
				t.Fatal(err)
			}
			b, _ := json.Marshal(st)
			if string(b) != tt.want {
				t.Fatalf("statement\n got %s\nwant %s", b, tt.want)
			}
			var back Statement
			if err := json.Unmarshal(b, &back); err != nil || back.Principal != st.Principal {
				t.Errorf("round trip = %+v, %v", back.Principal, err)
			}
		})
	}
}

func TestPermissions(t *testing.T) {
	b, _ := memstore.New().Bucket(context.Background(), "functions")
	s := NewService(Options{Bucket: b, Images: &fakeImages{}, Region: "us-east-1", Account: "000000000000"})
	t.Cleanup(s.Close)
	ctx := context.Background()
	s.Create(ctx, validInput())
	waitFor(t, s, "hello", func(f *Function) bool { return f.Latest.State == StateActive })
	if _, err := s.Publish(ctx, "hello", PublishInput{}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.CreateAlias(ctx, "hello", AliasInput{Name: "live", FunctionVersion: "1"}); err != nil {
		t.Fatal(err)
	}
	perm := func(sid string) PermissionInput {
		return PermissionInput{StatementID: sid, Action: "lambda:InvokeFunction", Principal: "events.amazonaws.com"}
	}
	fn, v1, live := Ref{Name: "hello"}, Ref{Name: "hello", Qualifier: "1"}, Ref{Name: "hello", Qualifier: "live"}

	if _, err := s.Policy(ctx, fn); !errors.Is(err, apierr.NotFound) {
		t.Fatalf("Policy before any statement = %v", err)
	}
	st, err := s.AddPermission(ctx, fn, perm("a"))
	if err != nil || st.Resource != helloARN {
		t.Fatalf("AddPermission = %+v, %v", st, err)
	}
	if st, err := s.AddPermission(ctx, Ref{Name: "hello", Qualifier: "01"}, perm("a")); err != nil || st.Resource != helloARN+":1" {
		t.Fatalf("AddPermission on version 01 = %+v, %v", st, err)
	}
	if _, err := s.AddPermission(ctx, live, perm("a")); err != nil {
		t.Fatal(err)
	}
	p, err := s.Policy(ctx, fn)
	if err != nil || len(p.Statements) != 1 || p.RevisionID == "" {
		t.Fatalf("Policy = %+v, %v", p, err)
	}
	if latest, _ := s.Policy(ctx, Ref{Name: "hello", Qualifier: LatestVersion}); latest.RevisionID != p.RevisionID {
		t.Errorf("$LATEST and the function have different policies")
	}
	if !strings.HasPrefix(string(p.Document()), `{"Version":"2012-10-17","Id":"default","Statement":[{"Sid":"a"`) {
		t.Errorf("Document = %s", p.Document())
	}
	if _, err := s.AddPermission(ctx, fn, PermissionInput{StatementID: "b", Action: "lambda:InvokeFunction", Principal: "*", RevisionID: p.RevisionID}); err != nil {
		t.Fatalf("AddPermission with the current RevisionId = %v", err)
	}

	tests := []struct {
		name     string
		op       func() error
		kind     apierr.Kind
		contains string
	}{
		{"duplicate sid", func() error { _, err := s.AddPermission(ctx, fn, perm("a")); return err }, apierr.Conflict, "The statement id (a) provided already exists"},
		{"$LATEST", func() error {
			_, err := s.AddPermission(ctx, Ref{Name: "hello", Qualifier: LatestVersion}, perm("z"))
			return err
		}, apierr.InvalidParameter, "adding policies for $LATEST"},
		{"stale revision", func() error {
			in := perm("z")
			in.RevisionID = p.RevisionID
			_, err := s.AddPermission(ctx, fn, in)
			return err
		}, apierr.PreconditionFailed, ""},
		{"missing version", func() error {
			_, err := s.AddPermission(ctx, Ref{Name: "hello", Qualifier: "7"}, perm("z"))
			return err
		}, apierr.NotFound, ""},
		{"missing alias", func() error { _, err := s.Policy(ctx, Ref{Name: "hello", Qualifier: "gone"}); return err }, apierr.NotFound, "Alias not found"},
		{"missing function", func() error { _, err := s.AddPermission(ctx, Ref{Name: "nope"}, perm("z")); return err }, apierr.NotFound, "Function not found"},
		{"missing function policy", func() error { _, err := s.Policy(ctx, Ref{Name: "nope"}); return err }, apierr.NotFound, "Function not found"},
		{"remove absent sid", func() error { return s.RemovePermission(ctx, fn, "zz", "") }, apierr.NotFound, "Statement zz is not found"},
		{"remove bad sid", func() error { return s.RemovePermission(ctx, fn, "a b", "") }, apierr.Validation, "at 'statementId'"},
		{"remove stale revision", func() error { return s.RemovePermission(ctx, fn, "a", p.RevisionID) }, apierr.PreconditionFailed, ""},
		{"remove from missing version", func() error { return s.RemovePermission(ctx, Ref{Name: "hello", Qualifier: "9"}, "a", "") }, apierr.NotFound, ""},
		{"too long", func() error {
			in := perm("big")
			in.SourceArn = "arn:aws:s3:::" + strings.Repeat("b", MaxPolicyBytes)
			_, err := s.AddPermission(ctx, fn, in)
			return err
		}, apierr.PolicyTooLong, "bigger than the limit (20480)"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.op()
			if !errors.Is(err, tt.kind) || !strings.Contains(fmt.Sprint(err), tt.contains) {
				t.Fatalf("= %v, want %s containing %q", err, tt.kind, tt.contains)
			}
		})
	}

	// Another Service on the same bucket: the policies are in the store.
	again := NewService(Options{Bucket: b, Images: &fakeImages{}, Region: "us-east-1", Account: "000000000000"})
	t.Cleanup(again.Close)
	for _, w := range []struct {
		ref      Ref
		sids     []string
		resource string
	}{{fn, []string{"a", "b"}, helloARN}, {v1, []string{"a"}, helloARN + ":1"}, {live, []string{"a"}, helloARN + ":live"}} {
		p, err := again.Policy(ctx, w.ref)
		if err != nil {
			t.Errorf("policy of %q after restart: %v", w.ref.Qualifier, err)
			continue
		}
		var sids []string
		for _, st := range p.Statements {
			sids = append(sids, st.Sid)
			if st.Resource != w.resource {
				t.Errorf("policy of %q after restart: statement %s on %s, want %s", w.ref.Qualifier, st.Sid, st.Resource, w.resource)
			}
		}
		if !slices.Equal(sids, w.sids) {
			t.Errorf("policy of %q after restart: statements %v, want %v", w.ref.Qualifier, sids, w.sids)
		}
	}

	cur, _ := s.Policy(ctx, fn)
	if err := s.RemovePermission(ctx, fn, "a", cur.RevisionID); err != nil {
		t.Fatal(err)
	}
	if err := s.RemovePermission(ctx, fn, "b", ""); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Policy(ctx, fn); !errors.Is(err, apierr.NotFound) {
		t.Errorf("Policy with no statement left = %v", err)
	}
	if err := s.RemovePermission(ctx, fn, "a", ""); !errors.Is(err, apierr.NotFound) {
		t.Errorf("RemovePermission on an empty policy = %v", err)
	}

	// Deleting an alias drops its policy: one created again starts empty.
	if err := s.DeleteAlias(ctx, "hello", "live"); err != nil {
		t.Fatal(err)
	}
	s.CreateAlias(ctx, "hello", AliasInput{Name: "live", FunctionVersion: "1"})
	if _, err := s.Policy(ctx, live); !errors.Is(err, apierr.NotFound) {
		t.Errorf("policy of a recreated alias = %v", err)
	}
	s.DeleteAlias(ctx, "hello", "live")
	if err := s.DeleteVersion(ctx, "hello", "1"); err != nil {
		t.Fatal(err)
	}
	if f, _ := s.Get(ctx, "hello"); f.Policies != nil {
		t.Errorf("policies left after their version and alias went: %v", f.Policies)
	}

	// Deleting the function drops every policy with it.
	s.AddPermission(ctx, fn, perm("a"))
	if err := s.Delete(ctx, "hello"); err != nil {
		t.Fatal(err)
	}
	s.Create(ctx, validInput())
	if _, err := s.Policy(ctx, fn); !errors.Is(err, apierr.NotFound) || !strings.Contains(err.Error(), "does not exist") {
		t.Errorf("policy of a recreated function = %v", err)
	}
}
