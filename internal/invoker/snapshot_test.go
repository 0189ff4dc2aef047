package invoker

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/kappa-run/kappa/internal/function"
)

func TestIsSnapshotName(t *testing.T) {
	for name, want := range map[string]bool{
		"1-0123abcd": true, "1-ff": true, "12-ff": false,
		"1-": false, "1-0123.part-99": false, "1-0123.broken": false, "1-0123.gone-5": false,
		"10-ff": false, "1-XYZ": false, "2-ff": false, "": false,
	} {
		if got := isSnapshotName(name, "1"); got != want {
			t.Errorf("isSnapshotName(%q, 1) = %v, want %v", name, got, want)
		}
	}
}

// snapshotTree makes dirs under root and returns what root holds after f.
func snapshotTree(t *testing.T, root string, dirs []string, f func()) []string {
	t.Helper()
	for _, d := range dirs {
		if err := os.MkdirAll(filepath.Join(root, d), 0o700); err != nil {
			t.Fatal(err)
		}
		os.WriteFile(filepath.Join(root, d, "pages.img"), []byte("x"), 0o600)
	}
	f()
	var left []string
	fns, _ := os.ReadDir(root)
	for _, fn := range fns {
		ents, _ := os.ReadDir(filepath.Join(root, fn.Name()))
		if len(ents) == 0 {
			left = append(left, fn.Name()+"/")
		}
		for _, e := range ents {
			left = append(left, fn.Name()+"/"+e.Name())
		}
	}
	slices.Sort(left)
	return left
}

func newSnapshotInvoker(t *testing.T, wanted func(context.Context, function.Config) bool) (*Invoker, string) {
	t.Helper()
	root := t.TempDir()
	inv := New(Options{Runtime: newFakeRuntime(), Images: &fakeImages{}, Region: "us-east-1", Account: "000000000000",
		SnapshotDir: root, SnapshotWanted: wanted})
	t.Cleanup(func() { inv.Close(context.Background()) })
	return inv, root
}

// TestDropSnapshots: a version's drop takes its snapshots and their
// leftovers, not another version's (10 is not 1) nor a snapshot being
// written, which its take throws away; a function's drop takes all but
// those being written.
func TestDropSnapshots(t *testing.T) {
	inv, root := newSnapshotInvoker(t, nil)
	dirs := []string{"f/1-aa", "f/1-bb.broken", "f/1-cc.part-1", "f/10-aa", "g/1-aa"}
	got := snapshotTree(t, root, dirs, func() { inv.DropSnapshots("f", "1") })
	want := []string{"f/1-cc.part-1", "f/10-aa", "g/1-aa"}
	if !slices.Equal(got, want) {
		t.Errorf("after dropping f:1: %v, want %v", got, want)
	}
	got = snapshotTree(t, root, nil, func() { inv.DropSnapshots("f", "") })
	want = []string{"f/1-cc.part-1", "g/1-aa"}
	if !slices.Equal(got, want) {
		t.Errorf("after dropping f: %v, want %v", got, want)
	}
	os.RemoveAll(filepath.Join(root, "f", "1-cc.part-1"))
	got = snapshotTree(t, root, nil, func() { inv.DropSnapshots("f", "") })
	if want := []string{"g/1-aa"}; !slices.Equal(got, want) {
		t.Errorf("after dropping f with nothing being written: %v, want %v", got, want)
	}
}

// TestStoreSnapshot: a wanted snapshot goes in place and replaces the
// version's snapshots of other fingerprints; an unwanted one is thrown
// away, with the function's directory if that leaves it empty.
func TestStoreSnapshot(t *testing.T) {
	want := true
	inv, root := newSnapshotInvoker(t, func(context.Context, function.Config) bool { return want })
	c := function.Config{Name: "f", Version: "1"}
	dir := filepath.Join(root, "f", "1-beef")
	part := dir + partInfix + "1"
	got := snapshotTree(t, root, []string{"f/1-beef.part-1", "f/1-dead", "f/1-cafe.part-2", "f/2-aa"}, func() {
		if err := inv.storeSnapshot(context.Background(), c, part, dir); err != nil {
			t.Fatal(err)
		}
	})
	if w := []string{"f/1-beef", "f/1-cafe.part-2", "f/2-aa"}; !slices.Equal(got, w) {
		t.Errorf("after storing: %v, want %v", got, w)
	}

	want = false
	c.Name = "h"
	dir = filepath.Join(root, "h", "1-beef")
	part = dir + partInfix + "1"
	got = snapshotTree(t, root, []string{"h/1-beef.part-1"}, func() {
		if err := inv.storeSnapshot(context.Background(), c, part, dir); !errors.Is(err, errSnapshotUnwanted) {
			t.Fatalf("unwanted snapshot stored: %v", err)
		}
	})
	if w := []string{"f/1-beef", "f/1-cafe.part-2", "f/2-aa"}; !slices.Equal(got, w) {
		t.Errorf("after throwing away: %v, want %v", got, w)
	}
}

// TestSweepSnapshots: a new Invoker removes what a stopped one left.
func TestSweepSnapshots(t *testing.T) {
	root := t.TempDir()
	got := snapshotTree(t, root, []string{"f/1-aa", "f/1-bb.part-7", "f/2-cc.gone-9", "f/3-dd.broken"}, func() {
		inv := New(Options{Runtime: newFakeRuntime(), Images: &fakeImages{}, Region: "us-east-1", SnapshotDir: root})
		inv.Close(context.Background())
	})
	if w := []string{"f/1-aa"}; !slices.Equal(got, w) {
		t.Errorf("after a new invoker: %v, want %v", got, w)
	}
}
