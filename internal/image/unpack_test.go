package image

import (
	"archive/tar"
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

func lstat(t *testing.T, p string) fs.FileInfo {
	t.Helper()
	fi, err := os.Lstat(p)
	if err != nil {
		t.Fatalf("lstat: %v", err)
	}
	return fi
}

func readFile(t *testing.T, p string) string {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatalf("read: %v", err)
	}
	return string(b)
}

func absent(t *testing.T, p string) {
	t.Helper()
	if _, err := os.Lstat(p); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("%s exists (err %v)", p, err)
	}
}

func TestUnpack(t *testing.T) {
	passwd, err := os.Lstat("/etc/passwd")
	if err != nil {
		t.Fatal(err)
	}
	passwdLinks := nlink(passwd)

	tests := []struct {
		name string
		tar  []byte
		opts UnpackOptions
		// wantErr is matched with errors.Is; nil means success.
		wantErr error
		// errText, if set, must appear in the error.
		errText string
		check   func(t *testing.T, dir string, st Stats)
	}{
		{
			name: "dotdot escape is resolved inside the layer",
			tar:  mkTar(t, file("../../evil", "x"), file("a/../../../sentinel/secret", "y")),
			check: func(t *testing.T, dir string, _ Stats) {
				if got := readFile(t, filepath.Join(dir, "evil")); got != "x" {
					t.Errorf("evil = %q", got)
				}
				if got := readFile(t, filepath.Join(dir, "sentinel/secret")); got != "y" {
					t.Errorf("sentinel/secret = %q", got)
				}
			},
		},
		{
			name: "absolute path is resolved inside the layer",
			tar:  mkTar(t, file("/etc/passwd", "root::0:0::/:/bin/sh\n")),
			check: func(t *testing.T, dir string, _ Stats) {
				if got := readFile(t, filepath.Join(dir, "etc/passwd")); !strings.HasPrefix(got, "root::") {
					t.Errorf("etc/passwd = %q", got)
				}
			},
		},
		{
			name:    "file through a symlink to the root",
			tar:     mkTar(t, symlink("link", "/"), file("link/tmp/evil", "x")),
			wantErr: ErrInvalid,
			errText: "symbolic link",
		},
		{
			name:    "file through a symlink to a sibling",
			tar:     mkTar(t, symlink("link", "../sentinel"), file("link/secret", "pwned")),
			wantErr: ErrInvalid,
		},
		{
			name:    "directory through a symlink",
			tar:     mkTar(t, symlink("link", "../sentinel"), dir("link/sub/new")),
			wantErr: ErrInvalid,
		},
		{
			name:    "symlink chain",
			tar:     mkTar(t, symlink("a", "b"), symlink("b", "c"), symlink("c", "../sentinel"), file("a/secret", "pwned")),
			wantErr: ErrInvalid,
		},
		{
			name: "symlink with an escaping target is only data",
			tar:  mkTar(t, symlink("s", "../../../../etc/shadow"), symlink("abs", "/etc")),
			check: func(t *testing.T, dir string, st Stats) {
				if got, _ := os.Readlink(filepath.Join(dir, "s")); got != "../../../../etc/shadow" {
					t.Errorf("s -> %q", got)
				}
				if st.Symlinks != 2 {
					t.Errorf("Symlinks = %d", st.Symlinks)
				}
			},
		},
		{
			name:    "hardlink to outside",
			tar:     mkTar(t, hardlink("hl", "../sentinel/secret")),
			wantErr: ErrInvalid,
			errText: "in the layer",
		},
		{
			name:    "hardlink to an absolute host file",
			tar:     mkTar(t, hardlink("hl", "/etc/passwd")),
			wantErr: ErrInvalid,
		},
		{
			name:    "hardlink through a symlink",
			tar:     mkTar(t, symlink("s", "../sentinel"), hardlink("hl", "s/secret")),
			wantErr: ErrInvalid,
			errText: "symbolic link",
		},
		{
			name:    "hardlink through a symlink to an absolute dir",
			tar:     mkTar(t, symlink("etc", "/etc"), hardlink("hl", "etc/passwd")),
			wantErr: ErrInvalid,
		},
		{
			name: "hardlink to a symlink links the symlink itself",
			tar:  mkTar(t, symlink("s", "/etc/passwd"), hardlink("hl", "s")),
			check: func(t *testing.T, dir string, _ Stats) {
				fi := lstat(t, filepath.Join(dir, "hl"))
				if fi.Mode()&fs.ModeSymlink == 0 {
					t.Errorf("hl is %v, want a symlink", fi.Mode())
				}
			},
		},
		{
			name: "hardlink to a file in the layer",
			tar:  mkTar(t, file("a/f", "data"), hardlink("b/g", "a/f"), hardlink("self", "self")),
			check: func(t *testing.T, dir string, st Stats) {
				if got := readFile(t, filepath.Join(dir, "b/g")); got != "data" {
					t.Errorf("b/g = %q", got)
				}
				if n := nlink(lstat(t, filepath.Join(dir, "a/f"))); n != 2 {
					t.Errorf("a/f has %d links", n)
				}
				if st.Hardlinks != 1 {
					t.Errorf("Hardlinks = %d", st.Hardlinks)
				}
			},
		},
		{
			name:    "hardlink to a directory",
			tar:     mkTar(t, dir("d/"), hardlink("hl", "d")),
			wantErr: ErrInvalid,
		},
		{
			name:    "hardlink replacing the directory holding its target",
			tar:     mkTar(t, file("d/f", "x"), hardlink("d", "d/f")),
			wantErr: ErrInvalid,
		},
		{
			name: "device nodes are skipped, fifos kept",
			tar: mkTar(t,
				ent{name: "dev/null", typ: tar.TypeChar, mode: 0o666, major: 1, minor: 3},
				ent{name: "dev/sda", typ: tar.TypeBlock, mode: 0o660, major: 8},
				ent{name: "dev/wh", typ: tar.TypeChar, mode: 0o600},
				ent{name: "run/fifo", typ: tar.TypeFifo, mode: 0o640},
			),
			check: func(t *testing.T, dir string, st Stats) {
				absent(t, filepath.Join(dir, "dev/null"))
				absent(t, filepath.Join(dir, "dev/sda"))
				absent(t, filepath.Join(dir, "dev/wh"))
				fi := lstat(t, filepath.Join(dir, "run/fifo"))
				if fi.Mode()&fs.ModeNamedPipe == 0 || fi.Mode().Perm() != 0o640 {
					t.Errorf("fifo mode %v", fi.Mode())
				}
				if st.Skipped != 3 || st.Fifos != 1 {
					t.Errorf("Skipped %d Fifos %d", st.Skipped, st.Fifos)
				}
			},
		},
		{
			name: "setuid and setgid are cleared, sticky and modes kept",
			tar: mkTar(t,
				withMode(file("bin/su", "x"), 0o4755),
				withMode(file("bin/wall", "x"), 0o2755),
				withMode(file("private", "x"), 0o600),
				withMode(dir("shared/"), 0o3777),
				withMode(dir("ro/"), 0o555),
				file("ro/inside", "x"),
			),
			check: func(t *testing.T, dir string, _ Stats) {
				for p, want := range map[string]fs.FileMode{
					"bin/su":   0o755,
					"bin/wall": 0o755,
					"private":  0o600,
					"shared":   fs.ModeDir | fs.ModeSticky | 0o777,
					"ro":       fs.ModeDir | 0o555,
				} {
					if got := lstat(t, filepath.Join(dir, p)).Mode(); got != want {
						t.Errorf("%s mode %v, want %v", p, got, want)
					}
				}
				if got := lstat(t, filepath.Join(dir, "ro")).ModTime(); !got.Equal(testTime) {
					t.Errorf("ro mtime %v, want %v", got, testTime)
				}
				os.Chmod(filepath.Join(dir, "ro"), 0o755) // so that a non-root cleanup can remove it
			},
		},
		{
			name: "implicit parents are 0755",
			tar:  mkTar(t, file("x/y/z", "1")),
			check: func(t *testing.T, dir string, _ Stats) {
				if m := lstat(t, filepath.Join(dir, "x/y")).Mode(); m != fs.ModeDir|0o755 {
					t.Errorf("x/y mode %v", m)
				}
			},
		},
		{
			name: "duplicates: last wins, directory replaced by file and back",
			tar: mkTar(t,
				file("f", "one"), file("f", "two"),
				dir("d/"), file("d/inner", "x"), file("d", "now a file"),
				file("g", "file"), dir("g/"), file("g/child", "c"),
				symlink("s", "/etc"), file("s", "plain"),
				withMode(dir("m/"), 0o700), withMode(dir("m/"), 0o751),
				file("keep/a", "a"), dir("keep/"), file("keep/b", "b"),
			),
			check: func(t *testing.T, dir string, _ Stats) {
				for p, want := range map[string]string{"f": "two", "d": "now a file", "g/child": "c", "s": "plain", "keep/a": "a", "keep/b": "b"} {
					if got := readFile(t, filepath.Join(dir, p)); got != want {
						t.Errorf("%s = %q, want %q", p, got, want)
					}
				}
				if m := lstat(t, filepath.Join(dir, "m")).Mode(); m != fs.ModeDir|0o751 {
					t.Errorf("m mode %v", m)
				}
			},
		},
		{
			name:    "unsupported compression",
			tar:     append([]byte{0xfd, '7', 'z', 'X', 'Z', 0}, make([]byte, 100)...),
			wantErr: ErrInvalid,
			errText: "neither gzip nor zstd",
		},
		{
			name:    "truncated tar",
			tar:     mkTar(t, file("big", strings.Repeat("x", 5000)))[:2048],
			wantErr: ErrInvalid,
			errText: "truncated",
		},
		{
			name:    "truncated gzip",
			tar:     func() []byte { b := gz(t, mkTar(t, file("a", strings.Repeat("abc", 1000)))); return b[:len(b)-10] }(),
			wantErr: ErrInvalid,
		},
		{
			name:    "truncated zstd",
			tar:     func() []byte { b := zst(t, mkTar(t, file("a", strings.Repeat("abc", 1000)))); return b[:len(b)/2] }(),
			wantErr: ErrInvalid,
		},
		{
			name:    "gzip bomb beyond the cap",
			tar:     gz(t, mkTar(t, file("zeros", string(make([]byte, 8<<20))))),
			opts:    UnpackOptions{MaxBytes: 1 << 20},
			wantErr: ErrInvalid,
			errText: "image exceeds 1048576 bytes uncompressed",
		},
		{
			name:    "zstd bomb beyond the cap",
			tar:     zst(t, mkTar(t, file("zeros", string(make([]byte, 8<<20))))),
			opts:    UnpackOptions{MaxBytes: 1 << 20},
			wantErr: ErrInvalid,
			errText: "exceeds",
		},
		{
			name:    "huge declared size",
			tar:     mkTar(t, ent{name: "huge", typ: tar.TypeReg, mode: 0o644, size: 1 << 40, headerOnly: true}),
			wantErr: ErrInvalid,
			errText: "image exceeds 10 GB uncompressed",
		},
		{
			name:    "many files beyond the cap",
			tar:     mkTar(t, file("a", strings.Repeat("a", 600)), file("b", strings.Repeat("b", 600))),
			opts:    UnpackOptions{MaxBytes: 1000},
			wantErr: ErrInvalid,
			errText: "exceeds",
		},
		{
			name:    "diffID mismatch",
			tar:     mkTar(t, file("a", "a")),
			opts:    UnpackOptions{DiffID: "sha256:" + strings.Repeat("0", 64)},
			wantErr: ErrInvalid,
			errText: "diffID",
		},
		{
			name:    "too deep",
			tar:     mkTar(t, file(strings.Repeat("d/", maxNameDepth)+"f", "x")),
			wantErr: ErrInvalid,
		},
		{
			name: "whiteout-named paths and AUFS metadata are never created",
			tar: mkTar(t,
				file("a/.wh.b/c", "x"),
				file(".wh..wh.plnk/123", "x"),
				dir(".wh..wh.orph/"),
				file(".wh.", ""),
			),
			check: func(t *testing.T, dir string, st Stats) {
				es, _ := os.ReadDir(dir)
				for _, e := range es {
					if strings.HasPrefix(e.Name(), ".wh.") {
						t.Errorf("created %s", e.Name())
					}
				}
				if st.Skipped != 4 {
					t.Errorf("Skipped = %d", st.Skipped)
				}
			},
		},
		{
			name: "empty stream is an empty layer",
			tar:  nil,
			check: func(t *testing.T, dir string, st Stats) {
				if st.Entries != 0 || st.DiffID != digestOf(nil) {
					t.Errorf("stats %+v", st)
				}
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			sb := newSandboxDir(t)
			st, err := Unpack(bytes.NewReader(tt.tar), sb.layer, tt.opts)
			sb.checkContained(t)
			if n := nlink(lstatNoFail("/etc/passwd")); n != passwdLinks {
				t.Errorf("/etc/passwd now has %d links", n)
			}
			if tt.wantErr != nil {
				if !errors.Is(err, tt.wantErr) {
					t.Fatalf("err = %v, want %v", err, tt.wantErr)
				}
				if tt.errText != "" && !strings.Contains(err.Error(), tt.errText) {
					t.Errorf("err = %q, want it to say %q", err, tt.errText)
				}
				return
			}
			if err != nil {
				t.Fatalf("Unpack: %v", err)
			}
			if tt.check != nil {
				tt.check(t, sb.layer, st)
			}
		})
	}
}

func lstatNoFail(p string) fs.FileInfo {
	fi, _ := os.Lstat(p)
	return fi
}

func TestUnpackCompression(t *testing.T) {
	plain := mkTar(t, dir("etc/"), file("etc/hello", "hello"), symlink("bin", "usr/bin"))
	want := digestOf(plain)
	for _, tt := range []struct {
		name, compression string
		data              []byte
	}{
		{"plain", "none", plain},
		{"gzip", "gzip", gz(t, plain)},
		{"zstd", "zstd", zst(t, plain)},
		{"gzip multistream", "gzip", append(gz(t, plain[:512]), gz(t, plain[512:])...)},
	} {
		t.Run(tt.name, func(t *testing.T) {
			sb := newSandboxDir(t)
			st, err := Unpack(bytes.NewReader(tt.data), sb.layer, UnpackOptions{DiffID: want})
			if err != nil {
				t.Fatal(err)
			}
			if st.Compression != tt.compression || st.DiffID != want || st.Size != int64(len(plain)) {
				t.Errorf("stats %+v, want compression %s diffID %s size %d", st, tt.compression, want, len(plain))
			}
			if got := readFile(t, filepath.Join(sb.layer, "etc/hello")); got != "hello" {
				t.Errorf("etc/hello = %q", got)
			}
			sb.checkContained(t)
		})
	}
}

func TestUnpackOwnership(t *testing.T) {
	requireRoot(t)
	sb := newSandboxDir(t)
	data := mkTar(t,
		withOwner(dir("home/"), 1000, 1000),
		withOwner(file("home/f", "x"), 1234, 5678),
		withOwner(symlink("home/l", "f"), 42, 43),
		withOwner(file("neg", "x"), -5, 1<<40),
	)
	if _, err := Unpack(bytes.NewReader(data), sb.layer, UnpackOptions{KeepOwner: true}); err != nil {
		t.Fatal(err)
	}
	for p, want := range map[string][2]uint32{"home": {1000, 1000}, "home/f": {1234, 5678}, "home/l": {42, 43}, "neg": {0, 0}} {
		st := lstat(t, filepath.Join(sb.layer, p)).Sys().(*syscall.Stat_t)
		if st.Uid != want[0] || st.Gid != want[1] {
			t.Errorf("%s owned by %d:%d, want %d:%d", p, st.Uid, st.Gid, want[0], want[1])
		}
	}
}

func TestUnpackWhiteouts(t *testing.T) {
	requireRoot(t)
	sb := newSandboxDir(t)
	data := mkTar(t,
		file(".wh.gone", ""),
		file("etc/.wh.hosts", ""),
		file("keep/.wh.here", ""), file("keep/here", "present in this layer"),
		file("later/.wh.x", ""),
		file("later/x", "re-added after the whiteout"),
		file("opq/.wh..wh..opq", ""), file("opq/new", "n"),
		file(".wh.etc", ""),                       // etc exists in this layer: kept
		file(".wh.re", ""), file("re/child", "c"), // whited out, then a child
		file(".wh.rd", ""), dir("rd/"), // whited out, then a directory
	)
	st, err := Unpack(bytes.NewReader(data), sb.layer, UnpackOptions{})
	if err != nil {
		t.Fatal(err)
	}
	sb.checkContained(t)
	for _, p := range []string{"gone", "etc/hosts"} {
		fi := lstat(t, filepath.Join(sb.layer, p))
		if !isWhiteout(fi) {
			t.Errorf("%s is %v, want a 0/0 whiteout", p, fi.Mode())
		}
	}
	for p, want := range map[string]string{"keep/here": "present in this layer", "later/x": "re-added after the whiteout"} {
		if got := readFile(t, filepath.Join(sb.layer, p)); got != want {
			t.Errorf("%s = %q", p, got)
		}
	}
	if !lstat(t, filepath.Join(sb.layer, "etc")).IsDir() {
		t.Error("etc was whited out in its own layer")
	}
	for _, d := range []string{"opq", "re", "rd"} {
		if fi := lstat(t, filepath.Join(sb.layer, d)); !fi.IsDir() || !isOpaque(filepath.Join(sb.layer, d)) {
			t.Errorf("%s: %v, want an opaque directory", d, fi.Mode())
		}
	}
	if isOpaque(filepath.Join(sb.layer, "keep")) {
		t.Error("keep marked opaque")
	}
	if st.Whiteouts != 6 || st.Opaques != 3 {
		t.Errorf("Whiteouts %d Opaques %d", st.Whiteouts, st.Opaques)
	}
	entries, _ := os.ReadDir(filepath.Join(sb.layer, "opq"))
	if len(entries) != 1 || entries[0].Name() != "new" {
		t.Errorf("opq holds %v", entries)
	}
}

// A failing source reader is reported as itself, not as a bad layer.
func TestUnpackSourceError(t *testing.T) {
	boom := errors.New("connection reset by test")
	data := gz(t, mkTar(t, file("a", strings.Repeat("x", 100000))))
	r := io.MultiReader(bytes.NewReader(data[:len(data)/2]), errReader{boom})
	sb := newSandboxDir(t)
	_, err := Unpack(r, sb.layer, UnpackOptions{})
	if !errors.Is(err, boom) || errors.Is(err, ErrInvalid) {
		t.Fatalf("err = %v, want the source's error and not ErrInvalid", err)
	}
}

type errReader struct{ err error }

func (e errReader) Read([]byte) (int, error) { return 0, e.err }

// A symlink planted before a directory of the same name cannot redirect
// the directory's children even when created by an earlier duplicate.
func TestUnpackSymlinkSwap(t *testing.T) {
	sb := newSandboxDir(t)
	data := mkTar(t, dir("d/"), file("d/a", "1"), symlink("d", "../sentinel"), file("d/secret", "pwned"))
	_, err := Unpack(bytes.NewReader(data), sb.layer, UnpackOptions{})
	if !errors.Is(err, ErrInvalid) {
		t.Fatalf("err = %v, want ErrInvalid", err)
	}
	sb.checkContained(t)
}

// The caller's dir may itself be a symlink; only the layer's own links are
// never followed.
func TestUnpackDirIsSymlink(t *testing.T) {
	sb := newSandboxDir(t)
	link := filepath.Join(t.TempDir(), "l")
	if err := os.Symlink(sb.layer, link); err != nil {
		t.Fatal(err)
	}
	if _, err := Unpack(bytes.NewReader(mkTar(t, file("f", "x"))), link, UnpackOptions{}); err != nil {
		t.Fatal(err)
	}
	if got := readFile(t, filepath.Join(sb.layer, "f")); got != "x" {
		t.Errorf("f = %q", got)
	}
}

// TestUnpackMaxEntries: a layer of more entries than the cap fails with
// ErrInvalid (a small layer of empty entries is otherwise cheap to make
// and costly to keep track of); one at the cap unpacks.
func TestUnpackMaxEntries(t *testing.T) {
	ents := []ent{dir("d"), file("d/a", "1"), file("d/b", "2")}
	sb := newSandboxDir(t)
	if _, err := Unpack(bytes.NewReader(mkTar(t, ents...)), sb.layer, UnpackOptions{MaxEntries: 3}); err != nil {
		t.Fatalf("3 entries, cap 3: %v", err)
	}
	sb = newSandboxDir(t)
	ents = append(ents, file("d/c", "3"))
	_, err := Unpack(bytes.NewReader(mkTar(t, ents...)), sb.layer, UnpackOptions{MaxEntries: 3})
	if !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), "more than 3 entries") {
		t.Fatalf("4 entries, cap 3: err = %v, want ErrInvalid naming the cap", err)
	}
}

// TestDirHeaderDropsPAX: what is kept of a directory until its layer ends
// holds no PAX records (a layer may give each directory 1 MiB of them).
func TestDirHeaderDropsPAX(t *testing.T) {
	h := &tar.Header{Name: "d/", Typeflag: tar.TypeDir, Mode: 0o750, Uid: 7, Gid: 8, ModTime: testTime,
		PAXRecords: map[string]string{"comment": strings.Repeat("x", 1<<20)}}
	k := dirHeader(h)
	if k.PAXRecords != nil || k.Name != "" || k.Mode != 0o750 || k.Uid != 7 || k.Gid != 8 || !k.ModTime.Equal(testTime) {
		t.Fatalf("dirHeader kept %+v", k)
	}
}

// TestUnpackDirMetadataBound: a layer whose directories, long-named and
// many, would hold more than maxDirBytes of metadata until it ends is
// refused with ErrInvalid instead of growing the server's memory.
func TestUnpackDirMetadataBound(t *testing.T) {
	old := maxDirBytes
	maxDirBytes = 4000
	defer func() { maxDirBytes = old }()
	var ents []ent
	for i := range 10 {
		ents = append(ents, dir(fmt.Sprintf("%03d-%s/", i, strings.Repeat("d", 200))))
	}
	sb := newSandboxDir(t)
	_, err := Unpack(bytes.NewReader(mkTar(t, ents...)), sb.layer, UnpackOptions{})
	if !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), "metadata") {
		t.Fatalf("err = %v, want ErrInvalid for the directories' metadata", err)
	}
	sb = newSandboxDir(t)
	if _, err := Unpack(bytes.NewReader(mkTar(t, ents[:5]...)), sb.layer, UnpackOptions{}); err != nil {
		t.Fatalf("five of them, under the bound: %v", err)
	}
}
