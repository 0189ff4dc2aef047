package function

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"

	"github.com/kappa-run/kappa/internal/store"
)

// SnapStart versions: Publish stores a version of a function with
// SnapStart.ApplyOn PublishedVersions as Pending and takes its snapshot in
// the background (Snapshotter.Snapshot); the version becomes Active when
// the snapshot is stored, Failed when the function's init failed
// (FunctionError) or the snapshot could not be taken (InternalError), as
// Lambda's do. Start resumes the snapshots a previous process left
// Pending.

// snapshotReasons of a Pending SnapStart version.
const snapshotPendingReason = "Lambda is creating a snapshot of the function's initialized execution environment."

// snapshotVersion takes the snapshot of version n of name in the background.
func (s *Service) snapshotVersion(name string, n int) {
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		v, err := s.version(s.ctx, name, n)
		if err != nil || v.State != StatePending || v.SnapStart != SnapStartPublished {
			return
		}
		snapErr := errors.New("no snapshotter configured")
		if s.opts.Snapshots != nil {
			snapErr = s.opts.Snapshots.Snapshot(s.ctx, v)
		}
		if s.ctx.Err() != nil {
			return // shutting down; Start resumes it
		}
		code, reason := "", ""
		if snapErr != nil {
			code, reason = ReasonInternalError, "Taking the SnapStart snapshot failed: "+snapErr.Error()
			var fe interface{ FunctionFailure() bool }
			if errors.As(snapErr, &fe) && fe.FunctionFailure() {
				code, reason = ReasonFunctionError, "The function's init failed while its SnapStart snapshot was taken: "+snapErr.Error()
			}
			s.log.Warn("snapshot failed", "function", name, "version", n, "err", snapErr)
		}
		if err := s.settleVersion(name, n, v.RevisionID, code, reason); err != nil {
			if errors.Is(err, store.ErrNotFound) {
				// Deleted while its snapshot was taken: the invoker did
				// not store it (it asks SnapshotWanted first), or the
				// deletion's DropSnapshots removed it. Dropping here
				// could remove a newer version of the same number's.
				return
			}
			s.log.Warn("record snapshot outcome", "function", name, "version", n, "err", err)
			return
		}
		s.changed(name)
	}()
}

// SnapshotWanted reports whether published version c still exists: the
// same number of the same function, published as the same revision. It
// is the invoker's SnapshotWanted; a store it cannot read answers true
// (a snapshot kept by mistake is removed with its version).
func (s *Service) SnapshotWanted(ctx context.Context, c Config) bool {
	n, err := strconv.Atoi(c.Version)
	if err != nil {
		return false // $LATEST has no snapshot
	}
	e, err := s.opts.Bucket.Get(ctx, versionKey(c.Name, n))
	if errors.Is(err, store.ErrNotFound) {
		return false
	}
	if err != nil {
		return true
	}
	var v Config
	if err := json.Unmarshal(e.Value, &v); err != nil {
		return true
	}
	return v.RevisionID == c.RevisionID
}

// settleVersion moves Pending version n of name, published as revision,
// to Active (code "") or Failed. A version of that number published anew
// since (the function deleted and made again) is not this one: store's
// ErrNotFound, as for a version deleted.
func (s *Service) settleVersion(name string, n int, revision, code, reason string) error {
	for range 100 {
		e, err := s.opts.Bucket.Get(s.ctx, versionKey(name, n))
		if err != nil {
			return err
		}
		var v Config
		if err := json.Unmarshal(e.Value, &v); err != nil {
			return err
		}
		if v.RevisionID != revision {
			return fmt.Errorf("version %d of %s was published anew: %w", n, name, store.ErrNotFound)
		}
		if v.State != StatePending {
			return nil
		}
		if code == "" {
			v.State, v.StateReason, v.StateReasonCode = StateActive, "", ""
		} else {
			v.State, v.StateReason, v.StateReasonCode = StateFailed, reason, code
		}
		b, _ := json.Marshal(v)
		_, err = s.opts.Bucket.Update(s.ctx, versionKey(name, n), b, e.Revision)
		if errors.Is(err, store.ErrRevision) {
			continue
		}
		return err
	}
	return errors.New("too much contention on version " + strconv.Itoa(n))
}

// resumeSnapshots restarts the snapshots of name's Pending versions.
func (s *Service) resumeSnapshots(ctx context.Context, name string) {
	nums, err := s.versionNumbers(ctx, name)
	if err != nil {
		return
	}
	for _, n := range nums {
		if v, err := s.version(ctx, name, n); err == nil && v.State == StatePending && v.SnapStart == SnapStartPublished {
			s.snapshotVersion(name, n)
		}
	}
}
