package envinit

import (
	"os"
	"path/filepath"
	"slices"
	"testing"
)

func mkExtensions(t *testing.T, dir string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Join(dir, "sub"), 0o755); err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(dir, "b-ext"), []byte("#!/bin/sh\n"), 0o755)
	os.WriteFile(filepath.Join(dir, "a-ext"), []byte("#!/bin/sh\n"), 0o755)
	os.WriteFile(filepath.Join(dir, "not-exec"), []byte("x"), 0o644)
	os.Symlink("/bin/sh", filepath.Join(dir, "link"))
}

// TestExtensions: executable regular files only, sorted; a symlinked
// extensions directory resolves inside the root filesystem, never on the
// host.
func TestExtensions(t *testing.T) {
	root := t.TempDir()
	mkExtensions(t, filepath.Join(root, "opt", "extensions"))
	if got := Extensions(root); !slices.Equal(got, []string{"a-ext", "b-ext"}) {
		t.Errorf("Extensions = %v, want [a-ext b-ext]", got)
	}

	// /opt/extensions → ../ext, inside the image: listed.
	inside := t.TempDir()
	mkExtensions(t, filepath.Join(inside, "ext"))
	os.MkdirAll(filepath.Join(inside, "opt"), 0o755)
	os.Symlink("../ext", filepath.Join(inside, "opt", "extensions"))
	if got := Extensions(inside); !slices.Equal(got, []string{"a-ext", "b-ext"}) {
		t.Errorf("relative symlink inside the image: %v, want [a-ext b-ext]", got)
	}

	// /opt/extensions → an absolute host path: it means that path inside
	// the image, which does not exist, not the host's directory.
	host := t.TempDir()
	mkExtensions(t, host)
	outside := t.TempDir()
	os.MkdirAll(filepath.Join(outside, "opt"), 0o755)
	os.Symlink(host, filepath.Join(outside, "opt", "extensions"))
	if got := Extensions(outside); len(got) != 0 {
		t.Errorf("absolute symlink to a host directory listed %v", got)
	}
	// /opt → ../../.. climbing out: stays at the image's root.
	climb := t.TempDir()
	os.MkdirAll(filepath.Join(climb, "opt"), 0o755)
	os.Symlink("../../../../../../"+host, filepath.Join(climb, "opt", "extensions"))
	if got := Extensions(climb); len(got) != 0 {
		t.Errorf("climbing symlink listed %v", got)
	}
	if got := Extensions(filepath.Join(t.TempDir(), "missing")); got != nil {
		t.Errorf("missing root: %v", got)
	}
}
