package image

import (
	"archive/tar"
	"bytes"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// FuzzUnpack feeds arbitrary bytes to Unpack, as a tar stream or gzipped,
// and checks that it never panics, never writes beside the layer directory,
// and never leaves a device, a setuid bit or a ".wh." name in the layer.
func FuzzUnpack(f *testing.F) {
	seeds := [][]byte{
		mkTar(f, file("../../evil", "x"), file("/abs", "y")),
		mkTar(f, symlink("link", "../sentinel"), file("link/secret", "pwned")),
		mkTar(f, symlink("a", "b"), symlink("b", "/"), dir("a/x/")),
		mkTar(f, hardlink("hl", "../sentinel/secret"), symlink("s", ".."), hardlink("h2", "s/sentinel/secret")),
		mkTar(f, symlink("s", "/etc/passwd"), hardlink("hl", "s")),
		mkTar(f, ent{name: "dev/null", typ: tar.TypeChar, major: 1, minor: 3}, ent{name: "p", typ: tar.TypeFifo, mode: 0o644}),
		mkTar(f, withMode(file("su", "x"), 0o6755), withMode(dir("d/"), 0o000), file("d/f", "x")),
		mkTar(f, file(".wh.x", ""), file("d/.wh..wh..opq", ""), file("a/.wh.b/c", ""), file(".wh..wh.plnk/1", "")),
		mkTar(f, dir("d/"), file("d/a", "1"), file("d", "2"), dir("d/"), symlink("d", "../sentinel"), file("d/x", "3")),
		mkTar(f, ent{name: "huge", typ: tar.TypeReg, size: 1 << 40, headerOnly: true}),
		mkTar(f, file("a", strings.Repeat("x", 3000)))[:1500],
	}
	// Raw zstd, so the fuzzer explores that decoder too.
	f.Add(zst(f, mkTar(f, file("z", "zstd"), symlink("l", "/"))), false)
	for _, s := range seeds {
		// Without the end-of-archive blocks, which Unpack does not need:
		// small inputs fuzz and minimise faster.
		s = bytes.TrimRight(s, "\x00")
		s = s[:(len(s)+511)/512*512]
		f.Add(s, false)
		f.Add(s, true)
	}
	// Metadata operations dominate each run; tmpfs makes them cheap.
	base, err := os.MkdirTemp("/dev/shm", "kappa-fuzz-")
	if err != nil {
		base = f.TempDir()
	} else {
		f.Cleanup(func() { os.RemoveAll(base) })
	}
	f.Fuzz(func(t *testing.T, data []byte, compress bool) {
		if compress {
			data = gz(t, data)
		}
		p, err := os.MkdirTemp(base, "run-")
		if err != nil {
			t.Fatal(err)
		}
		defer removeAll(p)
		sb := newSandboxDirIn(t, p)
		_, err = Unpack(bytes.NewReader(data), sb.layer, UnpackOptions{MaxBytes: 1 << 20, KeepOwner: os.Geteuid() == 0})
		sb.checkContained(t)
		if err != nil {
			return
		}
		filepath.WalkDir(sb.layer, func(p string, d fs.DirEntry, err error) error {
			if err == nil && strings.HasPrefix(d.Name(), whiteoutPrefix) {
				t.Errorf("created %s", p)
			}
			return nil
		})
	})
}

// removeAll removes p even when the layer made directories unwritable and
// the caller is not root.
func removeAll(p string) {
	if os.Geteuid() != 0 {
		filepath.WalkDir(p, func(q string, d fs.DirEntry, err error) error {
			if d != nil && d.IsDir() {
				os.Chmod(q, 0o700)
			}
			return nil
		})
	}
	os.RemoveAll(p)
}
