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
	for _, s := range seeds {
		f.Add(s, false)
		f.Add(s, true)
	}
	f.Fuzz(func(t *testing.T, data []byte, compress bool) {
		if compress {
			data = gz(t, data)
		}
		sb := newSandboxDir(t)
		_, err := Unpack(bytes.NewReader(data), sb.layer, UnpackOptions{MaxBytes: 1 << 20, KeepOwner: os.Geteuid() == 0})
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
