package function

import (
	"context"
	"errors"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/kappa-run/kappa/internal/apierr"
	"github.com/kappa-run/kappa/internal/store/memstore"
)

// fakeSnapshots stands in for the invoker's snapshots in unit tests of the
// version lifecycle; the real ones are proven by test/e2e TestSnapStart.
type fakeSnapshots struct {
	unavailable error
	mu          sync.Mutex
	fail        error         // what Snapshot returns
	gate        chan struct{} // Snapshot waits for it when set
	entered     chan string   // Snapshot says which version it takes, when set
	taken       []string
	dropped     []string
}

type initFailure struct{}

func (initFailure) Error() string         { return "Runtime.ExitError: exit status 1" }
func (initFailure) FunctionFailure() bool { return true }

func (f *fakeSnapshots) Snapshots() error { return f.unavailable }
func (f *fakeSnapshots) Snapshot(ctx context.Context, c Config) error {
	f.mu.Lock()
	gate, fail, entered := f.gate, f.fail, f.entered
	f.mu.Unlock()
	if entered != nil {
		entered <- c.Name + ":" + c.Version
	}
	if gate != nil {
		select {
		case <-gate:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	f.mu.Lock()
	f.taken = append(f.taken, c.Name+":"+c.Version)
	f.mu.Unlock()
	return fail
}
func (f *fakeSnapshots) DropSnapshots(name, version string) {
	f.mu.Lock()
	f.dropped = append(f.dropped, name+":"+version)
	f.mu.Unlock()
}

func newSnapService(t *testing.T, snaps Snapshotter) *Service {
	t.Helper()
	b, _ := memstore.New().Bucket(context.Background(), "functions")
	s := NewService(Options{Bucket: b, Images: &fakeImages{}, Region: "us-east-1", Account: "000000000000", Snapshots: snaps})
	t.Cleanup(s.Close)
	return s
}

func waitVersion(t *testing.T, s *Service, name, q string, ok func(Config) bool) Config {
	t.Helper()
	var last Config
	for range 1000 {
		c, err := s.Config(context.Background(), Ref{Name: name, Qualifier: q})
		if err == nil && ok(c) {
			return c
		}
		last = c
		time.Sleep(5 * time.Millisecond)
	}
	t.Fatalf("version %s:%s never reached the wanted state; last %+v", name, q, last)
	return Config{}
}

func TestSnapStartRefusedWithoutSnapshots(t *testing.T) {
	for _, snaps := range []Snapshotter{nil, &fakeSnapshots{unavailable: errors.New("no criu")}} {
		s := newSnapService(t, snaps)
		in := validInput()
		in.SnapStartApplyOn = SnapStartPublished
		if _, err := s.Create(context.Background(), in); !errors.Is(err, apierr.InvalidParameter) {
			t.Errorf("Create with SnapStart and snapshots %v = %v, want InvalidParameterValueException", snaps, err)
		}
		in.SnapStartApplyOn = "None"
		if _, err := s.Create(context.Background(), in); err != nil {
			t.Errorf("Create with SnapStart None: %v", err)
		}
		// Turning it on later is refused the same way.
		if _, err := s.UpdateConfig(context.Background(), in.FunctionName, UpdateConfigInput{SnapStartApplyOn: SnapStartPublished}); !errors.Is(err, apierr.InvalidParameter) {
			t.Errorf("UpdateFunctionConfiguration with SnapStart and snapshots %v = %v, want InvalidParameterValueException", snaps, err)
		}
	}
}

// TestSnapStartVersionDeletedMidTake: a version deleted while its snapshot
// is taken has its snapshots dropped by the delete and is no longer
// wanted (the invoker asks SnapshotWanted before it stores one); when the
// take ends, nothing more is dropped: a version of the same number
// published meanwhile may have a snapshot by then.
func TestSnapStartVersionDeletedMidTake(t *testing.T) {
	snaps := &fakeSnapshots{gate: make(chan struct{}), entered: make(chan string, 1)}
	s := newSnapService(t, snaps)
	ctx := context.Background()
	in := validInput()
	in.SnapStartApplyOn = SnapStartPublished
	if _, err := s.Create(ctx, in); err != nil {
		t.Fatal(err)
	}
	waitFor(t, s, "hello", func(f *Function) bool { return f.Latest.State == StateActive })
	v, err := s.Publish(ctx, "hello", PublishInput{})
	if err != nil {
		t.Fatal(err)
	}
	if v := <-snaps.entered; v != "hello:1" { // the snapshot is being taken
		t.Fatalf("snapshot of %s, want hello:1", v)
	}
	if err := s.DeleteVersion(ctx, "hello", "1"); err != nil {
		t.Fatal(err)
	}
	if s.SnapshotWanted(ctx, v) {
		t.Error("the deleted version's snapshot is still wanted")
	}
	close(snaps.gate) // the take ends after the delete
	s.wg.Wait()       // and the service has done with it
	snaps.mu.Lock()
	if !slices.Equal(snaps.taken, []string{"hello:1"}) {
		t.Errorf("taken = %v, want hello:1", snaps.taken)
	}
	snaps.mu.Unlock()
	snaps.mu.Lock()
	defer snaps.mu.Unlock()
	if !slices.Equal(snaps.dropped, []string{"hello:1"}) {
		t.Errorf("dropped = %v, want hello:1 once, at the delete", snaps.dropped)
	}
}

// TestSnapStartResumedAtStart: a version left Pending by a server that
// stopped while its snapshot was taken gets it at the next Start.
func TestSnapStartResumedAtStart(t *testing.T) {
	ctx := context.Background()
	b, _ := memstore.New().Bucket(ctx, "functions")
	first := &fakeSnapshots{gate: make(chan struct{})} // never opened
	s := NewService(Options{Bucket: b, Images: &fakeImages{}, Region: "us-east-1", Account: "000000000000", Snapshots: first})
	in := validInput()
	in.SnapStartApplyOn = SnapStartPublished
	if _, err := s.Create(ctx, in); err != nil {
		t.Fatal(err)
	}
	waitFor(t, s, "hello", func(f *Function) bool { return f.Latest.State == StateActive })
	if _, err := s.Publish(ctx, "hello", PublishInput{}); err != nil {
		t.Fatal(err)
	}
	s.Close() // stops while the snapshot is taken

	second := &fakeSnapshots{}
	s2 := NewService(Options{Bucket: b, Images: &fakeImages{}, Region: "us-east-1", Account: "000000000000", Snapshots: second})
	t.Cleanup(s2.Close)
	if c, err := s2.Config(ctx, Ref{Name: "hello", Qualifier: "1"}); err != nil || c.State != StatePending {
		t.Fatalf("version 1 before Start: %s, %v; want Pending", c.State, err)
	}
	if err := s2.Start(ctx); err != nil {
		t.Fatal(err)
	}
	got := waitVersion(t, s2, "hello", "1", func(c Config) bool { return c.State != StatePending })
	if got.State != StateActive {
		t.Errorf("version 1 after Start = %s, want Active", got.State)
	}
	second.mu.Lock()
	defer second.mu.Unlock()
	if len(second.taken) != 1 || second.taken[0] != "hello:1" {
		t.Errorf("snapshots taken after Start = %v, want hello:1", second.taken)
	}
}

func TestSnapStartVersionLifecycle(t *testing.T) {
	snaps := &fakeSnapshots{gate: make(chan struct{})}
	s := newSnapService(t, snaps)
	ctx := context.Background()
	in := validInput()
	in.SnapStartApplyOn = SnapStartPublished
	if _, err := s.Create(ctx, in); err != nil {
		t.Fatal(err)
	}
	waitFor(t, s, "hello", func(f *Function) bool { return f.Latest.State == StateActive })

	v, err := s.Publish(ctx, "hello", PublishInput{})
	if err != nil {
		t.Fatal(err)
	}
	if v.State != StatePending || v.StateReasonCode != ReasonCreating || v.SnapStartOn() {
		t.Errorf("published = %s/%s on=%v, want Pending/Creating, off", v.State, v.StateReasonCode, v.SnapStartOn())
	}
	if _, err := s.Resolve(ctx, Ref{Name: "hello", Qualifier: "1"}); !errors.Is(err, apierr.SnapStartNotReady) {
		t.Errorf("invoke while the snapshot is taken = %v, want SnapStartNotReadyException", err)
	}
	if _, err := s.Resolve(ctx, Ref{Name: "hello"}); err != nil {
		t.Errorf("$LATEST while version 1 is snapshotted: %v", err)
	}
	close(snaps.gate)
	got := waitVersion(t, s, "hello", "1", func(c Config) bool { return c.State != StatePending })
	if got.State != StateActive || !got.SnapStartOn() {
		t.Errorf("after the snapshot = %s on=%v, want Active, on", got.State, got.SnapStartOn())
	}

	// An init that fails: the version is Failed, reason FunctionError,
	// and invoking it says why.
	snaps.mu.Lock()
	snaps.fail = initFailure{}
	snaps.mu.Unlock()
	if _, err := s.UpdateConfig(ctx, "hello", UpdateConfigInput{Timeout: ptr(7)}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, s, "hello", func(f *Function) bool { return f.Latest.LastUpdateStatus == UpdateSuccessful })
	if _, err := s.Publish(ctx, "hello", PublishInput{}); err != nil {
		t.Fatal(err)
	}
	got = waitVersion(t, s, "hello", "2", func(c Config) bool { return c.State != StatePending })
	if got.State != StateFailed || got.StateReasonCode != ReasonFunctionError {
		t.Errorf("failed init = %s/%s, want Failed/FunctionError", got.State, got.StateReasonCode)
	}
	if _, err := s.Resolve(ctx, Ref{Name: "hello", Qualifier: "2"}); !errors.Is(err, apierr.Conflict) {
		t.Errorf("invoke of a version whose snapshot failed = %v, want ResourceConflictException (state Failed)", err)
	}

	// Anything else is the platform's: InternalError.
	snaps.mu.Lock()
	snaps.fail = errors.New("criu: dump failed")
	snaps.mu.Unlock()
	s.UpdateConfig(ctx, "hello", UpdateConfigInput{Timeout: ptr(8)})
	waitFor(t, s, "hello", func(f *Function) bool { return f.Latest.LastUpdateStatus == UpdateSuccessful })
	s.Publish(ctx, "hello", PublishInput{})
	got = waitVersion(t, s, "hello", "3", func(c Config) bool { return c.State != StatePending })
	if got.State != StateFailed || got.StateReasonCode != ReasonInternalError {
		t.Errorf("platform failure = %s/%s, want Failed/InternalError", got.State, got.StateReasonCode)
	}

	// Turning SnapStart off: new versions start the ordinary way.
	s.UpdateConfig(ctx, "hello", UpdateConfigInput{Timeout: ptr(9), SnapStartApplyOn: "None"})
	waitFor(t, s, "hello", func(f *Function) bool { return f.Latest.LastUpdateStatus == UpdateSuccessful })
	v4, _ := s.Publish(ctx, "hello", PublishInput{})
	if v4.State != StateActive || v4.SnapStart != "" {
		t.Errorf("version without SnapStart = %s %q, want Active without snapshot", v4.State, v4.SnapStart)
	}

	if err := s.DeleteVersion(ctx, "hello", "1"); err != nil {
		t.Fatal(err)
	}
	if err := s.Delete(ctx, "hello"); err != nil {
		t.Fatal(err)
	}
	snaps.mu.Lock()
	defer snaps.mu.Unlock()
	if len(snaps.taken) != 3 {
		t.Errorf("snapshots taken = %v, want versions 1-3", snaps.taken)
	}
	if len(snaps.dropped) != 2 || snaps.dropped[0] != "hello:1" || snaps.dropped[1] != "hello:" {
		t.Errorf("dropped = %v, want hello:1 then all of hello", snaps.dropped)
	}
}

// TestSnapshotWanted: a snapshot is wanted for a published version that
// still exists as published (same revision), and for nothing else.
func TestSnapshotWanted(t *testing.T) {
	s := newSnapService(t, &fakeSnapshots{})
	ctx := context.Background()
	in := validInput()
	in.SnapStartApplyOn = SnapStartPublished
	if _, err := s.Create(ctx, in); err != nil {
		t.Fatal(err)
	}
	waitFor(t, s, "hello", func(f *Function) bool { return f.Latest.State == StateActive })
	v, err := s.Publish(ctx, "hello", PublishInput{})
	if err != nil {
		t.Fatal(err)
	}
	if !s.SnapshotWanted(ctx, v) {
		t.Error("not wanted for the version just published")
	}
	other := v
	other.RevisionID = "another-revision"
	if s.SnapshotWanted(ctx, other) {
		t.Error("wanted for another publication of the same number")
	}
	latest := v
	latest.Version = "$LATEST"
	if s.SnapshotWanted(ctx, latest) {
		t.Error("wanted for $LATEST")
	}
	waitVersion(t, s, "hello", "1", func(c Config) bool { return c.State != StatePending })
	if err := s.DeleteVersion(ctx, "hello", "1"); err != nil {
		t.Fatal(err)
	}
	if s.SnapshotWanted(ctx, v) {
		t.Error("wanted for a deleted version")
	}
}
