package function

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"reflect"
	"sort"
	"strconv"
	"time"

	"github.com/google/uuid"

	"github.com/kappa-run/kappa/internal/apierr"
	"github.com/kappa-run/kappa/internal/store"
)

func versionKey(name string, v int) string { return fmt.Sprintf("ver.%s.%d", name, v) }

// PublishInput is a PublishVersion request.
type PublishInput struct {
	CodeSha256  string
	Description *string
	RevisionID  string
}

// Publish snapshots $LATEST as a new immutable version numbered after the
// last one. When neither code nor configuration changed since the last
// version, that version is returned instead, as Lambda does.
func (s *Service) Publish(ctx context.Context, name string, in PublishInput) (Config, error) {
	return s.publish(ctx, name, in, false)
}

// publish is Publish; with deploy, it publishes the version a deploy asked
// for (see publishPending) and ends that deploy in the same write.
func (s *Service) publish(ctx context.Context, name string, in PublishInput, deploy bool) (Config, error) {
	for range 100 {
		fn, rev, err := s.load(ctx, name)
		if err != nil {
			return Config{}, err
		}
		c := fn.Latest
		if deploy {
			if !deploying(fn) {
				return Config{}, s.inProgress(name) // ended meanwhile
			}
			endDeploy(&c)
			fn.Latest, fn.PublishPending = c, false
		}
		if c.State == StatePending || fn.Pending != nil || c.LastUpdateStatus == UpdateInProgress {
			return Config{}, s.inProgress(name)
		}
		if c.State != StateActive {
			return Config{}, apierr.New(apierr.Conflict,
				"The operation cannot be performed at this time. The function is currently in the following state: %s", c.State)
		}
		if in.CodeSha256 != "" && in.CodeSha256 != c.Code.CodeSha256() {
			return Config{}, apierr.New(apierr.PreconditionFailed,
				"CodeSHA256 (%s) is different from current CodeSHA256 in $LATEST (%s). Please try publishing again with the current CodeSHA256.", in.CodeSha256, c.Code.CodeSha256())
		}
		if err := s.checkRevision(&c, in.RevisionID); err != nil {
			return Config{}, err
		}
		if fn.LastVersion > 0 {
			last, err := s.version(ctx, name, fn.LastVersion)
			if err == nil && sameSnapshot(last, c) && (in.Description == nil || *in.Description == last.Description) {
				if deploy {
					// Nothing new to publish: the deploy still ends.
					fb, _ := json.Marshal(fn)
					nrev, err := s.opts.Bucket.Update(ctx, key(name), fb, rev)
					if errors.Is(err, store.ErrRevision) {
						s.remember(name, nil, 0)
						continue
					} else if err != nil {
						s.remember(name, nil, 0)
						return Config{}, apierr.Wrap(apierr.Internal, err, "write function")
					}
					s.remember(name, fn, nrev)
				}
				return last, nil
			}
		}
		n := fn.LastVersion + 1
		v := c
		v.Version = strconv.Itoa(n)
		if in.Description != nil {
			v.Description = *in.Description
		}
		v.RevisionID = uuid.NewString()
		v.LastModified = s.opts.Now().UTC()
		v.LastUpdateStatus, v.LastUpdateStatusReason, v.LastUpdateStatusReasonCode = UpdateSuccessful, "", ""
		if v.SnapStart == SnapStartPublished {
			v.State, v.StateReason, v.StateReasonCode = StatePending, snapshotPendingReason, ReasonCreating
		}
		b, _ := json.Marshal(v)
		// Create, not Put: a concurrent Publish of the same number holds
		// the key until it records it in the function or gives it up,
		// and neither ever removes a version the other wrote.
		if _, err := s.opts.Bucket.Create(ctx, versionKey(name, n), b); errors.Is(err, store.ErrExists) {
			s.remember(name, nil, 0)
			s.dropOrphanVersion(ctx, name, n)
			time.Sleep(time.Millisecond)
			continue
		} else if err != nil {
			return Config{}, apierr.Wrap(apierr.Internal, err, "store version")
		}
		fn.LastVersion = n
		fn.Generation++
		fb, _ := json.Marshal(fn)
		nrev, err := s.opts.Bucket.Update(ctx, key(name), fb, rev)
		if errors.Is(err, store.ErrRevision) {
			s.remember(name, nil, 0)
			s.opts.Bucket.Delete(ctx, versionKey(name, n)) // this call's own
			continue
		} else if err != nil {
			s.remember(name, nil, 0)
			return Config{}, apierr.Wrap(apierr.Internal, err, "write function")
		}
		s.remember(name, fn, nrev)
		s.log.Info("version published", "function", name, "version", n)
		if v.State == StatePending {
			s.snapshotVersion(name, n)
		}
		return v, nil
	}
	return Config{}, apierr.New(apierr.Internal, "too much contention on function %s", name)
}

// orphanVersionAge is how old a version past the function's LastVersion
// must be to be taken for the leftover of a Publish that crashed between
// its two writes, rather than one in progress (which takes milliseconds).
const orphanVersionAge = time.Minute

// dropOrphanVersion deletes version n of name when it is such a leftover,
// so that the number can be published.
func (s *Service) dropOrphanVersion(ctx context.Context, name string, n int) {
	v, err := s.version(ctx, name, n)
	if err != nil || s.opts.Now().Sub(v.LastModified) < orphanVersionAge {
		return
	}
	fn, _, err := s.load(ctx, name)
	if err != nil || fn.LastVersion >= n {
		return
	}
	s.log.Warn("removing a version a crashed publish left", "function", name, "version", n)
	s.opts.Bucket.Delete(ctx, versionKey(name, n))
}

// sameSnapshot reports whether publishing c would repeat version v.
func sameSnapshot(v, c Config) bool {
	norm := func(x Config) Config {
		x.Version, x.RevisionID, x.LastModified, x.Description = "", "", time.Time{}, ""
		x.State, x.StateReason, x.StateReasonCode = "", "", ""
		x.LastUpdateStatus, x.LastUpdateStatusReason, x.LastUpdateStatusReasonCode = "", "", ""
		return x
	}
	return reflect.DeepEqual(norm(v), norm(c))
}

func (s *Service) version(ctx context.Context, name string, n int) (Config, error) {
	e, err := s.opts.Bucket.Get(ctx, versionKey(name, n))
	if errors.Is(err, store.ErrNotFound) {
		return Config{}, apierr.New(apierr.NotFound, "Function not found: %s", s.ARN(name, strconv.Itoa(n)))
	}
	if err != nil {
		return Config{}, apierr.Wrap(apierr.Internal, err, "read version")
	}
	var c Config
	if err := json.Unmarshal(e.Value, &c); err != nil {
		return Config{}, apierr.Wrap(apierr.Internal, err, "decode version")
	}
	return c, nil
}

// Versions returns $LATEST followed by the published versions in order.
func (s *Service) Versions(ctx context.Context, name string) ([]Config, error) {
	fn, err := s.Get(ctx, name)
	if err != nil {
		return nil, err
	}
	nums, err := s.versionNumbers(ctx, name)
	if err != nil {
		return nil, err
	}
	out := []Config{fn.Latest}
	for _, n := range nums {
		c, err := s.version(ctx, name, n)
		if errors.Is(err, apierr.NotFound) {
			continue
		}
		if err != nil {
			return nil, err
		}
		out = append(out, c)
	}
	return out, nil
}

func (s *Service) versionNumbers(ctx context.Context, name string) ([]int, error) {
	keys, err := s.opts.Bucket.Keys(ctx, "ver."+name)
	if err != nil {
		return nil, apierr.Wrap(apierr.Internal, err, "list versions")
	}
	var nums []int
	for _, k := range keys {
		if n, err := strconv.Atoi(k[len("ver."+name+"."):]); err == nil {
			nums = append(nums, n)
		}
	}
	sort.Ints(nums)
	return nums, nil
}

// isVersion reports whether q names a version ($LATEST or a number).
func isVersion(q string) bool {
	if q == LatestVersion {
		return true
	}
	_, err := strconv.Atoi(q)
	return err == nil && q != "" && q[0] != '-' && q[0] != '+'
}

// Config returns the configuration of a function at a qualifier: "" or
// $LATEST, a version number, or an alias (its primary version).
func (s *Service) Config(ctx context.Context, ref Ref) (Config, error) {
	switch {
	case ref.Qualifier == "" || ref.Qualifier == LatestVersion:
		fn, err := s.Get(ctx, ref.Name)
		if err != nil {
			return Config{}, err
		}
		return fn.Latest, nil
	case isVersion(ref.Qualifier):
		if _, err := s.Get(ctx, ref.Name); err != nil {
			return Config{}, err
		}
		n, _ := strconv.Atoi(ref.Qualifier)
		return s.version(ctx, ref.Name, n)
	default:
		a, err := s.GetAlias(ctx, ref.Name, ref.Qualifier)
		if err != nil {
			return Config{}, err
		}
		return s.Config(ctx, Ref{Name: ref.Name, Qualifier: a.FunctionVersion})
	}
}

// Target is what an invocation of a Ref runs.
type Target struct {
	// Config is the configuration of the version that runs.
	Config Config
	// Reserved is the function's reserved concurrency, nil when unset.
	Reserved *int
}

// Resolve returns the configuration an invocation of ref runs with: the
// version named, or for an alias one of its versions chosen by weight.
func (s *Service) Resolve(ctx context.Context, ref Ref) (Target, error) {
	fn, err := s.Get(ctx, ref.Name)
	if err != nil {
		return Target{}, err
	}
	t := Target{Reserved: fn.ReservedConcurrency}
	q := ref.Qualifier
	if q != "" && !isVersion(q) {
		a, err := s.GetAlias(ctx, ref.Name, q)
		if err != nil {
			return Target{}, err
		}
		q = a.pick(rand.Float64())
	}
	if q == "" || q == LatestVersion {
		t.Config = fn.Latest
	} else {
		n, _ := strconv.Atoi(q)
		if t.Config, err = s.version(ctx, ref.Name, n); err != nil {
			return Target{}, err
		}
	}
	switch c := t.Config; {
	case c.State == StateActive:
		return t, nil
	case c.SnapStart == SnapStartPublished && c.Version != LatestVersion && c.State == StatePending:
		return Target{}, apierr.New(apierr.SnapStartNotReady,
			"Lambda is initializing your function. You can invoke the function when the state of your function is Active.")
	default:
		return Target{}, apierr.New(apierr.Conflict,
			"The operation cannot be performed at this time. The function is currently in the following state: %s", t.Config.State)
	}
}

// pick chooses the version for a uniform random number r in [0,1).
func (a *Alias) pick(r float64) string {
	for v, w := range a.AdditionalWeights {
		if r < w {
			return v
		}
	}
	return a.FunctionVersion
}

// DeleteVersion removes one published version; $LATEST cannot be deleted
// this way, and a version an alias points to cannot be deleted.
func (s *Service) DeleteVersion(ctx context.Context, name, qualifier string) error {
	if qualifier == LatestVersion {
		return apierr.New(apierr.InvalidParameter, "$LATEST version cannot be deleted without deleting the function.")
	}
	if !isVersion(qualifier) {
		return apierr.New(apierr.InvalidParameter, "Deletion of aliases is not supported by DeleteFunction; use DeleteAlias.")
	}
	n, _ := strconv.Atoi(qualifier)
	if _, err := s.version(ctx, name, n); err != nil {
		return err
	}
	aliases, err := s.Aliases(ctx, name, "")
	if err != nil {
		return err
	}
	var refs []string
	for _, a := range aliases {
		if a.FunctionVersion == qualifier || a.AdditionalWeights[qualifier] > 0 {
			refs = append(refs, s.ARN(name, a.Name))
		}
	}
	if len(refs) > 0 {
		return apierr.New(apierr.Conflict, "Unable to delete version because the following aliases reference it: %v", refs)
	}
	if err := s.opts.Bucket.Delete(ctx, versionKey(name, n)); err != nil {
		return apierr.Wrap(apierr.Internal, err, "delete version")
	}
	if s.opts.Snapshots != nil {
		s.opts.Snapshots.DropSnapshots(name, strconv.Itoa(n))
	}
	if err := s.dropPolicy(ctx, name, strconv.Itoa(n)); err != nil {
		// The version is gone: its environments must still be told.
		s.log.Warn("delete the policy of a deleted version", "function", name, "version", n, "err", err)
	}
	s.changed(name)
	return nil
}
