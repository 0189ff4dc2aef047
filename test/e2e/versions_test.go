package e2e

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/lambda"
	"github.com/aws/aws-sdk-go-v2/service/lambda/types"
)

// TestVersionsAndAliases publishes versions of a function whose
// configuration differs per version, invokes each by number, alias and
// $LATEST, and manages aliases, weighted routing and version deletion.
func TestVersionsAndAliases(t *testing.T) {
	s := newServer(t)
	ctx := context.Background()
	img := s.pushProbe(t, "probe:ver")
	created := s.createFunction(t, "ver", img, func(in *lambda.CreateFunctionInput) {
		in.Environment = &types.Environment{Variables: map[string]string{"PROBE_VERSION": "1"}}
	})
	sha := aws.ToString(created.Configuration.CodeSha256)
	rev1 := aws.ToString(created.Configuration.RevisionId)

	// Version 1 and 2 differ by an environment variable the probe reports.
	_, err := s.Lambda.PublishVersion(ctx, &lambda.PublishVersionInput{
		FunctionName: aws.String("ver"), CodeSha256: aws.String(strings.Repeat("0", 64)),
	})
	asWireError(t, err).check(t, "PublishVersion with a wrong CodeSha256", 412, "PreconditionFailedException")
	v1 := publish(t, s, "ver", func(in *lambda.PublishVersionInput) {
		in.CodeSha256, in.RevisionId, in.Description = aws.String(sha), aws.String(rev1), aws.String("first")
	})
	again := publish(t, s, "ver")
	setEnv(t, s, "ver", map[string]string{"PROBE_VERSION": "2"})
	_, staleErr := s.Lambda.PublishVersion(ctx, &lambda.PublishVersionInput{FunctionName: aws.String("ver"), RevisionId: aws.String(rev1)})
	v2 := publish(t, s, "ver")

	t.Run("publish", func(t *testing.T) {
		if aws.ToString(v1.Version) != "1" || aws.ToString(v2.Version) != "2" {
			t.Fatalf("published versions %q and %q, want 1 and 2", aws.ToString(v1.Version), aws.ToString(v2.Version))
		}
		if aws.ToString(again.Version) != "1" {
			t.Errorf("publishing an unchanged $LATEST gave version %q, want the existing 1", aws.ToString(again.Version))
		}
		asWireError(t, staleErr).check(t, "PublishVersion with a stale RevisionId", 412, "PreconditionFailedException")
		for _, v := range []*lambda.PublishVersionOutput{v1, v2} {
			n := aws.ToString(v.Version)
			if got := aws.ToString(v.FunctionArn); got != testARN("ver", n) {
				t.Errorf("version %s FunctionArn %q, want %q", n, got, testARN("ver", n))
			}
			if aws.ToString(v.CodeSha256) != sha || v.State != types.StateActive {
				t.Errorf("version %s: CodeSha256 %s State %s; want %s Active", n, aws.ToString(v.CodeSha256), v.State, sha)
			}
			if v.Environment == nil || v.Environment.Variables["PROBE_VERSION"] != n {
				t.Errorf("version %s Environment %+v, want PROBE_VERSION=%s", n, v.Environment, n)
			}
			if aws.ToString(v.RevisionId) == "" {
				t.Errorf("version %s has no RevisionId", n)
			}
		}
		if aws.ToString(v1.Description) != "first" {
			t.Errorf("version 1 Description %q, want first", aws.ToString(v1.Description))
		}
	})

	t.Run("list versions", func(t *testing.T) {
		out, err := s.Lambda.ListVersionsByFunction(ctx, &lambda.ListVersionsByFunctionInput{FunctionName: aws.String("ver")})
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		for _, v := range out.Versions {
			got = append(got, aws.ToString(v.Version))
			if n := aws.ToString(v.Version); n != "$LATEST" && aws.ToString(v.FunctionArn) != testARN("ver", n) {
				t.Errorf("listed version %s has FunctionArn %q", n, aws.ToString(v.FunctionArn))
			}
		}
		if want := []string{"$LATEST", "1", "2"}; !slices.Equal(got, want) {
			t.Errorf("ListVersionsByFunction = %v, want %v", got, want)
		}
		p := lambda.NewListVersionsByFunctionPaginator(s.Lambda, &lambda.ListVersionsByFunctionInput{
			FunctionName: aws.String("ver"), MaxItems: aws.Int32(1),
		})
		var paged []string
		for pages := 0; p.HasMorePages(); pages++ {
			if pages > 10 {
				t.Fatalf("paginator does not end: %v", paged)
			}
			page, err := p.NextPage(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if len(page.Versions) != 1 {
				t.Errorf("page %d holds %d versions, want MaxItems 1", pages+1, len(page.Versions))
			}
			for _, v := range page.Versions {
				paged = append(paged, aws.ToString(v.Version))
			}
		}
		if !slices.Equal(paged, got) {
			t.Errorf("ListVersionsByFunction by 1 = %v, want %v", paged, got)
		}
		// ListFunctions with FunctionVersion=ALL holds the published
		// versions too, whatever the page size.
		all := lambda.NewListFunctionsPaginator(s.Lambda, &lambda.ListFunctionsInput{
			FunctionVersion: types.FunctionVersionAll, MaxItems: aws.Int32(1),
		})
		var listed []string
		for pages := 0; all.HasMorePages(); pages++ {
			if pages > 100 {
				t.Fatalf("ListFunctions paginator does not end: %v", listed)
			}
			page, err := all.NextPage(ctx)
			if err != nil {
				t.Fatal(err)
			}
			for _, f := range page.Functions {
				if aws.ToString(f.FunctionName) == "ver" {
					listed = append(listed, aws.ToString(f.Version))
				}
			}
		}
		if !slices.Equal(listed, got) {
			t.Errorf("ListFunctions FunctionVersion=ALL lists versions %v of ver, want %v", listed, got)
		}
	})

	t.Run("invoke by version and $LATEST", func(t *testing.T) {
		tests := []struct {
			name       string
			fname      string
			qualifier  string
			executed   string // X-Amz-Executed-Version and AWS_LAMBDA_FUNCTION_VERSION
			probe      string // PROBE_VERSION of that version
			invokedARN string
		}{
			{"version 1 by Qualifier", "ver", "1", "1", "1", testARN("ver", "1")},
			{"version 2 by Qualifier", "ver", "2", "2", "2", testARN("ver", "2")},
			{"version 1 in the name", "ver:1", "", "1", "1", testARN("ver", "1")},
			{"unqualified", "ver", "", "$LATEST", "2", testARN("ver", "")},
			{"$LATEST by Qualifier", "ver", "$LATEST", "$LATEST", "2", testARN("ver", "$LATEST")},
		}
		for _, tc := range tests {
			t.Run(tc.name, func(t *testing.T) {
				var opts []func(*lambda.InvokeInput)
				if tc.qualifier != "" {
					opts = append(opts, withQualifier(tc.qualifier))
				}
				out, res := invoke(t, s, tc.fname, map[string]any{"op": "env"}, opts...)
				if out.StatusCode != 200 || out.FunctionError != nil {
					t.Fatalf("HTTP %d, function error %q: %s", out.StatusCode, aws.ToString(out.FunctionError), out.Payload)
				}
				if aws.ToString(out.ExecutedVersion) != tc.executed {
					t.Errorf("X-Amz-Executed-Version %q, want %q", aws.ToString(out.ExecutedVersion), tc.executed)
				}
				if res["version"] != tc.probe {
					t.Errorf("ran PROBE_VERSION %v, want %s", res["version"], tc.probe)
				}
				if res["arn"] != tc.invokedARN {
					t.Errorf("invoked function ARN %v, want %s", res["arn"], tc.invokedARN)
				}
				if v := environ(res)["AWS_LAMBDA_FUNCTION_VERSION"]; v != tc.executed {
					t.Errorf("AWS_LAMBDA_FUNCTION_VERSION %q, want %q", v, tc.executed)
				}
			})
		}
		_, err := s.Lambda.Invoke(ctx, &lambda.InvokeInput{FunctionName: aws.String("ver"), Qualifier: aws.String("3"), Payload: []byte(`{}`)})
		asWireError(t, err).check(t, "Invoke of a version never published", 404, "ResourceNotFoundException")
	})

	t.Run("get with qualifier", func(t *testing.T) {
		fn, err := s.Lambda.GetFunction(ctx, &lambda.GetFunctionInput{FunctionName: aws.String("ver"), Qualifier: aws.String("1")})
		if err != nil {
			t.Fatal(err)
		}
		c := fn.Configuration
		if aws.ToString(c.Version) != "1" || aws.ToString(c.FunctionArn) != testARN("ver", "1") ||
			c.Environment == nil || c.Environment.Variables["PROBE_VERSION"] != "1" {
			t.Errorf("GetFunction Qualifier 1: Version %q FunctionArn %q Environment %+v", aws.ToString(c.Version), aws.ToString(c.FunctionArn), c.Environment)
		}
		if aws.ToString(fn.Code.ImageUri) != img {
			t.Errorf("GetFunction Qualifier 1: ImageUri %q, want %q", aws.ToString(fn.Code.ImageUri), img)
		}
		c2, err := s.Lambda.GetFunctionConfiguration(ctx, &lambda.GetFunctionConfigurationInput{FunctionName: aws.String("ver"), Qualifier: aws.String("2")})
		if err != nil {
			t.Fatal(err)
		}
		if aws.ToString(c2.Version) != "2" || c2.Environment == nil || c2.Environment.Variables["PROBE_VERSION"] != "2" {
			t.Errorf("GetFunctionConfiguration Qualifier 2: Version %q Environment %+v", aws.ToString(c2.Version), c2.Environment)
		}
		latest, err := s.Lambda.GetFunctionConfiguration(ctx, &lambda.GetFunctionConfigurationInput{FunctionName: aws.String("ver")})
		if err != nil {
			t.Fatal(err)
		}
		if aws.ToString(latest.Version) != "$LATEST" || aws.ToString(latest.FunctionArn) != testARN("ver", "") {
			t.Errorf("GetFunctionConfiguration: Version %q FunctionArn %q, want $LATEST and the unqualified ARN",
				aws.ToString(latest.Version), aws.ToString(latest.FunctionArn))
		}
		_, err = s.Lambda.GetFunctionConfiguration(ctx, &lambda.GetFunctionConfigurationInput{FunctionName: aws.String("ver"), Qualifier: aws.String("9")})
		asWireError(t, err).check(t, "GetFunctionConfiguration of a missing version", 404, "ResourceNotFoundException")
	})

	t.Run("aliases", func(t *testing.T) {
		live, err := s.Lambda.CreateAlias(ctx, &lambda.CreateAliasInput{
			FunctionName: aws.String("ver"), Name: aws.String("live"), FunctionVersion: aws.String("1"),
			Description: aws.String("production traffic"),
		})
		if err != nil {
			t.Fatal(err)
		}
		if aws.ToString(live.AliasArn) != testARN("ver", "live") || aws.ToString(live.FunctionVersion) != "1" ||
			aws.ToString(live.Description) != "production traffic" || aws.ToString(live.RevisionId) == "" {
			t.Errorf("CreateAlias = AliasArn %q FunctionVersion %q Description %q RevisionId %q",
				aws.ToString(live.AliasArn), aws.ToString(live.FunctionVersion), aws.ToString(live.Description), aws.ToString(live.RevisionId))
		}
		_, err = s.Lambda.CreateAlias(ctx, &lambda.CreateAliasInput{FunctionName: aws.String("ver"), Name: aws.String("live"), FunctionVersion: aws.String("2")})
		asWireError(t, err).check(t, "CreateAlias of an existing alias", 409, "ResourceConflictException")
		_, err = s.Lambda.CreateAlias(ctx, &lambda.CreateAliasInput{FunctionName: aws.String("ver"), Name: aws.String("nover"), FunctionVersion: aws.String("7")})
		asWireError(t, err).check(t, "CreateAlias to a missing version", 404, "ResourceNotFoundException")

		got, err := s.Lambda.GetAlias(ctx, &lambda.GetAliasInput{FunctionName: aws.String("ver"), Name: aws.String("live")})
		if err != nil {
			t.Fatal(err)
		}
		if aws.ToString(got.FunctionVersion) != "1" || aws.ToString(got.RevisionId) != aws.ToString(live.RevisionId) {
			t.Errorf("GetAlias = version %q revision %q, want 1 %q", aws.ToString(got.FunctionVersion), aws.ToString(got.RevisionId), aws.ToString(live.RevisionId))
		}
		checkAliasInvoke(t, s, "live", "1")

		moved, err := s.Lambda.UpdateAlias(ctx, &lambda.UpdateAliasInput{
			FunctionName: aws.String("ver"), Name: aws.String("live"), FunctionVersion: aws.String("2"), RevisionId: live.RevisionId,
		})
		if err != nil {
			t.Fatal(err)
		}
		if aws.ToString(moved.FunctionVersion) != "2" || aws.ToString(moved.RevisionId) == aws.ToString(live.RevisionId) {
			t.Errorf("UpdateAlias = version %q revision %q; want 2 and a new revision", aws.ToString(moved.FunctionVersion), aws.ToString(moved.RevisionId))
		}
		_, err = s.Lambda.UpdateAlias(ctx, &lambda.UpdateAliasInput{
			FunctionName: aws.String("ver"), Name: aws.String("live"), FunctionVersion: aws.String("1"), RevisionId: live.RevisionId,
		})
		asWireError(t, err).check(t, "UpdateAlias with a stale RevisionId", 412, "PreconditionFailedException")
		checkAliasInvoke(t, s, "live", "2")

		// Moving an alias changes no version: version 2's warm
		// environment serves on, without a cold start, after the alias
		// moves away from it and back.
		warm := mustInvoke(t, s, "ver", map[string]any{"op": "echo"}, withQualifier("2"))["env"]
		for _, to := range []string{"1", "2"} {
			if _, err := s.Lambda.UpdateAlias(ctx, &lambda.UpdateAliasInput{
				FunctionName: aws.String("ver"), Name: aws.String("live"), FunctionVersion: aws.String(to),
			}); err != nil {
				t.Fatal(err)
			}
			if again := mustInvoke(t, s, "ver", map[string]any{"op": "echo"}, withQualifier("2"))["env"]; warm == nil || again != warm {
				t.Errorf("after moving the alias to %s version 2 ran in environment %v, not the warm %v", to, again, warm)
			}
		}

		if _, err := s.Lambda.CreateAlias(ctx, &lambda.CreateAliasInput{
			FunctionName: aws.String("ver"), Name: aws.String("beta"), FunctionVersion: aws.String("1"),
		}); err != nil {
			t.Fatal(err)
		}
		list := func(version string, max int32) []string {
			in := &lambda.ListAliasesInput{FunctionName: aws.String("ver")}
			if version != "" {
				in.FunctionVersion = aws.String(version)
			}
			if max > 0 {
				in.MaxItems = aws.Int32(max)
			}
			var names []string
			p := lambda.NewListAliasesPaginator(s.Lambda, in)
			for pages := 0; p.HasMorePages() && pages < 10; pages++ {
				page, err := p.NextPage(ctx)
				if err != nil {
					t.Fatal(err)
				}
				for _, a := range page.Aliases {
					names = append(names, aws.ToString(a.Name))
				}
			}
			return names
		}
		if got := list("", 0); !slices.Equal(got, []string{"beta", "live"}) {
			t.Errorf("ListAliases = %v, want [beta live]", got)
		}
		if got := list("", 1); !slices.Equal(got, []string{"beta", "live"}) {
			t.Errorf("ListAliases by 1 = %v, want [beta live]", got)
		}
		if got := list("2", 0); !slices.Equal(got, []string{"live"}) {
			t.Errorf("ListAliases FunctionVersion 2 = %v, want [live]", got)
		}

		if _, err := s.Lambda.DeleteAlias(ctx, &lambda.DeleteAliasInput{FunctionName: aws.String("ver"), Name: aws.String("beta")}); err != nil {
			t.Fatal(err)
		}
		_, err = s.Lambda.GetAlias(ctx, &lambda.GetAliasInput{FunctionName: aws.String("ver"), Name: aws.String("beta")})
		asWireError(t, err).check(t, "GetAlias after DeleteAlias", 404, "ResourceNotFoundException")
		_, err = s.Lambda.Invoke(ctx, &lambda.InvokeInput{FunctionName: aws.String("ver:beta"), Payload: []byte(`{}`)})
		asWireError(t, err).check(t, "Invoke of a deleted alias", 404, "ResourceNotFoundException")
	})

	t.Run("weighted routing", func(t *testing.T) {
		split, err := s.Lambda.CreateAlias(ctx, &lambda.CreateAliasInput{
			FunctionName: aws.String("ver"), Name: aws.String("split"), FunctionVersion: aws.String("1"),
			RoutingConfig: &types.AliasRoutingConfiguration{AdditionalVersionWeights: map[string]float64{"2": 0.3}},
		})
		if err != nil {
			t.Fatal(err)
		}
		if split.RoutingConfig == nil || split.RoutingConfig.AdditionalVersionWeights["2"] != 0.3 {
			t.Errorf("CreateAlias RoutingConfig = %+v, want {2: 0.3}", split.RoutingConfig)
		}
		got, err := s.Lambda.GetAlias(ctx, &lambda.GetAliasInput{FunctionName: aws.String("ver"), Name: aws.String("split")})
		if err != nil {
			t.Fatal(err)
		}
		if got.RoutingConfig == nil || got.RoutingConfig.AdditionalVersionWeights["2"] != 0.3 {
			t.Errorf("GetAlias RoutingConfig = %+v, want {2: 0.3}", got.RoutingConfig)
		}

		const n, workers = 300, 6
		counts := aliasSplit(t, s, "split", n, workers)
		lo, hi := binomialInterval(n, 0.3, 0.999)
		t.Logf("%d invocations of split: version 1 %d, version 2 %d (99.9%% interval for version 2: [%d, %d])", n, counts["1"], counts["2"], lo, hi)
		if counts["1"]+counts["2"] != n {
			t.Errorf("executed versions %v, want only 1 and 2 adding up to %d", counts, n)
		}
		if c := counts["2"]; c < lo || c > hi {
			t.Errorf("version 2 ran %d of %d times; with weight 0.3 that lies outside the 99.9%% interval [%d, %d]", c, n, lo, hi)
		}

		// An empty RoutingConfig clears the weights.
		if _, err := s.Lambda.UpdateAlias(ctx, &lambda.UpdateAliasInput{
			FunctionName: aws.String("ver"), Name: aws.String("split"),
			RoutingConfig: &types.AliasRoutingConfiguration{AdditionalVersionWeights: map[string]float64{}},
		}); err != nil {
			t.Fatal(err)
		}
		if counts := aliasSplit(t, s, "split", 20, 4); counts["1"] != 20 {
			t.Errorf("without weights split ran %v, want version 1 only", counts)
		}
	})

	t.Run("delete versions", func(t *testing.T) {
		// live points to 2.
		_, err := s.Lambda.DeleteFunction(ctx, &lambda.DeleteFunctionInput{FunctionName: aws.String("ver"), Qualifier: aws.String("2")})
		asWireError(t, err).check(t, "DeleteFunction of a version an alias points to", 409, "ResourceConflictException")
		_, err = s.Lambda.DeleteFunction(ctx, &lambda.DeleteFunctionInput{FunctionName: aws.String("ver"), Qualifier: aws.String("$LATEST")})
		asWireError(t, err).check(t, "DeleteFunction of $LATEST", 400, "InvalidParameterValueException")

		setEnv(t, s, "ver", map[string]string{"PROBE_VERSION": "3"})
		if v := publish(t, s, "ver"); aws.ToString(v.Version) != "3" {
			t.Fatalf("published version %q, want 3", aws.ToString(v.Version))
		}
		mustInvoke(t, s, "ver", map[string]any{"op": "echo"}, withQualifier("3"))
		if _, err := s.Lambda.DeleteFunction(ctx, &lambda.DeleteFunctionInput{FunctionName: aws.String("ver"), Qualifier: aws.String("3")}); err != nil {
			t.Fatalf("DeleteFunction Qualifier 3: %v", err)
		}
		_, err = s.Lambda.GetFunction(ctx, &lambda.GetFunctionInput{FunctionName: aws.String("ver"), Qualifier: aws.String("3")})
		asWireError(t, err).check(t, "GetFunction of a deleted version", 404, "ResourceNotFoundException")
		_, err = s.Lambda.Invoke(ctx, &lambda.InvokeInput{FunctionName: aws.String("ver"), Qualifier: aws.String("3"), Payload: []byte(`{}`)})
		asWireError(t, err).check(t, "Invoke of a deleted version", 404, "ResourceNotFoundException")
		out, err := s.Lambda.ListVersionsByFunction(ctx, &lambda.ListVersionsByFunctionInput{FunctionName: aws.String("ver")})
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		for _, v := range out.Versions {
			got = append(got, aws.ToString(v.Version))
		}
		if want := []string{"$LATEST", "1", "2"}; !slices.Equal(got, want) {
			t.Errorf("ListVersionsByFunction after deleting 3 = %v, want %v", got, want)
		}
		// $LATEST still runs its configuration.
		if res := mustInvoke(t, s, "ver", map[string]any{"op": "echo"}); res["version"] != "3" {
			t.Errorf("$LATEST ran PROBE_VERSION %v, want 3", res["version"])
		}
	})
}

// checkAliasInvoke invokes ver:alias and checks the executed version, the
// configuration that ran and the invoked ARN.
func checkAliasInvoke(t *testing.T, s *server, alias, version string) {
	t.Helper()
	out, res := invoke(t, s, "ver", map[string]any{"op": "echo"}, withQualifier(alias))
	if out.StatusCode != 200 || out.FunctionError != nil {
		t.Fatalf("Invoke ver:%s: HTTP %d, function error %q: %s", alias, out.StatusCode, aws.ToString(out.FunctionError), out.Payload)
	}
	if aws.ToString(out.ExecutedVersion) != version || res["version"] != version {
		t.Errorf("Invoke ver:%s: X-Amz-Executed-Version %q, ran PROBE_VERSION %v; want %s", alias, aws.ToString(out.ExecutedVersion), res["version"], version)
	}
	if res["arn"] != testARN("ver", alias) {
		t.Errorf("Invoke ver:%s: invoked function ARN %v, want %s", alias, res["arn"], testARN("ver", alias))
	}
}

// aliasSplit invokes ver:alias n times from workers goroutines and counts
// the executed versions. Each answer's X-Amz-Executed-Version must be the
// version whose configuration ran.
func aliasSplit(t *testing.T, s *server, alias string, n, workers int) map[string]int {
	t.Helper()
	var mu sync.Mutex
	counts := map[string]int{}
	jobs := make(chan int)
	var wg sync.WaitGroup
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range jobs {
				out, res, err := tryInvoke(s, "ver", map[string]any{"op": "echo"}, withQualifier(alias))
				if err != nil {
					t.Errorf("Invoke ver:%s: %v", alias, err)
					continue
				}
				executed := aws.ToString(out.ExecutedVersion)
				if out.FunctionError != nil || res["version"] != executed || res["arn"] != testARN("ver", alias) {
					t.Errorf("Invoke ver:%s: X-Amz-Executed-Version %q but ran PROBE_VERSION %v as %v (function error %q)",
						alias, executed, res["version"], res["arn"], aws.ToString(out.FunctionError))
				}
				mu.Lock()
				counts[executed]++
				mu.Unlock()
			}
		}()
	}
	for i := range n {
		jobs <- i
	}
	close(jobs)
	wg.Wait()
	return counts
}

// TestPublishOnCreateAndUpdate creates and updates a function with Publish:
// each deploy publishes a version once it is done, and after a code update
// no invocation of $LATEST reaches an environment of the old code, even
// one that was busy during the update.
func TestPublishOnCreateAndUpdate(t *testing.T) {
	s := newServer(t)
	ctx := context.Background()
	img1 := s.pushProbe(t, "probe:pub1", "PROBE_VERSION=1")
	img2 := s.pushProbe(t, "probe:pub2", "PROBE_VERSION=2")
	created := s.createFunction(t, "pub", img1, func(in *lambda.CreateFunctionInput) { in.Publish = true })

	versions := func() []string {
		out, err := s.Lambda.ListVersionsByFunction(ctx, &lambda.ListVersionsByFunctionInput{FunctionName: aws.String("pub")})
		if err != nil {
			t.Fatal(err)
		}
		var vs []string
		for _, v := range out.Versions {
			vs = append(vs, aws.ToString(v.Version))
		}
		return vs
	}
	// createFunction waited for Active (the SDK's waiter): version 1 is
	// there by then.
	if vs := versions(); !slices.Contains(vs, "1") {
		t.Fatalf("function Active with versions %v: version 1 of CreateFunction Publish missing", vs)
	}
	c1, err := s.Lambda.GetFunctionConfiguration(ctx, &lambda.GetFunctionConfigurationInput{FunctionName: aws.String("pub"), Qualifier: aws.String("1")})
	if err != nil {
		t.Fatal(err)
	}
	if aws.ToString(c1.CodeSha256) != aws.ToString(created.Configuration.CodeSha256) || c1.State != types.StateActive {
		t.Errorf("version 1: CodeSha256 %s State %s; want %s Active", aws.ToString(c1.CodeSha256), c1.State, aws.ToString(created.Configuration.CodeSha256))
	}

	// Warm several environments of the old code.
	old := map[string]bool{}
	var mu sync.Mutex
	var wg sync.WaitGroup
	for range 3 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			out, res, err := tryInvoke(s, "pub", map[string]any{"op": "sleep", "ms": 1000})
			if err != nil || out.FunctionError != nil {
				t.Errorf("warming invoke: %v %v", err, res)
				return
			}
			mu.Lock()
			old[fmt.Sprint(res["env"])] = true
			mu.Unlock()
		}()
	}
	wg.Wait()
	// Keep one of them busy across the update.
	waitFor(t, 30*time.Second, "three idle environments", func() bool { return s.health(t).Environments.Idle == 3 })
	busy := make(chan map[string]any, 1)
	go func() {
		_, res, err := tryInvoke(s, "pub", map[string]any{"op": "sleep", "ms": 3000})
		if err != nil {
			t.Errorf("busy invoke: %v", err)
			res = map[string]any{"env": ""}
		}
		busy <- res
	}()
	waitFor(t, 30*time.Second, "the busy invocation", func() bool { return s.health(t).Environments.Idle == 2 })

	up, err := s.Lambda.UpdateFunctionCode(ctx, &lambda.UpdateFunctionCodeInput{
		FunctionName: aws.String("pub"), ImageUri: aws.String(img2), Publish: true,
	})
	if err != nil {
		t.Fatal(err)
	}
	if up.LastUpdateStatus != types.LastUpdateStatusInProgress {
		t.Errorf("UpdateFunctionCode LastUpdateStatus = %s, want InProgress", up.LastUpdateStatus)
	}
	waitUpdated(t, s, "pub")
	// The version is there as soon as the update is Successful (Terraform
	// reads it then).
	if vs := versions(); !slices.Contains(vs, "2") {
		t.Errorf("update Successful with versions %v: version 2 of UpdateFunctionCode Publish missing", vs)
	}

	if res := <-busy; res["version"] != "1" || !old[fmt.Sprint(res["env"])] {
		t.Errorf("the invocation in flight during the update ran version %v in %v, want 1 in an old environment", res["version"], res["env"])
	}
	for i := range 12 {
		res := mustInvoke(t, s, "pub", map[string]any{"op": "echo"})
		if res["version"] != "2" || old[fmt.Sprint(res["env"])] {
			t.Errorf("invocation %d after the update ran code version %v in environment %v (old environments %v)", i, res["version"], res["env"], old)
		}
	}
	for _, v := range []string{"1", "2"} {
		out, res := invoke(t, s, "pub", map[string]any{"op": "echo"}, withQualifier(v))
		if aws.ToString(out.ExecutedVersion) != v || res["version"] != v {
			t.Errorf("Invoke pub:%s: executed %q, code version %v", v, aws.ToString(out.ExecutedVersion), res["version"])
		}
	}
	c2, err := s.Lambda.GetFunctionConfiguration(ctx, &lambda.GetFunctionConfigurationInput{FunctionName: aws.String("pub"), Qualifier: aws.String("2")})
	if err != nil {
		t.Fatal(err)
	}
	latest, err := s.Lambda.GetFunctionConfiguration(ctx, &lambda.GetFunctionConfigurationInput{FunctionName: aws.String("pub")})
	if err != nil {
		t.Fatal(err)
	}
	if aws.ToString(c2.CodeSha256) != aws.ToString(latest.CodeSha256) || aws.ToString(c2.CodeSha256) == aws.ToString(c1.CodeSha256) {
		t.Errorf("version 2 CodeSha256 %s; want the new code %s (version 1: %s)", aws.ToString(c2.CodeSha256), aws.ToString(latest.CodeSha256), aws.ToString(c1.CodeSha256))
	}
	h := s.health(t)
	t.Logf("after the update: %d live environments (%d idle), %d containers", h.Environments.Live, h.Environments.Idle, len(s.containers(t)))
}
