package image

import (
	"archive/tar"
	"errors"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"

	"golang.org/x/sys/unix"
)

const opaqueXattr = "trusted.overlay.opaque"

// layerWriter creates the entries of one layer under a root directory. Every
// path is walked one component at a time from the root's descriptor with
// O_NOFOLLOW, so no symbolic link, whoever made it, is ever followed.
type layerWriter struct {
	root      int
	keepOwner bool
	st        *Stats
	// The most recently walked parent directory, kept open because tar
	// entries come grouped by directory. Invalidated by every removal.
	cachePath string
	cacheFD   int
	// Metadata of directory entries, applied by finish once nothing more
	// is created inside them (creating entries would move their mtime, and
	// a read-only mode would stop an unprivileged caller).
	dirs map[string]*tar.Header
	// dirBytes is what dirs holds, roughly (see maxDirBytes).
	dirBytes int64
}

// maxDirBytes bounds the memory a layer's directory metadata takes until
// the layer ends: names are up to 4 KB, so a layer of a million deep,
// empty directories (a few MB compressed) would otherwise hold gigabytes.
// Real layers hold a few MB of it.
var maxDirBytes int64 = 256 << 20 // a variable for tests

// dirEntryBytes is what one kept directory costs besides its name.
const dirEntryBytes = 256

func newLayerWriter(dir string, keepOwner bool, st *Stats) (*layerWriter, error) {
	fd, err := unix.Open(dir, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, &os.PathError{Op: "open", Path: dir, Err: err}
	}
	return &layerWriter{root: fd, keepOwner: keepOwner, st: st, cacheFD: -1, dirs: map[string]*tar.Header{}}, nil
}

func (w *layerWriter) close() {
	w.dropCache()
	if w.root >= 0 {
		unix.Close(w.root)
		w.root = -1
	}
}

func (w *layerWriter) dropCache() {
	if w.cacheFD >= 0 {
		unix.Close(w.cacheFD)
	}
	w.cachePath, w.cacheFD = "", -1
}

// parent returns a descriptor of directory p (relative to the root),
// creating missing directories when create is set. The descriptor is
// borrowed: it stays valid until the next call or removal.
func (w *layerWriter) parent(p string, create bool) (int, error) {
	if p == "" {
		return w.root, nil
	}
	if w.cacheFD >= 0 && w.cachePath == p {
		return w.cacheFD, nil
	}
	fd, err := w.walk(p, create)
	if err != nil {
		return -1, err
	}
	w.dropCache()
	w.cachePath, w.cacheFD = p, fd
	return fd, nil
}

// walk opens directory p (relative to the root) without following any
// symbolic link; the caller owns the returned descriptor.
func (w *layerWriter) walk(p string, create bool) (int, error) {
	if p == "" {
		return unix.FcntlInt(uintptr(w.root), unix.F_DUPFD_CLOEXEC, 0)
	}
	cur := w.root
	for c := range strings.SplitSeq(p, "/") {
		fd, err := openDirAt(cur, c)
		if err == unix.ENOENT && create {
			err = w.mkdirImplicit(cur, c)
			if err == nil {
				fd, err = openDirAt(cur, c)
			}
		}
		if err == unix.ENOTDIR && create && isWhiteoutAt(cur, c) {
			// ".wh.d" then "d/f": d is new in this layer and hides the
			// lower layers' d, as an opaque directory does.
			err = w.replaceWhiteout(cur, c)
			if err == nil {
				fd, err = openDirAt(cur, c)
			}
		}
		if cur != w.root {
			unix.Close(cur)
		}
		switch {
		case err == unix.ENOTDIR || err == unix.ELOOP:
			return -1, fmt.Errorf("%w: path runs through a symbolic link or non-directory", ErrInvalid)
		case err == unix.ENOENT:
			return -1, fmt.Errorf("%w: %s does not exist in the layer", ErrInvalid, safeQuote(p))
		case err != nil:
			return -1, fmt.Errorf("open %s: %w", safeQuote(p), err)
		}
		cur = fd
	}
	return cur, nil
}

func openDirAt(dirfd int, name string) (int, error) {
	return unix.Openat(dirfd, name, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
}

// mkdirImplicit creates a parent directory the tar did not list, as
// root:root 0755 whatever the umask.
func (w *layerWriter) mkdirImplicit(dirfd int, name string) error {
	if err := unix.Mkdirat(dirfd, name, 0o755); err != nil {
		return err
	}
	return unix.Fchmodat(dirfd, name, 0o755, 0)
}

// isWhiteoutAt reports whether name in dirfd is a whiteout this writer made.
func isWhiteoutAt(dirfd int, name string) bool {
	var st unix.Stat_t
	return unix.Fstatat(dirfd, name, &st, unix.AT_SYMLINK_NOFOLLOW) == nil &&
		st.Mode&unix.S_IFMT == unix.S_IFCHR && st.Rdev == 0
}

// replaceWhiteout turns the whiteout name in dirfd into an empty opaque
// directory.
func (w *layerWriter) replaceWhiteout(dirfd int, name string) error {
	if err := unix.Unlinkat(dirfd, name, 0); err != nil {
		return err
	}
	if err := w.mkdirImplicit(dirfd, name); err != nil {
		return err
	}
	return w.markOpaque(dirfd, name)
}

func (w *layerWriter) markOpaque(dirfd int, name string) error {
	fd, err := openDirAt(dirfd, name)
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	return w.setOpaque(fd)
}

func (w *layerWriter) setOpaque(fd int) error {
	if err := unix.Fsetxattr(fd, opaqueXattr, []byte("y"), 0); err != nil {
		return fmt.Errorf("mark opaque directory (needs root): %w", err)
	}
	w.st.Opaques++
	return nil
}

func (w *layerWriter) entry(hdr *tar.Header, r io.Reader) error {
	name, err := cleanName(hdr.Name)
	if err != nil {
		return err
	}
	parent, base := splitName(name)
	for c := range strings.SplitSeq(parent, "/") {
		if strings.HasPrefix(c, whiteoutPrefix) {
			// Inside AUFS metadata (.wh..wh.plnk) or a whited-out name:
			// nothing that may be created.
			w.st.Skipped++
			return nil
		}
	}
	if base == whiteoutOpaque {
		return w.opaque(parent)
	}
	if strings.HasPrefix(base, whiteoutMeta) {
		w.st.Skipped++
		return nil
	}
	if strings.HasPrefix(base, whiteoutPrefix) {
		return w.whiteout(parent, strings.TrimPrefix(base, whiteoutPrefix))
	}
	if name == "" {
		if hdr.Typeflag == tar.TypeDir {
			w.dirs[""] = dirHeader(hdr)
			w.st.Dirs++
		} else {
			w.st.Skipped++
		}
		return nil
	}

	switch hdr.Typeflag {
	case tar.TypeDir:
		return w.dir(parent, base, name, hdr)
	case tar.TypeReg, tar.TypeRegA, tar.TypeGNUSparse:
		return w.file(parent, base, name, hdr, r)
	case tar.TypeSymlink:
		return w.symlink(parent, base, name, hdr)
	case tar.TypeLink:
		return w.hardlink(parent, base, name, hdr)
	case tar.TypeFifo:
		return w.fifo(parent, base, name, hdr)
	default:
		// Character and block devices (the sandbox gets its own /dev),
		// and types this writer does not know.
		w.st.Skipped++
		return nil
	}
}

// clear removes whatever the layer already holds at base in dirfd, unless it
// is a directory and keepDir is set; it reports whether a directory was
// kept.
func (w *layerWriter) clear(dirfd int, base, name string, keepDir bool) (bool, error) {
	var st unix.Stat_t
	err := unix.Fstatat(dirfd, base, &st, unix.AT_SYMLINK_NOFOLLOW)
	if err == unix.ENOENT {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	isDir := st.Mode&unix.S_IFMT == unix.S_IFDIR
	if isDir && keepDir {
		return true, nil
	}
	// The borrowed parent descriptor stays valid (we only remove below
	// it), but a cached descendant would not.
	if dirfd != w.cacheFD {
		w.dropCache()
	}
	if isDir {
		for k := range w.dirs {
			if k == name || strings.HasPrefix(k, name+"/") {
				delete(w.dirs, k)
			}
		}
		return false, removeAllAt(dirfd, base)
	}
	return false, unix.Unlinkat(dirfd, base, 0)
}

// removeAllAt removes base in dirfd and, for a directory, all it holds,
// never following a symbolic link.
func removeAllAt(dirfd int, base string) error {
	err := unix.Unlinkat(dirfd, base, 0)
	if err == nil || err == unix.ENOENT {
		return nil
	}
	if err != unix.EISDIR && err != unix.EPERM {
		return err
	}
	fd, err := openDirAt(dirfd, base)
	if err != nil {
		return err
	}
	d := os.NewFile(uintptr(fd), base)
	for {
		names, rerr := d.Readdirnames(256)
		for _, n := range names {
			if err := removeAllAt(fd, n); err != nil {
				d.Close()
				return err
			}
		}
		if rerr == io.EOF || len(names) == 0 {
			break
		}
		if rerr != nil {
			d.Close()
			return rerr
		}
	}
	d.Close()
	return unix.Unlinkat(dirfd, base, unix.AT_REMOVEDIR)
}

func (w *layerWriter) dir(parent, base, name string, hdr *tar.Header) error {
	pfd, err := w.parent(parent, true)
	if err != nil {
		return err
	}
	whiteout := isWhiteoutAt(pfd, base)
	kept, err := w.clear(pfd, base, name, true)
	if err != nil {
		return err
	}
	if !kept {
		if err := unix.Mkdirat(pfd, base, 0o700); err != nil {
			return err
		}
	}
	if whiteout {
		// Whited out, then created again: hide the lower layers' copy.
		if err := w.markOpaque(pfd, base); err != nil {
			return err
		}
	}
	if _, seen := w.dirs[name]; !seen {
		if w.dirBytes += int64(len(name)) + dirEntryBytes; w.dirBytes > maxDirBytes {
			return fmt.Errorf("%w: the layer's directories take more than %d MiB of metadata", ErrInvalid, maxDirBytes>>20)
		}
	}
	w.dirs[name] = dirHeader(hdr)
	w.st.Dirs++
	return nil
}

func (w *layerWriter) file(parent, base, name string, hdr *tar.Header, r io.Reader) error {
	pfd, err := w.parent(parent, true)
	if err != nil {
		return err
	}
	if _, err := w.clear(pfd, base, name, false); err != nil {
		return err
	}
	fd, err := unix.Openat(pfd, base, unix.O_WRONLY|unix.O_CREAT|unix.O_EXCL|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0o600)
	if err != nil {
		return err
	}
	f := os.NewFile(uintptr(fd), base)
	defer f.Close()
	if err := copyContent(f, r, hdr.Size); err != nil {
		return err
	}
	if err := w.owner(func(uid, gid int) error { return f.Chown(uid, gid) }, hdr); err != nil {
		return err
	}
	if err := unix.Fchmod(fd, perm(hdr)); err != nil {
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	w.st.Files++
	return setTimes(pfd, base, hdr)
}

// copyContent copies exactly n bytes of an entry, telling read errors
// (the layer's) from write errors (the disk's).
func copyContent(f *os.File, r io.Reader, n int64) error {
	buf := make([]byte, 128<<10)
	for n > 0 {
		chunk := buf
		if int64(len(chunk)) > n {
			chunk = chunk[:n]
		}
		k, err := io.ReadFull(r, chunk)
		if k > 0 {
			if _, werr := f.Write(chunk[:k]); werr != nil {
				return werr
			}
			n -= int64(k)
		}
		if err != nil {
			if err == io.EOF {
				err = io.ErrUnexpectedEOF
			}
			return streamError{err}
		}
	}
	return nil
}

func (w *layerWriter) symlink(parent, base, name string, hdr *tar.Header) error {
	target := hdr.Linkname
	if target == "" || len(target) > maxNameLen || strings.IndexByte(target, 0) >= 0 {
		return fmt.Errorf("%w: bad symbolic link target", ErrInvalid)
	}
	pfd, err := w.parent(parent, true)
	if err != nil {
		return err
	}
	if _, err := w.clear(pfd, base, name, false); err != nil {
		return err
	}
	if err := unix.Symlinkat(target, pfd, base); err != nil {
		return err
	}
	if err := w.owner(func(uid, gid int) error {
		return unix.Fchownat(pfd, base, uid, gid, unix.AT_SYMLINK_NOFOLLOW)
	}, hdr); err != nil {
		return err
	}
	w.st.Symlinks++
	return setTimes(pfd, base, hdr)
}

func (w *layerWriter) hardlink(parent, base, name string, hdr *tar.Header) error {
	target, err := cleanName(hdr.Linkname)
	if err != nil {
		return err
	}
	if target == "" {
		return fmt.Errorf("%w: hard link to the layer root", ErrInvalid)
	}
	if target == name {
		return nil // a link to itself: the entry is already there
	}
	tparent, tbase := splitName(target)
	tfd, err := w.walk(tparent, false)
	if err != nil {
		return fmt.Errorf("hard link target: %w", err)
	}
	defer unix.Close(tfd)
	var st unix.Stat_t
	if err := unix.Fstatat(tfd, tbase, &st, unix.AT_SYMLINK_NOFOLLOW); err != nil {
		if err == unix.ENOENT {
			return fmt.Errorf("%w: hard link target %s is not in the layer", ErrInvalid, safeQuote(hdr.Linkname))
		}
		return err
	}
	switch st.Mode & unix.S_IFMT {
	case unix.S_IFREG, unix.S_IFLNK, unix.S_IFIFO:
	default:
		return fmt.Errorf("%w: hard link target %s is not a file", ErrInvalid, safeQuote(hdr.Linkname))
	}
	pfd, err := w.parent(parent, true)
	if err != nil {
		return err
	}
	if _, err := w.clear(pfd, base, name, false); err != nil {
		return err
	}
	// Flags 0: a symbolic link target is linked itself, never followed.
	if err := unix.Linkat(tfd, tbase, pfd, base, 0); err != nil {
		if err == unix.ENOENT {
			return fmt.Errorf("%w: hard link target %s was removed by this entry", ErrInvalid, safeQuote(hdr.Linkname))
		}
		return err
	}
	w.st.Hardlinks++
	return nil
}

func (w *layerWriter) fifo(parent, base, name string, hdr *tar.Header) error {
	pfd, err := w.parent(parent, true)
	if err != nil {
		return err
	}
	if _, err := w.clear(pfd, base, name, false); err != nil {
		return err
	}
	if err := unix.Mknodat(pfd, base, unix.S_IFIFO|0o600, 0); err != nil {
		return err
	}
	if err := w.owner(func(uid, gid int) error {
		return unix.Fchownat(pfd, base, uid, gid, unix.AT_SYMLINK_NOFOLLOW)
	}, hdr); err != nil {
		return err
	}
	if err := unix.Fchmodat(pfd, base, perm(hdr), 0); err != nil {
		return err
	}
	w.st.Fifos++
	return setTimes(pfd, base, hdr)
}

// whiteout hides name of the lower layers with a 0/0 character device. A
// name this layer itself holds stays: a whiteout only hides lower layers.
func (w *layerWriter) whiteout(parent, name string) error {
	if name == "" || name == "." || name == ".." {
		w.st.Skipped++
		return nil
	}
	pfd, err := w.parent(parent, true)
	if err != nil {
		return err
	}
	var st unix.Stat_t
	switch err := unix.Fstatat(pfd, name, &st, unix.AT_SYMLINK_NOFOLLOW); err {
	case nil:
		return nil
	case unix.ENOENT:
	default:
		return err
	}
	if err := unix.Mknodat(pfd, name, unix.S_IFCHR|0o000, 0); err != nil {
		return fmt.Errorf("create whiteout (needs root or Linux 5.8): %w", err)
	}
	w.st.Whiteouts++
	return nil
}

// opaque marks directory parent so that overlayfs hides what lower layers
// hold in it.
func (w *layerWriter) opaque(parent string) error {
	fd, err := w.walk(parent, true)
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	return w.setOpaque(fd)
}

// finish applies the metadata of directory entries, deepest first.
func (w *layerWriter) finish() error {
	names := make([]string, 0, len(w.dirs))
	for k := range w.dirs {
		names = append(names, k)
	}
	sort.Slice(names, func(i, j int) bool {
		di, dj := strings.Count(names[i], "/"), strings.Count(names[j], "/")
		if names[i] == "" || names[j] == "" {
			return names[j] == "" && names[i] != ""
		}
		if di != dj {
			return di > dj
		}
		return names[i] < names[j]
	})
	w.dropCache()
	for _, name := range names {
		if err := w.dirMeta(name, w.dirs[name]); err != nil {
			return fmt.Errorf("%s: %w", safeQuote(name), err)
		}
	}
	return nil
}

func (w *layerWriter) dirMeta(name string, hdr *tar.Header) error {
	var pfd, dfd int
	base := "."
	if name == "" {
		pfd = w.root
		dfd = w.root
	} else {
		var parent string
		parent, base = splitName(name)
		var err error
		if pfd, err = w.walk(parent, false); err != nil {
			if errors.Is(err, ErrInvalid) {
				return nil // replaced since; nothing to apply
			}
			return err
		}
		defer unix.Close(pfd)
		if dfd, err = openDirAt(pfd, base); err != nil {
			if err == unix.ENOENT || err == unix.ENOTDIR || err == unix.ELOOP {
				return nil
			}
			return err
		}
		defer unix.Close(dfd)
	}
	if err := w.owner(func(uid, gid int) error { return unix.Fchown(dfd, uid, gid) }, hdr); err != nil {
		return err
	}
	if err := unix.Fchmod(dfd, perm(hdr)); err != nil {
		return err
	}
	return setTimes(pfd, base, hdr)
}

// owner applies the tar's uid and gid when the writer keeps ownership. Ids
// outside what a file can carry become 0.
func (w *layerWriter) owner(chown func(uid, gid int) error, hdr *tar.Header) error {
	if !w.keepOwner {
		return nil
	}
	return chown(validID(hdr.Uid), validID(hdr.Gid))
}

func validID(id int) int {
	if id < 0 || int64(id) >= 1<<32-1 {
		return 0
	}
	return id
}

// dirHeader keeps what dirMeta applies of a directory's header once the
// layer ends: not its PAX records (up to 1 MiB each), names or the rest.
func dirHeader(hdr *tar.Header) *tar.Header {
	return &tar.Header{Typeflag: hdr.Typeflag, Mode: hdr.Mode, Uid: hdr.Uid, Gid: hdr.Gid,
		ModTime: hdr.ModTime, AccessTime: hdr.AccessTime}
}

// perm is the mode an entry gets: its permission and sticky bits, without
// setuid and setgid.
func perm(hdr *tar.Header) uint32 {
	return uint32(hdr.Mode) & 0o1777
}

func setTimes(dirfd int, base string, hdr *tar.Header) error {
	mt := hdr.ModTime
	at := hdr.AccessTime
	if at.IsZero() {
		at = mt
	}
	ts := []unix.Timespec{
		{Sec: at.Unix(), Nsec: int64(at.Nanosecond())},
		{Sec: mt.Unix(), Nsec: int64(mt.Nanosecond())},
	}
	err := unix.UtimesNanoAt(dirfd, base, ts, unix.AT_SYMLINK_NOFOLLOW)
	if err == unix.EINVAL || err == unix.EOVERFLOW {
		return nil // a time the filesystem cannot hold is not worth failing for
	}
	return err
}
