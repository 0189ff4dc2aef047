package e2e

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/lambda"
	"github.com/aws/aws-sdk-go-v2/service/lambda/types"
)

// waitProvisionedReady polls GetProvisionedConcurrencyConfig until READY.
func waitProvisionedReady(t *testing.T, s *server, fname, qualifier string) *lambda.GetProvisionedConcurrencyConfigOutput {
	t.Helper()
	var last *lambda.GetProvisionedConcurrencyConfigOutput
	ok := eventually(2*time.Minute, func() bool {
		out, err := s.Lambda.GetProvisionedConcurrencyConfig(context.Background(), &lambda.GetProvisionedConcurrencyConfigInput{
			FunctionName: aws.String(fname), Qualifier: aws.String(qualifier),
		})
		if err != nil {
			t.Fatalf("GetProvisionedConcurrencyConfig %s:%s: %v", fname, qualifier, err)
		}
		last = out
		switch out.Status {
		case types.ProvisionedConcurrencyStatusEnumReady:
			return true
		case types.ProvisionedConcurrencyStatusEnumInProgress:
			return false
		default:
			t.Fatalf("provisioned concurrency of %s:%s is %s: %s", fname, qualifier, out.Status, aws.ToString(out.StatusReason))
		}
		return false
	})
	if !ok {
		t.Fatalf("provisioned concurrency of %s:%s not READY: %+v", fname, qualifier, last)
	}
	return last
}

// checkWarmProvisioned invokes fname:qualifier from n goroutines at once
// and checks that every one ran in a provisioned environment initialised
// ahead of it.
func checkWarmProvisioned(t *testing.T, s *server, fname, qualifier, version string, n int) {
	t.Helper()
	var wg sync.WaitGroup
	for range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			out, res, err := tryInvoke(s, fname, map[string]any{"op": "env", "log": "provisioned"}, withQualifier(qualifier), withTail)
			if err != nil || out.FunctionError != nil {
				t.Errorf("Invoke %s:%s: %v %v", fname, qualifier, err, res)
				return
			}
			if aws.ToString(out.ExecutedVersion) != version {
				t.Errorf("Invoke %s:%s: X-Amz-Executed-Version %q, want %s", fname, qualifier, aws.ToString(out.ExecutedVersion), version)
			}
			if it := environ(res)["AWS_LAMBDA_INITIALIZATION_TYPE"]; it != "provisioned-concurrency" {
				t.Errorf("Invoke %s:%s: AWS_LAMBDA_INITIALIZATION_TYPE %q, want provisioned-concurrency", fname, qualifier, it)
			}
			tail, _ := base64.StdEncoding.DecodeString(aws.ToString(out.LogResult))
			if strings.Contains(string(tail), "Init Duration") || !strings.Contains(string(tail), "REPORT RequestId:") {
				t.Errorf("Invoke %s:%s: log tail of a provisioned environment\n%s\nwant a REPORT line without Init Duration", fname, qualifier, tail)
			}
		}()
	}
	wg.Wait()
}

// TestProvisionedConcurrency configures provisioned concurrency on a
// version and on an alias: environments are initialised ahead (Status
// IN_PROGRESS, then READY), invocations run in them warm, and the
// configurations are listed, deleted and refused on $LATEST.
func TestProvisionedConcurrency(t *testing.T) {
	s := newServer(t)
	ctx := context.Background()
	img := s.pushProbe(t, "probe:pc")
	s.createFunction(t, "pc", img, func(in *lambda.CreateFunctionInput) {
		in.Environment = &types.Environment{Variables: map[string]string{"PROBE_VERSION": "1"}}
	})
	publish(t, s, "pc")
	setEnv(t, s, "pc", map[string]string{"PROBE_VERSION": "2"})
	publish(t, s, "pc")
	if _, err := s.Lambda.CreateAlias(ctx, &lambda.CreateAliasInput{
		FunctionName: aws.String("pc"), Name: aws.String("prod"), FunctionVersion: aws.String("2"),
	}); err != nil {
		t.Fatal(err)
	}

	t.Run("on a version", func(t *testing.T) {
		raw := s.do(t, "PUT", "/2019-09-30/functions/pc/provisioned-concurrency?Qualifier=1",
			[]byte(`{"ProvisionedConcurrentExecutions":2}`), nil)
		var put struct {
			RequestedProvisionedConcurrentExecutions int
			Status                                   string
		}
		json.Unmarshal(raw.body, &put)
		if raw.status != 202 || put.Status != "IN_PROGRESS" || put.RequestedProvisionedConcurrentExecutions != 2 {
			t.Errorf("PutProvisionedConcurrencyConfig: HTTP %d %s; want 202, Status IN_PROGRESS, Requested 2", raw.status, raw.body)
		}
		got := waitProvisionedReady(t, s, "pc", "1")
		if aws.ToInt32(got.RequestedProvisionedConcurrentExecutions) != 2 || aws.ToInt32(got.AvailableProvisionedConcurrentExecutions) != 2 ||
			aws.ToInt32(got.AllocatedProvisionedConcurrentExecutions) != 2 {
			t.Errorf("READY config: requested %d available %d allocated %d, want 2 2 2",
				aws.ToInt32(got.RequestedProvisionedConcurrentExecutions), aws.ToInt32(got.AvailableProvisionedConcurrentExecutions),
				aws.ToInt32(got.AllocatedProvisionedConcurrentExecutions))
		}
		if _, err := time.Parse("2006-01-02T15:04:05.000-0700", aws.ToString(got.LastModified)); err != nil {
			t.Errorf("LastModified %q: %v", aws.ToString(got.LastModified), err)
		}
		if h := s.health(t); h.Environments.Live != 2 || h.Environments.Idle != 2 {
			t.Errorf("with 2 provisioned environments /healthz reports %+v", h.Environments)
		}
		checkWarmProvisioned(t, s, "pc", "1", "1", 2)
		// $LATEST is not provisioned: a cold, on-demand environment.
		out, res := invoke(t, s, "pc", map[string]any{"op": "env"}, withTail)
		if it := environ(res)["AWS_LAMBDA_INITIALIZATION_TYPE"]; it != "on-demand" {
			t.Errorf("$LATEST AWS_LAMBDA_INITIALIZATION_TYPE %q, want on-demand", it)
		}
		if tail := tailOf(t, out); !strings.Contains(tail, "Init Duration") {
			t.Errorf("first invocation of $LATEST: no Init Duration in\n%s", tail)
		}
	})

	t.Run("on an alias", func(t *testing.T) {
		put, err := s.Lambda.PutProvisionedConcurrencyConfig(ctx, &lambda.PutProvisionedConcurrencyConfigInput{
			FunctionName: aws.String("pc"), Qualifier: aws.String("prod"), ProvisionedConcurrentExecutions: aws.Int32(1),
		})
		if err != nil {
			t.Fatal(err)
		}
		if put.Status != types.ProvisionedConcurrencyStatusEnumInProgress || aws.ToInt32(put.RequestedProvisionedConcurrentExecutions) != 1 {
			t.Errorf("PutProvisionedConcurrencyConfig prod: Status %s Requested %d; want IN_PROGRESS 1", put.Status, aws.ToInt32(put.RequestedProvisionedConcurrentExecutions))
		}
		waitProvisionedReady(t, s, "pc", "prod")
		checkWarmProvisioned(t, s, "pc", "prod", "2", 1)
	})

	t.Run("alias moved to another version", func(t *testing.T) {
		// Lambda re-allocates an alias's provisioned concurrency to the
		// version the alias now points to.
		setEnv(t, s, "pc", map[string]string{"PROBE_VERSION": "3"})
		if v := publish(t, s, "pc"); aws.ToString(v.Version) != "3" {
			t.Fatalf("published version %q, want 3", aws.ToString(v.Version))
		}
		if _, err := s.Lambda.UpdateAlias(ctx, &lambda.UpdateAliasInput{
			FunctionName: aws.String("pc"), Name: aws.String("prod"), FunctionVersion: aws.String("3"),
		}); err != nil {
			t.Fatal(err)
		}
		waitProvisionedReady(t, s, "pc", "prod")
		checkWarmProvisioned(t, s, "pc", "prod", "3", 1)
		if _, err := s.Lambda.UpdateAlias(ctx, &lambda.UpdateAliasInput{
			FunctionName: aws.String("pc"), Name: aws.String("prod"), FunctionVersion: aws.String("2"),
		}); err != nil {
			t.Fatal(err)
		}
		waitProvisionedReady(t, s, "pc", "prod")
	})

	t.Run("list", func(t *testing.T) {
		out, err := s.Lambda.ListProvisionedConcurrencyConfigs(ctx, &lambda.ListProvisionedConcurrencyConfigsInput{FunctionName: aws.String("pc")})
		if err != nil {
			t.Fatal(err)
		}
		var arns []string
		for _, c := range out.ProvisionedConcurrencyConfigs {
			arns = append(arns, aws.ToString(c.FunctionArn))
			if c.Status != types.ProvisionedConcurrencyStatusEnumReady {
				t.Errorf("%s: Status %s, want READY", aws.ToString(c.FunctionArn), c.Status)
			}
		}
		slices.Sort(arns)
		if want := []string{testARN("pc", "1"), testARN("pc", "prod")}; !slices.Equal(arns, want) {
			t.Errorf("ListProvisionedConcurrencyConfigs = %v, want %v", arns, want)
		}
	})

	t.Run("delete", func(t *testing.T) {
		raw := s.do(t, "DELETE", "/2019-09-30/functions/pc/provisioned-concurrency?Qualifier=1", nil, nil)
		if raw.status != 204 {
			t.Errorf("DeleteProvisionedConcurrencyConfig: HTTP %d %s, want 204", raw.status, raw.body)
		}
		_, err := s.Lambda.GetProvisionedConcurrencyConfig(ctx, &lambda.GetProvisionedConcurrencyConfigInput{
			FunctionName: aws.String("pc"), Qualifier: aws.String("1"),
		})
		asWireError(t, err).check(t, "GetProvisionedConcurrencyConfig after delete", 404, "ProvisionedConcurrencyConfigNotFoundException")
		if _, err := s.Lambda.DeleteProvisionedConcurrencyConfig(ctx, &lambda.DeleteProvisionedConcurrencyConfigInput{
			FunctionName: aws.String("pc"), Qualifier: aws.String("prod"),
		}); err != nil {
			t.Fatal(err)
		}
		out, err := s.Lambda.ListProvisionedConcurrencyConfigs(ctx, &lambda.ListProvisionedConcurrencyConfigsInput{FunctionName: aws.String("pc")})
		if err != nil {
			t.Fatal(err)
		}
		if len(out.ProvisionedConcurrencyConfigs) != 0 {
			t.Errorf("ListProvisionedConcurrencyConfigs after deleting both = %d configs", len(out.ProvisionedConcurrencyConfigs))
		}
		mustInvoke(t, s, "pc", map[string]any{"op": "echo"}, withQualifier("1"))
	})

	t.Run("refused", func(t *testing.T) {
		_, err := s.Lambda.PutProvisionedConcurrencyConfig(ctx, &lambda.PutProvisionedConcurrencyConfigInput{
			FunctionName: aws.String("pc"), Qualifier: aws.String("$LATEST"), ProvisionedConcurrentExecutions: aws.Int32(1),
		})
		asWireError(t, err).check(t, "PutProvisionedConcurrencyConfig on $LATEST", 400, "InvalidParameterValueException")
		_, err = s.Lambda.GetProvisionedConcurrencyConfig(ctx, &lambda.GetProvisionedConcurrencyConfigInput{
			FunctionName: aws.String("pc"), Qualifier: aws.String("2"),
		})
		asWireError(t, err).check(t, "GetProvisionedConcurrencyConfig never configured", 404, "ProvisionedConcurrencyConfigNotFoundException")
		_, err = s.Lambda.PutProvisionedConcurrencyConfig(ctx, &lambda.PutProvisionedConcurrencyConfigInput{
			FunctionName: aws.String("pc"), Qualifier: aws.String("9"), ProvisionedConcurrentExecutions: aws.Int32(1),
		})
		asWireError(t, err).check(t, "PutProvisionedConcurrencyConfig on a missing version", 404, "ResourceNotFoundException")
	})
}
