package e2e

import (
	"context"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/lambda"
	"github.com/aws/aws-sdk-go-v2/service/lambda/types"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	ggcrtypes "github.com/google/go-containerregistry/pkg/v1/types"
)

// TestFunctionLifecycle lists, reads, reconfigures, redeploys and deletes
// functions of one server with the SDK and its waiters.
func TestFunctionLifecycle(t *testing.T) {
	s := newServer(t)
	ctx := context.Background()
	img := s.pushProbe(t, "probe:v1", "PROBE_VERSION=1")
	names := []string{"life-a", "life-b", "life-c", "life-d", "life-e"}
	for _, n := range names {
		s.createPending(t, n, img)
	}
	for _, n := range names {
		s.waitActive(t, n)
	}

	t.Run("list with pagination", func(t *testing.T) {
		p := lambda.NewListFunctionsPaginator(s.Lambda, &lambda.ListFunctionsInput{MaxItems: aws.Int32(2)})
		var got []string
		pages := 0
		for p.HasMorePages() {
			page, err := p.NextPage(ctx)
			if err != nil {
				t.Fatalf("ListFunctions page %d: %v", pages+1, err)
			}
			pages++
			if len(page.Functions) > 2 {
				t.Errorf("page %d holds %d functions, want at most MaxItems 2", pages, len(page.Functions))
			}
			for _, f := range page.Functions {
				got = append(got, aws.ToString(f.FunctionName))
			}
			if pages > 10 {
				t.Fatalf("paginator does not end: %v", got)
			}
		}
		slices.Sort(got)
		if !slices.Equal(got, names) || pages < 3 {
			t.Errorf("ListFunctions by 2 = %v in %d pages, want %v in 3", got, pages, names)
		}
	})

	t.Run("get configuration", func(t *testing.T) {
		c, err := s.Lambda.GetFunctionConfiguration(ctx, &lambda.GetFunctionConfigurationInput{FunctionName: aws.String("life-a")})
		if err != nil {
			t.Fatal(err)
		}
		fn, err := s.Lambda.GetFunction(ctx, &lambda.GetFunctionInput{FunctionName: aws.String("life-a")})
		if err != nil {
			t.Fatal(err)
		}
		if got, want := aws.ToString(c.FunctionArn), "arn:aws:lambda:us-east-1:000000000000:function:life-a"; got != want {
			t.Errorf("FunctionArn = %q, want %q", got, want)
		}
		if aws.ToString(c.FunctionName) != "life-a" || aws.ToString(c.Role) != testRole || c.PackageType != types.PackageTypeImage ||
			aws.ToString(c.Version) != "$LATEST" || aws.ToInt32(c.MemorySize) != 128 || aws.ToInt32(c.Timeout) != 10 {
			t.Errorf("configuration = name %q role %q package %s version %q memory %d timeout %d",
				aws.ToString(c.FunctionName), aws.ToString(c.Role), c.PackageType, aws.ToString(c.Version),
				aws.ToInt32(c.MemorySize), aws.ToInt32(c.Timeout))
		}
		if c.State != types.StateActive || c.LastUpdateStatus != types.LastUpdateStatusSuccessful {
			t.Errorf("State %s, LastUpdateStatus %s; want Active, Successful", c.State, c.LastUpdateStatus)
		}
		if c.EphemeralStorage == nil || aws.ToInt32(c.EphemeralStorage.Size) != 512 {
			t.Errorf("EphemeralStorage = %+v, want 512", c.EphemeralStorage)
		}
		if !slices.Equal(c.Architectures, []types.Architecture{types.ArchitectureX8664}) {
			t.Errorf("Architectures = %v, want [x86_64]", c.Architectures)
		}
		if !regexp.MustCompile(`^[0-9a-f]{64}$`).MatchString(aws.ToString(c.CodeSha256)) {
			t.Errorf("CodeSha256 = %q, want the image digest in hex", aws.ToString(c.CodeSha256))
		}
		if resolved := aws.ToString(fn.Code.ResolvedImageUri); !strings.HasSuffix(resolved, "@sha256:"+aws.ToString(c.CodeSha256)) {
			t.Errorf("ResolvedImageUri %q does not end in the CodeSha256 %s", resolved, aws.ToString(c.CodeSha256))
		}
		if _, err := time.Parse("2006-01-02T15:04:05.000-0700", aws.ToString(c.LastModified)); err != nil {
			t.Errorf("LastModified = %q, want 2024-01-01T00:00:00.000+0000: %v", aws.ToString(c.LastModified), err)
		}
		if aws.ToString(c.RevisionId) == "" {
			t.Error("no RevisionId")
		}
	})

	t.Run("update configuration", func(t *testing.T) {
		before := mustInvoke(t, s, "life-b", map[string]any{"op": "env"})
		up, err := s.Lambda.UpdateFunctionConfiguration(ctx, &lambda.UpdateFunctionConfigurationInput{
			FunctionName: aws.String("life-b"),
			Environment:  &types.Environment{Variables: map[string]string{"COLOR": "blue"}},
		})
		if err != nil {
			t.Fatal(err)
		}
		if up.LastUpdateStatus != types.LastUpdateStatusInProgress {
			t.Errorf("UpdateFunctionConfiguration LastUpdateStatus = %s, want InProgress", up.LastUpdateStatus)
		}
		waitUpdated(t, s, "life-b")
		after := mustInvoke(t, s, "life-b", map[string]any{"op": "env"})
		if env := environ(after); env["COLOR"] != "blue" {
			t.Errorf("after the update COLOR = %q, want blue", env["COLOR"])
		}
		if after["env"] == before["env"] {
			t.Errorf("after a configuration change the invoke ran in the old environment %v", after["env"])
		}
		c, err := s.Lambda.GetFunctionConfiguration(ctx, &lambda.GetFunctionConfigurationInput{FunctionName: aws.String("life-b")})
		if err != nil {
			t.Fatal(err)
		}
		if c.Environment == nil || c.Environment.Variables["COLOR"] != "blue" {
			t.Errorf("configuration Environment = %+v, want COLOR=blue", c.Environment)
		}
	})

	t.Run("update code", func(t *testing.T) {
		old, err := s.Lambda.GetFunction(ctx, &lambda.GetFunctionInput{FunctionName: aws.String("life-c")})
		if err != nil {
			t.Fatal(err)
		}
		if v := mustInvoke(t, s, "life-c", map[string]any{"op": "echo"})["version"]; v != "1" {
			t.Fatalf("version before the update = %v, want 1", v)
		}
		// A second image with a large extra layer, so that deploying it
		// takes long enough for the conflict below.
		v2 := pushBigProbe(t, s, "probe:v2", 48<<20, "PROBE_VERSION=2")
		up, err := s.Lambda.UpdateFunctionCode(ctx, &lambda.UpdateFunctionCodeInput{
			FunctionName: aws.String("life-c"), ImageUri: aws.String(v2),
		})
		if err != nil {
			t.Fatal(err)
		}
		_, conflict := s.Lambda.UpdateFunctionCode(ctx, &lambda.UpdateFunctionCodeInput{
			FunctionName: aws.String("life-c"), ImageUri: aws.String(img),
		})
		_, confConflict := s.Lambda.UpdateFunctionConfiguration(ctx, &lambda.UpdateFunctionConfigurationInput{
			FunctionName: aws.String("life-c"), Timeout: aws.Int32(11),
		})
		still, err := s.Lambda.GetFunction(ctx, &lambda.GetFunctionInput{FunctionName: aws.String("life-c")})
		if err != nil {
			t.Fatal(err)
		}
		if up.LastUpdateStatus != types.LastUpdateStatusInProgress {
			t.Errorf("UpdateFunctionCode LastUpdateStatus = %s, want InProgress", up.LastUpdateStatus)
		}
		if still.Configuration.LastUpdateStatus != types.LastUpdateStatusInProgress {
			t.Logf("the update finished before the conflicting calls could be checked (LastUpdateStatus %s); not checking 409",
				still.Configuration.LastUpdateStatus)
		} else {
			wantMsg := "An update is in progress for resource: arn:aws:lambda:us-east-1:000000000000:function:life-c"
			w := asWireError(t, conflict)
			w.check(t, "UpdateFunctionCode during an update", 409, "ResourceConflictException")
			if !strings.Contains(w.message, wantMsg) {
				t.Errorf("message = %q, want it to contain %q", w.message, wantMsg)
			}
			asWireError(t, confConflict).check(t, "UpdateFunctionConfiguration during an update", 409, "ResourceConflictException")
			// The old code serves until the new one is ready.
			if aws.ToString(still.Configuration.CodeSha256) != aws.ToString(old.Configuration.CodeSha256) {
				t.Errorf("CodeSha256 changed while the update was in progress")
			}
		}
		waitUpdated(t, s, "life-c")
		fn, err := s.Lambda.GetFunction(ctx, &lambda.GetFunctionInput{FunctionName: aws.String("life-c")})
		if err != nil {
			t.Fatal(err)
		}
		if fn.Configuration.LastUpdateStatus != types.LastUpdateStatusSuccessful {
			t.Errorf("LastUpdateStatus = %s (%s), want Successful", fn.Configuration.LastUpdateStatus,
				aws.ToString(fn.Configuration.LastUpdateStatusReason))
		}
		if aws.ToString(fn.Configuration.CodeSha256) == aws.ToString(old.Configuration.CodeSha256) {
			t.Errorf("CodeSha256 unchanged after UpdateFunctionCode: %s", aws.ToString(fn.Configuration.CodeSha256))
		}
		if aws.ToString(fn.Code.ImageUri) != v2 {
			t.Errorf("Code.ImageUri = %q, want %q", aws.ToString(fn.Code.ImageUri), v2)
		}
		if v := mustInvoke(t, s, "life-c", map[string]any{"op": "echo"})["version"]; v != "2" {
			t.Errorf("version after the update = %v, want 2", v)
		}
	})

	t.Run("delete", func(t *testing.T) {
		mustInvoke(t, s, "life-d", map[string]any{"op": "echo"})
		if _, err := s.Lambda.DeleteFunction(ctx, &lambda.DeleteFunctionInput{FunctionName: aws.String("life-d")}); err != nil {
			t.Fatal(err)
		}
		_, err := s.Lambda.GetFunction(ctx, &lambda.GetFunctionInput{FunctionName: aws.String("life-d")})
		asWireError(t, err).check(t, "GetFunction after DeleteFunction", 404, "ResourceNotFoundException")
		_, err = s.Lambda.Invoke(ctx, &lambda.InvokeInput{FunctionName: aws.String("life-d"), Payload: []byte(`{}`)})
		asWireError(t, err).check(t, "Invoke after DeleteFunction", 404, "ResourceNotFoundException")
		list, err := s.Lambda.ListFunctions(ctx, &lambda.ListFunctionsInput{})
		if err != nil {
			t.Fatal(err)
		}
		for _, f := range list.Functions {
			if aws.ToString(f.FunctionName) == "life-d" {
				t.Error("ListFunctions still lists the deleted function")
			}
		}
	})
}

// TestDeployFailures: an image its registry does not have is refused at
// once by CreateFunction and UpdateFunctionCode, as Lambda does; an image
// that cannot be pulled once the function exists (its registry is not
// there) makes the function Failed with the reason Lambda gives, and the
// FunctionActiveV2 waiter gives up on it.
func TestDeployFailures(t *testing.T) {
	s := newServer(t)
	ctx := context.Background()
	img := s.pushProbe(t, "probe:v1")

	for _, missing := range []string{s.registry() + "/probe:no-such-tag", s.registry() + "/no-such-repo:v1",
		s.registry() + "/probe@sha256:" + strings.Repeat("0", 64)} {
		_, err := s.Lambda.CreateFunction(ctx, &lambda.CreateFunctionInput{
			FunctionName: aws.String("never"), PackageType: types.PackageTypeImage, Role: aws.String(testRole),
			Code: &types.FunctionCode{ImageUri: aws.String(missing)},
		})
		w := asWireError(t, err)
		w.check(t, "CreateFunction of "+missing, 400, "InvalidParameterValueException")
		if want := "Source image " + missing + " does not exist. Provide a valid source image."; w.message != want {
			t.Errorf("CreateFunction of %s: message %q, want %q", missing, w.message, want)
		}
	}
	_, err := s.Lambda.GetFunction(ctx, &lambda.GetFunctionInput{FunctionName: aws.String("never")})
	asWireError(t, err).check(t, "GetFunction of a refused function", 404, "ResourceNotFoundException")

	s.createFunction(t, "deployed", img)
	_, err = s.Lambda.UpdateFunctionCode(ctx, &lambda.UpdateFunctionCodeInput{
		FunctionName: aws.String("deployed"), ImageUri: aws.String(s.registry() + "/probe:no-such-tag"),
	})
	asWireError(t, err).check(t, "UpdateFunctionCode to a missing tag", 400, "InvalidParameterValueException")
	if c, err := s.Lambda.GetFunctionConfiguration(ctx, &lambda.GetFunctionConfigurationInput{FunctionName: aws.String("deployed")}); err != nil ||
		c.LastUpdateStatus != types.LastUpdateStatusSuccessful {
		t.Errorf("after the refused update: %v; want the function as it was, its last update Successful", err)
	}

	fname := "failed-unreachable"
	out := s.createPending(t, fname, freeLoopbackAddr(t)+"/probe:v1")
	if out.State != types.StatePending {
		t.Errorf("CreateFunction State = %s, want Pending", out.State)
	}
	w := lambda.NewFunctionActiveV2Waiter(s.Lambda, func(o *lambda.FunctionActiveV2WaiterOptions) {
		o.MinDelay, o.MaxDelay = 50*time.Millisecond, 500*time.Millisecond
	})
	if err := w.Wait(ctx, &lambda.GetFunctionInput{FunctionName: aws.String(fname)}, 2*time.Minute); err == nil {
		t.Fatal("FunctionActiveV2 waiter succeeded on a function whose image cannot be pulled")
	}
	fn, err := s.Lambda.GetFunction(ctx, &lambda.GetFunctionInput{FunctionName: aws.String(fname)})
	if err != nil {
		t.Fatal(err)
	}
	c := fn.Configuration
	reasons := []types.StateReasonCode{types.StateReasonCodeInternalError, types.StateReasonCodeImageAccessDenied}
	if c.State != types.StateFailed || !slices.Contains(reasons, c.StateReasonCode) || aws.ToString(c.StateReason) == "" {
		t.Errorf("State %s, StateReasonCode %s, StateReason %q; want Failed with one of %v and a reason",
			c.State, c.StateReasonCode, aws.ToString(c.StateReason), reasons)
	}
}

// waitUpdated waits with the SDK's FunctionUpdatedV2 waiter.
func waitUpdated(t *testing.T, s *server, fname string) {
	t.Helper()
	w := lambda.NewFunctionUpdatedV2Waiter(s.Lambda, func(o *lambda.FunctionUpdatedV2WaiterOptions) {
		o.MinDelay, o.MaxDelay = 50*time.Millisecond, 500*time.Millisecond
	})
	if err := w.Wait(context.Background(), &lambda.GetFunctionInput{FunctionName: aws.String(fname)}, 2*time.Minute); err != nil {
		t.Fatalf("FunctionUpdatedV2 %s: %v", fname, err)
	}
}

// environ returns the environment an "env" op reported.
func environ(res map[string]any) map[string]string {
	env := map[string]string{}
	list, _ := res["environ"].([]any)
	for _, kv := range list {
		k, v, _ := strings.Cut(kv.(string), "=")
		env[k] = v
	}
	return env
}

// pushBigProbe pushes the probe image with an extra layer of size random
// bytes on top.
func pushBigProbe(t *testing.T, s *server, repoTag string, size int64, env ...string) string {
	t.Helper()
	layer, err := random.Layer(size, ggcrtypes.DockerLayer)
	if err != nil {
		t.Fatal(err)
	}
	img, err := mutate.AppendLayers(probeImage(t, env...), layer)
	if err != nil {
		t.Fatal(err)
	}
	ref := s.registry() + "/" + repoTag
	r, err := name.ParseReference(ref)
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.Write(r, img); err != nil {
		t.Fatalf("push %s: %v", ref, err)
	}
	return ref
}
