package invoker

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/kappa-run/kappa/internal/function"
	"github.com/kappa-run/kappa/internal/sandbox"
)

// SnapStart: a published version with SnapStart.ApplyOn PublishedVersions
// is initialised once, when published, in a checkpointable environment
// (its init relays the Runtime API, see package envinit); once the
// runtime asks for its first event the environment is checkpointed
// (CRIU, through the OCI runtime) and its cold starts restore that
// checkpoint instead of running init. See docs/snapshot-restore.md for
// what a snapshot cannot carry over.

// initSnapStart is AWS_LAMBDA_INITIALIZATION_TYPE in a snapshot's
// environment, and so in every environment restored from it.
const initSnapStart = "snap-start"

// snapshotInitTimeout bounds the init of a version being snapshotted
// (Lambda allows SnapStart inits 15 minutes); restoreConnectTimeout how
// long a restored environment may take to ask for its event (it does in
// milliseconds) before the invocation starts one the ordinary way.
const (
	snapshotInitTimeout   = 15 * time.Minute
	restoreConnectTimeout = 3 * time.Second
	// restoreHookTimeout bounds a restored environment's way to its first
	// event when its runtime has after-restore hooks: Lambda's restore
	// phase, after which Invoke answers SnapStartTimeoutException.
	restoreHookTimeout = 10 * time.Second
	// checkpointAnswerTimeout bounds the hand-over of the runtime's
	// parked /next before a checkpoint.
	checkpointAnswerTimeout = 30 * time.Second
	// maxSnapshotTakes bounds the snapshots taken at once: each is a
	// whole environment running its init, outside MaxEnvironments.
	maxSnapshotTakes = 2
)

// noRestoreKey marks a context whose cold start must not restore a
// snapshot (the restored environment failed).
type noRestoreKey struct{}

func withoutRestore(ctx context.Context) context.Context {
	return context.WithValue(ctx, noRestoreKey{}, true)
}

// ErrNoSnapshots is returned by Snapshot when the invoker keeps none.
var ErrNoSnapshots = errors.New("snapshots are not enabled")

// Snapshots returns nil when the invoker can take snapshots, else why not.
func (inv *Invoker) Snapshots() error {
	if inv.opts.SnapshotDir == "" {
		return ErrNoSnapshots
	}
	if inv.opts.InitBinary == "" {
		return errors.New("snapshots need a statically linked kappa binary (build with CGO_ENABLED=0)")
	}
	s, ok := inv.opts.Runtime.(sandbox.Snapshotter)
	if !ok {
		return fmt.Errorf("the %s sandbox runtime cannot take snapshots", inv.opts.Runtime.Name())
	}
	return s.Snapshots()
}

// snapshotDir is where the snapshot of version c is kept: under the
// function and version, named by a digest of everything its sandbox is
// made of (as spares are matched), so that a snapshot is never restored
// for other settings.
func (inv *Invoker) snapshotDir(c function.Config) string {
	sum := sha256.Sum256([]byte(fingerprint(c, inv.opts.Region, initSnapStart)))
	return filepath.Join(inv.opts.SnapshotDir, c.Name, c.Version+"-"+hex.EncodeToString(sum[:8]))
}

// snapshotFor returns the directory of c's snapshot when c is a version
// started from one and the snapshot exists, else "".
func (inv *Invoker) snapshotFor(ctx context.Context, c function.Config) string {
	if inv.opts.SnapshotDir == "" || !c.SnapStartOn() || ctx.Value(noRestoreKey{}) != nil || inv.Snapshots() != nil {
		return ""
	}
	dir := inv.snapshotDir(c)
	if _, err := os.Stat(dir); err != nil {
		// Gone (a data directory lost, another --region, a retake
		// that failed): take it again in the background, within
		// maxSnapshotFailures.
		inv.retakeSnapshot(c, dir)
		return ""
	}
	return dir
}

// maxSnapshotFailures is how many times in a row a version's snapshot may
// fail to restore, or to be taken again, before Kappa stops retaking it and
// the version cold-starts the ordinary way (logged once).
const maxSnapshotFailures = 3

// restoredSnapshot records that the snapshot in dir restored.
func (inv *Invoker) restoredSnapshot(dir string) {
	inv.snapMu.Lock()
	delete(inv.snapFailures, dir)
	inv.snapMu.Unlock()
}

// retakeSnapshot takes c's snapshot again in the background unless one is
// being taken or it failed too often.
func (inv *Invoker) retakeSnapshot(c function.Config, dir string) {
	inv.snapMu.Lock()
	busy := inv.snapTaking[dir] != nil
	failures := inv.snapFailures[dir]
	inv.snapMu.Unlock()
	if busy || failures >= maxSnapshotFailures {
		return
	}
	select {
	case <-inv.stop:
		return
	default:
	}
	inv.wg.Add(1)
	go func() {
		defer inv.wg.Done()
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		go func() {
			select {
			case <-inv.stop:
				cancel()
			case <-ctx.Done():
			}
		}()
		if err := inv.Snapshot(ctx, c); err != nil && ctx.Err() == nil && !errors.Is(err, errSnapshotUnwanted) {
			inv.snapMu.Lock()
			inv.snapFailures[dir]++
			n := inv.snapFailures[dir]
			inv.snapMu.Unlock()
			inv.log.Warn("retake snapshot", "function", c.Name, "version", c.Version, "err", err, "failures", n)
		}
	}()
}

// Snapshot initialises version c in a new environment and checkpoints it
// once init is complete. It returns once the snapshot is stored (at once
// when it already is); a *SnapshotError when the function's init failed.
// Concurrent calls for one version take one snapshot.
func (inv *Invoker) Snapshot(ctx context.Context, c function.Config) error {
	if err := inv.Snapshots(); err != nil {
		return err
	}
	dir := inv.snapshotDir(c)
	inv.snapMu.Lock()
	if inv.snapTaking[dir] == nil {
		inv.snapTaking[dir] = make(chan struct{})
		inv.snapMu.Unlock()
		err := inv.takeSnapshot(ctx, c, dir)
		inv.snapMu.Lock()
		close(inv.snapTaking[dir])
		delete(inv.snapTaking, dir)
		inv.snapMu.Unlock()
		return err
	}
	wait := inv.snapTaking[dir]
	inv.snapMu.Unlock()
	select {
	case <-wait:
	case <-ctx.Done():
		return ctx.Err()
	}
	if _, err := os.Stat(dir); err != nil {
		return errors.New("a concurrent snapshot of the version failed")
	}
	return nil
}

// SnapshotError is a failure of the function itself while its snapshot
// was being taken: its init failed or timed out, or it has external
// extensions (not snapshotted yet).
type SnapshotError struct{ Message string }

func (e *SnapshotError) Error() string { return e.Message }

// FunctionFailure marks the failure as the function's (function.Service
// reports it as StateReasonCode FunctionError).
func (e *SnapshotError) FunctionFailure() bool { return true }

// errSnapshotUnwanted is takeSnapshot's answer when the version was
// deleted while its snapshot was taken (Options.SnapshotWanted).
var errSnapshotUnwanted = errors.New("the version was deleted while its snapshot was taken")

func (inv *Invoker) takeSnapshot(ctx context.Context, c function.Config, dir string) error {
	if _, err := os.Stat(dir); err == nil {
		return nil
	}
	select {
	case inv.snapSlots <- struct{}{}:
		defer func() { <-inv.snapSlots }()
	case <-ctx.Done():
		return ctx.Err()
	}
	start := inv.opts.Now()
	e, err := inv.coldStart(ctx, c, initSnapStart, snapshotInitTimeout)
	if err != nil {
		var fe *functionError
		if errors.As(err, &fe) {
			return &SnapshotError{Message: fmt.Sprintf("%s: %s", fe.Type, fe.Message)}
		}
		return err
	}
	defer func() {
		inv.mu.Lock()
		delete(inv.all, e)
		inv.mu.Unlock()
		e.destroy(context.Background())
	}()
	initDur := inv.opts.Now().Sub(start)
	// Under snapMu, so that a snapshot thrown away (below) cannot remove
	// the function's directory between these two.
	inv.snapMu.Lock()
	part, err := func() (string, error) {
		if err := os.MkdirAll(filepath.Dir(dir), 0o700); err != nil {
			return "", err
		}
		return os.MkdirTemp(filepath.Dir(dir), filepath.Base(dir)+partInfix)
	}()
	inv.snapMu.Unlock()
	if err != nil {
		return err
	}
	defer os.RemoveAll(part) // gone after the rename when all went well
	// Refuse the relay's reconnections from here on, take the runtime's
	// parked /next away from it, then dump.
	e.sb.RuntimeAPIListener().Close()
	answered := make(chan error, 1)
	actx, cancel := context.WithTimeout(ctx, checkpointAnswerTimeout)
	defer cancel()
	go func() { answered <- e.api.Checkpoint(actx) }()
	select {
	case err := <-answered:
		if err != nil {
			return fmt.Errorf("hand the runtime's /next over for the checkpoint: %w", err)
		}
	case <-e.sb.Done():
		return &SnapshotError{Message: "the runtime exited before its snapshot: " + e.sb.Exit().String()}
	}
	cp, ok := sandbox.As[sandbox.Checkpointer](e.sb)
	if !ok {
		return errors.New("the sandbox cannot be checkpointed")
	}
	ckStart := inv.opts.Now()
	if err := cp.Checkpoint(ctx, part); err != nil {
		return err
	}
	ckDur := inv.opts.Now().Sub(ckStart)
	if err := inv.storeSnapshot(ctx, c, part, dir); err != nil {
		return err
	}
	inv.logSnapshotTaken(c, initDur, ckDur, dir)
	return nil
}

// partInfix marks a snapshot being written: <dir><partInfix><random>.
const partInfix = ".part-"

// storeSnapshot moves the checkpoint in part to dir, c's snapshot, if c
// still exists (Options.SnapshotWanted): a version deleted before the
// check is not stored; one deleted after has its snapshot removed by the
// DropSnapshots that follows its deletion. The check reads the store, so
// it runs without snapMu; a DropSnapshots meanwhile (snapDrops moved)
// makes it check again. Snapshots of c's version under other names (taken
// by another Kappa, whose fingerprint differed) go once this one is in.
func (inv *Invoker) storeSnapshot(ctx context.Context, c function.Config, part, dir string) error {
	for {
		inv.snapMu.Lock()
		drops := inv.snapDrops
		inv.snapMu.Unlock()
		wanted := inv.opts.SnapshotWanted == nil || inv.opts.SnapshotWanted(ctx, c)
		inv.snapMu.Lock()
		if inv.snapDrops != drops {
			inv.snapMu.Unlock()
			continue
		}
		if !wanted {
			aside, _ := moveAside(part)
			inv.snapMu.Unlock()
			os.RemoveAll(aside)
			inv.snapMu.Lock()
			os.Remove(filepath.Dir(dir)) // the function's directory, if that left it empty
			inv.snapMu.Unlock()
			inv.log.Info("snapshot not stored: its version was deleted while it was taken", "function", c.Name, "version", c.Version)
			return errSnapshotUnwanted
		}
		err := os.Rename(part, dir)
		var stale []string
		if err == nil {
			stale = inv.moveStaleAsideLocked(c, dir)
		}
		inv.snapMu.Unlock()
		for _, d := range stale {
			os.RemoveAll(d)
		}
		return err
	}
}

// moveStaleAsideLocked renames aside the snapshots of c's version other
// than dir and returns where they went; snapMu held.
func (inv *Invoker) moveStaleAsideLocked(c function.Config, dir string) []string {
	var aside []string
	matches, _ := filepath.Glob(filepath.Join(filepath.Dir(dir), c.Version+"-*"))
	for _, m := range matches {
		if m == dir || !isSnapshotName(filepath.Base(m), c.Version) {
			continue
		}
		if a, err := moveAside(m); err == nil {
			aside = append(aside, a)
		}
	}
	return aside
}

// isSnapshotName reports whether name is a stored snapshot of version:
// <version>-<hex digest>, not one being written or moved aside.
func isSnapshotName(name, version string) bool {
	digest, ok := strings.CutPrefix(name, version+"-")
	if !ok || digest == "" {
		return false
	}
	for _, r := range digest {
		if !('0' <= r && r <= '9' || 'a' <= r && r <= 'f') {
			return false
		}
	}
	return true
}

// moveAside renames path to a unique name beside it that no cold start or
// take looks for, so that it can be removed without snapMu.
func moveAside(path string) (string, error) {
	aside := fmt.Sprintf("%s.gone-%d", path, time.Now().UnixNano())
	return aside, os.Rename(path, aside)
}

// sweepSnapshots removes what a stopped server left in dir: snapshots
// being written or moved aside. No take is running yet.
func sweepSnapshots(dir string) {
	// (*.broken: what a crash left of a broken snapshot before they were
	// moved aside like the others.)
	for _, pattern := range []string{"*" + partInfix + "*", "*.gone-*", "*.broken"} {
		matches, _ := filepath.Glob(filepath.Join(dir, "*", pattern))
		for _, m := range matches {
			os.RemoveAll(m)
		}
	}
}

func (inv *Invoker) logSnapshotTaken(c function.Config, initDur, ckDur time.Duration, dir string) {
	inv.log.Info("snapshot taken", "function", c.Name, "version", c.Version,
		"init", initDur.Round(time.Millisecond), "checkpoint", ckDur.Round(time.Millisecond), "dir", dir)
}

// brokenSnapshot drops the snapshot p could not restore (a kernel, CRIU or
// Kappa binary that changed under it) so that cold starts go the ordinary
// way, and takes it again in the background. Restores of one snapshot
// that fail together (one dropped it under the others) count once, and a
// snapshot taken again since is not dropped for an older one's failure.
func (inv *Invoker) brokenSnapshot(c function.Config, p *prepared, err error) {
	dir := p.restoreFrom
	inv.snapMu.Lock()
	cur, serr := os.Stat(dir)
	if serr != nil || p.restoreStat == nil || !os.SameFile(cur, p.restoreStat) {
		inv.snapMu.Unlock()
		inv.log.Warn("snapshot restore failed; the snapshot was already dropped",
			"function", c.Name, "version", c.Version, "err", err)
		return
	}
	// Out of the way at once, under snapMu: restores that chose it keep
	// their open files; later cold starts no longer find it.
	aside, rerr := moveAside(dir)
	inv.snapFailures[dir]++
	n := inv.snapFailures[dir]
	inv.snapMu.Unlock()
	if n >= maxSnapshotFailures {
		inv.log.Error("snapshot keeps failing to restore; its version now cold-starts the ordinary way",
			"function", c.Name, "version", c.Version, "err", err, "failures", n)
	} else {
		inv.log.Warn("snapshot restore failed; dropping the snapshot and taking it again",
			"function", c.Name, "version", c.Version, "err", err, "failures", n)
	}
	if rerr != nil {
		inv.log.Warn("remove snapshot", "dir", dir, "err", rerr)
		return // the caller starts without it (withoutRestore)
	}
	if rerr := os.RemoveAll(aside); rerr != nil {
		inv.log.Warn("remove snapshot", "dir", aside, "err", rerr)
	}
	inv.retakeSnapshot(c, dir)
}

// DropSnapshots removes the snapshots of a function's version, or of all
// its versions when version is "". Call it after deleting the version:
// see Options.SnapshotWanted. A snapshot being written is left to its
// take, which throws it away.
func (inv *Invoker) DropSnapshots(name, version string) {
	if inv.opts.SnapshotDir == "" || name == "" {
		return
	}
	base := filepath.Join(inv.opts.SnapshotDir, name)
	var aside []string
	inv.snapMu.Lock() // not between a take's check and its rename
	inv.snapDrops++
	ents, _ := os.ReadDir(base)
	for _, ent := range ents {
		n := ent.Name()
		if strings.Contains(n, partInfix) || strings.Contains(n, ".gone-") ||
			(version != "" && !strings.HasPrefix(n, version+"-")) {
			continue
		}
		if a, err := moveAside(filepath.Join(base, n)); err == nil {
			aside = append(aside, a)
		}
	}
	inv.snapMu.Unlock()
	for _, a := range aside {
		if err := os.RemoveAll(a); err != nil {
			inv.log.Warn("remove snapshots", "dir", a, "err", err)
		}
	}
	if version == "" {
		inv.snapMu.Lock()
		os.Remove(base) // unless a take still writes there: it removes it
		inv.snapMu.Unlock()
	}
}
