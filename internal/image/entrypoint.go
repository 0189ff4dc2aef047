package image

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strings"
	"syscall"

	"github.com/kappa-run/kappa/internal/sandbox"
)

// The errors a bad command or working directory wraps; they are the
// sandbox's, so callers check one set whichever found the problem.
var (
	ErrInvalidEntrypoint = sandbox.ErrInvalidEntrypoint
	ErrInvalidWorkingDir = sandbox.ErrInvalidWorkingDir
)

// The user and group functions run as (sandbox/oci); files they execute
// must be executable by them.
const (
	functionUID = 993
	functionGID = 990
)

// defaultPath is the PATH used when the environment has none.
const defaultPath = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

// maxSymlinkHops is how many symbolic links one resolution may follow
// (Linux's limit).
const maxSymlinkHops = 40

// ResolveEntrypoint checks that argv0 (the first word of the command a
// function will run, after ENTRYPOINT, CMD and ImageConfig overrides are
// combined) names a regular file of the image that the function user
// (uid 993, gid 990) may execute, and returns its absolute path in the
// image. A name without "/"
// is searched in the PATH of env (nil means the image's Env) as exec does;
// a relative name with "/" is taken from workingDir ("" means "/").
// Symbolic links are followed inside the image only: an absolute target
// starts again from the image's root. The check reads the layer store, not
// a mount, and needs no network. Errors wrap ErrInvalidEntrypoint, or
// ErrNotFound when the image was not pulled.
func (s *Store) ResolveEntrypoint(digest, argv0, workingDir string, env []string) (string, error) {
	img, err := s.Lookup(digest)
	if err != nil {
		return "", err
	}
	view, err := s.view(img)
	if err != nil {
		return "", err
	}
	if argv0 == "" {
		return "", fmt.Errorf("%w: the command is empty", ErrInvalidEntrypoint)
	}
	if workingDir == "" {
		workingDir = "/"
	}
	if strings.Contains(argv0, "/") {
		p := argv0
		if !path.IsAbs(p) {
			p = path.Join(workingDir, p)
		}
		if err := view.checkExecutable(p); err != nil {
			return "", fmt.Errorf("%w: %s: %v", ErrInvalidEntrypoint, argv0, err)
		}
		return path.Clean(p), nil
	}
	if env == nil {
		env = img.Config.Env
	}
	search := defaultPath
	for _, kv := range env {
		if v, ok := strings.CutPrefix(kv, "PATH="); ok {
			search = v // the last one wins, as in os/exec
		}
	}
	var firstErr error
	for dir := range strings.SplitSeq(search, ":") {
		if dir == "" {
			dir = "."
		}
		p := path.Join(dir, argv0)
		if !path.IsAbs(p) {
			p = path.Join(workingDir, p)
		}
		err := view.checkExecutable(p)
		if err == nil {
			return p, nil
		}
		if firstErr == nil && !errors.Is(err, fs.ErrNotExist) {
			firstErr = fmt.Errorf("%s: %v", p, err)
		}
	}
	if firstErr != nil {
		return "", fmt.Errorf("%w: %s: %v", ErrInvalidEntrypoint, argv0, firstErr)
	}
	return "", fmt.Errorf("%w: %s: executable file not found in $PATH", ErrInvalidEntrypoint, argv0)
}

// ValidateWorkingDir checks that dir is an absolute path naming a
// directory of the image that the function user may enter ("" means the
// default, "/", and is valid). Errors wrap ErrInvalidWorkingDir, or
// ErrNotFound when the image was not pulled.
func (s *Store) ValidateWorkingDir(digest, dir string) error {
	img, err := s.Lookup(digest)
	if err != nil {
		return err
	}
	if dir == "" {
		return nil
	}
	if !path.IsAbs(dir) {
		return fmt.Errorf("%w: %s: not an absolute path", ErrInvalidWorkingDir, dir)
	}
	view, err := s.view(img)
	if err != nil {
		return err
	}
	e, err := view.resolve(dir, true)
	if err != nil {
		return fmt.Errorf("%w: %s: %v", ErrInvalidWorkingDir, dir, err)
	}
	if !e.info.IsDir() {
		return fmt.Errorf("%w: %s: not a directory", ErrInvalidWorkingDir, dir)
	}
	if !mayAccess(e.info, 0o1) {
		return fmt.Errorf("%w: %s: permission denied", ErrInvalidWorkingDir, dir)
	}
	return nil
}

// view returns the merged view of img's root filesystem, skeleton included.
func (s *Store) view(img *Image) (*mergedView, error) {
	layers, err := s.layerDirs(img)
	if err != nil {
		return nil, err
	}
	skel, err := s.ensureSkeleton(img, layers)
	if err != nil {
		return nil, fmt.Errorf("skeleton layer: %w", err)
	}
	return &mergedView{layers: append([]string{skel}, layers...), checkSearch: true}, nil
}

// mergedView resolves paths in the union of layer directories the way
// overlayfs shows them, without mounting: the top layer wins, a whiteout
// hides lower layers' entries, an opaque directory hides lower layers'
// directories.
type mergedView struct {
	layers []string // top first
	// checkSearch requires the function user to be allowed to search every
	// directory a resolution passes.
	checkSearch bool
}

// viewEntry is a resolved entry: its host path and the Lstat of the layer
// copy that shows.
type viewEntry struct {
	real string
	info fs.FileInfo
	dirs []string // for a directory: its copies in the layers, top first
}

func (v *mergedView) root() (viewEntry, error) {
	fi, err := os.Lstat(v.layers[0])
	if err != nil {
		return viewEntry{}, err
	}
	return viewEntry{real: v.layers[0], info: fi, dirs: v.layers}, nil
}

// child looks name up in directory d.
func (v *mergedView) child(d viewEntry, name string) (viewEntry, error) {
	var e viewEntry
	for _, dir := range d.dirs {
		p := filepath.Join(dir, name)
		fi, err := os.Lstat(p)
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return viewEntry{}, err
		}
		if isWhiteout(fi) {
			break
		}
		if !fi.IsDir() {
			if e.info == nil {
				return viewEntry{real: p, info: fi}, nil
			}
			break // a directory above hides it
		}
		if e.info == nil {
			e = viewEntry{real: p, info: fi}
		}
		e.dirs = append(e.dirs, p)
		if isOpaque(p) {
			break
		}
	}
	if e.info == nil {
		return viewEntry{}, fs.ErrNotExist
	}
	return e, nil
}

// resolve looks up the absolute image path p, following symbolic links in
// intermediate components and, if followLast, in the last one.
func (v *mergedView) resolve(p string, followLast bool) (viewEntry, error) {
	root, err := v.root()
	if err != nil {
		return viewEntry{}, err
	}
	stack := []viewEntry{root}
	comps := strings.Split(p, "/")
	hops := 0
	for len(comps) > 0 {
		c := comps[0]
		comps = comps[1:]
		switch c {
		case "", ".":
			continue
		case "..":
			if len(stack) > 1 {
				stack = stack[:len(stack)-1]
			}
			continue
		}
		cur := stack[len(stack)-1]
		if v.checkSearch && !mayAccess(cur.info, 0o1) {
			return viewEntry{}, fs.ErrPermission
		}
		e, err := v.child(cur, c)
		if err != nil {
			return viewEntry{}, err
		}
		last := !hasMore(comps)
		if e.info.Mode()&fs.ModeSymlink != 0 && (!last || followLast) {
			if hops++; hops > maxSymlinkHops {
				return viewEntry{}, syscall.ELOOP
			}
			target, err := os.Readlink(e.real)
			if err != nil {
				return viewEntry{}, err
			}
			if strings.HasPrefix(target, "/") {
				stack = stack[:1]
			}
			comps = append(strings.Split(target, "/"), comps...)
			continue
		}
		if e.info.IsDir() {
			stack = append(stack, e)
			continue
		}
		if !last {
			return viewEntry{}, syscall.ENOTDIR
		}
		return e, nil
	}
	return stack[len(stack)-1], nil
}

// hasMore reports whether comps names anything beyond "" and ".".
func hasMore(comps []string) bool {
	for _, c := range comps {
		if c != "" && c != "." {
			return true
		}
	}
	return false
}

// checkExecutable checks that p resolves to a regular file the function
// user may execute.
func (v *mergedView) checkExecutable(p string) error {
	e, err := v.resolve(p, true)
	if err != nil {
		return err
	}
	if !e.info.Mode().IsRegular() {
		return errors.New("not a regular file")
	}
	if !mayAccess(e.info, 0o1) {
		return errors.New("permission denied (not executable by the function user)")
	}
	return nil
}

// mayAccess reports whether the function user has the permission bit want
// (0o1 execute/search, 0o4 read) on fi, checking owner, group and other
// bits as the kernel does.
func mayAccess(fi fs.FileInfo, want fs.FileMode) bool {
	m := fi.Mode().Perm()
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		switch {
		case st.Uid == functionUID:
			return m&(want<<6) != 0
		case st.Gid == functionGID:
			return m&(want<<3) != 0
		}
	}
	return m&want != 0
}
