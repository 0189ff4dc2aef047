package function

import (
	"context"
	"encoding/json"
	"github.com/kappa-run/kappa/internal/store/memstore"
	"sync"
	"testing"
	"time"
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
