package image

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"encoding/hex"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"sort"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/klauspost/compress/zstd"
)

// TestMain fails the package when goroutines this package (or the registry
// client it drives) started outlive the tests.
//
// It also bounds how long the fuzzing engine minimises each new input, unless
// -fuzzminimizetime is given: by default it may spend a minute per input,
// and tar layers (mostly zero padding) minimise so slowly that a 30-second
// fuzzing run would do nothing else.
func TestMain(m *testing.M) {
	flag.Parse()
	explicit := false
	flag.Visit(func(f *flag.Flag) { explicit = explicit || f.Name == "test.fuzzminimizetime" })
	if !explicit {
		flag.Set("test.fuzzminimizetime", "200x")
	}
	code := m.Run()
	if code == 0 {
		if leaked := leakedGoroutines(5 * time.Second); leaked != "" {
			fmt.Fprintf(os.Stderr, "goroutines leaked:\n%s\n", leaked)
			code = 1
		}
	}
	os.Exit(code)
}

func leakedGoroutines(wait time.Duration) string {
	suspicious := []string{"kappa/internal/image.", "go-containerregistry", "klauspost/compress", "net/http.(*persistConn)"}
	deadline := time.Now().Add(wait)
	for {
		buf := make([]byte, 1<<20)
		buf = buf[:runtime.Stack(buf, true)]
		var bad []string
		for g := range strings.SplitSeq(string(buf), "\n\n") {
			if strings.Contains(g, "leakedGoroutines") || strings.Contains(g, "testing.(*M)") {
				continue
			}
			for _, s := range suspicious {
				if strings.Contains(g, s) {
					bad = append(bad, g)
					break
				}
			}
		}
		if len(bad) == 0 {
			return ""
		}
		if time.Now().After(deadline) {
			return strings.Join(bad, "\n\n")
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func requireRoot(t testing.TB) {
	t.Helper()
	if runtime.GOOS != "linux" || os.Geteuid() != 0 {
		t.Skip("needs root on Linux (whiteouts, trusted.overlay xattrs, chown)")
	}
}

func requireOverlay(t testing.TB) {
	t.Helper()
	requireRoot(t)
	b, err := os.ReadFile("/proc/filesystems")
	if err != nil || !bytes.Contains(b, []byte("overlay")) {
		t.Skip("needs root and overlayfs (modprobe overlay)")
	}
}

// ent describes one tar entry for mkTar.
type ent struct {
	name string
	typ  byte
	body string
	link string
	mode int64
	uid  int
	gid  int
	// size overrides the declared size (the body is still what is written).
	size int64
	// major/minor for devices.
	major, minor int64
	// raw: write the header only, no body, and no end-of-archive.
	headerOnly bool
}

func file(name, body string) ent { return ent{name: name, typ: tar.TypeReg, body: body, mode: 0o644} }
func dir(name string) ent        { return ent{name: name, typ: tar.TypeDir, mode: 0o755} }
func symlink(name, to string) ent {
	return ent{name: name, typ: tar.TypeSymlink, link: to, mode: 0o777}
}
func hardlink(name, to string) ent  { return ent{name: name, typ: tar.TypeLink, link: to, mode: 0o644} }
func withMode(e ent, m int64) ent   { e.mode = m; return e }
func withOwner(e ent, u, g int) ent { e.uid, e.gid = u, g; return e }

var testTime = time.Date(2020, 1, 2, 3, 4, 5, 0, time.UTC)

// mkTar builds an uncompressed tar stream.
func mkTar(t testing.TB, ents ...ent) []byte {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, e := range ents {
		size := int64(len(e.body))
		if e.typ != tar.TypeReg {
			size = 0
		}
		if e.size != 0 {
			size = e.size
		}
		h := &tar.Header{
			Name: e.name, Typeflag: e.typ, Linkname: e.link, Mode: e.mode,
			Uid: e.uid, Gid: e.gid, Size: size, ModTime: testTime,
			Devmajor: e.major, Devminor: e.minor, Format: tar.FormatPAX,
		}
		if err := tw.WriteHeader(h); err != nil {
			t.Fatalf("tar header %q: %v", e.name, err)
		}
		if e.headerOnly {
			tw.Flush()
			return buf.Bytes()
		}
		if e.typ == tar.TypeReg {
			if _, err := io.WriteString(tw, e.body); err != nil {
				t.Fatalf("tar body %q: %v", e.name, err)
			}
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func gz(t testing.TB, b []byte) []byte {
	t.Helper()
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	zw.Write(b)
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func zst(t testing.TB, b []byte) []byte {
	t.Helper()
	var buf bytes.Buffer
	zw, err := zstd.NewWriter(&buf)
	if err != nil {
		t.Fatal(err)
	}
	zw.Write(b)
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func digestOf(b []byte) string {
	sum := sha256.Sum256(b)
	return "sha256:" + hex.EncodeToString(sum[:])
}

// sandbox is a parent directory holding the layer directory and a sentinel
// directory beside it, to prove that nothing is written outside the layer.
type sandboxDir struct {
	parent, layer, sentinel string
}

const sentinelSecret = "do not touch"

func newSandboxDir(t testing.TB) sandboxDir {
	t.Helper()
	return newSandboxDirIn(t, t.TempDir())
}

// newSandboxDirIn lays a sandboxDir out in the empty directory p.
func newSandboxDirIn(t testing.TB, p string) sandboxDir {
	t.Helper()
	s := sandboxDir{parent: p, layer: filepath.Join(p, "layer"), sentinel: filepath.Join(p, "sentinel")}
	for _, d := range []string{s.layer, s.sentinel, filepath.Join(s.sentinel, "sub")} {
		if err := os.Mkdir(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(s.sentinel, "secret"), []byte(sentinelSecret), 0o644); err != nil {
		t.Fatal(err)
	}
	return s
}

// checkContained fails t if anything beside the layer changed.
func (s sandboxDir) checkContained(t testing.TB) {
	t.Helper()
	names := func(dir string) []string {
		es, err := os.ReadDir(dir)
		if err != nil {
			t.Fatalf("read %s: %v", dir, err)
		}
		var n []string
		for _, e := range es {
			n = append(n, e.Name())
		}
		sort.Strings(n)
		return n
	}
	if got := strings.Join(names(s.parent), ","); got != "layer,sentinel" {
		t.Errorf("parent of the layer holds %s, want layer,sentinel", got)
	}
	if got := strings.Join(names(s.sentinel), ","); got != "secret,sub" {
		t.Errorf("sentinel holds %s, want secret,sub", got)
	}
	if got := names(filepath.Join(s.sentinel, "sub")); len(got) != 0 {
		t.Errorf("sentinel/sub holds %v", got)
	}
	fi, err := os.Lstat(filepath.Join(s.sentinel, "secret"))
	if err != nil || !fi.Mode().IsRegular() {
		t.Fatalf("sentinel secret: %v %v", fi, err)
	}
	if b, _ := os.ReadFile(filepath.Join(s.sentinel, "secret")); string(b) != sentinelSecret {
		t.Errorf("sentinel secret now reads %q", b)
	}
	if n := nlink(fi); n != 1 {
		t.Errorf("sentinel secret has %d links", n)
	}
	// Nothing in the layer may be a device other than a whiteout, nor
	// carry setuid or setgid.
	filepath.WalkDir(s.layer, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return nil
		}
		fi, err := d.Info()
		if err != nil {
			return nil
		}
		if fi.Mode()&(fs.ModeSetuid|fs.ModeSetgid) != 0 {
			t.Errorf("%s keeps setuid/setgid: %v", p, fi.Mode())
		}
		if fi.Mode()&fs.ModeDevice != 0 && !isWhiteout(fi) {
			t.Errorf("%s is a device: %v", p, fi.Mode())
		}
		return nil
	})
}

func nlink(fi fs.FileInfo) uint64 {
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		return uint64(st.Nlink)
	}
	return 0
}
