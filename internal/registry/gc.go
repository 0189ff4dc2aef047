package registry

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/opencontainers/go-digest"
)

// Pins lists manifests that garbage collection must keep, with everything
// they reference, although no repository may hold them any more: the
// images function versions run. The daemon implements it over the
// function store.
type Pins interface {
	// PinnedManifests returns the digests ("sha256:…") of every pinned
	// manifest. On error, GC removes nothing.
	PinnedManifests(ctx context.Context) ([]string, error)
}

// Defaults of GCOptions.
const (
	// DefaultGCGrace is how long an unreferenced blob is kept after it was
	// written or last shown to a client: a push uploads its blobs before
	// the manifest that references them, possibly minutes apart.
	DefaultGCGrace = time.Hour
	// DefaultUploadMaxAge is how long an upload session may stay idle
	// before GC removes it.
	DefaultUploadMaxAge = 24 * time.Hour
)

// GCOptions configure a garbage collection.
type GCOptions struct {
	// Pins, when not nil, names manifests to keep besides those in
	// repositories.
	Pins Pins
	// Grace keeps unreferenced blobs written, mounted, or shown to a client
	// (HEAD, GET) less than Grace ago. 0 means DefaultGCGrace; a negative
	// value keeps none, which is only safe while no push is running.
	Grace time.Duration
	// UploadMaxAge removes upload sessions idle for longer; 0 means
	// DefaultUploadMaxAge. It is never less than Grace.
	UploadMaxAge time.Duration
	// DryRun reports what would be removed and removes nothing.
	DryRun bool
}

// GCReport says what a garbage collection found and did.
type GCReport struct {
	// Manifests is the number of live manifests: in a repository, pinned,
	// or referenced by a live index.
	Manifests int `json:"manifests"`
	// Pinned is the number of pinned manifests present in the store.
	Pinned int `json:"pinned"`
	// BlobsKept counts blobs a live manifest references (or is).
	BlobsKept int `json:"blobsKept"`
	// BlobsYoung counts unreferenced blobs kept for the grace period.
	BlobsYoung int `json:"blobsYoung"`
	// BlobsRemoved and BytesRemoved are what was (or, in a dry run, would
	// be) removed.
	BlobsRemoved int   `json:"blobsRemoved"`
	BytesRemoved int64 `json:"bytesRemoved"`
	// LinksRemoved counts repository links to blobs no longer stored.
	LinksRemoved int `json:"linksRemoved"`
	// UploadsRemoved counts abandoned upload sessions removed.
	UploadsRemoved int  `json:"uploadsRemoved"`
	DryRun         bool `json:"dryRun"`
}

// GC removes blobs that no manifest of any repository references, except
// those Pins names (and what they reference), those younger than the grace
// period, and upload sessions in progress. It is a mark and sweep: the
// manifests of every repository and the pinned ones are the roots; an
// index marks its children, an image manifest its config and layers.
// Subjects are not followed: a referrer does not keep its subject.
//
// GC is safe while clients push and pull: manifest pushes wait while it
// runs (blob uploads do not), a blob is removed under a lock that its
// creation and every "it exists" answer take too, and a blob a client was
// told exists is kept for the grace period, since the client may reference
// it from a manifest next. One GC runs at a time.
func (r *Registry) GC(ctx context.Context, o GCOptions) (GCReport, error) {
	rep := GCReport{DryRun: o.DryRun}
	grace := o.Grace
	switch {
	case grace == 0:
		grace = DefaultGCGrace
	case grace < 0:
		grace = 0
	}
	uploadAge := o.UploadMaxAge
	if uploadAge <= 0 {
		uploadAge = DefaultUploadMaxAge
	}
	uploadAge = max(uploadAge, grace)

	var pins []digest.Digest
	if o.Pins != nil {
		list, err := o.Pins.PinnedManifests(ctx)
		if err != nil {
			return rep, fmt.Errorf("gc: list pinned manifests: %w", err)
		}
		for _, s := range list {
			if s == "" {
				continue
			}
			d, err := parseDigest(s)
			if err != nil {
				return rep, fmt.Errorf("gc: pinned manifest: %w", err)
			}
			pins = append(pins, d)
		}
	}

	r.gcMu.Lock()
	defer r.gcMu.Unlock()
	start := r.now()

	roots, err := r.store.allManifests()
	if err != nil {
		return rep, fmt.Errorf("gc: list manifests: %w", err)
	}
	for _, d := range pins {
		if _, err := r.store.statBlob(d); err == nil {
			rep.Pinned++
			roots = append(roots, d)
		}
	}
	marked, manifests, err := r.mark(ctx, roots)
	if err != nil {
		return rep, err
	}
	rep.Manifests = manifests

	if err := r.sweepBlobs(ctx, marked, start.Add(-grace), o.DryRun, &rep); err != nil {
		return rep, err
	}
	if err := r.sweepLinks(ctx, o.DryRun, &rep); err != nil {
		return rep, err
	}
	if !o.DryRun {
		n, err := r.purgeIdleUploads(start.Add(-uploadAge))
		rep.UploadsRemoved = n
		if err != nil {
			return rep, fmt.Errorf("gc: %w", err)
		}
	}
	r.seenMu.Lock()
	for d, t := range r.seen {
		if t.Before(start.Add(-grace)) {
			delete(r.seen, d)
		}
	}
	r.seenMu.Unlock()
	r.logger.InfoContext(ctx, "registry garbage collection", "manifests", rep.Manifests, "pinned", rep.Pinned,
		"kept", rep.BlobsKept, "young", rep.BlobsYoung, "removed", rep.BlobsRemoved, "bytes", rep.BytesRemoved,
		"links", rep.LinksRemoved, "uploads", rep.UploadsRemoved, "dryRun", o.DryRun, "took", r.now().Sub(start))
	return rep, nil
}

// maxSeen bounds the seen map between collections: past it, entries older
// than DefaultGCGrace are dropped (GC then relies on the blob's mtime).
const maxSeen = 1 << 16

// markSeen records that a client was just told blob d exists.
func (r *Registry) markSeen(d digest.Digest) {
	now := r.now()
	r.seenMu.Lock()
	if len(r.seen) >= maxSeen {
		for k, t := range r.seen {
			if now.Sub(t) > DefaultGCGrace {
				delete(r.seen, k)
			}
		}
	}
	r.seen[d] = now
	r.seenMu.Unlock()
}

func (r *Registry) lastSeen(d digest.Digest) time.Time {
	r.seenMu.Lock()
	defer r.seenMu.Unlock()
	return r.seen[d]
}

// mark returns the set of blobs the roots reach, and how many of them are
// manifests. A root or child whose content is missing or unparsable marks
// nothing further.
func (r *Registry) mark(ctx context.Context, roots []digest.Digest) (map[digest.Digest]bool, int, error) {
	marked := map[digest.Digest]bool{}
	manifests := 0
	queue := roots
	for len(queue) > 0 {
		if err := ctx.Err(); err != nil {
			return nil, 0, err
		}
		d := queue[0]
		queue = queue[1:]
		if marked[d] {
			continue
		}
		marked[d] = true
		b, err := r.store.readBlob(d)
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return nil, 0, fmt.Errorf("gc: read manifest %s: %w", d, err)
		}
		manifests++
		var mj manifestJSON
		if err := json.Unmarshal(b, &mj); err != nil {
			r.logger.WarnContext(ctx, "gc: unparsable manifest", "digest", d, "err", err)
			continue
		}
		if mj.Config != nil {
			markDigest(marked, mj.Config.Digest)
		}
		for _, l := range mj.Layers {
			markDigest(marked, l.Digest)
		}
		for _, c := range mj.Manifests {
			if cd, err := parseDigest(string(c.Digest)); err == nil && !marked[cd] {
				queue = append(queue, cd)
			}
		}
	}
	return marked, manifests, nil
}

func markDigest(marked map[digest.Digest]bool, d digest.Digest) {
	if pd, err := parseDigest(string(d)); err == nil {
		marked[pd] = true
	}
}

// sweepBlobs removes every stored blob that is not marked and was neither
// written nor seen after cutoff.
func (r *Registry) sweepBlobs(ctx context.Context, marked map[digest.Digest]bool, cutoff time.Time, dry bool, rep *GCReport) error {
	root := filepath.Join(r.store.root, "blobs")
	return filepath.WalkDir(root, func(p string, e fs.DirEntry, err error) error {
		if err != nil {
			return fmt.Errorf("gc: %w", err)
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		if e.IsDir() || strings.HasPrefix(e.Name(), ".") {
			return nil
		}
		alg := filepath.Base(filepath.Dir(filepath.Dir(p)))
		d, err := parseDigest(alg + ":" + e.Name())
		if err != nil || r.store.blobPath(d) != p {
			return nil // not a blob of the layout
		}
		if marked[d] {
			rep.BlobsKept++
			return nil
		}
		unlock := r.store.blobLocks.lock(d.String())
		defer unlock()
		fi, err := os.Stat(p)
		if errors.Is(err, fs.ErrNotExist) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("gc: %w", err)
		}
		if fi.ModTime().After(cutoff) || r.lastSeen(d).After(cutoff) {
			rep.BlobsYoung++
			return nil
		}
		if !dry {
			if _, err := removeFile(p); err != nil {
				return fmt.Errorf("gc: remove blob %s: %w", d, err)
			}
		}
		rep.BlobsRemoved++
		rep.BytesRemoved += fi.Size()
		return nil
	})
}

// sweepLinks removes repository links (pushed or mounted blobs) to blobs
// no longer stored. A dry run removed no blob, so it counts the links that
// dangle already.
func (r *Registry) sweepLinks(ctx context.Context, dry bool, rep *GCReport) error {
	repos, err := r.store.repositories()
	if err != nil {
		return fmt.Errorf("gc: list repositories: %w", err)
	}
	for _, name := range repos {
		if err := ctx.Err(); err != nil {
			return err
		}
		links, err := r.store.linkedDigests(filepath.Join(r.store.repoDir(name), "_layers"))
		if err != nil {
			return fmt.Errorf("gc: links of %s: %w", name, err)
		}
		for _, d := range links {
			unlock := r.store.blobLocks.lock(d.String())
			_, err := r.store.statBlob(d)
			if errors.Is(err, fs.ErrNotExist) {
				rep.LinksRemoved++
				if !dry {
					_, err = r.store.unlinkBlob(name, d)
				} else {
					err = nil
				}
			}
			unlock()
			if err != nil {
				return fmt.Errorf("gc: link %s of %s: %w", d, name, err)
			}
		}
	}
	return nil
}

// purgeIdleUploads removes the upload sessions whose last chunk (the
// mtime of their state) is older than cutoff, and debris of sessions
// without state (an interrupted removal) created before cutoff, and
// returns how many it removed. A session being created has no state for a
// moment: its directory is new, so it stays.
func (r *Registry) purgeIdleUploads(cutoff time.Time) (int, error) {
	ents, err := os.ReadDir(r.store.uploadsDir())
	if err != nil {
		return 0, fmt.Errorf("purge uploads: %w", err)
	}
	n := 0
	for _, e := range ents {
		id := e.Name()
		if !validUploadID(id) {
			continue
		}
		unlock := r.uploadLocks.lock(id)
		fi, err := os.Stat(r.uploadStatePath(id))
		if errors.Is(err, fs.ErrNotExist) {
			fi, err = os.Stat(r.uploadDir(id))
		}
		idle := err == nil && fi.ModTime().Before(cutoff)
		if errors.Is(err, fs.ErrNotExist) {
			err = nil
		}
		if idle {
			if err = r.removeUpload(id); err == nil {
				n++
			}
		}
		unlock()
		if err != nil {
			return n, fmt.Errorf("purge upload %s: %w", id, err)
		}
	}
	return n, nil
}

// ManifestDigests returns the digests of every manifest some repository
// holds, deduplicated.
func (r *Registry) ManifestDigests(ctx context.Context) ([]string, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	ds, err := r.store.allManifests()
	if err != nil {
		return nil, fmt.Errorf("list manifests: %w", err)
	}
	out := make([]string, len(ds))
	for i, d := range ds {
		out[i] = d.String()
	}
	return out, nil
}

// allManifests returns the manifests of every repository, deduplicated.
func (s *store) allManifests() ([]digest.Digest, error) {
	repos, err := s.repositories()
	if err != nil {
		return nil, err
	}
	seen := map[digest.Digest]bool{}
	var out []digest.Digest
	for _, name := range repos {
		ds, err := s.linkedDigests(filepath.Join(s.repoDir(name), "_manifests"))
		if err != nil {
			return nil, fmt.Errorf("manifests of %s: %w", name, err)
		}
		for _, d := range ds {
			if !seen[d] {
				seen[d] = true
				out = append(out, d)
			}
		}
	}
	return out, nil
}

// linkedDigests returns the digests of a link directory laid out as
// <dir>/<alg>/<hex>; a missing directory has none.
func (s *store) linkedDigests(dir string) ([]digest.Digest, error) {
	algs, err := os.ReadDir(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var out []digest.Digest
	for _, alg := range algs {
		if !alg.IsDir() {
			continue
		}
		ents, err := os.ReadDir(filepath.Join(dir, alg.Name()))
		if err != nil {
			return nil, err
		}
		for _, e := range ents {
			if !e.Type().IsRegular() || strings.HasPrefix(e.Name(), ".") {
				continue
			}
			if d, err := parseDigest(alg.Name() + ":" + e.Name()); err == nil {
				out = append(out, d)
			}
		}
	}
	return out, nil
}
