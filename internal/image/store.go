package image

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/v1/remote"
)

// Options configures a Store.
type Options struct {
	// Dir is the layer store root, e.g. <data-dir>/images. Created if
	// missing. One Store at a time may use a Dir.
	Dir    string
	Logger *slog.Logger
	// Keychain finds registry credentials; nil means authn.DefaultKeychain
	// (the docker config of the user running Kappa).
	Keychain authn.Keychain
	// InsecureRegistries are host:port values reached over plain HTTP
	// (Kappa's own embedded registry); loopback hosts are HTTP anyway.
	InsecureRegistries []string
	// MaxImageBytes caps an image's uncompressed size; 0 means
	// DefaultMaxImageBytes (10 GiB).
	MaxImageBytes int64
}

// Store pulls images into a content-addressed layer store on local disk and
// mounts their root filesystems. Its methods are safe for concurrent use.
//
// Layout under Options.Dir:
//
//	layers/sha256/<diffID hex>/fs          an unpacked layer (an overlay lowerdir)
//	layers/sha256/<diffID hex>/layer.json  its size
//	images/sha256/<manifest hex>.json      a pulled Image
//	skel/<manifest hex>/                   the image's skeleton layer
//	rootfs/<manifest hex>/                 its mounted root filesystem
//	tmp/                                   work in progress, emptied by NewStore
//
// Every entry outside tmp appears by an atomic rename, so a crash leaves
// nothing half-written in view.
type Store struct {
	dir       string
	log       *slog.Logger
	keychain  authn.Keychain
	insecure  map[string]bool
	maxBytes  int64
	transport *http.Transport

	layerLocks keyedLock
	// gcMu keeps garbage collection (writer) apart from pulls (readers):
	// a pull finds, unpacks and records layers under it.
	gcMu sync.RWMutex

	mu     sync.Mutex
	mounts map[string]*mount // by manifest hex
	closed bool

	// unpacked counts layers unpacked (not found already in the store).
	unpacked atomic.Int64
	// legacyMount forces mount(2) over the new mount API (tests).
	legacyMount bool
}

type mount struct {
	path string
	refs int
}

// NewStore opens (creating if needed) the layer store at opts.Dir. It
// discards work a previous process left unfinished and unmounts root
// filesystems it left mounted.
func NewStore(opts Options) (*Store, error) {
	if opts.Dir == "" {
		return nil, errors.New("image store: no directory")
	}
	dir, err := filepath.Abs(opts.Dir)
	if err != nil {
		return nil, fmt.Errorf("image store: %w", err)
	}
	s := &Store{
		dir:      dir,
		log:      opts.Logger,
		keychain: opts.Keychain,
		insecure: map[string]bool{},
		maxBytes: opts.MaxImageBytes,
		mounts:   map[string]*mount{},
	}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	if s.keychain == nil {
		s.keychain = authn.DefaultKeychain
	}
	if s.maxBytes <= 0 {
		s.maxBytes = DefaultMaxImageBytes
	}
	for _, h := range opts.InsecureRegistries {
		s.insecure[strings.ToLower(h)] = true
	}
	if t, ok := remote.DefaultTransport.(*http.Transport); ok {
		s.transport = t.Clone()
	} else {
		s.transport = http.DefaultTransport.(*http.Transport).Clone()
	}
	// A registry that accepts a request and never answers it fails the
	// pull instead of holding a deploy forever.
	s.transport.ResponseHeaderTimeout = responseHeaderTimeout
	for _, d := range []string{"layers/sha256", "images/sha256", "skel", "rootfs"} {
		if err := os.MkdirAll(filepath.Join(dir, d), 0o755); err != nil {
			return nil, fmt.Errorf("image store: %w", err)
		}
	}
	if err := os.RemoveAll(s.tmpDir()); err != nil {
		return nil, fmt.Errorf("image store: clear tmp: %w", err)
	}
	if err := os.Mkdir(s.tmpDir(), 0o700); err != nil {
		return nil, fmt.Errorf("image store: %w", err)
	}
	s.unmountStale()
	return s, nil
}

// responseHeaderTimeout bounds how long a registry may take to start
// answering one request.
var responseHeaderTimeout = 2 * time.Minute // a variable for tests

func (s *Store) tmpDir() string             { return filepath.Join(s.dir, "tmp") }
func (s *Store) layerDir(hex string) string { return filepath.Join(s.dir, "layers", "sha256", hex) }
func (s *Store) layerFS(hex string) string  { return filepath.Join(s.layerDir(hex), "fs") }
func (s *Store) imageFile(hex string) string {
	return filepath.Join(s.dir, "images", "sha256", hex+".json")
}
func (s *Store) skelDir(hex string) string     { return filepath.Join(s.dir, "skel", hex) }
func (s *Store) rootfsDir(hex string) string   { return filepath.Join(s.dir, "rootfs", hex) }
func (s *Store) layerMetaFile(h string) string { return filepath.Join(s.layerDir(h), "layer.json") }

var sha256Digest = regexp.MustCompile(`^sha256:([a-f0-9]{64})$`)

// digestHex returns the hex of a "sha256:<64 hex>" digest, or false.
func digestHex(d string) (string, bool) {
	m := sha256Digest.FindStringSubmatch(d)
	if m == nil {
		return "", false
	}
	return m[1], true
}

// Lookup returns the recorded Image for a manifest digest ("sha256:…")
// without using the network, or an error wrapping ErrNotFound. It does not
// check that the layers are still on disk; RootFS does.
func (s *Store) Lookup(digest string) (*Image, error) {
	hex, ok := digestHex(digest)
	if !ok {
		return nil, fmt.Errorf("%w: malformed digest %q", ErrNotFound, digest)
	}
	b, err := os.ReadFile(s.imageFile(hex))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("%w: %s not pulled", ErrNotFound, digest)
	}
	if err != nil {
		return nil, fmt.Errorf("lookup %s: %w", digest, err)
	}
	var img Image
	if err := json.Unmarshal(b, &img); err != nil || img.Digest != digest {
		return nil, fmt.Errorf("lookup %s: corrupt record %s", digest, s.imageFile(hex))
	}
	return &img, nil
}

// saveImage records img durably.
func (s *Store) saveImage(img *Image) error {
	hex, _ := digestHex(img.Digest)
	b, err := json.MarshalIndent(img, "", "  ")
	if err != nil {
		return err
	}
	return writeFileAtomic(s.imageFile(hex), b)
}

// layerMeta is what the store records beside an unpacked layer.
type layerMeta struct {
	DiffID string `json:"diffId"`
	Size   int64  `json:"size"`
	// Digest is the compressed blob it was unpacked from.
	Digest string `json:"digest,omitempty"`
}

// readLayer returns the record of an unpacked layer, or false when the
// layer is not in the store.
func (s *Store) readLayer(hex string) (layerMeta, bool) {
	var m layerMeta
	b, err := os.ReadFile(s.layerMetaFile(hex))
	if err != nil || json.Unmarshal(b, &m) != nil || m.DiffID != "sha256:"+hex {
		return m, false
	}
	if fi, err := os.Lstat(s.layerFS(hex)); err != nil || !fi.IsDir() {
		return m, false
	}
	return m, true
}

// writeFileAtomic writes b to name through a synced temporary file in the
// same directory and a rename, then syncs the directory.
func writeFileAtomic(name string, b []byte) error {
	dir := filepath.Dir(name)
	f, err := os.CreateTemp(dir, ".tmp-*")
	if err != nil {
		return err
	}
	tmp := f.Name()
	defer os.Remove(tmp)
	if _, err := f.Write(b); err != nil {
		f.Close()
		return err
	}
	if err := f.Chmod(0o644); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	if err := os.Rename(tmp, name); err != nil {
		return err
	}
	return syncDir(dir)
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

// Close unmounts every root filesystem this Store mounted and releases idle
// registry connections. RootFS fails after Close; Pull and Lookup still
// work.
func (s *Store) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.closed = true
	var errs []error
	for hex, m := range s.mounts {
		if err := unmountOverlay(m.path); err != nil {
			errs = append(errs, fmt.Errorf("unmount %s: %w", m.path, err))
			continue
		}
		os.Remove(m.path)
		delete(s.mounts, hex)
	}
	s.transport.CloseIdleConnections()
	return errors.Join(errs...)
}

// keyedLock is a set of mutexes by name whose Lock honours a context.
type keyedLock struct {
	mu sync.Mutex
	m  map[string]*keyedEntry
}

type keyedEntry struct {
	ch   chan struct{}
	refs int
}

// lock takes the lock named key, or returns ctx's error. The returned
// function unlocks.
func (k *keyedLock) lock(ctx context.Context, key string) (func(), error) {
	k.mu.Lock()
	if k.m == nil {
		k.m = map[string]*keyedEntry{}
	}
	e := k.m[key]
	if e == nil {
		e = &keyedEntry{ch: make(chan struct{}, 1)}
		k.m[key] = e
	}
	e.refs++
	k.mu.Unlock()
	release := func() {
		k.mu.Lock()
		if e.refs--; e.refs == 0 {
			delete(k.m, key)
		}
		k.mu.Unlock()
	}
	select {
	case e.ch <- struct{}{}:
		return func() { <-e.ch; release() }, nil
	case <-ctx.Done():
		release()
		return nil, ctx.Err()
	}
}
