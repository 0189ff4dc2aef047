package oci

import (
	"bufio"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

func TestMountRunDir(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("mounting a tmpfs needs root")
	}
	// The parent is a shared mount, as / is under systemd: a mount made
	// under it joins a peer group, and MS_PRIVATE must take it out.
	parent := t.TempDir()
	makeSharedMount(t, parent)
	// A space, which mountinfo writes as \040: isRunDirMount must
	// unescape it to find its tmpfs.
	dir := filepath.Join(parent, "run dir")
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
	if err := os.WriteFile(filepath.Join(dir, criuDumpConfigName+".tmp"), nil, 0o600); err != nil {
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
		// The test directory is on a tmpfs already: nothing to mount.
		skipOutsideCI(t, "the rest needs the test directory on a disk, not a tmpfs (TMPDIR=%q)", os.TempDir())
	}
	t.Cleanup(func() { unix.Unmount(dir, unix.MNT_DETACH) })
	m := mountInfoAt(t, dir)
	if len(m) != 1 {
		t.Fatalf("%d mounts on the run directory, want 1: %q", len(m), m)
	}
	if !strings.Contains(m[0].point, `\040`) {
		t.Fatalf("mountinfo names the run directory %q, without the escaped space the test is for", m[0].point)
	}
	if opts := strings.Split(m[0].opts, ","); !slices.Contains(opts, "nosuid") {
		t.Errorf("run directory's tmpfs mounted with %q, want nosuid", m[0].opts)
	}
	for _, f := range m[0].optional {
		if strings.HasPrefix(f, "shared:") {
			t.Errorf("run directory's tmpfs is in a peer group (%q under a shared parent), want it private", m[0].optional)
		}
	}
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
		skipOutsideCI(t, "needs the test directory on a disk, not a tmpfs (TMPDIR=%q; statfs %#x, %v)", os.TempDir(), st.Type, err)
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

// mountInfo is a line of /proc/self/mountinfo.
type mountInfo struct {
	point    string   // the mount point as written (escaped)
	opts     string   // the mount's options
	optional []string // shared:N, master:N, ...
}

// mountInfoAt returns the mounts whose mount point is dir, bottom first.
func mountInfoAt(t *testing.T, dir string) []mountInfo {
	t.Helper()
	data, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		t.Fatal(err)
	}
	var out []mountInfo
	for _, line := range strings.Split(string(data), "\n") {
		// id parent major:minor root mountpoint opts [optional...] - fstype source superopts
		fields := strings.Fields(line)
		sep := slices.Index(fields, "-")
		if sep < 6 || unescapeMountinfo(fields[4]) != dir {
			continue
		}
		out = append(out, mountInfo{point: fields[4], opts: fields[5], optional: fields[6:sep]})
	}
	return out
}

// makeSharedMount bind mounts dir on itself and makes that mount shared
// (mount --make-shared), until the test ends.
func makeSharedMount(t *testing.T, dir string) {
	t.Helper()
	if err := unix.Mount(dir, dir, "", unix.MS_BIND, ""); err != nil {
		t.Fatalf("bind mount %s on itself: %v", dir, err) // as MountRunDir's mount would fail
	}
	t.Cleanup(func() {
		if err := unix.Unmount(dir, unix.MNT_DETACH); err != nil {
			t.Errorf("unmount the shared parent %s: %v", dir, err)
		}
	})
	if err := unix.Mount("", dir, "", unix.MS_SHARED, ""); err != nil {
		t.Fatalf("make %s shared: %v", dir, err)
	}
	m := mountInfoAt(t, dir)
	if len(m) == 0 || !slices.ContainsFunc(m[len(m)-1].optional, func(f string) bool { return strings.HasPrefix(f, "shared:") }) {
		t.Fatalf("%s not shared after MS_SHARED: %q", dir, m)
	}
}

// skipOutsideCI skips a test that needs what this host does not give (a
// capability, a disk), except under CI (CI set), which runs as root on a
// disk and must run it: there it fails.
func skipOutsideCI(t *testing.T, format string, args ...any) {
	t.Helper()
	if os.Getenv("CI") != "" {
		t.Fatalf("CI must run this test: "+format, args...)
	}
	t.Skipf(format, args...)
}
