package oci

import (
	"log/slog"
	"os"
	"path/filepath"
	"testing"
)

func TestRaiseSharedUserLimits(t *testing.T) {
	dir := t.TempDir()
	low, high, garbage := filepath.Join(dir, "low"), filepath.Join(dir, "high"), filepath.Join(dir, "garbage")
	os.WriteFile(low, []byte("128\n"), 0o644)
	os.WriteFile(high, []byte("100000\n"), 0o644)
	os.WriteFile(garbage, []byte("garbage\n"), 0o644)
	old := sharedUserLimits
	defer func() { sharedUserLimits = old }()
	sharedUserLimits = []struct {
		path string
		min  int
	}{{filepath.Join(dir, "missing"), 1}, {garbage, 8192}, {high, 8192}, {low, 8192}} // what it skips first
	raiseSharedUserLimits(slog.New(slog.DiscardHandler))
	if b, _ := os.ReadFile(garbage); string(b) != "garbage\n" {
		t.Errorf("unreadable limit now %q, want it untouched", b)
	}
	raiseSharedUserLimits(slog.New(slog.DiscardHandler))
	if b, _ := os.ReadFile(low); string(b) != "8192" {
		t.Errorf("low limit now %q, want 8192", b)
	}
	if b, _ := os.ReadFile(high); string(b) != "100000\n" {
		t.Errorf("higher limit now %q, want it untouched", b)
	}
	if _, err := os.Stat(filepath.Join(dir, "missing")); err == nil {
		t.Error("a missing sysctl was created")
	}
}
