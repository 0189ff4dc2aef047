package function

import (
	"context"
	"encoding/json"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/kappa-run/kappa/internal/store"
	"github.com/kappa-run/kappa/internal/store/memstore"
)

// TestPublishConcurrent: publishes racing on one function all get the one
// version they made, and it exists (a loser never deletes the winner's).
func TestPublishConcurrent(t *testing.T) {
	s := newTestService(t, &fakeImages{})
	ctx := context.Background()
	s.Create(ctx, validInput())
	waitFor(t, s, "hello", func(f *Function) bool { return f.Latest.State == StateActive })
	for round := range 5 {
		if round > 0 {
			if _, err := s.UpdateConfig(ctx, "hello", UpdateConfigInput{Timeout: ptr(3 + round)}); err != nil {
				t.Fatal(err)
			}
			waitFor(t, s, "hello", func(f *Function) bool { return f.Latest.LastUpdateStatus == UpdateSuccessful })
		}
		var wg sync.WaitGroup
		got := make([]string, 8)
		for i := range got {
			wg.Add(1)
			go func() {
				defer wg.Done()
				v, err := s.Publish(ctx, "hello", PublishInput{})
				if err != nil {
					t.Errorf("Publish: %v", err)
					return
				}
				got[i] = v.Version
			}()
		}
		wg.Wait()
		for _, v := range got {
			if v != got[0] {
				t.Fatalf("round %d: concurrent publishes of one configuration gave versions %v", round, got)
			}
		}
		if _, err := s.Config(ctx, Ref{Name: "hello", Qualifier: got[0]}); err != nil {
			t.Fatalf("round %d: version %s was returned but does not exist: %v", round, got[0], err)
		}
	}
}

// TestPublishOverOrphan: a version past LastVersion that a crashed publish
// left behind (older than a publish takes) does not block the number.
func TestPublishOverOrphan(t *testing.T) {
	s := newTestService(t, &fakeImages{})
	ctx := context.Background()
	s.Create(ctx, validInput())
	waitFor(t, s, "hello", func(f *Function) bool { return f.Latest.State == StateActive })
	orphan := Config{Name: "hello", Version: "1", LastModified: time.Now().Add(-time.Hour), Description: "orphan"}
	b, _ := json.Marshal(orphan)
	if _, err := s.opts.Bucket.Put(ctx, versionKey("hello", 1), b); err != nil {
		t.Fatal(err)
	}
	v, err := s.Publish(ctx, "hello", PublishInput{})
	if err != nil || v.Version != "1" {
		t.Fatalf("Publish over an orphan = %s, %v; want version 1", v.Version, err)
	}
	if c, err := s.Config(ctx, Ref{Name: "hello", Qualifier: "1"}); err != nil || c.Description == "orphan" {
		t.Fatalf("version 1 = %+v, %v; want the published one", c.Description, err)
	}
}

// TestPublishPendingResumedAtStart: a deploy that asked for a version
// (Publish: true) and stopped before publishing it gets it at the next
// Start, and the request is cleared once the version exists.
func TestPublishPendingResumedAtStart(t *testing.T) {
	ctx := context.Background()
	b, _ := memstore.New().Bucket(ctx, "functions")
	first := NewService(Options{Bucket: b, Images: &fakeImages{}, Region: "us-east-1", Account: "000000000000"})
	if _, err := first.Create(ctx, validInput()); err != nil {
		t.Fatal(err)
	}
	waitFor(t, first, "hello", func(f *Function) bool { return f.Latest.State == StateActive })
	if _, err := first.mutate(ctx, "hello", func(fn *Function) error { fn.PublishPending = true; return nil }); err != nil {
		t.Fatal(err)
	}
	first.Close()

	s := NewService(Options{Bucket: b, Images: &fakeImages{}, Region: "us-east-1", Account: "000000000000"})
	t.Cleanup(s.Close)
	if err := s.Start(ctx); err != nil {
		t.Fatal(err)
	}
	fn := waitFor(t, s, "hello", func(f *Function) bool { return !f.PublishPending })
	if fn.LastVersion != 1 {
		t.Fatalf("LastVersion %d after the resumed publish, want 1", fn.LastVersion)
	}
	if _, err := s.Config(ctx, Ref{Name: "hello", Qualifier: "1"}); err != nil {
		t.Fatalf("version 1 after the resumed publish: %v", err)
	}
}

// versionWatch is a bucket that checks, as each version is written, that
// the function does not look deployed yet.
type versionWatch struct {
	store.Bucket
	t       *testing.T
	written atomic.Int32
}

func (b *versionWatch) Create(ctx context.Context, k string, v []byte) (uint64, error) {
	if strings.HasPrefix(k, "ver.hello.") {
		b.written.Add(1)
		e, err := b.Bucket.Get(ctx, key("hello"))
		var fn Function
		if err != nil || json.Unmarshal(e.Value, &fn) != nil {
			b.t.Errorf("read the function as %s is written: %v", k, err)
		} else if fn.Latest.State == StateActive && fn.Latest.LastUpdateStatus == UpdateSuccessful {
			b.t.Errorf("%s written after the function was already Active and Successful", k)
		}
	}
	return b.Bucket.Create(ctx, k, v)
}

// TestPublishedBeforeActive: with Publish, a function is never seen Active
// (nor an update Successful) before the version it asked for exists: the
// write that records the version is the one that ends the deploy.
func TestPublishedBeforeActive(t *testing.T) {
	gate := make(chan struct{})
	imgs := &fakeImages{gates: map[string]chan struct{}{"localhost:9070/hello:v1": gate, "localhost:9070/hello:v2": gate}}
	ctx := context.Background()
	mb, _ := memstore.New().Bucket(ctx, "functions")
	vw := &versionWatch{Bucket: mb, t: t}
	s := NewService(Options{Bucket: vw, Images: imgs, Region: "us-east-1", Account: "000000000000"})
	t.Cleanup(s.Close)
	in := validInput()
	in.Publish = true
	if _, err := s.Create(ctx, in); err != nil {
		t.Fatal(err)
	}
	// watch polls as fast as it can until done, and fails on a function
	// whose deploy looks over while its version is missing.
	watch := func(done func(*Function) bool, version int) {
		t.Helper()
		deadline := time.Now().Add(10 * time.Second)
		for time.Now().Before(deadline) {
			s.remember("hello", nil, 0) // read the store, not the cache
			fn, err := s.Get(ctx, "hello")
			if err != nil {
				t.Fatal(err)
			}
			if done(fn) {
				if fn.LastVersion < version || fn.PublishPending {
					t.Fatalf("deploy over with LastVersion %d (want %d), PublishPending %v", fn.LastVersion, version, fn.PublishPending)
				}
				if _, err := s.Config(ctx, Ref{Name: "hello", Qualifier: strconv.Itoa(version)}); err != nil {
					t.Fatalf("deploy over, version %d: %v", version, err)
				}
				return
			}
		}
		t.Fatal("the deploy did not end in 10s")
	}
	close(gate)
	watch(func(f *Function) bool { return f.Latest.State == StateActive }, 1)

	if _, err := s.UpdateCode(ctx, "hello", UpdateCodeInput{ImageURI: "localhost:9070/hello:v2", Publish: true}); err != nil {
		t.Fatal(err)
	}
	watch(func(f *Function) bool { return f.Latest.LastUpdateStatus == UpdateSuccessful }, 2)
	if c, _ := s.Config(ctx, Ref{Name: "hello", Qualifier: "2"}); c.Code.ImageURI != "localhost:9070/hello:v2" || c.State != StateActive {
		t.Errorf("version 2 = %s, %s; want the new image, Active", c.Code.ImageURI, c.State)
	}
	if n := vw.written.Load(); n != 2 {
		t.Errorf("%d versions written, want 2", n)
	}
}

// TestDeployingResumedAtStart: a server that stopped between a deploy's
// new code and its version (Publish) publishes it at the next Start and
// ends the deploy: both for a create (still Pending) and an update (still
// InProgress).
func TestDeployingResumedAtStart(t *testing.T) {
	for _, update := range []bool{false, true} {
		ctx := context.Background()
		b, _ := memstore.New().Bucket(ctx, "functions")
		first := NewService(Options{Bucket: b, Images: &fakeImages{}, Region: "us-east-1", Account: "000000000000"})
		if _, err := first.Create(ctx, validInput()); err != nil {
			t.Fatal(err)
		}
		waitFor(t, first, "hello", func(f *Function) bool { return f.Latest.State == StateActive })
		// The state a deploy leaves just before publishPending.
		if _, err := first.mutate(ctx, "hello", func(fn *Function) error {
			fn.PublishPending = true
			if update {
				fn.Latest.LastUpdateStatus = UpdateInProgress
			} else {
				fn.Latest.State = StatePending
			}
			return nil
		}); err != nil {
			t.Fatal(err)
		}
		first.Close()

		s := NewService(Options{Bucket: b, Images: &fakeImages{}, Region: "us-east-1", Account: "000000000000"})
		if err := s.Start(ctx); err != nil {
			t.Fatal(err)
		}
		fn := waitFor(t, s, "hello", func(f *Function) bool { return !f.PublishPending })
		if fn.LastVersion != 1 || fn.Latest.State != StateActive || fn.Latest.LastUpdateStatus != UpdateSuccessful {
			t.Errorf("update %v: LastVersion %d, %s, %s; want 1, Active, Successful", update, fn.LastVersion, fn.Latest.State, fn.Latest.LastUpdateStatus)
		}
		s.Close()
	}
}
