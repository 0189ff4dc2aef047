package image

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"syscall"
)

// skeletonDirs are the mount points the sandbox needs at the root of every
// image. The skeleton layer adds those an image lacks, empty; it never
// replaces anything the image has.
var skeletonDirs = []struct {
	name string
	mode fs.FileMode
}{
	{"proc", 0o555},
	{"dev", 0o755},
	{"sys", 0o555},
	{"tmp", 0o777 | fs.ModeSticky},
}

// RootFS returns a directory holding a read-only overlay of the image's
// layers under a small skeleton layer that adds the directories proc, dev,
// sys and tmp when the image lacks them. The image must have been pulled.
// The overlay is mounted once per digest and reference-counted: each call
// returns the same path and takes a reference that Release drops. It needs
// root on Linux; it fails after Close.
func (s *Store) RootFS(ctx context.Context, digest string) (string, error) {
	if err := ctx.Err(); err != nil {
		return "", err
	}
	img, err := s.Lookup(digest)
	if err != nil {
		return "", err
	}
	hex, _ := digestHex(digest)
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return "", errors.New("rootfs: image store closed")
	}
	if m := s.mounts[hex]; m != nil {
		m.refs++
		return m.path, nil
	}
	if os.Geteuid() != 0 {
		return "", fmt.Errorf("rootfs %s: mounting the overlay needs root", digest)
	}
	lowers, err := s.lowerDirs(img)
	if err != nil {
		return "", fmt.Errorf("rootfs %s: %w", digest, err)
	}
	target := s.rootfsDir(hex)
	if isMountPoint(target) { // left by a previous process
		if err := unmountOverlay(target); err != nil {
			return "", fmt.Errorf("rootfs %s: unmount stale mount: %w", digest, err)
		}
	}
	if err := os.Mkdir(target, 0o755); err != nil && !errors.Is(err, fs.ErrExist) {
		return "", fmt.Errorf("rootfs %s: %w", digest, err)
	}
	if err := mountOverlay(target, lowers, s.legacyMount); err != nil {
		os.Remove(target)
		return "", fmt.Errorf("rootfs %s: %w", digest, err)
	}
	s.mounts[hex] = &mount{path: target, refs: 1}
	s.log.Debug("mounted rootfs", "digest", digest, "path", target, "layers", len(img.DiffIDs))
	return target, nil
}

// Release drops a reference RootFS took; the last one unmounts the root
// filesystem.
func (s *Store) Release(digest string) error {
	hex, ok := digestHex(digest)
	if !ok {
		return fmt.Errorf("%w: malformed digest %q", ErrNotFound, digest)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	m := s.mounts[hex]
	if m == nil {
		return fmt.Errorf("%w: rootfs of %s is not mounted", ErrNotFound, digest)
	}
	if m.refs--; m.refs > 0 {
		return nil
	}
	delete(s.mounts, hex)
	if err := unmountOverlay(m.path); err != nil {
		return fmt.Errorf("unmount %s: %w", m.path, err)
	}
	os.Remove(m.path)
	s.log.Debug("unmounted rootfs", "digest", digest)
	return nil
}

// lowerDirs returns the overlay lower directories of img, top first: its
// skeleton, then its layers from the last to the base.
func (s *Store) lowerDirs(img *Image) ([]string, error) {
	layers, err := s.layerDirs(img)
	if err != nil {
		return nil, err
	}
	skel, err := s.ensureSkeleton(img, layers)
	if err != nil {
		return nil, fmt.Errorf("skeleton layer: %w", err)
	}
	lowers := append([]string{skel}, layers...)
	if len(lowers) < 2 { // overlayfs wants two lowers when it has no upper
		empty := filepath.Join(s.dir, "skel", "empty")
		if err := os.Mkdir(empty, 0o755); err != nil && !errors.Is(err, fs.ErrExist) {
			return nil, err
		}
		lowers = append(lowers, empty)
	}
	return lowers, nil
}

// layerDirs returns the unpacked layers of img, top first.
func (s *Store) layerDirs(img *Image) ([]string, error) {
	dirs := make([]string, 0, len(img.DiffIDs))
	for i := len(img.DiffIDs) - 1; i >= 0; i-- {
		h, ok := digestHex(img.DiffIDs[i])
		if !ok {
			return nil, fmt.Errorf("%w: bad diffID %q in record", ErrInvalid, img.DiffIDs[i])
		}
		if _, ok := s.readLayer(h); !ok {
			return nil, fmt.Errorf("%w: layer %s is missing from the store; pull the image again", ErrNotFound, img.DiffIDs[i])
		}
		dirs = append(dirs, s.layerFS(h))
	}
	return dirs, nil
}

// ensureSkeleton returns the skeleton layer of img, creating it if needed.
// Its root takes the mode and owner of the image's root, since the top
// layer's root is what the overlay shows.
func (s *Store) ensureSkeleton(img *Image, layers []string) (string, error) {
	hex, _ := digestHex(img.Digest)
	dir := s.skelDir(hex)
	if fi, err := os.Lstat(dir); err == nil && fi.IsDir() {
		return dir, nil
	}
	tmp, err := os.MkdirTemp(s.tmpDir(), "skel-")
	if err != nil {
		return "", err
	}
	defer os.RemoveAll(tmp)
	view := mergedView{layers: layers}
	for _, d := range skeletonDirs {
		if _, err := view.resolve("/"+d.name, false); err == nil || !errors.Is(err, fs.ErrNotExist) {
			continue // the image has it (as whatever it is)
		}
		p := filepath.Join(tmp, d.name)
		if err := os.Mkdir(p, 0o755); err != nil {
			return "", err
		}
		if err := os.Chmod(p, d.mode); err != nil {
			return "", err
		}
	}
	mode := fs.FileMode(0o755)
	uid, gid := 0, 0
	if len(layers) > 0 {
		if fi, err := os.Lstat(layers[0]); err == nil {
			mode = fi.Mode() & (fs.ModePerm | fs.ModeSticky)
			if st, ok := fi.Sys().(*syscall.Stat_t); ok {
				uid, gid = int(st.Uid), int(st.Gid)
			}
		}
	}
	if os.Geteuid() == 0 {
		if err := os.Lchown(tmp, uid, gid); err != nil {
			return "", err
		}
	}
	if err := os.Chmod(tmp, mode); err != nil {
		return "", err
	}
	if err := os.Rename(tmp, dir); err != nil {
		if fi, serr := os.Lstat(dir); serr == nil && fi.IsDir() {
			return dir, nil
		}
		return "", err
	}
	return dir, nil
}

// unmountStale unmounts root filesystems a previous process left mounted.
func (s *Store) unmountStale() {
	entries, err := os.ReadDir(filepath.Join(s.dir, "rootfs"))
	if err != nil {
		return
	}
	for _, e := range entries {
		p := filepath.Join(s.dir, "rootfs", e.Name())
		if isMountPoint(p) {
			if err := unmountOverlay(p); err != nil {
				s.log.Warn("unmount stale rootfs", "path", p, "err", err)
				continue
			}
			s.log.Info("unmounted stale rootfs", "path", p)
		}
		os.Remove(p)
	}
}
