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

	// Kappa's own entries (an older server's, on the disk) do not stop it.
	if err := os.Mkdir(filepath.Join(dir, "crun"), 0o700); err != nil {
		t.Fatal(err)
	}
	got, err := MountRunDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	if want := map[bool]RunDirMount{true: RunDirElsewhere, false: RunDirMounted}[onTmpfs]; got != want {
		t.Fatalf("MountRunDir on a directory on tmpfs=%v: %v, want %v", onTmpfs, got, want)
	}
	if got != RunDirMounted {
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
	if again, err := MountRunDir(dir); err != nil || again != RunDirAdopted {
		t.Fatalf("second MountRunDir: %v, %v; want RunDirAdopted", again, err)
	}
	// Through a symbolic link too, as mountinfo names the target.
	link := filepath.Join(filepath.Dir(dir), "link")
	if err := os.Symlink(dir, link); err != nil {
		t.Fatal(err)
	}
	if again, err := MountRunDir(link); err != nil || again != RunDirAdopted {
		t.Fatalf("MountRunDir through a link: %v, %v; want RunDirAdopted", again, err)
	}
	if n := mountsAt(t, dir); n != 1 {
		t.Fatalf("%d mounts on the run directory after a second MountRunDir, want 1", n)
	}
	// A directory on another tmpfs is not Kappa's to unmount.
	sub := filepath.Join(dir, "sub")
	if err := os.Mkdir(sub, 0o700); err != nil {
		t.Fatal(err)
	}
	if got, err := MountRunDir(sub); err != nil || got != RunDirElsewhere {
		t.Fatalf("MountRunDir of a directory on a tmpfs that is not its mount: %v, %v", got, err)
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

// TestMountRunDirRefusesData: a directory on a disk that holds anything
// Kappa does not make there (data, a host's /run) is not covered.
func TestMountRunDirRefusesData(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("mounting a tmpfs needs root")
	}
	dir := t.TempDir()
	var st unix.Statfs_t
	if err := unix.Statfs(dir, &st); err != nil || st.Type == unix.TMPFS_MAGIC {
		t.Skipf("needs a test directory on a disk (statfs %#x, %v)", st.Type, err)
	}
	if err := os.WriteFile(filepath.Join(dir, "nats"), nil, 0o600); err != nil {
		t.Fatal(err)
	}
	got, err := MountRunDir(dir)
	if err == nil || got != RunDirElsewhere || !strings.Contains(err.Error(), `"nats"`) {
		t.Fatalf("MountRunDir of a directory holding data = %v, %v; want an error naming it", got, err)
	}
	if n := mountsAt(t, dir); n != 0 {
		t.Fatalf("%d mounts on a directory holding data", n)
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
