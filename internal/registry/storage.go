package registry

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// The on-disk layout under the registry directory:
//
//	layout.json                                   {"version":1}
//	lock                                          flock'd while a Registry is open
//	blobs/<alg>/<hex[:2]>/<hex>                   content, by digest (layers, configs, manifests)
//	uploads/<id>/state.json, uploads/<id>/data    upload sessions
//	repos/<name>/_layers/<alg>/<hex>              blob is part of repository <name>
//	repos/<name>/_manifests/<alg>/<hex>           manifest is part of <name>; JSON manifestLink
//	repos/<name>/_tags/<tag>                      the digest the tag points at
//	repos/<name>/_referrers/<alg>/<hex>/<alg>/<hex>  a referrer of a subject; JSON descriptor
//
// Metadata directories start with "_", which no component of a repository
// name may, so repository "a" and repository "a/_tags" can never collide.
// Every file is written whole to a temporary ".tmp-*" sibling, fsynced and
// renamed into place, so a crash never leaves a partial file under a real
// name; names starting with "." are never valid tags, hex digests or upload
// ids, so temporaries are never mistaken for data.

const (
	layoutVersion = 1
	dirPerm       = 0o750
	tmpPrefix     = ".tmp-"
)

// errDigestMismatch means content did not hash to the digest it was sent
// with.
var errDigestMismatch = errors.New("content does not match digest")

// store is the on-disk state of a registry. Its methods are safe for
// concurrent use: every mutation is a single atomic rename or remove; callers
// serialise read-modify-write sequences themselves.
type store struct {
	root string
	// blobLocks serialises, per digest, a blob's appearance (the rename of
	// an ingest, a mount, a client being told it exists) with its removal
	// by garbage collection.
	blobLocks keyedMutex
}

// manifestLink is what a repository records about one of its manifests.
type manifestLink struct {
	MediaType string `json:"mediaType"`
	// Subject is the manifest's subject digest, kept so that deleting the
	// manifest can drop it from the subject's referrers.
	Subject digest.Digest `json:"subject,omitempty"`
}

func digestPath(d digest.Digest) string {
	return filepath.Join(string(d.Algorithm()), d.Encoded())
}

func (s *store) blobPath(d digest.Digest) string {
	hex := d.Encoded()
	return filepath.Join(s.root, "blobs", string(d.Algorithm()), hex[:2], hex)
}

func (s *store) uploadsDir() string { return filepath.Join(s.root, "uploads") }

func (s *store) reposDir() string { return filepath.Join(s.root, "repos") }

// repoDir is the directory of repository name; name must be valid.
func (s *store) repoDir(name string) string {
	return filepath.Join(s.reposDir(), filepath.FromSlash(name))
}

func (s *store) layerLinkPath(name string, d digest.Digest) string {
	return filepath.Join(s.repoDir(name), "_layers", digestPath(d))
}

func (s *store) manifestLinkPath(name string, d digest.Digest) string {
	return filepath.Join(s.repoDir(name), "_manifests", digestPath(d))
}

func (s *store) tagPath(name, tag string) string {
	return filepath.Join(s.repoDir(name), "_tags", tag)
}

func (s *store) referrersDir(name string, subject digest.Digest) string {
	return filepath.Join(s.repoDir(name), "_referrers", digestPath(subject))
}

// init creates the layout if needed and checks its version.
func (s *store) init() error {
	for _, d := range []string{s.root, filepath.Join(s.root, "blobs"), s.uploadsDir(), s.reposDir()} {
		if err := os.MkdirAll(d, dirPerm); err != nil {
			return fmt.Errorf("create %s: %w", d, err)
		}
	}
	p := filepath.Join(s.root, "layout.json")
	var layout struct {
		Version int `json:"version"`
	}
	b, err := os.ReadFile(p)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return writeFileAtomic(p, []byte(fmt.Sprintf(`{"version":%d}`, layoutVersion)))
	case err != nil:
		return fmt.Errorf("read layout: %w", err)
	}
	if err := json.Unmarshal(b, &layout); err != nil {
		return fmt.Errorf("parse %s: %w", p, err)
	}
	if layout.Version != layoutVersion {
		return fmt.Errorf("registry layout version %d in %s, want %d", layout.Version, s.root, layoutVersion)
	}
	return nil
}

// sweepTemp removes temporaries a crash left in the blob directories. It must
// run while no request is being served.
func (s *store) sweepTemp() error {
	return filepath.WalkDir(filepath.Join(s.root, "blobs"), func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !d.IsDir() && strings.HasPrefix(d.Name(), tmpPrefix) {
			if err := os.Remove(p); err != nil && !errors.Is(err, fs.ErrNotExist) {
				return err
			}
		}
		return nil
	})
}

// statBlob returns the size of blob d, or an error wrapping fs.ErrNotExist.
func (s *store) statBlob(d digest.Digest) (int64, error) {
	fi, err := os.Stat(s.blobPath(d))
	if err != nil {
		return 0, err
	}
	return fi.Size(), nil
}

// openBlob opens blob d for reading and returns it with its size.
func (s *store) openBlob(d digest.Digest) (*os.File, int64, error) {
	f, err := os.Open(s.blobPath(d))
	if err != nil {
		return nil, 0, err
	}
	fi, err := f.Stat()
	if err != nil {
		_ = f.Close()
		return nil, 0, err
	}
	return f, fi.Size(), nil
}

// readBlob returns the whole content of blob d; for manifests only.
func (s *store) readBlob(d digest.Digest) ([]byte, error) {
	return os.ReadFile(s.blobPath(d))
}

// ingest streams r into the blob store under want. The content is written to
// a temporary file beside its final path, fsynced and hashed; only if it
// matches want is it renamed into place, so a failed or interrupted ingest
// leaves no visible blob. It returns the size, or errDigestMismatch, or the
// error of r or of the disk.
func (s *store) ingest(r io.Reader, want digest.Digest) (int64, error) {
	final := s.blobPath(want)
	dir := filepath.Dir(final)
	if err := os.MkdirAll(dir, dirPerm); err != nil {
		return 0, err
	}
	f, err := os.CreateTemp(dir, tmpPrefix+"*")
	if err != nil {
		return 0, err
	}
	tmp := f.Name()
	committed := false
	defer func() {
		if !committed {
			_ = f.Close()
			_ = os.Remove(tmp)
		}
	}()
	h := want.Algorithm().Hash()
	n, err := io.Copy(io.MultiWriter(f, h), r)
	if err != nil {
		return n, err
	}
	if got := digest.NewDigest(want.Algorithm(), h); got != want {
		return n, fmt.Errorf("%w: got %s, want %s", errDigestMismatch, got, want)
	}
	if err := f.Sync(); err != nil {
		return n, err
	}
	if err := f.Close(); err != nil {
		return n, err
	}
	unlock := s.blobLocks.lock(want.String())
	err = os.Rename(tmp, final)
	unlock()
	if err != nil {
		return n, err
	}
	committed = true
	return n, syncDir(dir)
}

// ingestFile moves the fsynced file at path into the blob store under want
// after checking its content hashes to want. On a mismatch it returns
// errDigestMismatch and leaves the file where it is.
func (s *store) ingestFile(path string, want digest.Digest) (int64, error) {
	f, err := os.Open(path)
	if err != nil {
		return 0, err
	}
	h := want.Algorithm().Hash()
	n, err := io.Copy(h, f)
	_ = f.Close()
	if err != nil {
		return n, err
	}
	if got := digest.NewDigest(want.Algorithm(), h); got != want {
		return n, fmt.Errorf("%w: got %s, want %s", errDigestMismatch, got, want)
	}
	final := s.blobPath(want)
	dir := filepath.Dir(final)
	if err := os.MkdirAll(dir, dirPerm); err != nil {
		return n, err
	}
	unlock := s.blobLocks.lock(want.String())
	err = os.Rename(path, final)
	unlock()
	if err != nil {
		return n, err
	}
	return n, syncDir(dir)
}

// putBytes stores b as blob d unless it is already there.
func (s *store) putBytes(b []byte, d digest.Digest) error {
	if _, err := s.statBlob(d); err == nil {
		return nil
	}
	_, err := s.ingest(bytes.NewReader(b), d)
	return err
}

// repoExists reports whether repository name holds or ever held content.
func (s *store) repoExists(name string) bool {
	for _, sub := range []string{"_layers", "_manifests", "_tags"} {
		if _, err := os.Stat(filepath.Join(s.repoDir(name), sub)); err == nil {
			return true
		}
	}
	return false
}

// linkBlob makes blob d part of repository name.
func (s *store) linkBlob(name string, d digest.Digest) error {
	p := s.layerLinkPath(name, d)
	if _, err := os.Stat(p); err == nil {
		return nil
	}
	return writeFileAtomic(p, nil)
}

// unlinkBlob removes blob d from repository name, reporting whether it was
// there. The content stays in the store for garbage collection.
func (s *store) unlinkBlob(name string, d digest.Digest) (bool, error) {
	return removeFile(s.layerLinkPath(name, d))
}

// blobInRepo reports whether d is readable as a blob through repository
// name: pushed or mounted there as a blob, or a manifest of it.
func (s *store) blobInRepo(name string, d digest.Digest) bool {
	for _, p := range []string{s.layerLinkPath(name, d), s.manifestLinkPath(name, d)} {
		if _, err := os.Stat(p); err == nil {
			return true
		}
	}
	return false
}

// putManifestLink records manifest d in repository name.
func (s *store) putManifestLink(name string, d digest.Digest, l manifestLink) error {
	b, err := json.Marshal(l)
	if err != nil {
		return err
	}
	return writeFileAtomic(s.manifestLinkPath(name, d), b)
}

// manifestLink returns what repository name records about manifest d, or an
// error wrapping fs.ErrNotExist.
func (s *store) manifestLink(name string, d digest.Digest) (manifestLink, error) {
	var l manifestLink
	b, err := os.ReadFile(s.manifestLinkPath(name, d))
	if err != nil {
		return l, err
	}
	if err := json.Unmarshal(b, &l); err != nil {
		return l, fmt.Errorf("parse manifest link %s in %s: %w", d, name, err)
	}
	return l, nil
}

// removeManifestLink removes manifest d from repository name, reporting
// whether it was there.
func (s *store) removeManifestLink(name string, d digest.Digest) (bool, error) {
	return removeFile(s.manifestLinkPath(name, d))
}

// setTag points tag at d in repository name.
func (s *store) setTag(name, tag string, d digest.Digest) error {
	return writeFileAtomic(s.tagPath(name, tag), []byte(d.String()))
}

// tagDigest returns the digest tag points at, or an error wrapping
// fs.ErrNotExist.
func (s *store) tagDigest(name, tag string) (digest.Digest, error) {
	b, err := os.ReadFile(s.tagPath(name, tag))
	if err != nil {
		return "", err
	}
	d, err := parseDigest(string(b))
	if err != nil {
		return "", fmt.Errorf("tag %s in %s: %w", tag, name, err)
	}
	return d, nil
}

// removeTag deletes tag from repository name, reporting whether it existed.
func (s *store) removeTag(name, tag string) (bool, error) {
	return removeFile(s.tagPath(name, tag))
}

// tags returns the tags of repository name, sorted.
func (s *store) tags(name string) ([]string, error) {
	ents, err := os.ReadDir(filepath.Join(s.repoDir(name), "_tags"))
	if errors.Is(err, fs.ErrNotExist) {
		return []string{}, nil
	}
	if err != nil {
		return nil, err
	}
	tags := make([]string, 0, len(ents))
	for _, e := range ents {
		if e.Type().IsRegular() && validTag(e.Name()) {
			tags = append(tags, e.Name())
		}
	}
	slices.Sort(tags)
	return tags, nil
}

// putReferrer records desc as a referrer of subject in repository name.
func (s *store) putReferrer(name string, subject digest.Digest, desc ocispec.Descriptor) error {
	b, err := json.Marshal(desc)
	if err != nil {
		return err
	}
	return writeFileAtomic(filepath.Join(s.referrersDir(name, subject), digestPath(desc.Digest)), b)
}

// removeReferrer forgets referrer d of subject in repository name.
func (s *store) removeReferrer(name string, subject, d digest.Digest) error {
	_, err := removeFile(filepath.Join(s.referrersDir(name, subject), digestPath(d)))
	return err
}

// referrers returns the descriptors of the manifests of repository name
// whose subject is subject, sorted by digest.
func (s *store) referrers(name string, subject digest.Digest) ([]ocispec.Descriptor, error) {
	dir := s.referrersDir(name, subject)
	links, err := s.linkedDigests(dir)
	if err != nil {
		return nil, err
	}
	var out []ocispec.Descriptor
	for _, d := range links {
		b, err := os.ReadFile(filepath.Join(dir, d.Algorithm().String(), d.Encoded()))
		if errors.Is(err, fs.ErrNotExist) {
			continue // removed since it was listed
		}
		if err != nil {
			return nil, err
		}
		var desc ocispec.Descriptor
		if err := json.Unmarshal(b, &desc); err != nil {
			return nil, fmt.Errorf("parse referrer %s of %s in %s: %w", d, subject, name, err)
		}
		out = append(out, desc)
	}
	slices.SortFunc(out, func(a, b ocispec.Descriptor) int { return strings.Compare(a.Digest.String(), b.Digest.String()) })
	return out, nil
}

// repositories returns the names of all repositories, sorted.
func (s *store) repositories() ([]string, error) {
	var names []string
	var walk func(dir, name string) error
	walk = func(dir, name string) error {
		ents, err := os.ReadDir(dir)
		if err != nil {
			return err
		}
		isRepo := false
		for _, e := range ents {
			if !e.IsDir() {
				continue
			}
			switch n := e.Name(); {
			case n == "_layers" || n == "_manifests" || n == "_tags":
				isRepo = true
			case strings.HasPrefix(n, "_") || strings.HasPrefix(n, "."):
			default:
				child := n
				if name != "" {
					child = name + "/" + n
				}
				if err := walk(filepath.Join(dir, n), child); err != nil {
					return err
				}
			}
		}
		if isRepo && name != "" {
			names = append(names, name)
		}
		return nil
	}
	if err := walk(s.reposDir(), ""); err != nil {
		return nil, err
	}
	slices.Sort(names)
	return names, nil
}

// writeFileAtomic replaces path with data: it writes a temporary sibling,
// fsyncs it, renames it over path and fsyncs the directory, creating the
// directory first if needed. Readers see the old file or the new one, never
// a mix.
func writeFileAtomic(path string, data []byte) error {
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, dirPerm); err != nil {
		return err
	}
	f, err := os.CreateTemp(dir, tmpPrefix+"*")
	if err != nil {
		return err
	}
	tmp := f.Name()
	if _, err := f.Write(data); err != nil {
		_ = f.Close()
		_ = os.Remove(tmp)
		return err
	}
	if err := f.Sync(); err != nil {
		_ = f.Close()
		_ = os.Remove(tmp)
		return err
	}
	if err := f.Close(); err != nil {
		_ = os.Remove(tmp)
		return err
	}
	if err := os.Rename(tmp, path); err != nil {
		_ = os.Remove(tmp)
		return err
	}
	return syncDir(dir)
}

// removeFile removes path and fsyncs its directory, reporting whether the
// file existed.
func removeFile(path string) (bool, error) {
	err := os.Remove(path)
	if errors.Is(err, fs.ErrNotExist) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	return true, syncDir(filepath.Dir(path))
}

// syncDir fsyncs a directory so that renames and removals in it are durable.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	err = d.Sync()
	if cerr := d.Close(); err == nil {
		err = cerr
	}
	return err
}
