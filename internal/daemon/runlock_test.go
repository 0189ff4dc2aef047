package daemon

import (
	"path/filepath"
	"strings"
	"testing"
)

// TestLockRunDir: a second lock on one run directory fails, saying why; the
// lock file sits beside the directory; closing frees it.
func TestLockRunDir(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "run")
	a, err := lockRunDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	if a.Name() != dir+".lock" {
		t.Errorf("lock file %s, want %s.lock", a.Name(), dir)
	}
	if _, err := lockRunDir(dir + "/"); err == nil || !strings.Contains(err.Error(), "in use by another kappa server") {
		t.Fatalf("second lock: %v", err)
	}
	other, err := lockRunDir(dir + "2")
	if err != nil {
		t.Fatalf("another run directory: %v", err)
	}
	other.Close()
	a.Close()
	b, err := lockRunDir(dir)
	if err != nil {
		t.Fatalf("after release: %v", err)
	}
	b.Close()
}
