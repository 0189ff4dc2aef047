package e2e

import (
	"context"
	"encoding/json"
	"maps"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/lambda"
)

// TestTagsAndPolicy drives TagResource, UntagResource, ListTags,
// AddPermission, GetPolicy and RemovePermission through the SDK, the way
// Terraform's aws_lambda_function tags and aws_lambda_permission do, and
// checks that tags and policies survive a restart.
func TestTagsAndPolicy(t *testing.T) {
	s := newServer(t)
	ctx := context.Background()
	img := s.pushProbe(t, "probe:tags")
	fn := s.createFunction(t, "tagged", img, func(in *lambda.CreateFunctionInput) {
		in.Tags = map[string]string{"team": "a"}
	})
	arn := aws.ToString(fn.Configuration.FunctionArn)
	fname := aws.String("tagged")

	wantTags := func(t *testing.T, what string, want map[string]string) {
		t.Helper()
		lt, err := s.Lambda.ListTags(ctx, &lambda.ListTagsInput{Resource: aws.String(arn)})
		if err != nil || !maps.Equal(lt.Tags, want) {
			t.Errorf("%s: ListTags = %v, %v; want %v", what, lt, err, want)
		}
		gf, err := s.Lambda.GetFunction(ctx, &lambda.GetFunctionInput{FunctionName: fname})
		if err != nil || !maps.Equal(gf.Tags, want) {
			t.Errorf("%s: GetFunction Tags = %v, %v; want %v", what, gf, err, want)
		}
	}

	t.Run("tags", func(t *testing.T) {
		wantTags(t, "from CreateFunction", map[string]string{"team": "a"})
		if _, err := s.Lambda.TagResource(ctx, &lambda.TagResourceInput{Resource: aws.String(arn),
			Tags: map[string]string{"team": "b", "env": "dev", "cost-centre": "42"}}); err != nil {
			t.Fatal(err)
		}
		if _, err := s.Lambda.UntagResource(ctx, &lambda.UntagResourceInput{Resource: aws.String(arn),
			TagKeys: []string{"env", "cost-centre"}}); err != nil {
			t.Fatal(err)
		}
		wantTags(t, "after tag and untag", map[string]string{"team": "b"})

		_, err := s.Lambda.TagResource(ctx, &lambda.TagResourceInput{Resource: aws.String(arn + ":$LATEST"), Tags: map[string]string{"a": "b"}})
		asWireError(t, err).check(t, "TagResource on a qualified ARN", 400, "InvalidParameterValueException")
		_, err = s.Lambda.ListTags(ctx, &lambda.ListTagsInput{Resource: aws.String("tagged")})
		asWireError(t, err).check(t, "ListTags by name", 400, "ValidationException")
		_, err = s.Lambda.TagResource(ctx, &lambda.TagResourceInput{Resource: aws.String(arn), Tags: map[string]string{"aws:owner": "x"}})
		asWireError(t, err).check(t, "TagResource with an aws: key", 400, "InvalidParameterValueException")
		_, err = s.Lambda.UntagResource(ctx, &lambda.UntagResourceInput{Resource: aws.String(arn + "-missing"), TagKeys: []string{"team"}})
		asWireError(t, err).check(t, "UntagResource of a missing function", 404, "ResourceNotFoundException")
		wantTags(t, "after refused calls", map[string]string{"team": "b"})
	})

	pub, err := s.Lambda.PublishVersion(ctx, &lambda.PublishVersionInput{FunctionName: fname})
	if err != nil {
		t.Fatal(err)
	}
	version := aws.ToString(pub.Version)

	// statements returns the Sid → Resource of the policy of qualifier.
	statements := func(t *testing.T, qualifier string) (map[string]string, error) {
		t.Helper()
		in := &lambda.GetPolicyInput{FunctionName: fname}
		if qualifier != "" {
			in.Qualifier = aws.String(qualifier)
		}
		out, err := s.Lambda.GetPolicy(ctx, in)
		if err != nil {
			return nil, err
		}
		var doc struct {
			Version, Id string
			Statement   []struct{ Sid, Resource string }
		}
		if err := json.Unmarshal([]byte(aws.ToString(out.Policy)), &doc); err != nil || doc.Version != "2012-10-17" || doc.Id != "default" {
			t.Fatalf("GetPolicy(%q) Policy = %s (%v)", qualifier, aws.ToString(out.Policy), err)
		}
		if aws.ToString(out.RevisionId) == "" {
			t.Errorf("GetPolicy(%q) has no RevisionId", qualifier)
		}
		got := map[string]string{}
		for _, st := range doc.Statement {
			got[st.Sid] = st.Resource
		}
		return got, nil
	}

	t.Run("permissions", func(t *testing.T) {
		_, err := statements(t, "")
		asWireError(t, err).check(t, "GetPolicy before any AddPermission", 404, "ResourceNotFoundException")

		add, err := s.Lambda.AddPermission(ctx, &lambda.AddPermissionInput{
			FunctionName: fname, StatementId: aws.String("events"), Action: aws.String("lambda:InvokeFunction"),
			Principal: aws.String("events.amazonaws.com"), SourceArn: aws.String("arn:aws:events:us-east-1:000000000000:rule/nightly"),
		})
		if err != nil {
			t.Fatal(err)
		}
		var st struct {
			Sid, Effect, Action, Resource string
			Principal                     map[string]string
			Condition                     map[string]map[string]string
		}
		if err := json.Unmarshal([]byte(aws.ToString(add.Statement)), &st); err != nil || st.Sid != "events" || st.Effect != "Allow" ||
			st.Resource != arn || st.Principal["Service"] != "events.amazonaws.com" ||
			st.Condition["ArnLike"]["AWS:SourceArn"] != "arn:aws:events:us-east-1:000000000000:rule/nightly" {
			t.Errorf("AddPermission Statement = %s (%v)", aws.ToString(add.Statement), err)
		}
		if _, err := s.Lambda.AddPermission(ctx, &lambda.AddPermissionInput{
			FunctionName: fname, Qualifier: aws.String(version), StatementId: aws.String("s3"), Action: aws.String("lambda:InvokeFunction"),
			Principal: aws.String("s3.amazonaws.com"), SourceAccount: aws.String("000000000000"),
		}); err != nil {
			t.Fatal(err)
		}
		_, err = s.Lambda.AddPermission(ctx, &lambda.AddPermissionInput{
			FunctionName: fname, StatementId: aws.String("events"), Action: aws.String("lambda:InvokeFunction"), Principal: aws.String("sns.amazonaws.com"),
		})
		asWireError(t, err).check(t, "AddPermission with a used StatementId", 409, "ResourceConflictException")
		_, err = s.Lambda.AddPermission(ctx, &lambda.AddPermissionInput{
			FunctionName: fname, Qualifier: aws.String("$LATEST"), StatementId: aws.String("x"), Action: aws.String("lambda:InvokeFunction"), Principal: aws.String("*"),
		})
		asWireError(t, err).check(t, "AddPermission on $LATEST", 400, "InvalidParameterValueException")

		if got, err := statements(t, ""); err != nil || !maps.Equal(got, map[string]string{"events": arn}) {
			t.Errorf("function policy = %v, %v", got, err)
		}
		if got, err := statements(t, version); err != nil || !maps.Equal(got, map[string]string{"s3": arn + ":" + version}) {
			t.Errorf("version %s policy = %v, %v", version, got, err)
		}
		_, err = s.Lambda.RemovePermission(ctx, &lambda.RemovePermissionInput{FunctionName: fname, StatementId: aws.String("s3")})
		asWireError(t, err).check(t, "RemovePermission of a statement of another qualifier", 404, "ResourceNotFoundException")
	})

	s.restart()

	t.Run("after restart", func(t *testing.T) {
		wantTags(t, "after restart", map[string]string{"team": "b"})
		if got, err := statements(t, ""); err != nil || !maps.Equal(got, map[string]string{"events": arn}) {
			t.Errorf("function policy after restart = %v, %v", got, err)
		}
		if got, err := statements(t, version); err != nil || !maps.Equal(got, map[string]string{"s3": arn + ":" + version}) {
			t.Errorf("version policy after restart = %v, %v", got, err)
		}
		for _, q := range []string{"", version} {
			in := &lambda.RemovePermissionInput{FunctionName: fname, StatementId: aws.String("events")}
			if q != "" {
				in.Qualifier, in.StatementId = aws.String(q), aws.String("s3")
			}
			if _, err := s.Lambda.RemovePermission(ctx, in); err != nil {
				t.Fatalf("RemovePermission(%q): %v", q, err)
			}
			_, err := statements(t, q)
			asWireError(t, err).check(t, "GetPolicy after its last statement went", 404, "ResourceNotFoundException")
		}
	})
}
