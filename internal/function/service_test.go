package function

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/kappa-run/kappa/internal/apierr"
	"github.com/kappa-run/kappa/internal/image"
	"github.com/kappa-run/kappa/internal/store/memstore"
)

// fakeImages is a unit-test stand-in for the image store: it answers Pull
// from a table and can hold a pull until released.
type fakeImages struct {
	mu    sync.Mutex
	errs  map[string]error
	gates map[string]chan struct{}
	// checks are CheckPlatform's answers by image (nil: fine).
	checks map[string]error
}

func (f *fakeImages) Pull(ctx context.Context, uri, arch string) (*image.Image, error) {
	f.mu.Lock()
	gate := f.gates[uri]
	err := f.errs[uri]
	f.mu.Unlock()
	if gate != nil {
		select {
		case <-gate:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	if err != nil {
		return nil, err
	}
	return &image.Image{Digest: "sha256:" + fmt.Sprintf("%064x", len(uri)), ResolvedURI: uri + "@sha256:x",
		Config: image.Config{Entrypoint: []string{"/bootstrap"}}}, nil
}

func (f *fakeImages) CheckPlatform(_ context.Context, uri, _ string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.checks[uri]
}

func newTestService(t *testing.T, imgs *fakeImages) *Service {
	t.Helper()
	b, _ := memstore.New().Bucket(context.Background(), "functions")
	s := NewService(Options{Bucket: b, Images: imgs, Region: "us-east-1", Account: "000000000000"})
	t.Cleanup(s.Close)
	return s
}

func waitFor(t *testing.T, s *Service, name string, ok func(*Function) bool) *Function {
	t.Helper()
	for range 500 {
		fn, err := s.Get(context.Background(), name)
		if err == nil && ok(fn) {
			return fn
		}
		time.Sleep(5 * time.Millisecond)
	}
	fn, _ := s.Get(context.Background(), name)
	t.Fatalf("function %s never reached the wanted state; last %+v", name, fn)
	return nil
}

func TestCreateBecomesActive(t *testing.T) {
	s := newTestService(t, &fakeImages{})
	ctx := context.Background()
	fn, err := s.Create(ctx, validInput())
	if err != nil {
		t.Fatal(err)
	}
	if fn.Latest.State != StatePending || fn.Latest.StateReasonCode != ReasonCreating {
		t.Fatalf("created state = %s/%s", fn.Latest.State, fn.Latest.StateReasonCode)
	}
	fn = waitFor(t, s, "hello", func(f *Function) bool { return f.Latest.State == StateActive })
	if fn.Latest.Code.Digest == "" || fn.Latest.LastUpdateStatus != UpdateSuccessful {
		t.Errorf("active function = %+v", fn.Latest)
	}
	if _, err := s.Create(ctx, validInput()); !errors.Is(err, apierr.Conflict) {
		t.Errorf("duplicate Create = %v, want Conflict", err)
	}
}

func TestCreateFailureReasons(t *testing.T) {
	tests := []struct {
		err  error
		want string
	}{
		{image.ErrNotFound, ReasonImageDeleted},
		{image.ErrAccessDenied, ReasonImageAccessDenied},
		{image.ErrInvalid, ReasonInvalidImage},
		{errors.New("disk on fire"), ReasonInternalError},
	}
	for _, tt := range tests {
		t.Run(tt.want, func(t *testing.T) {
			in := validInput()
			s := newTestService(t, &fakeImages{errs: map[string]error{in.ImageURI: fmt.Errorf("pull: %w", tt.err)}})
			if _, err := s.Create(context.Background(), in); err != nil {
				t.Fatal(err)
			}
			fn := waitFor(t, s, "hello", func(f *Function) bool { return f.Latest.State == StateFailed })
			if fn.Latest.StateReasonCode != tt.want {
				t.Errorf("StateReasonCode = %s, want %s", fn.Latest.StateReasonCode, tt.want)
			}
			if _, err := s.Resolve(context.Background(), Ref{Name: "hello"}); !errors.Is(err, apierr.Conflict) {
				t.Errorf("Resolve of a Failed function = %v, want Conflict", err)
			}
		})
	}
}

func TestUpdateCodeKeepsServingOldCode(t *testing.T) {
	imgs := &fakeImages{gates: map[string]chan struct{}{}}
	s := newTestService(t, imgs)
	ctx := context.Background()
	s.Create(ctx, validInput())
	before := waitFor(t, s, "hello", func(f *Function) bool { return f.Latest.State == StateActive })

	gate := make(chan struct{})
	imgs.mu.Lock()
	imgs.gates["localhost:9070/hello:v22"] = gate
	imgs.mu.Unlock()
	fn, err := s.UpdateCode(ctx, "hello", UpdateCodeInput{ImageURI: "localhost:9070/hello:v22"})
	if err != nil {
		t.Fatal(err)
	}
	if fn.Latest.LastUpdateStatus != UpdateInProgress {
		t.Errorf("LastUpdateStatus = %s, want InProgress", fn.Latest.LastUpdateStatus)
	}
	tgt, err := s.Resolve(ctx, Ref{Name: "hello"})
	cfg := tgt.Config
	if err != nil || cfg.Code.Digest != before.Latest.Code.Digest {
		t.Errorf("during update Resolve = %v, %v; want the old code", cfg.Code, err)
	}
	if _, err := s.UpdateCode(ctx, "hello", UpdateCodeInput{ImageURI: "x:1"}); !errors.Is(err, apierr.Conflict) {
		t.Errorf("second UpdateCode = %v, want Conflict", err)
	}
	if _, err := s.UpdateConfig(ctx, "hello", UpdateConfigInput{Timeout: ptr(5)}); !errors.Is(err, apierr.Conflict) {
		t.Errorf("UpdateConfig during update = %v, want Conflict", err)
	}
	close(gate)
	after := waitFor(t, s, "hello", func(f *Function) bool { return f.Latest.LastUpdateStatus == UpdateSuccessful })
	if after.Latest.Code.ImageURI != "localhost:9070/hello:v22" || after.Latest.Code.Digest == before.Latest.Code.Digest {
		t.Errorf("after update code = %+v", after.Latest.Code)
	}
}

func TestUpdateConfigRevision(t *testing.T) {
	s := newTestService(t, &fakeImages{})
	ctx := context.Background()
	s.Create(ctx, validInput())
	fn := waitFor(t, s, "hello", func(f *Function) bool { return f.Latest.State == StateActive })
	if _, err := s.UpdateConfig(ctx, "hello", UpdateConfigInput{Timeout: ptr(5), RevisionID: "stale"}); !errors.Is(err, apierr.PreconditionFailed) {
		t.Errorf("stale RevisionId = %v, want PreconditionFailed", err)
	}
	got, err := s.UpdateConfig(ctx, "hello", UpdateConfigInput{Timeout: ptr(5), RevisionID: fn.Latest.RevisionID,
		Environment: map[string]string{"AB": "b"}, HasEnvironment: true})
	if err != nil {
		t.Fatal(err)
	}
	if got.Latest.Timeout != 5 || got.Latest.Environment["AB"] != "b" || got.Latest.RevisionID == fn.Latest.RevisionID {
		t.Errorf("updated = %+v", got.Latest)
	}
	waitFor(t, s, "hello", func(f *Function) bool { return f.Latest.LastUpdateStatus == UpdateSuccessful })
	if _, err := s.UpdateConfig(ctx, "hello", UpdateConfigInput{MemorySize: ptr(99999)}); !errors.Is(err, apierr.Validation) {
		t.Errorf("bad memory = %v, want Validation", err)
	}
}

func TestDeleteAndNotFound(t *testing.T) {
	s := newTestService(t, &fakeImages{})
	ctx := context.Background()
	if err := s.Delete(ctx, "ghost"); !errors.Is(err, apierr.NotFound) {
		t.Errorf("Delete ghost = %v", err)
	}
	s.Create(ctx, validInput())
	if err := s.Delete(ctx, "hello"); err != nil {
		t.Fatal(err)
	}
	_, err := s.Get(ctx, "hello")
	if !errors.Is(err, apierr.NotFound) || apierr.As(err).Message != "Function not found: arn:aws:lambda:us-east-1:000000000000:function:hello" {
		t.Errorf("Get deleted = %v", err)
	}
}

func TestVersionsAndAliases(t *testing.T) {
	s := newTestService(t, &fakeImages{})
	ctx := context.Background()
	s.Create(ctx, validInput())
	waitFor(t, s, "hello", func(f *Function) bool { return f.Latest.State == StateActive })

	v1, err := s.Publish(ctx, "hello", PublishInput{})
	if err != nil || v1.Version != "1" {
		t.Fatalf("Publish = %+v, %v", v1.Version, err)
	}
	again, err := s.Publish(ctx, "hello", PublishInput{})
	if err != nil || again.Version != "1" {
		t.Fatalf("Publish unchanged = %s, %v; want version 1 again", again.Version, err)
	}
	if _, err := s.Publish(ctx, "hello", PublishInput{CodeSha256: "beef"}); !errors.Is(err, apierr.PreconditionFailed) {
		t.Errorf("Publish with wrong CodeSha256 = %v", err)
	}
	if _, err := s.UpdateConfig(ctx, "hello", UpdateConfigInput{Timeout: ptr(9)}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, s, "hello", func(f *Function) bool { return f.Latest.LastUpdateStatus == UpdateSuccessful })
	v2, err := s.Publish(ctx, "hello", PublishInput{})
	if err != nil || v2.Version != "2" || v2.Timeout != 9 {
		t.Fatalf("Publish after change = %+v, %v", v2, err)
	}
	vs, _ := s.Versions(ctx, "hello")
	if len(vs) != 3 || vs[0].Version != "$LATEST" || vs[2].Version != "2" {
		t.Errorf("Versions = %d", len(vs))
	}
	tgt, err := s.Resolve(ctx, Ref{Name: "hello", Qualifier: "1"})
	if err != nil || tgt.Config.Timeout != 3 {
		t.Errorf("Resolve v1 = %+v, %v", tgt.Config.Timeout, err)
	}

	tests := []struct {
		name string
		in   AliasInput
		kind apierr.Kind
	}{
		{"numeric name", AliasInput{Name: "12", FunctionVersion: "1"}, apierr.Validation},
		{"missing version", AliasInput{Name: "x", FunctionVersion: "9"}, apierr.NotFound},
		{"two weights", AliasInput{Name: "x", FunctionVersion: "1", Weights: map[string]float64{"2": 0.1, "3": 0.1}}, apierr.InvalidParameter},
		{"weight range", AliasInput{Name: "x", FunctionVersion: "1", Weights: map[string]float64{"2": 1.5}}, apierr.Validation},
		{"latest routing", AliasInput{Name: "x", FunctionVersion: "$LATEST", Weights: map[string]float64{"2": 0.5}}, apierr.InvalidParameter},
	}
	for _, tt := range tests {
		if _, err := s.CreateAlias(ctx, "hello", tt.in); !errors.Is(err, tt.kind) {
			t.Errorf("%s: CreateAlias = %v, want %s", tt.name, err, tt.kind)
		}
	}
	a, err := s.CreateAlias(ctx, "hello", AliasInput{Name: "live", FunctionVersion: "1", Weights: map[string]float64{"2": 0.3}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.CreateAlias(ctx, "hello", AliasInput{Name: "live", FunctionVersion: "1"}); !errors.Is(err, apierr.Conflict) {
		t.Errorf("duplicate alias = %v", err)
	}
	if a.pick(0.29) != "2" || a.pick(0.3) != "1" {
		t.Errorf("pick does not follow weights")
	}
	if err := s.DeleteVersion(ctx, "hello", "2"); !errors.Is(err, apierr.Conflict) {
		t.Errorf("delete version referenced by alias = %v", err)
	}
	if _, err := s.UpdateAlias(ctx, "hello", AliasInput{Name: "live", RevisionID: "stale"}); !errors.Is(err, apierr.PreconditionFailed) {
		t.Errorf("stale alias update = %v", err)
	}
	if _, err := s.UpdateAlias(ctx, "hello", AliasInput{Name: "live", FunctionVersion: "2", Weights: map[string]float64{}}); err != nil {
		t.Fatal(err)
	}
	if err := s.DeleteVersion(ctx, "hello", "1"); err != nil {
		t.Errorf("delete unreferenced version = %v", err)
	}
	if err := s.Delete(ctx, "hello"); err != nil {
		t.Fatal(err)
	}
	s.Create(ctx, validInput())
	waitFor(t, s, "hello", func(f *Function) bool { return f.Latest.State == StateActive })
	if _, err := s.GetAlias(ctx, "hello", "live"); !errors.Is(err, apierr.NotFound) {
		t.Errorf("alias survived its function's deletion: %v", err)
	}
}

func TestReservedConcurrency(t *testing.T) {
	s := newTestService(t, &fakeImages{})
	ctx := context.Background()
	s.Create(ctx, validInput())
	if _, err := s.PutReservedConcurrency(ctx, "hello", 901); !errors.Is(err, apierr.InvalidParameter) {
		t.Errorf("reserving past the unreserved minimum = %v", err)
	}
	if _, err := s.PutReservedConcurrency(ctx, "hello", -1); !errors.Is(err, apierr.Validation) {
		t.Errorf("negative = %v", err)
	}
	if n, err := s.PutReservedConcurrency(ctx, "hello", 900); err != nil || n != 900 {
		t.Errorf("reserve 900 = %d, %v", n, err)
	}
	if u, _ := s.Unreserved(ctx); u != 100 {
		t.Errorf("Unreserved = %d, want 100", u)
	}
	s.DeleteReservedConcurrency(ctx, "hello")
	if fn, _ := s.Get(ctx, "hello"); fn.ReservedConcurrency != nil {
		t.Errorf("reservation not deleted")
	}
}

// TestUpdateLoggingPartial: an update's LoggingConfig without LogFormat
// keeps the function's format, so a JSON function takes a log level alone,
// and a Text function still refuses one.
func TestUpdateLoggingPartial(t *testing.T) {
	s := newTestService(t, &fakeImages{})
	ctx := context.Background()
	in := validInput()
	in.LoggingConfig = &LoggingConfig{LogFormat: "JSON"}
	if _, err := s.Create(ctx, in); err != nil {
		t.Fatal(err)
	}
	waitFor(t, s, "hello", func(f *Function) bool { return f.Latest.State == StateActive })
	fn, err := s.UpdateConfig(ctx, "hello", UpdateConfigInput{LoggingConfig: &LoggingConfig{ApplicationLogLevel: "DEBUG"}})
	if err != nil {
		t.Fatalf("level alone on a JSON function = %v", err)
	}
	if lc := fn.Latest.LoggingConfig; lc.LogFormat != "JSON" || lc.ApplicationLogLevel != "DEBUG" {
		t.Errorf("LoggingConfig = %+v", lc)
	}
	waitFor(t, s, "hello", func(f *Function) bool { return f.Latest.LastUpdateStatus == UpdateSuccessful })
	if _, err := s.UpdateConfig(ctx, "hello", UpdateConfigInput{LoggingConfig: &LoggingConfig{LogFormat: "Text"}}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, s, "hello", func(f *Function) bool { return f.Latest.LastUpdateStatus == UpdateSuccessful })
	_, err = s.UpdateConfig(ctx, "hello", UpdateConfigInput{LoggingConfig: &LoggingConfig{SystemLogLevel: "WARN"}})
	if !errors.Is(err, apierr.InvalidParameter) {
		t.Errorf("level alone on a Text function = %v, want InvalidParameterValueException", err)
	}
	if fn, _ := s.Get(ctx, "hello"); fn.Latest.LoggingConfig.SystemLogLevel != "" {
		t.Errorf("refused update was applied: %+v", fn.Latest.LoggingConfig)
	}
}

// TestOddQualifiersAreClientErrors: a qualifier that cannot name an alias
// or a version is the caller's mistake (4xx), never a store error (500).
func TestOddQualifiersAreClientErrors(t *testing.T) {
	s := newTestService(t, &fakeImages{})
	ctx := context.Background()
	if _, err := s.Create(ctx, validInput()); err != nil {
		t.Fatal(err)
	}
	if _, err := s.GetProvisioned(ctx, "hello", ""); !errors.Is(err, apierr.Validation) {
		t.Errorf("GetProvisioned without a qualifier = %v, want ValidationException", err)
	}
	for _, q := range []string{"$LATEST", "a.b", "a*", "x$"} {
		if _, err := s.GetProvisioned(ctx, "hello", q); !errors.Is(err, apierr.ProvisionedNotFound) {
			t.Errorf("GetProvisioned(%q) = %v, want ProvisionedConcurrencyConfigNotFoundException", q, err)
		}
		if err := s.DeleteProvisioned(ctx, "hello", q); !errors.Is(err, apierr.ProvisionedNotFound) {
			t.Errorf("DeleteProvisioned(%q) = %v, want ProvisionedConcurrencyConfigNotFoundException", q, err)
		}
	}
	for _, name := range []string{"a.b", "a$b", "12", ""} {
		if err := s.DeleteAlias(ctx, "hello", name); !errors.Is(err, apierr.Validation) {
			t.Errorf("DeleteAlias(%q) = %v, want ValidationException", name, err)
		}
	}
	if err := s.DeleteAlias(ctx, "hello", "absent"); err != nil {
		t.Errorf("DeleteAlias of an absent alias = %v, want success as in Lambda", err)
	}
}

// TestMissingImageRefused: an image its registry does not have is refused
// by Create and UpdateCode at once, as Lambda does; an update of a
// function that does not exist says so first.
func TestMissingImageRefused(t *testing.T) {
	const missing = "localhost:9070/gone:v1"
	imgs := &fakeImages{checks: map[string]error{missing: fmt.Errorf("%w: MANIFEST_UNKNOWN", image.ErrNotFound)}}
	s := newTestService(t, imgs)
	ctx := context.Background()
	in := validInput()
	in.ImageURI = missing
	_, err := s.Create(ctx, in)
	if !errors.Is(err, apierr.InvalidParameter) || !strings.Contains(err.Error(), "Source image "+missing+" does not exist. Provide a valid source image.") {
		t.Errorf("Create with a missing image: %v", err)
	}
	if _, err := s.Get(ctx, in.FunctionName); !errors.Is(err, apierr.NotFound) {
		t.Errorf("the refused function exists: %v", err)
	}
	if _, err := s.UpdateCode(ctx, "nope", UpdateCodeInput{ImageURI: missing}); !errors.Is(err, apierr.NotFound) {
		t.Errorf("UpdateCode of an unknown function to a missing image: %v, want not found", err)
	}
	if _, err := s.Create(ctx, validInput()); err != nil {
		t.Fatal(err)
	}
	waitFor(t, s, "hello", func(fn *Function) bool { return fn.Latest.State == StateActive })
	if _, err := s.UpdateCode(ctx, "hello", UpdateCodeInput{ImageURI: missing}); !errors.Is(err, apierr.InvalidParameter) {
		t.Errorf("UpdateCode to a missing image: %v", err)
	}
}
