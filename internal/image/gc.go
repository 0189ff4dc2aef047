package image

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// GCOptions configure a layer-store garbage collection.
type GCOptions struct {
	// Keep reports whether the image with manifest digest ("sha256:…")
	// is still needed: a function version runs it, or the embedded
	// registry holds it. It is called with the store locked and must not
	// call back into the Store. Nil keeps nothing.
	Keep func(digest string) bool
	// Grace keeps image records written less than Grace ago although Keep
	// says no: an image pulled for a function that is not Active yet. 0
	// means DefaultGCGrace; a negative value keeps none.
	Grace time.Duration
	// DryRun reports what would be removed and removes nothing.
	DryRun bool
	// Now is the clock; nil means time.Now.
	Now func() time.Time
}

// DefaultGCGrace is GCOptions.Grace by default.
const DefaultGCGrace = time.Hour

// GCReport says what a layer-store garbage collection found and did.
type GCReport struct {
	ImagesKept    int `json:"imagesKept"`
	ImagesRemoved int `json:"imagesRemoved"`
	// ImagesMounted counts images Keep did not want but that are mounted.
	ImagesMounted int `json:"imagesMounted"`
	LayersKept    int `json:"layersKept"`
	LayersRemoved int `json:"layersRemoved"`
	// BytesRemoved is the unpacked size of the layers removed.
	BytesRemoved int64 `json:"bytesRemoved"`
	DryRun       bool  `json:"dryRun"`
}

// GC removes the image records Keep does not want, unless they are
// mounted or younger than the grace period, then every unpacked layer no
// remaining image uses, and the skeletons of removed images.
//
// It never removes what is in use: pulls wait while it decides and moves
// what it removes out of view (so no pull can find a layer GC is about to
// remove, or record an image whose layer GC just removed), mounts are
// checked under the lock RootFS takes, and the slow part, deleting the
// files, happens after both are released.
func (s *Store) GC(ctx context.Context, o GCOptions) (GCReport, error) {
	rep := GCReport{DryRun: o.DryRun}
	if o.Now == nil {
		o.Now = time.Now
	}
	if err := ctx.Err(); err != nil {
		return rep, err
	}
	trash, err := os.MkdirTemp(s.tmpDir(), "gc-")
	if err != nil {
		return rep, fmt.Errorf("layer gc: %w", err)
	}
	defer os.RemoveAll(trash)

	err = s.collect(ctx, o, trash, &rep)
	if err != nil {
		return rep, fmt.Errorf("layer gc: %w", err)
	}
	// The slow part, outside every lock.
	if err := os.RemoveAll(trash); err != nil {
		return rep, fmt.Errorf("layer gc: remove layers: %w", err)
	}
	s.log.Info("layer store garbage collection", "imagesKept", rep.ImagesKept, "imagesRemoved", rep.ImagesRemoved,
		"mounted", rep.ImagesMounted, "layersKept", rep.LayersKept, "layersRemoved", rep.LayersRemoved,
		"bytes", rep.BytesRemoved, "dryRun", o.DryRun)
	return rep, nil
}

// collect decides and moves into trash, with pulls and mounts held off.
func (s *Store) collect(ctx context.Context, o GCOptions, trash string, rep *GCReport) error {
	s.gcMu.Lock()
	defer s.gcMu.Unlock()
	s.mu.Lock()
	defer s.mu.Unlock()

	grace := o.Grace
	switch {
	case grace == 0:
		grace = DefaultGCGrace
	case grace < 0:
		grace = 0
	}
	cutoff := o.Now().Add(-grace)
	recDir := filepath.Join(s.dir, "images", "sha256")
	ents, err := os.ReadDir(recDir)
	if err != nil {
		return err
	}
	used := map[string]bool{} // layer hex
	var removed []string      // manifest hex
	for _, e := range ents {
		if err := ctx.Err(); err != nil {
			return err
		}
		hex, ok := strings.CutSuffix(e.Name(), ".json")
		if !ok || !e.Type().IsRegular() {
			continue
		}
		if _, valid := digestHex("sha256:" + hex); !valid {
			continue
		}
		img, err := s.Lookup("sha256:" + hex)
		if err != nil {
			// A record that does not parse holds nothing worth keeping.
			s.log.Warn("layer gc: unreadable image record", "digest", hex, "err", err)
			if !o.DryRun {
				if err := os.Remove(filepath.Join(recDir, e.Name())); err != nil {
					return err
				}
			}
			continue
		}
		keep := o.Keep != nil && o.Keep(img.Digest)
		if !keep && s.mounts[hex] != nil {
			rep.ImagesMounted++
			keep = true
		}
		if !keep {
			if fi, err := e.Info(); err == nil && fi.ModTime().After(cutoff) {
				keep = true
			}
		}
		if keep {
			rep.ImagesKept++
			for _, d := range img.DiffIDs {
				if h, ok := digestHex(d); ok {
					used[h] = true
				}
			}
			continue
		}
		rep.ImagesRemoved++
		removed = append(removed, hex)
	}
	if !o.DryRun {
		for _, hex := range removed {
			if err := os.Remove(s.imageFile(hex)); err != nil && !errors.Is(err, fs.ErrNotExist) {
				return err
			}
			if err := moveAside(s.skelDir(hex), trash); err != nil {
				return err
			}
		}
		if err := syncDir(recDir); err != nil {
			return err
		}
	}

	layerRoot := filepath.Join(s.dir, "layers", "sha256")
	layers, err := os.ReadDir(layerRoot)
	if err != nil {
		return err
	}
	for _, e := range layers {
		hex := e.Name()
		if _, valid := digestHex("sha256:" + hex); !valid || !e.IsDir() {
			continue
		}
		if used[hex] {
			rep.LayersKept++
			continue
		}
		rep.LayersRemoved++
		if m, ok := s.readLayer(hex); ok {
			rep.BytesRemoved += m.Size
		}
		if !o.DryRun {
			if err := moveAside(s.layerDir(hex), trash); err != nil {
				return err
			}
		}
	}
	if !o.DryRun {
		return syncDir(layerRoot)
	}
	return nil
}

// moveAside renames path into dir under a unique name; a missing path is
// fine.
func moveAside(path, dir string) error {
	dst, err := os.MkdirTemp(dir, "x-")
	if err != nil {
		return err
	}
	err = os.Rename(path, filepath.Join(dst, "x"))
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	return err
}
