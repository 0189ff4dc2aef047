package image

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// pullLayers pushes an image of layers (base first) and pulls it into s.
func pullLayers(t testing.TB, s *Store, host, repo string, layers ...v1.Layer) *Image {
	t.Helper()
	push(t, host+"/"+repo, buildImage(t, "amd64", lambdaConfig, layers...))
	img, err := s.Pull(context.Background(), host+"/"+repo, "x86_64")
	if err != nil {
		t.Fatal(err)
	}
	return img
}

// mountsUnder lists the mount points of this process under dir.
func mountsUnder(t testing.TB, dir string) []string {
	t.Helper()
	b, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for line := range strings.SplitSeq(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) < 5 {
			continue
		}
		mp := strings.ReplaceAll(f[4], `\040`, " ")
		if mp == dir || strings.HasPrefix(mp, dir+"/") {
			out = append(out, mp)
		}
	}
	return out
}

func names(t *testing.T, dir string) string {
	t.Helper()
	es, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var n []string
	for _, e := range es {
		n = append(n, e.Name())
	}
	sort.Strings(n)
	return strings.Join(n, ",")
}

func TestRootFSOverlay(t *testing.T) {
	requireOverlay(t)
	host := newRegistry(t, nil)
	s := newTestStore(t, Options{})
	img := pullLayers(t, s, host, "wh:v1",
		gzLayer(t,
			dir("a/"), file("a/x", "x"), file("a/y", "y"),
			file("b", "b"),
			dir("c/"), file("c/z", "z"), dir("c/sub/"), file("c/sub/deep", "deep"),
			dir("d/"), file("d/keep", "keep"),
			withMode(dir("tmp/"), 0o1777),
			dir("etc/"), file("etc/hosts", "127.0.0.1 image\n"),
			dir("f/"), file("f/old", "old"),
		),
		zstdLayer(t,
			file("a/.wh.x", ""),
			file(".wh.b", ""),
			file("c/.wh..wh..opq", ""), file("c/new", "new"),
			file("d/added", "added"),
			file("e", "e"),
			file(".wh.f", ""), file("f/new", "new"),
		),
	)
	root, err := s.RootFS(context.Background(), img.Digest)
	if err != nil {
		t.Fatal(err)
	}
	for dir, want := range map[string]string{
		"":  "a,c,d,dev,e,etc,f,proc,sys,tmp",
		"f": "new",
		"a": "y",
		"c": "new",
		"d": "added,keep",
	} {
		if got := names(t, filepath.Join(root, dir)); got != want {
			t.Errorf("/%s holds %s, want %s", dir, got, want)
		}
	}
	if b, err := os.ReadFile(filepath.Join(root, "etc/hosts")); err != nil || string(b) != "127.0.0.1 image\n" {
		t.Errorf("etc/hosts = %q, %v (the image's must show)", b, err)
	}
	if fi, err := os.Lstat(filepath.Join(root, "tmp")); err != nil || fi.Mode() != fs.ModeDir|fs.ModeSticky|0o777 {
		t.Errorf("tmp: %v %v (the image's mode must show)", fi, err)
	}
	err = os.WriteFile(filepath.Join(root, "new"), nil, 0o644)
	if !errors.Is(err, syscall.EROFS) {
		t.Errorf("writing in the root filesystem: %v, want EROFS", err)
	}
	if got := mountsUnder(t, root); len(got) != 1 {
		t.Errorf("mounts at %s: %v", root, got)
	}
}

func TestRootFSRefcount(t *testing.T) {
	requireOverlay(t)
	host := newRegistry(t, nil)
	s := newTestStore(t, Options{})
	img := pullLayers(t, s, host, "rc:v1", gzLayer(t, file("f", "1")))
	ctx := context.Background()

	p1, err := s.RootFS(ctx, img.Digest)
	if err != nil {
		t.Fatal(err)
	}
	p2, err := s.RootFS(ctx, img.Digest)
	if err != nil {
		t.Fatal(err)
	}
	if p1 != p2 {
		t.Fatalf("paths differ: %s %s", p1, p2)
	}
	if got := mountsUnder(t, s.dir); len(got) != 1 {
		t.Fatalf("mounts: %v, want one", got)
	}
	if err := s.Release(img.Digest); err != nil {
		t.Fatal(err)
	}
	if got := mountsUnder(t, s.dir); len(got) != 1 {
		t.Fatalf("after one Release: %v, want still mounted", got)
	}
	if err := s.Release(img.Digest); err != nil {
		t.Fatal(err)
	}
	if got := mountsUnder(t, s.dir); len(got) != 0 {
		t.Fatalf("after the last Release: %v", got)
	}
	if _, err := os.Lstat(p1); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("mount point left: %v", err)
	}
	if err := s.Release(img.Digest); !errors.Is(err, ErrNotFound) {
		t.Errorf("Release of an unmounted digest: %v", err)
	}

	if _, err := s.RootFS(ctx, img.Digest); err != nil {
		t.Fatal(err)
	}
	if _, err := s.RootFS(ctx, "sha256:"+strings.Repeat("0", 64)); !errors.Is(err, ErrNotFound) {
		t.Errorf("RootFS of an unknown digest: %v", err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if got := mountsUnder(t, s.dir); len(got) != 0 {
		t.Fatalf("after Close: %v", got)
	}
	if _, err := s.RootFS(ctx, img.Digest); err == nil {
		t.Error("RootFS after Close succeeded")
	}
}

// A Store opened on the directory of one that did not close (a crash)
// unmounts what it left.
func TestRootFSStaleMount(t *testing.T) {
	requireOverlay(t)
	host := newRegistry(t, nil)
	dir := t.TempDir()
	s1 := newTestStore(t, Options{Dir: dir})
	img := pullLayers(t, s1, host, "stale:v1", gzLayer(t, file("f", "1")))
	if _, err := s1.RootFS(context.Background(), img.Digest); err != nil {
		t.Fatal(err)
	}
	s2 := newTestStore(t, Options{Dir: dir})
	if got := mountsUnder(t, dir); len(got) != 0 {
		t.Fatalf("NewStore left %v mounted", got)
	}
	p, err := s2.RootFS(context.Background(), img.Digest)
	if err != nil {
		t.Fatal(err)
	}
	if b, err := os.ReadFile(filepath.Join(p, "f")); err != nil || string(b) != "1" {
		t.Errorf("f = %q %v", b, err)
	}
}

func TestRootFSSkeleton(t *testing.T) {
	requireOverlay(t)
	host := newRegistry(t, nil)
	s := newTestStore(t, Options{})
	bare := pullLayers(t, s, host, "bare:v1",
		gzLayer(t, withMode(dir("./"), 0o711), file("bootstrap", "x")))
	linked := pullLayers(t, s, host, "linked:v1",
		gzLayer(t, symlink("tmp", "var/tmp"), withMode(dir("proc/"), 0o500), file("dev", "not a dir")))

	root, err := s.RootFS(context.Background(), bare.Digest)
	if err != nil {
		t.Fatal(err)
	}
	if got := names(t, root); got != "bootstrap,dev,proc,sys,tmp" {
		t.Errorf("root holds %s", got)
	}
	for name, want := range map[string]fs.FileMode{
		"":     fs.ModeDir | 0o711,
		"proc": fs.ModeDir | 0o555,
		"dev":  fs.ModeDir | 0o755,
		"sys":  fs.ModeDir | 0o555,
		"tmp":  fs.ModeDir | fs.ModeSticky | 0o777,
	} {
		if fi, err := os.Lstat(filepath.Join(root, name)); err != nil || fi.Mode() != want {
			t.Errorf("/%s: %v %v, want %v", name, fi, err, want)
		}
	}

	root, err = s.RootFS(context.Background(), linked.Digest)
	if err != nil {
		t.Fatal(err)
	}
	if target, err := os.Readlink(filepath.Join(root, "tmp")); err != nil || target != "var/tmp" {
		t.Errorf("tmp -> %q %v, want the image's symlink", target, err)
	}
	if fi, err := os.Lstat(filepath.Join(root, "proc")); err != nil || fi.Mode() != fs.ModeDir|0o500 {
		t.Errorf("proc: %v %v, want the image's directory", fi, err)
	}
	if fi, err := os.Lstat(filepath.Join(root, "dev")); err != nil || !fi.Mode().IsRegular() {
		t.Errorf("dev: %v %v, want the image's file", fi, err)
	}
}

// A hundred layers mount with both mount interfaces, also when the store's
// path is so long that layer paths do not fit mount options.
func TestRootFSManyLayers(t *testing.T) {
	requireOverlay(t)
	const n = 100
	layers := make([]v1.Layer, n)
	for i := range layers {
		layers[i] = gzLayer(t, file(fmt.Sprintf("l%03d", i), fmt.Sprint(i)), file("shared", fmt.Sprint(i)))
	}
	host := newRegistry(t, nil)
	push(t, host+"/many:v1", buildImage(t, "amd64", lambdaConfig, layers...))

	for _, tt := range []struct {
		name   string
		long   bool
		legacy bool
	}{
		{"new API", false, false},
		{"new API long path", true, false},
		{"mount(2)", false, true},
		{"mount(2) long path", true, true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			if tt.long {
				dir = filepath.Join(dir, strings.Repeat("d", 200), "with:colon,comma")
			}
			s := newTestStore(t, Options{Dir: dir})
			s.legacyMount = tt.legacy
			img, err := s.Pull(context.Background(), host+"/many:v1", "x86_64")
			if err != nil {
				t.Fatal(err)
			}
			root, err := s.RootFS(context.Background(), img.Digest)
			if err != nil {
				t.Fatal(err)
			}
			for p, want := range map[string]string{"l000": "0", "l099": "99", "shared": "99"} {
				if b, err := os.ReadFile(filepath.Join(root, p)); err != nil || string(b) != want {
					t.Errorf("%s = %q %v, want %q", p, b, err, want)
				}
			}
			if err := s.Close(); err != nil {
				t.Fatal(err)
			}
			if got := mountsUnder(t, dir); len(got) != 0 {
				t.Errorf("left mounted: %v", got)
			}
		})
	}
}
