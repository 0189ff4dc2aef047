package oci

import (
	"bufio"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

func TestMountRunDir(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("mounting a tmpfs needs root")
	}
	dir := filepath.Join(t.TempDir(), "run")
	if err := os.Mkdir(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	var st unix.Statfs_t
	if err := unix.Statfs(dir, &st); err != nil {
		t.Fatal(err)
	}
	onTmpfs := st.Type == unix.TMPFS_MAGIC

	mounted, err := MountRunDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	if mounted == onTmpfs {
		t.Fatalf("MountRunDir on a directory on tmpfs=%v: mounted=%v", onTmpfs, mounted)
	}
	if !mounted {
		return // the test directory is on a tmpfs already: nothing to mount
	}
	t.Cleanup(func() { unix.Unmount(dir, unix.MNT_DETACH) })
	if err := unix.Statfs(dir, &st); err != nil || st.Type != unix.TMPFS_MAGIC {
		t.Fatalf("after MountRunDir: statfs type %#x, %v", st.Type, err)
	}
	fi, err := os.Stat(dir)
	if err != nil || fi.Mode().Perm() != 0o700 {
		t.Fatalf("run directory mode %v, %v; want 0700", fi.Mode().Perm(), err)
	}
	// A server started after a crash finds its predecessor's tmpfs, keeps
	// it (Cleanup reads what is left there) and owns it: no second mount.
	if again, err := MountRunDir(dir); err != nil || !again {
		t.Fatalf("second MountRunDir: ours=%v, %v", again, err)
	}
	if n := mountsAt(t, dir); n != 1 {
		t.Fatalf("%d mounts on the run directory after a second MountRunDir, want 1", n)
	}
	// A directory on another tmpfs is not Kappa's to unmount.
	sub := filepath.Join(dir, "sub")
	if err := os.Mkdir(sub, 0o700); err != nil {
		t.Fatal(err)
	}
	if ours, err := MountRunDir(sub); err != nil || ours {
		t.Fatalf("MountRunDir of a directory on a tmpfs that is not its mount: ours=%v, %v", ours, err)
	}
	if n := mountsAt(t, sub); n != 0 {
		t.Fatalf("%d mounts on a directory already on a tmpfs, want 0", n)
	}
	// Device nodes made there open: per-environment /dev trees need it.
	null := filepath.Join(dir, "null")
	if err := unix.Mknod(null, unix.S_IFCHR|0o666, int(unix.Mkdev(1, 3))); err != nil {
		t.Fatal(err)
	}
	f, err := os.OpenFile(null, os.O_WRONLY, 0)
	if err != nil {
		t.Fatalf("a device node on the run directory's tmpfs: %v", err)
	}
	f.Close()
	if err := os.WriteFile(filepath.Join(dir, "state"), []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := UnmountRunDir(dir); err != nil {
		t.Fatal(err)
	}
	if err := unix.Statfs(dir, &st); err != nil || st.Type == unix.TMPFS_MAGIC {
		t.Fatalf("after UnmountRunDir: statfs type %#x, %v", st.Type, err)
	}
	if _, err := os.Stat(filepath.Join(dir, "state")); !os.IsNotExist(err) {
		t.Fatalf("the tmpfs's files outlived it: %v", err)
	}
	if err := UnmountRunDir(dir); err != nil {
		t.Fatalf("UnmountRunDir of a directory with nothing mounted: %v", err)
	}
}

// mountsAt counts the mounts whose mount point is dir.
func mountsAt(t *testing.T, dir string) int {
	t.Helper()
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	n := 0
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if fields := strings.Fields(sc.Text()); len(fields) > 4 && unescapeMountinfo(fields[4]) == dir {
			n++
		}
	}
	return n
}
