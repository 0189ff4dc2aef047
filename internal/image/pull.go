package image

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// maxLayers bounds the layers of one image. Docker's overlay2 stops at 125;
// the bound keeps the legacy mount(2) option string within a page.
const maxLayers = 128

// Pull resolves imageURI (a tag or digest reference) to a manifest digest,
// picks the linux/<arch> manifest from an index (arch "x86_64" or "" →
// amd64, "arm64" → arm64), downloads and verifies the config and layers,
// unpacks each layer not yet in the store, records the Image durably and
// returns it. Pulling an image already recorded only resolves its digest.
//
// Errors wrap ErrNotFound (no such repository, tag or digest),
// ErrAccessDenied (credentials refused) or ErrInvalid (malformed, too large,
// wrong architecture, a layer missing or corrupt); other errors (network,
// disk) are transient. Concurrent Pulls unpack a shared layer once.
func (s *Store) Pull(ctx context.Context, imageURI, arch string) (*Image, error) {
	start := time.Now()
	s.gcMu.RLock()
	img, err := s.pull(ctx, imageURI, arch)
	s.gcMu.RUnlock()
	if err != nil {
		s.log.Warn("pull image", "uri", imageURI, "arch", arch, "err", err)
		return nil, fmt.Errorf("pull %s: %w", imageURI, err)
	}
	s.log.Info("pulled image", "uri", imageURI, "digest", img.Digest,
		"layers", len(img.DiffIDs), "bytes", img.Size, "took", time.Since(start))
	return img, nil
}

func (s *Store) pull(ctx context.Context, imageURI, arch string) (*Image, error) {
	platformArch, err := goArch(arch)
	if err != nil {
		return nil, err
	}
	ref, err := s.parseReference(imageURI)
	if err != nil {
		return nil, err
	}
	opts := []remote.Option{
		remote.WithContext(ctx),
		remote.WithAuthFromKeychain(s.keychain),
		remote.WithTransport(s.transport),
		remote.WithUserAgent("kappa"),
	}
	desc, err := remote.Get(ref, opts...)
	if err != nil {
		return nil, classifyRegistryError(ctx, err, ErrNotFound)
	}

	var rimg v1.Image
	switch desc.MediaType {
	case types.OCIImageIndex, types.DockerManifestList:
		child, err := pickPlatform(desc, platformArch)
		if err != nil {
			return nil, err
		}
		// A manifest the index lists but the registry lacks: a broken image.
		if rimg, err = remote.Image(ref.Context().Digest(child.String()), opts...); err != nil {
			return nil, classifyRegistryError(ctx, err, ErrInvalid)
		}
	case types.OCIManifestSchema1, types.DockerManifestSchema2:
		if rimg, err = desc.Image(); err != nil {
			return nil, classifyRegistryError(ctx, err, ErrNotFound)
		}
	case types.DockerManifestSchema1, types.DockerManifestSchema1Signed:
		return nil, fmt.Errorf("%w: Docker image manifest schema 1 is not supported; push with a current client", ErrInvalid)
	default:
		return nil, fmt.Errorf("%w: %q is not an image manifest", ErrInvalid, desc.MediaType)
	}

	rawManifest, err := rimg.RawManifest()
	if err != nil {
		return nil, classifyRegistryError(ctx, err, ErrNotFound)
	}
	digest := "sha256:" + sha256Hex(rawManifest)
	if want, err := rimg.Digest(); err == nil && want.String() != digest {
		return nil, fmt.Errorf("%w: manifest digest is %s, registry says %s", ErrInvalid, digest, want)
	}
	manifestHex, _ := digestHex(digest)
	manifest, err := v1.ParseManifest(bytes.NewReader(rawManifest))
	if err != nil {
		return nil, fmt.Errorf("%w: manifest: %v", ErrInvalid, err)
	}
	// The config is read into memory: refuse a size no real one has
	// before anything is read.
	if manifest.Config.Size < 0 || manifest.Config.Size > maxConfigBytes {
		return nil, fmt.Errorf("%w: manifest gives the image config %d bytes; at most %d are accepted",
			ErrInvalid, manifest.Config.Size, maxConfigBytes)
	}
	rawConfig, err := rimg.RawConfigFile()
	if err != nil {
		return nil, classifyRegistryError(ctx, err, ErrInvalid)
	}
	if got := "sha256:" + sha256Hex(rawConfig); got != manifest.Config.Digest.String() {
		return nil, fmt.Errorf("%w: config digest is %s, manifest says %s", ErrInvalid, got, manifest.Config.Digest)
	}
	cfg, err := v1.ParseConfigFile(bytes.NewReader(rawConfig))
	if err != nil {
		return nil, fmt.Errorf("%w: config: %v", ErrInvalid, err)
	}
	if cfg.OS != "" && cfg.OS != "linux" {
		return nil, fmt.Errorf("%w: image is for %s, not linux", ErrInvalid, cfg.OS)
	}
	if cfg.Architecture != "" && cfg.Architecture != platformArch {
		return nil, fmt.Errorf("%w: image architecture %s does not match function architecture %s", ErrInvalid, cfg.Architecture, arch)
	}
	if img, err := s.Lookup(digest); err == nil && s.haveLayers(img) {
		// Pulled again: young again for the layer GC's grace period, as
		// a deploy may hold it before recording it in a function.
		now := time.Now()
		if err := os.Chtimes(s.imageFile(manifestHex), now, now); err != nil {
			s.log.Warn("touch image record", "digest", digest, "err", err)
		}
		return img, nil
	}
	if len(manifest.Layers) != len(cfg.RootFS.DiffIDs) {
		return nil, fmt.Errorf("%w: manifest lists %d layers, config %d", ErrInvalid, len(manifest.Layers), len(cfg.RootFS.DiffIDs))
	}
	if len(manifest.Layers) > maxLayers {
		return nil, fmt.Errorf("%w: image has %d layers, at most %d are supported", ErrInvalid, len(manifest.Layers), maxLayers)
	}

	img := &Image{
		Digest:       digest,
		Repository:   ref.Context().Name(),
		ResolvedURI:  ref.Context().Name() + "@" + digest,
		Architecture: platformArch,
		Config: Config{
			Entrypoint: cfg.Config.Entrypoint,
			Cmd:        cfg.Config.Cmd,
			Env:        cfg.Config.Env,
			WorkingDir: cfg.Config.WorkingDir,
			User:       cfg.Config.User,
		},
	}
	for i, l := range manifest.Layers {
		diffID := cfg.RootFS.DiffIDs[i].String()
		if _, ok := digestHex(diffID); !ok {
			return nil, fmt.Errorf("%w: layer %d: diffID %q is not a sha256 digest", ErrInvalid, i, diffID)
		}
		size, err := s.ensureLayer(ctx, rimg, l, diffID, s.maxBytes-img.Size)
		if err != nil {
			return nil, fmt.Errorf("layer %s: %w", l.Digest, err)
		}
		img.Size += size
		img.DiffIDs = append(img.DiffIDs, diffID)
		if img.Size > s.maxBytes {
			return nil, fmt.Errorf("%w: image exceeds %s uncompressed", ErrInvalid, formatBytes(s.maxBytes))
		}
	}
	if err := s.saveImage(img); err != nil {
		return nil, fmt.Errorf("record image %s: %w", manifestHex, err)
	}
	return img, nil
}

// haveLayers reports whether every layer of img is in the store.
func (s *Store) haveLayers(img *Image) bool {
	for _, d := range img.DiffIDs {
		h, ok := digestHex(d)
		if !ok {
			return false
		}
		if _, ok := s.readLayer(h); !ok {
			return false
		}
	}
	return true
}

// ensureLayer makes the layer with diffID present in the store, downloading
// and unpacking it unless it already is, and returns its uncompressed size.
// budget bounds what unpacking may write.
func (s *Store) ensureLayer(ctx context.Context, img v1.Image, desc v1.Descriptor, diffID string, budget int64) (int64, error) {
	hexID, _ := digestHex(diffID)
	if m, ok := s.readLayer(hexID); ok {
		return m.Size, nil
	}
	unlock, err := s.layerLocks.lock(ctx, hexID)
	if err != nil {
		return 0, err
	}
	defer unlock()
	if m, ok := s.readLayer(hexID); ok { // unpacked while we waited
		return m.Size, nil
	}
	if err := checkLayerDescriptor(desc); err != nil {
		return 0, err
	}
	if budget <= 0 {
		return 0, fmt.Errorf("%w: image exceeds %s uncompressed", ErrInvalid, formatBytes(s.maxBytes))
	}

	start := time.Now()
	layer, err := img.LayerByDigest(desc.Digest)
	if err != nil {
		return 0, classifyRegistryError(ctx, err, ErrInvalid)
	}
	rc, err := layer.Compressed()
	if err != nil {
		var te *transport.Error
		if errors.As(err, &te) || ctx.Err() != nil {
			return 0, classifyRegistryError(ctx, err, ErrInvalid)
		}
		return 0, classifyBlobReadError(err) // e.g. a Content-Length not the manifest's size
	}
	defer rc.Close()

	tmp, err := os.MkdirTemp(s.tmpDir(), "layer-")
	if err != nil {
		return 0, err
	}
	defer os.RemoveAll(tmp)
	fsDir := filepath.Join(tmp, "fs")
	if err := os.Mkdir(fsDir, 0o755); err != nil {
		return 0, err
	}
	// Mode of the layer root until the tar says otherwise.
	if err := os.Chmod(fsDir, 0o755); err != nil {
		return 0, err
	}
	vr := &verifyingReader{r: rc, h: sha256.New(), max: desc.Size}
	stats, err := Unpack(vr, fsDir, UnpackOptions{MaxBytes: budget, DiffID: diffID, KeepOwner: os.Geteuid() == 0})
	if err != nil {
		var se *blobError
		if errors.As(err, &se) {
			return 0, se.err
		}
		if ctx.Err() != nil && !errors.Is(err, ErrInvalid) {
			return 0, fmt.Errorf("%w (%v)", ctx.Err(), err)
		}
		return 0, err
	}
	if err := vr.finish(desc); err != nil {
		return 0, err
	}
	meta, err := json.Marshal(layerMeta{DiffID: diffID, Size: stats.Size, Digest: desc.Digest.String()})
	if err != nil {
		return 0, err
	}
	if err := os.WriteFile(filepath.Join(tmp, "layer.json"), meta, 0o644); err != nil {
		return 0, err
	}
	if err := syncFilesystem(tmp); err != nil {
		return 0, fmt.Errorf("sync layer: %w", err)
	}
	if err := os.Rename(tmp, s.layerDir(hexID)); err != nil {
		if _, ok := s.readLayer(hexID); ok { // another process won the race
			return stats.Size, nil
		}
		// A directory without a valid record is debris; we hold the
		// layer's lock, so replace it.
		if rerr := os.RemoveAll(s.layerDir(hexID)); rerr != nil {
			return 0, fmt.Errorf("replace broken layer directory: %w", rerr)
		}
		if err := os.Rename(tmp, s.layerDir(hexID)); err != nil {
			return 0, err
		}
	}
	if err := syncDir(filepath.Dir(s.layerDir(hexID))); err != nil {
		return 0, err
	}
	s.unpacked.Add(1)
	s.log.Debug("unpacked layer", "diffID", diffID, "digest", desc.Digest, "compression", stats.Compression,
		"bytes", stats.Size, "entries", stats.Entries, "skipped", stats.Skipped, "took", time.Since(start))
	return stats.Size, nil
}

// checkLayerDescriptor refuses layers Kappa cannot or will not fetch.
func checkLayerDescriptor(d v1.Descriptor) error {
	if len(d.URLs) > 0 {
		return fmt.Errorf("%w: foreign layers (fetched from URLs) are not supported", ErrInvalid)
	}
	if d.Digest.Algorithm != "sha256" {
		return fmt.Errorf("%w: layer digest %s is not sha256", ErrInvalid, d.Digest)
	}
	if d.Size < 0 {
		return fmt.Errorf("%w: layer size %d", ErrInvalid, d.Size)
	}
	mt := string(d.MediaType)
	if mt != "" && !strings.Contains(mt, "tar") && !strings.HasPrefix(mt, "application/vnd.docker.image.rootfs.") {
		return fmt.Errorf("%w: layer media type %q is not a tar layer", ErrInvalid, mt)
	}
	return nil
}

// verifyingReader hashes and counts a compressed blob as it is read.
type verifyingReader struct {
	r   io.Reader
	h   hash.Hash
	n   int64
	max int64
}

// blobError marks an error of the blob download, as opposed to one of the
// layer's content.
type blobError struct{ err error }

func (e *blobError) Error() string { return e.err.Error() }
func (e *blobError) Unwrap() error { return e.err }

func (v *verifyingReader) Read(p []byte) (int, error) {
	n, err := v.r.Read(p)
	v.h.Write(p[:n])
	v.n += int64(n)
	if v.n > v.max {
		return n, &blobError{fmt.Errorf("%w: blob is larger than the %d bytes the manifest says", ErrInvalid, v.max)}
	}
	if err != nil && err != io.EOF {
		return n, &blobError{classifyBlobReadError(err)}
	}
	return n, err
}

// finish reads what Unpack left of the blob and checks its size and digest.
func (v *verifyingReader) finish(d v1.Descriptor) error {
	if _, err := io.Copy(io.Discard, v); err != nil {
		var be *blobError
		if errors.As(err, &be) {
			return be.err
		}
		return err
	}
	if v.n != d.Size {
		return fmt.Errorf("%w: blob is %d bytes, manifest says %d", ErrInvalid, v.n, d.Size)
	}
	if got := hex.EncodeToString(v.h.Sum(nil)); got != d.Digest.Hex {
		return fmt.Errorf("%w: blob digest is sha256:%s, manifest says %s", ErrInvalid, got, d.Digest)
	}
	return nil
}

// classifyBlobReadError: a connection that breaks is transient; anything
// else the download reports (go-containerregistry's size and digest checks)
// means the blob is not what the manifest says.
func classifyBlobReadError(err error) error {
	var ne net.Error
	if errors.As(err, &ne) || errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, syscall.ECONNRESET) ||
		errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return err
	}
	return fmt.Errorf("%w: %v", ErrInvalid, err)
}

// classifyRegistryError maps a registry response to the package's errors.
// notFound is what a 404 means at this step: a missing manifest is
// ErrNotFound, a missing blob of a present manifest ErrInvalid.
func classifyRegistryError(ctx context.Context, err error, notFound error) error {
	if ctx.Err() != nil {
		return fmt.Errorf("%w (%v)", ctx.Err(), err)
	}
	var te *transport.Error
	if errors.As(err, &te) {
		switch te.StatusCode {
		case http.StatusUnauthorized, http.StatusForbidden:
			return fmt.Errorf("%w: %v", ErrAccessDenied, err)
		case http.StatusNotFound:
			return fmt.Errorf("%w: %v", notFound, err)
		}
		for _, d := range te.Errors {
			switch d.Code {
			case transport.UnauthorizedErrorCode, transport.DeniedErrorCode:
				return fmt.Errorf("%w: %v", ErrAccessDenied, err)
			case transport.ManifestUnknownErrorCode, transport.NameUnknownErrorCode, transport.BlobUnknownErrorCode:
				return fmt.Errorf("%w: %v", notFound, err)
			}
		}
		return err
	}
	// Token exchange failures come back untyped but say so.
	msg := err.Error()
	if strings.Contains(msg, "UNAUTHORIZED") || strings.Contains(msg, "DENIED") {
		return fmt.Errorf("%w: %v", ErrAccessDenied, err)
	}
	return err
}

// pickPlatform returns the digest of the linux/<arch> image of an index.
func pickPlatform(desc *remote.Descriptor, arch string) (v1.Hash, error) {
	idx, err := desc.ImageIndex()
	if err != nil {
		return v1.Hash{}, fmt.Errorf("%w: index: %v", ErrInvalid, err)
	}
	im, err := idx.IndexManifest()
	if err != nil {
		return v1.Hash{}, fmt.Errorf("%w: index: %v", ErrInvalid, err)
	}
	var have []string
	for _, m := range im.Manifests {
		if m.Platform == nil {
			continue
		}
		have = append(have, m.Platform.OS+"/"+m.Platform.Architecture)
		if m.Platform.OS != "linux" || m.Platform.Architecture != arch {
			continue
		}
		if m.MediaType != "" && m.MediaType != types.OCIManifestSchema1 && m.MediaType != types.DockerManifestSchema2 {
			continue
		}
		return m.Digest, nil
	}
	return v1.Hash{}, fmt.Errorf("%w: image index has no linux/%s image (it has %s)", ErrInvalid, arch, strings.Join(have, ", "))
}

// goArch maps a Lambda architecture to an OCI one.
func goArch(arch string) (string, error) {
	switch arch {
	case "", "x86_64", "amd64":
		return "amd64", nil
	case "arm64", "aarch64":
		return "arm64", nil
	}
	return "", fmt.Errorf("%w: unsupported architecture %q (want x86_64 or arm64)", ErrInvalid, arch)
}

// parseReference parses an image URI, reaching configured insecure
// registries over plain HTTP.
func (s *Store) parseReference(uri string) (name.Reference, error) {
	ref, err := name.ParseReference(uri)
	if err != nil {
		return nil, fmt.Errorf("%w: image URI %q: %v", ErrInvalid, uri, err)
	}
	if reg := strings.ToLower(ref.Context().RegistryStr()); s.insecure[reg] || isLoopback(reg) {
		if ref, err = name.ParseReference(uri, name.Insecure); err != nil {
			return nil, fmt.Errorf("%w: image URI %q: %v", ErrInvalid, uri, err)
		}
	}
	return ref, nil
}

// isLoopback reports whether a registry host[:port] is on this machine.
func isLoopback(hostport string) bool {
	host := hostport
	if h, _, err := net.SplitHostPort(hostport); err == nil {
		host = h
	}
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(strings.Trim(host, "[]"))
	return ip != nil && ip.IsLoopback()
}

func sha256Hex(b []byte) string {
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}
