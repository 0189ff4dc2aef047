package image

import (
	"archive/tar"
	"bufio"
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"path"
	"strings"

	"github.com/klauspost/compress/zstd"
)

// DefaultMaxImageBytes is the default cap on an image's uncompressed size
// (10 GiB, Lambda's limit).
const DefaultMaxImageBytes int64 = 10 << 30

// Limits on the names a layer may hold. Longer paths could not be opened
// inside the sandbox anyway (PATH_MAX), and the depth bound keeps removal
// of replaced directories within a few hundred open descriptors.
const (
	maxNameLen   = 4095
	maxNameDepth = 256
	maxComponent = 255
	// zstd frames may ask for a window of up to 128 MiB (zstd --long=27);
	// larger windows are refused rather than allocated.
	maxZstdWindow = 128 << 20
)

// maxConfigBytes caps an image's config blob, which is read into memory.
// Real ones take a few KB (a long history, tens of KB).
const maxConfigBytes = 8 << 20

// DefaultMaxLayerEntries is the default cap on the tar entries of one
// layer. The largest real layers (a node_modules, a Python ML stack) hold a
// few hundred thousand; past it a layer is refused rather than unpacked
// entry by entry. (What Kappa keeps per directory until the layer ends has
// a bound of its own, maxDirBytes.)
const DefaultMaxLayerEntries = 1_000_000

// UnpackOptions tunes Unpack. The zero value is usable.
type UnpackOptions struct {
	// MaxBytes bounds both the uncompressed tar stream and the sum of the
	// sizes regular files declare. Exceeding it fails with ErrInvalid
	// ("image exceeds … uncompressed"). 0 means DefaultMaxImageBytes.
	MaxBytes int64
	// DiffID, when set ("sha256:<hex>"), is the expected digest of the
	// uncompressed stream; a mismatch fails with ErrInvalid.
	DiffID string
	// KeepOwner applies uid and gid from the tar (needs CAP_CHOWN). When
	// false, every entry belongs to the caller.
	KeepOwner bool
	// MaxEntries bounds the layer's tar entries; more fail with
	// ErrInvalid. 0 means DefaultMaxLayerEntries.
	MaxEntries int
}

// Stats describes an unpacked layer.
type Stats struct {
	// DiffID is "sha256:<hex>" of the uncompressed tar stream.
	DiffID string
	// Size is the length of the uncompressed tar stream in bytes.
	Size int64
	// Compression is "gzip", "zstd" or "none", as detected from the stream.
	Compression string
	// Entries counts tar headers read; the others count what was created.
	Entries, Files, Dirs, Symlinks, Hardlinks, Fifos int
	// Whiteouts and Opaques count overlay whiteouts and opaque directories.
	Whiteouts, Opaques int
	// Skipped counts entries deliberately not created: device nodes,
	// unknown types, AUFS metadata and paths through whiteout names.
	Skipped int
}

// Unpack extracts the tar layer read from r (gzip, zstd or uncompressed,
// detected from its first bytes) into dir, which must exist and should be
// empty, converting OCI whiteouts to overlayfs ones: ".wh.<name>" becomes a
// 0/0 character device <name> (unless this layer holds <name> itself), and
// ".wh..wh..opq" sets trusted.overlay.opaque=y on its directory, as does a
// whiteout the layer later turns into a directory. No ".wh." name is ever
// created; AUFS metadata (".wh..wh.*") is skipped.
//
// Unpack treats the layer as hostile. Nothing it does reaches outside dir:
// ".." and absolute names are resolved as if dir were "/", symbolic links
// the layer creates are never followed (an entry whose path runs through
// one fails), hard links must name a file inside dir, device nodes are
// skipped, setuid and setgid bits are cleared, and opts.MaxBytes bounds
// what decompression and file contents may write. Later duplicates of a
// name replace earlier ones, except that a directory over a directory
// merges. Modes are kept as the tar states them (apart from setuid/setgid);
// extended attributes in the tar are not applied.
//
// Errors caused by the layer's content (malformed, truncated, hostile or
// too large) wrap ErrInvalid. An error returned by r itself is wrapped as
// is, so the caller can tell a broken connection from a broken layer. On
// error dir holds a partial layer, which the caller discards. Unpack needs
// Linux; the layer's whiteouts and opaque directories need root.
func Unpack(r io.Reader, dir string, opts UnpackOptions) (Stats, error) {
	if opts.MaxBytes <= 0 {
		opts.MaxBytes = DefaultMaxImageBytes
	}
	if opts.MaxEntries <= 0 {
		opts.MaxEntries = DefaultMaxLayerEntries
	}
	u := &unpacker{src: &sourceReader{r: r}, max: opts.MaxBytes}
	st, err := u.run(dir, opts)
	if err != nil {
		return st, u.classify(err)
	}
	return st, nil
}

type unpacker struct {
	src       *sourceReader
	lim       *limitReader
	max       int64
	fileBytes int64
}

func (u *unpacker) run(dir string, opts UnpackOptions) (Stats, error) {
	var st Stats
	br := bufio.NewReaderSize(u.src, 64<<10)
	magic, _ := br.Peek(6) // a short stream is an empty or truncated tar; tar says which
	if u.src.err != nil {
		return st, u.src.err
	}
	var stream io.Reader
	switch {
	case bytes.HasPrefix(magic, []byte{0x1f, 0x8b}):
		st.Compression = "gzip"
		zr, err := gzip.NewReader(br)
		if err != nil {
			return st, streamError{err}
		}
		defer zr.Close()
		stream = zr
	case bytes.HasPrefix(magic, []byte{0x28, 0xb5, 0x2f, 0xfd}):
		st.Compression = "zstd"
		zr, err := zstd.NewReader(br,
			zstd.WithDecoderConcurrency(1),
			zstd.WithDecoderLowmem(true),
			zstd.WithDecoderMaxWindow(maxZstdWindow))
		if err != nil {
			return st, streamError{err}
		}
		defer zr.Close()
		stream = zr
	case bytes.HasPrefix(magic, []byte("BZh")),
		bytes.HasPrefix(magic, []byte{0xfd, '7', 'z', 'X', 'Z', 0x00}):
		return st, fmt.Errorf("%w: layer compression is neither gzip nor zstd", ErrInvalid)
	default:
		st.Compression = "none"
		stream = br
	}

	u.lim = &limitReader{r: stream, max: u.max}
	h := sha256.New()
	tee := io.TeeReader(u.lim, h)
	tr := tar.NewReader(tee)

	w, err := newLayerWriter(dir, opts.KeepOwner, &st)
	if err != nil {
		return st, err
	}
	defer w.close()
	for {
		hdr, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return st, streamError{err}
		}
		st.Entries++
		if st.Entries > opts.MaxEntries {
			return st, fmt.Errorf("%w: layer has more than %d entries", ErrInvalid, opts.MaxEntries)
		}
		if hdr.Typeflag == tar.TypeReg || hdr.Typeflag == tar.TypeRegA || hdr.Typeflag == tar.TypeGNUSparse {
			if hdr.Size < 0 || hdr.Size > u.max-u.fileBytes {
				return st, errTooLarge
			}
			u.fileBytes += hdr.Size
		}
		if err := w.entry(hdr, tr); err != nil {
			return st, fmt.Errorf("%s: %w", safeQuote(hdr.Name), err)
		}
	}
	// Whatever follows the end-of-archive blocks is still part of the
	// diffID.
	if _, err := io.Copy(io.Discard, tee); err != nil {
		return st, streamError{err}
	}
	if err := w.finish(); err != nil {
		return st, err
	}
	st.Size = u.lim.n
	st.DiffID = "sha256:" + hex.EncodeToString(h.Sum(nil))
	if opts.DiffID != "" && opts.DiffID != st.DiffID {
		return st, fmt.Errorf("%w: layer diffID is %s, config says %s", ErrInvalid, st.DiffID, opts.DiffID)
	}
	return st, nil
}

// classify turns an error met while unpacking into the one Unpack returns.
func (u *unpacker) classify(err error) error {
	if u.src.err != nil {
		return fmt.Errorf("read layer: %w", u.src.err)
	}
	if (u.lim != nil && u.lim.exceeded) || errors.Is(err, errTooLarge) {
		return fmt.Errorf("%w: image exceeds %s uncompressed", ErrInvalid, formatBytes(u.max))
	}
	var se streamError
	if errors.As(err, &se) {
		return fmt.Errorf("%w: corrupt or truncated layer: %v", ErrInvalid, se.err)
	}
	return err
}

var errTooLarge = errors.New("layer too large")

// streamError marks an error reading the (decompressed) layer stream, as
// opposed to one writing the layer directory.
type streamError struct{ err error }

func (e streamError) Error() string { return e.err.Error() }
func (e streamError) Unwrap() error { return e.err }

// sourceReader remembers the first error, other than io.EOF, of the reader
// Unpack was given.
type sourceReader struct {
	r   io.Reader
	err error
}

func (s *sourceReader) Read(p []byte) (int, error) {
	n, err := s.r.Read(p)
	if err != nil && err != io.EOF && s.err == nil {
		s.err = err
	}
	return n, err
}

// limitReader counts bytes and fails once more than max have been read.
type limitReader struct {
	r        io.Reader
	n, max   int64
	exceeded bool
}

func (l *limitReader) Read(p []byte) (int, error) {
	if l.exceeded {
		return 0, errTooLarge
	}
	if room := l.max - l.n + 1; room > 0 && int64(len(p)) > room {
		p = p[:room]
	}
	n, err := l.r.Read(p)
	l.n += int64(n)
	if l.n > l.max {
		l.exceeded = true
		return n, errTooLarge
	}
	return n, err
}

// cleanName maps a tar entry name to a slash-separated path relative to the
// layer root ("" for the root itself). ".." and a leading "/" cannot climb
// above the root: the name is resolved as if the root were "/".
func cleanName(name string) (string, error) {
	if strings.IndexByte(name, 0) >= 0 {
		return "", fmt.Errorf("%w: name contains NUL", ErrInvalid)
	}
	p := strings.TrimPrefix(path.Clean("/"+name), "/")
	if len(p) > maxNameLen {
		return "", fmt.Errorf("%w: name longer than %d bytes", ErrInvalid, maxNameLen)
	}
	if p == "" {
		return "", nil
	}
	if strings.Count(p, "/") >= maxNameDepth {
		return "", fmt.Errorf("%w: name deeper than %d components", ErrInvalid, maxNameDepth)
	}
	for c := range strings.SplitSeq(p, "/") {
		if len(c) > maxComponent {
			return "", fmt.Errorf("%w: name component longer than %d bytes", ErrInvalid, maxComponent)
		}
	}
	return p, nil
}

// splitName splits a cleaned name into its parent ("" for the root) and
// base.
func splitName(p string) (parent, base string) {
	i := strings.LastIndexByte(p, '/')
	if i < 0 {
		return "", p
	}
	return p[:i], p[i+1:]
}

const (
	whiteoutPrefix = ".wh."
	whiteoutMeta   = ".wh..wh."
	whiteoutOpaque = ".wh..wh..opq"
)

// safeQuote quotes a name from a layer for an error message, shortened.
func safeQuote(s string) string {
	if len(s) > 200 {
		s = s[:200] + "…"
	}
	return fmt.Sprintf("%q", s)
}

// formatBytes renders a size limit for a message: whole GiB as "10 GB"
// (what Lambda says), anything else in bytes.
func formatBytes(n int64) string {
	if n >= 1<<30 && n%(1<<30) == 0 {
		return fmt.Sprintf("%d GB", n>>30)
	}
	return fmt.Sprintf("%d bytes", n)
}
