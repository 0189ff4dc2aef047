package oci

import (
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"unicode"

	"github.com/kappa-run/kappa/internal/sandbox"
	"golang.org/x/sys/unix"
)

func TestCRIUConfigs(t *testing.T) {
	empty, dev := "/run/kappa/empty", "/run/kappa/dev"
	dump, restore := criuConfigs(empty, dev)

	// The masked paths that are directories on this host; the others
	// (files, or missing) are runc's /dev/null binds or not masked at all.
	wantDump := []string{"network-lock skip"}
	var dirs, others []string
	for _, p := range maskedPaths {
		if fi, err := os.Stat(p); err == nil && fi.IsDir() {
			dirs = append(dirs, p)
			wantDump = append(wantDump, "external mnt["+p+"]:kappa-masked-dir")
		} else {
			others = append(others, p)
		}
	}
	wantDump = append(wantDump, "external mnt[/dev]:kappa-dev")
	t.Logf("masked directories here: %v; files or missing: %v", dirs, others)

	if !strings.HasSuffix(dump, "\n") || !strings.HasSuffix(restore, "\n") {
		t.Errorf("configurations do not end in a newline: %q, %q", dump, restore)
	}
	if got := strings.Split(strings.TrimSuffix(dump, "\n"), "\n"); !slices.Equal(got, wantDump) {
		t.Errorf("dump config lines\n%q\nwant\n%q", got, wantDump)
	}
	for _, p := range others {
		if strings.Contains(dump, "mnt["+p+"]") {
			t.Errorf("dump config names %s, which is no directory here", p)
		}
	}

	wantRestore := []string{
		"network-lock skip",
		"external mnt[kappa-masked-dir]:" + empty,
		"external mnt[kappa-dev]:" + dev,
	}
	if got := strings.Split(strings.TrimSuffix(restore, "\n"), "\n"); !slices.Equal(got, wantRestore) {
		t.Errorf("restore config lines\n%q\nwant\n%q", got, wantRestore)
	}
	// Nothing of the dump's side: no host path as a mount's key.
	if strings.Contains(restore, "mnt[/") || strings.Contains(restore, ":kappa-") {
		t.Errorf("restore config has dump lines: %q", restore)
	}
}

func TestYardName(t *testing.T) {
	tests := []struct {
		name, line, want string
	}{
		{"cpuset", "32 31 0:29 / /sys/fs/cgroup/cpuset rw,nosuid,nodev,noexec,relatime shared:10 - cgroup cgroup rw,cpuset", "cpuset"},
		{"co-mounted", "33 31 0:30 / /sys/fs/cgroup/cpu,cpuacct rw,nosuid,nodev,noexec,relatime shared:11 - cgroup cgroup rw,cpu,cpuacct", "cpu,cpuacct"},
		{"net", "34 31 0:31 / /sys/fs/cgroup/net_cls,net_prio rw,nosuid,nodev,noexec,relatime shared:12 - cgroup cgroup rw,net_cls,net_prio", "net_cls,net_prio"},
		{"named", "40 31 0:37 / /sys/fs/cgroup/systemd rw,nosuid,nodev,noexec,relatime shared:9 - cgroup cgroup rw,xattr,name=systemd", "systemd"},
		{"controller and name", "41 31 0:38 / /mnt/cg rw,relatime - cgroup cgroup rw,cpu,name=foo", "cpu,foo"},
		{"options ignored", "35 31 0:32 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,nosuid,nodev,noexec,relatime,xattr,release_agent=/x,memory", "memory"},
		{"unified", "28 22 0:25 / /sys/fs/cgroup/unified rw,nosuid,nodev,noexec,relatime shared:4 - cgroup2 cgroup2 rw,nsdelegate,memory_recursiveprot", "unified"},
		{"nothing of its own", "42 31 0:39 / /mnt/x rw,relatime - cgroup cgroup rw,xattr", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h, err := parseCgroupMounts(strings.NewReader(tt.line))
			if err != nil {
				t.Fatal(err)
			}
			if len(h.hierarchies) != 1 {
				t.Fatalf("%d hierarchies, want 1", len(h.hierarchies))
			}
			if got := yardName(h.hierarchies[0]); got != tt.want {
				t.Errorf("yardName(%q) = %q, want %q", h.hierarchies[0].order, got, tt.want)
			}
		})
	}
}

// fakeCgroupHost returns a host with one hierarchy per entry of superopts
// ("cgroup2" for a unified one), each "mounted" at a temporary directory,
// and those directories.
func fakeCgroupHost(t *testing.T, superopts ...string) (*cgroupHost, []string) {
	t.Helper()
	var mi strings.Builder
	var dirs []string
	for i, opts := range superopts {
		dir := t.TempDir()
		fstype := "cgroup"
		if opts == "cgroup2" {
			fstype, opts = "cgroup2", "rw,nsdelegate"
		}
		fmt.Fprintf(&mi, "%d 1 0:%d / %s rw,nosuid,nodev,noexec,relatime - %s %s %s\n",
			30+i, 100+i, strings.ReplaceAll(dir, " ", `\040`), fstype, fstype, opts)
		dirs = append(dirs, dir)
	}
	h, err := parseCgroupMounts(strings.NewReader(mi.String()))
	if err != nil {
		t.Fatal(err)
	}
	if len(h.hierarchies) != len(superopts) {
		t.Fatalf("%d hierarchies, want %d", len(h.hierarchies), len(superopts))
	}
	for i, hr := range h.hierarchies {
		if hr.mountpoint != dirs[i] {
			t.Fatalf("hierarchy %d at %q, want %q", i, hr.mountpoint, dirs[i])
		}
	}
	return h, dirs
}

func writeTestFile(t *testing.T, path, content string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

func readTestFile(t *testing.T, path string) string {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(string(data))
}

func TestCheckLimits(t *testing.T) {
	const (
		path     = "/kappa/env1"
		memoryMB = 512
	)
	memory := strconv.Itoa(memoryMB << 20)
	quota := strconv.FormatInt(cpuQuota(memoryMB), 10)
	pids := strconv.Itoa(pidsLimit)

	// An override replaces (or, with remove, deletes) one file of the
	// correct cgroup, in hierarchy number h.
	type override struct {
		h       int
		file    string
		content string
		remove  bool
	}
	type test struct {
		name    string
		over    *override
		wantErr string // "" for none
	}
	run := func(t *testing.T, superopts []string, files map[int]map[string]string, tests []test) {
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				h, dirs := fakeCgroupHost(t, superopts...)
				for i, dir := range dirs {
					if err := os.MkdirAll(filepath.Join(dir, path), 0o755); err != nil {
						t.Fatal(err)
					}
					for f, v := range files[i] {
						writeTestFile(t, filepath.Join(dir, path, f), v)
					}
				}
				if o := tt.over; o != nil {
					p := filepath.Join(dirs[o.h], path, o.file)
					if o.remove {
						if err := os.Remove(p); err != nil {
							t.Fatal(err)
						}
					} else {
						writeTestFile(t, p, o.content)
					}
				}
				err := h.checkLimits(path, memoryMB)
				switch {
				case tt.wantErr == "" && err != nil:
					t.Errorf("checkLimits = %v, want nil", err)
				case tt.wantErr != "" && err == nil:
					t.Errorf("checkLimits = nil, want an error naming %q", tt.wantErr)
				case tt.wantErr != "" && !strings.Contains(err.Error(), tt.wantErr):
					t.Errorf("checkLimits = %v, want an error naming %q", err, tt.wantErr)
				default:
					if err != nil {
						t.Logf("checkLimits = %v", err)
					}
				}
			})
		}
	}

	t.Run("v1", func(t *testing.T) {
		// A hybrid host: every controller on v1, a unified hierarchy
		// without controllers.
		superopts := []string{"rw,cpuset", "rw,cpu,cpuacct", "rw,memory", "rw,devices", "rw,freezer",
			"rw,pids", "rw,xattr,name=systemd", "cgroup2"}
		const cpu, mem, devices, pidsH, unified = 1, 2, 3, 5, 7
		files := map[int]map[string]string{
			0:       {"cpuset.cpus": "0-3\n", "cpuset.mems": "0\n"},
			cpu:     {"cpu.cfs_quota_us": quota + "\n", "cpu.cfs_period_us": "100000\n"},
			mem:     {"memory.limit_in_bytes": memory + "\n", "memory.memsw.limit_in_bytes": memory + "\n"}, // swap = memory
			devices: {"devices.list": "c 1:3 rwm\nc 1:5 rwm\nc 1:7 rwm\nc 1:8 rwm\nc 1:9 rwm\nc 5:0 rwm\nc 136:* rwm\n"},
			pidsH:   {"pids.max": pids + "\n"},
			// The controllers are v1's: what the unified hierarchy has of
			// these files is not checked.
			unified: {"memory.max": "max\n", "cpu.max": "max 100000\n", "pids.max": "max\n"},
		}
		run(t, superopts, files, []test{
			{name: "right"},
			{name: "wrong memory", over: &override{h: mem, file: "memory.limit_in_bytes", content: "9223372036854771712\n"}, wantErr: "memory.limit_in_bytes"},
			{name: "wrong pids", over: &override{h: pidsH, file: "pids.max", content: "max\n"}, wantErr: "pids.max"},
			{name: "wrong cpu quota", over: &override{h: cpu, file: "cpu.cfs_quota_us", content: "-1\n"}, wantErr: "cpu.cfs_quota_us"},
			{name: "every device", over: &override{h: devices, file: "devices.list", content: "a *:* rwm\n"}, wantErr: "every device allowed"},
			{name: "no memory limit file", over: &override{h: mem, file: "memory.limit_in_bytes", remove: true}, wantErr: "memory.limit_in_bytes"},
			{name: "wrong swap", over: &override{h: mem, file: "memory.memsw.limit_in_bytes", content: "9223372036854771712\n"}, wantErr: "memory.memsw.limit_in_bytes"},
			{name: "swap as memory and more", over: &override{h: mem, file: "memory.memsw.limit_in_bytes", content: strconv.Itoa(2*memoryMB<<20) + "\n"}, wantErr: "memory.memsw.limit_in_bytes"},
			// A kernel without swap accounting has no memsw files.
			{name: "no swap accounting", over: &override{h: mem, file: "memory.memsw.limit_in_bytes", remove: true}},
			{name: "no devices list", over: &override{h: devices, file: "devices.list", remove: true}, wantErr: "devices.list"},
		})
	})

	t.Run("v2", func(t *testing.T) {
		files := map[int]map[string]string{
			0: {
				"memory.max": memory + "\n",
				"cpu.max":    fmt.Sprintf("%s %d\n", quota, cpuPeriod),
				"pids.max":   pids + "\n",
			},
		}
		run(t, []string{"cgroup2"}, files, []test{
			{name: "right"},
			{name: "wrong memory", over: &override{file: "memory.max", content: "max\n"}, wantErr: "memory.max"},
			{name: "wrong pids", over: &override{file: "pids.max", content: "max\n"}, wantErr: "pids.max"},
			{name: "wrong cpu quota", over: &override{file: "cpu.max", content: "max 100000\n"}, wantErr: "cpu.max"},
			{name: "wrong cpu period", over: &override{file: "cpu.max", content: quota + " 1000000\n"}, wantErr: "cpu.max"},
		})
	})
}

func TestPrepareParent(t *testing.T) {
	const parent = "/kappa/abcd"

	t.Run("cpuset", func(t *testing.T) {
		h, dirs := fakeCgroupHost(t, "rw,cpuset", "rw,memory", "cgroup2")
		cs := dirs[0]
		writeTestFile(t, filepath.Join(cs, "cpuset.cpus"), "0-3\n")
		writeTestFile(t, filepath.Join(cs, "cpuset.mems"), "0\n")
		// cgroupfs makes these on mkdir, empty; a temporary directory
		// does not.
		for _, d := range []string{"kappa", "kappa/abcd"} {
			writeTestFile(t, filepath.Join(cs, d, "cpuset.cpus"), "")
			writeTestFile(t, filepath.Join(cs, d, "cpuset.mems"), "\n")
		}
		if err := h.prepareParent(parent); err != nil {
			t.Fatal(err)
		}
		for _, d := range []string{"kappa", "kappa/abcd"} {
			if got := readTestFile(t, filepath.Join(cs, d, "cpuset.cpus")); got != "0-3" {
				t.Errorf("%s cpuset.cpus = %q, want 0-3", d, got)
			}
			if got := readTestFile(t, filepath.Join(cs, d, "cpuset.mems")); got != "0" {
				t.Errorf("%s cpuset.mems = %q, want 0", d, got)
			}
		}
		for _, d := range dirs[1:] {
			if fi, err := os.Stat(filepath.Join(d, parent)); err != nil || !fi.IsDir() {
				t.Errorf("%s: %v", filepath.Join(d, parent), err)
			}
		}
		// Again: nothing to do.
		if err := h.prepareParent(parent); err != nil {
			t.Errorf("second prepareParent: %v", err)
		}
	})

	t.Run("set values kept", func(t *testing.T) {
		h, dirs := fakeCgroupHost(t, "rw,cpuset")
		cs := dirs[0]
		writeTestFile(t, filepath.Join(cs, "cpuset.cpus"), "0-3\n")
		writeTestFile(t, filepath.Join(cs, "cpuset.mems"), "0\n")
		writeTestFile(t, filepath.Join(cs, "kappa", "cpuset.cpus"), "1\n")
		writeTestFile(t, filepath.Join(cs, "kappa", "cpuset.mems"), "")
		writeTestFile(t, filepath.Join(cs, "kappa", "abcd", "cpuset.cpus"), "")
		writeTestFile(t, filepath.Join(cs, "kappa", "abcd", "cpuset.mems"), "0-1\n")
		if err := h.prepareParent(parent); err != nil {
			t.Fatal(err)
		}
		for _, c := range []struct{ file, want string }{
			{"kappa/cpuset.cpus", "1"},      // kept
			{"kappa/cpuset.mems", "0"},      // from the root
			{"kappa/abcd/cpuset.cpus", "1"}, // from kappa, not the root
			{"kappa/abcd/cpuset.mems", "0-1"},
		} {
			if got := readTestFile(t, filepath.Join(cs, c.file)); got != c.want {
				t.Errorf("%s = %q, want %q", c.file, got, c.want)
			}
		}
	})

	t.Run("cpuset files missing", func(t *testing.T) {
		// Not cgroupfs: the new directory has no cpuset files, and
		// prepareParent says so rather than going on.
		h, dirs := fakeCgroupHost(t, "rw,cpuset")
		writeTestFile(t, filepath.Join(dirs[0], "cpuset.cpus"), "0-3\n")
		writeTestFile(t, filepath.Join(dirs[0], "cpuset.mems"), "0\n")
		if err := h.prepareParent(parent); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("prepareParent = %v, want a missing file", err)
		}
	})

	t.Run("no cpuset", func(t *testing.T) {
		h, dirs := fakeCgroupHost(t, "rw,cpu,cpuacct", "rw,memory", "rw,xattr,name=systemd", "cgroup2")
		if err := h.prepareParent(parent); err != nil {
			t.Fatal(err)
		}
		for _, d := range dirs {
			if fi, err := os.Stat(filepath.Join(d, parent)); err != nil || !fi.IsDir() {
				t.Errorf("%s: %v", filepath.Join(d, parent), err)
			}
			// Only the directories.
			var found []string
			_ = filepath.WalkDir(d, func(p string, e os.DirEntry, err error) error {
				if err == nil && !e.IsDir() {
					found = append(found, p)
				}
				return nil
			})
			if len(found) > 0 {
				t.Errorf("files made: %v", found)
			}
		}
		if err := h.prepareParent(parent); err != nil {
			t.Errorf("second prepareParent: %v", err)
		}
	})
}

func TestMakeDevDir(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root: makeDevDir makes device nodes")
	}
	dir := filepath.Join(t.TempDir(), "dev")
	if err := makeDevDir(dir); err != nil {
		if errors.Is(err, unix.EPERM) {
			skipOutsideCI(t, "needs CAP_MKNOD (root outside a user namespace or a container without it): %v", err)
		}
		t.Fatal(err)
	}
	devices := map[string][2]uint32{
		"null": {1, 3}, "zero": {1, 5}, "full": {1, 7}, "random": {1, 8}, "urandom": {1, 9}, "tty": {5, 0},
	}
	links := map[string]string{
		"fd": "/proc/self/fd", "stdin": "/proc/self/fd/0", "stdout": "/proc/self/fd/1", "stderr": "/proc/self/fd/2",
		"ptmx": "pts/ptmx",
	}
	if _, err := os.Stat("/proc/kcore"); err == nil {
		links["core"] = "/proc/kcore" // as runc
	}
	inodes := map[string]uint64{}
	check := func(t *testing.T) {
		t.Helper()
		var st unix.Stat_t
		if err := unix.Stat(dir, &st); err != nil {
			t.Fatal(err)
		}
		if st.Mode&0o7777 != 0o755 {
			t.Errorf("%s mode %o, want 755", dir, st.Mode&0o7777)
		}
		for name, dev := range devices {
			p := filepath.Join(dir, name)
			if err := unix.Lstat(p, &st); err != nil {
				t.Errorf("%s: %v", name, err)
				continue
			}
			if st.Mode&unix.S_IFMT != unix.S_IFCHR || st.Rdev != unix.Mkdev(dev[0], dev[1]) || st.Mode&0o7777 != 0o666 {
				t.Errorf("%s: mode %o device %d:%d, want a character device %d:%d with mode 666",
					name, st.Mode, unix.Major(st.Rdev), unix.Minor(st.Rdev), dev[0], dev[1])
			}
			inodes[name] = st.Ino
		}
		for name, want := range links {
			if got, err := os.Readlink(filepath.Join(dir, name)); err != nil || got != want {
				t.Errorf("%s -> %q (%v), want %q", name, got, err, want)
			}
		}
		for _, d := range []string{"pts", "mqueue"} {
			if fi, err := os.Lstat(filepath.Join(dir, d)); err != nil || !fi.IsDir() {
				t.Errorf("%s: %v, want a directory", d, err)
			}
		}
		ents, err := os.ReadDir(dir)
		if err != nil {
			t.Fatal(err)
		}
		if len(ents) != len(devices)+len(links)+2 {
			var names []string
			for _, e := range ents {
				names = append(names, e.Name())
			}
			t.Errorf("entries %v, want only the devices, links and directories", names)
		}
	}
	check(t)
	first := maps.Clone(inodes)

	// Again: nothing is made anew.
	if err := makeDevDir(dir); err != nil {
		t.Fatalf("second makeDevDir: %v", err)
	}
	check(t)
	for name, ino := range first {
		if inodes[name] != ino {
			t.Errorf("%s made again", name)
		}
	}

	// Wrong things in place are replaced, and the directory's mode is put
	// back.
	if err := os.Remove(filepath.Join(dir, "null")); err != nil {
		t.Fatal(err)
	}
	writeTestFile(t, filepath.Join(dir, "null"), "not a device")
	if err := os.Remove(filepath.Join(dir, "zero")); err != nil {
		t.Fatal(err)
	}
	if err := unix.Mknod(filepath.Join(dir, "zero"), unix.S_IFCHR|0o666, int(unix.Mkdev(1, 3))); err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(filepath.Join(dir, "stdin")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("/proc/self/fd/9", filepath.Join(dir, "stdin")); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := makeDevDir(dir); err != nil {
		t.Fatalf("makeDevDir over wrong entries: %v", err)
	}
	check(t)
}

func TestDevMountPoints(t *testing.T) {
	run := t.TempDir()
	devDir := filepath.Join(run, "dev")
	if err := os.Mkdir(devDir, 0o755); err != nil {
		t.Fatal(err)
	}
	src := t.TempDir()
	file := filepath.Join(src, "init")
	writeTestFile(t, file, "#!/bin/sh\n")
	dir := filepath.Join(src, "dir")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	s := &Sandbox{r: &Runtime{runDir: run}, spec: sandbox.Spec{Mounts: []sandbox.Mount{
		{Source: file, Destination: "/dev/kappa-init"},
		{Source: dir, Destination: "/dev/somedir"},
		{Source: file, Destination: "/opt/x"},
		{Source: file, Destination: "/dev/a/b"},
		{Source: dir, Destination: "/dev"},
	}}}
	check := func() {
		t.Helper()
		if fi, err := os.Lstat(filepath.Join(devDir, "kappa-init")); err != nil || !fi.Mode().IsRegular() {
			t.Errorf("kappa-init: %v, want a regular file", err)
		}
		if fi, err := os.Lstat(filepath.Join(devDir, "somedir")); err != nil || !fi.IsDir() {
			t.Errorf("somedir: %v, want a directory", err)
		}
		var found []string
		_ = filepath.WalkDir(run, func(p string, e os.DirEntry, err error) error {
			if err == nil {
				found = append(found, strings.TrimPrefix(p, run))
			}
			return nil
		})
		if want := []string{"", "/dev", "/dev/kappa-init", "/dev/somedir"}; !slices.Equal(found, want) {
			t.Errorf("made %q, want %q", found, want)
		}
	}
	if err := s.devMountPoints(devDir); err != nil {
		t.Fatal(err)
	}
	check()
	if err := s.devMountPoints(devDir); err != nil {
		t.Fatalf("second devMountPoints: %v", err)
	}
	check()

	s.spec.Mounts = []sandbox.Mount{{Source: filepath.Join(src, "missing"), Destination: "/dev/gone"}}
	if err := s.devMountPoints(devDir); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("devMountPoints with a missing source = %v, want a missing file", err)
	}
}

func TestRemoveCgYard(t *testing.T) {
	if err := removeCgYard(filepath.Join(t.TempDir(), "missing")); err != nil {
		t.Errorf("removeCgYard of a missing yard = %v", err)
	}
	if os.Geteuid() != 0 {
		// umount2 fails with EPERM, not EINVAL, without CAP_SYS_ADMIN.
		t.Skip("needs root for the rest: removeCgYard unmounts")
	}

	t.Run("plain directories", func(t *testing.T) {
		yard := filepath.Join(t.TempDir(), "cgyard")
		for _, n := range []string{"cpuset", "cpu,cpuacct", "memory", "systemd", "unified"} {
			if err := os.MkdirAll(filepath.Join(yard, n), 0o755); err != nil {
				t.Fatal(err)
			}
		}
		if err := removeCgYard(yard); err != nil {
			t.Fatalf("removeCgYard = %v", err)
		}
		if _, err := os.Lstat(yard); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("yard still there: %v", err)
		}
	})

	t.Run("bind mount", func(t *testing.T) {
		target := t.TempDir()
		writeTestFile(t, filepath.Join(target, "cgroup.procs"), "")
		yard := filepath.Join(t.TempDir(), "cgyard")
		at := filepath.Join(yard, "memory")
		if err := os.MkdirAll(at, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := unix.Mount(target, at, "", unix.MS_BIND, ""); err != nil {
			skipOutsideCI(t, "needs CAP_SYS_ADMIN over this mount namespace, to bind mount: %v", err)
		}
		t.Cleanup(func() { _ = unix.Unmount(at, unix.MNT_DETACH) })
		if err := removeCgYard(yard); err != nil {
			t.Fatalf("removeCgYard = %v", err)
		}
		if _, err := os.Lstat(yard); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("yard still there: %v", err)
		}
		// The hierarchy itself is untouched.
		if _, err := os.Stat(filepath.Join(target, "cgroup.procs")); err != nil {
			t.Errorf("bound directory lost its file: %v", err)
		}
	})

	t.Run("not empty", func(t *testing.T) {
		yard := filepath.Join(t.TempDir(), "cgyard")
		writeTestFile(t, filepath.Join(yard, "memory", "stray"), "x")
		if err := os.Mkdir(filepath.Join(yard, "pids"), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := removeCgYard(yard); err == nil {
			t.Error("removeCgYard of a yard with a non-empty entry = nil, want an error")
		}
		if _, err := os.Lstat(yard); err != nil {
			t.Errorf("yard removed despite the error: %v", err)
		}
	})
}

func TestLastLine(t *testing.T) {
	tests := []struct{ in, want string }{
		{"", ""},
		{"one", "one"},
		{"first\nsecond\n", "second"},
		{"first\nsecond\n\n  \n\t\n", "second"},
		{"  padded  \n", "padded"},
		{"a\r\nb\r\n", "b"},
		{"Error (criu/cr-check.c:1): x\nLooks good.\n", "Looks good."},
	}
	for _, tt := range tests {
		if got := lastLine([]byte(tt.in)); got != tt.want {
			t.Errorf("lastLine(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

func TestCriuLogTail(t *testing.T) {
	dir := t.TempDir()
	if got := criuLogTail(filepath.Join(dir, "missing.log")); got != "" {
		t.Errorf("missing log: %q", got)
	}

	clean := filepath.Join(dir, "clean.log")
	writeTestFile(t, clean, "(00.000010) Version: 4.2\n(00.000200) Warn  (criu/kerndat.c:1): something\n(00.100000) Restore finished successfully.\n")
	if got := criuLogTail(clean); got != "" {
		t.Errorf("log without errors: %q", got)
	}

	var log strings.Builder
	var want []string
	log.WriteString("(00.000010) Version: 4.2\n")
	for i := 1; i <= 7; i++ {
		line := fmt.Sprintf("(00.%06d)      1: Error (criu/cr-restore.c:%d): failure %d", i, 100+i, i)
		fmt.Fprintf(&log, "%s\n(00.%06d) something else %d\n", line, i, i)
		if i > 2 {
			want = append(want, strings.TrimSpace(line))
		}
	}
	log.WriteString("(00.100000) Error (criu/cr-restore.c:2000): last\n")
	want = append(want[1:], "(00.100000) Error (criu/cr-restore.c:2000): last")
	many := filepath.Join(dir, "restore.log")
	writeTestFile(t, many, log.String())
	wantTail := " (criu: " + strings.Join(want, "; ") + ")"
	if got := criuLogTail(many); got != wantTail {
		t.Errorf("criuLogTail =\n%q\nwant\n%q", got, wantTail)
	}

	few := filepath.Join(dir, "dump.log")
	writeTestFile(t, few, "(00.1) ok\n(00.2) Error (criu/cr-dump.c:1): one\n(00.3) ok\n(00.4) Error (criu/cr-dump.c:2): two\n")
	if got, want := criuLogTail(few), " (criu: (00.2) Error (criu/cr-dump.c:1): one; (00.4) Error (criu/cr-dump.c:2): two)"; got != want {
		t.Errorf("criuLogTail = %q, want %q", got, want)
	}
}

// inheritFDTests are inheritFDArgs' cases, and FuzzInheritFDArgs' seeds.
var inheritFDTests = []struct {
	name    string
	data    string
	want    []string // nil for none
	wantErr string   // "" for none
}{
	{name: "runc's", data: `["/dev/null","pipe:[100]","pipe:[101]"]`,
		want: []string{"--inherit-fd", "fd[1]:pipe:[100]", "--inherit-fd", "fd[2]:pipe:[101]"}},
	{name: "escaped", data: `["/dev/null","pipe:\u005b100]","\u0070ipe:[101]"]`,
		want: []string{"--inherit-fd", "fd[1]:pipe:[100]", "--inherit-fd", "fd[2]:pipe:[101]"}},
	{name: "stdout only", data: `["/dev/null","pipe:[100]","/dev/null"]`,
		want: []string{"--inherit-fd", "fd[1]:pipe:[100]"}},
	{name: "stderr only", data: `["/dev/null","/tmp/out","pipe:[101]"]`,
		want: []string{"--inherit-fd", "fd[2]:pipe:[101]"}},
	// Output that was no pipe is restored as what it was: no argument,
	// and none of it reaches the restore's pipes.
	{name: "no pipes", data: `["/dev/null","/dev/null","/var/log/x"]`},
	{name: "sockets", data: `["socket:[1]","socket:[2]","socket:[3]"]`},
	{name: "stdin ignored", data: `["pipe:[99]","/dev/null","/dev/null"]`},
	{name: "prefix is exact", data: `["x","PIPE:[100]"," pipe:[101]"]`},
	{name: "prefix only", data: `["x","pipe:","pipe:"]`,
		want: []string{"--inherit-fd", "fd[1]:pipe:", "--inherit-fd", "fd[2]:pipe:"}},
	{name: "short", data: `["/dev/null","pipe:[100]"]`,
		want: []string{"--inherit-fd", "fd[1]:pipe:[100]"}},
	{name: "one", data: `["pipe:[99]"]`},
	{name: "empty array", data: `[]`},
	{name: "null", data: `null`},
	// encoding/json leaves a string alone for null: "".
	{name: "null entries", data: `[null,null,"pipe:[101]"]`,
		want: []string{"--inherit-fd", "fd[2]:pipe:[101]"}},
	{name: "extra entries", data: `["/dev/null","pipe:[100]","pipe:[101]","pipe:[102]","socket:[103]"]`,
		want: []string{"--inherit-fd", "fd[1]:pipe:[100]", "--inherit-fd", "fd[2]:pipe:[101]"}},
	{name: "whitespace", data: " \n[ \"x\" ,\t\"pipe:[100]\" ]\n",
		want: []string{"--inherit-fd", "fd[1]:pipe:[100]"}},
	// Not an array of strings.
	{name: "object", data: `{"1":"pipe:[100]","2":"pipe:[101]"}`, wantErr: "cannot unmarshal object"},
	{name: "string", data: `"pipe:[100]"`, wantErr: "cannot unmarshal string"},
	{name: "number", data: `1`, wantErr: "cannot unmarshal number"},
	{name: "numbers", data: `[0,1,2]`, wantErr: "cannot unmarshal number"},
	{name: "a number among strings", data: `["/dev/null","pipe:[100]",2]`, wantErr: "cannot unmarshal number"},
	{name: "bool", data: `["/dev/null",true,"pipe:[101]"]`, wantErr: "cannot unmarshal bool"},
	{name: "nested array", data: `["/dev/null",["pipe:[100]"],"pipe:[101]"]`, wantErr: "cannot unmarshal array"},
	{name: "nested object", data: `["/dev/null",{"fd":"pipe:[100]"},"pipe:[101]"]`, wantErr: "cannot unmarshal object"},
	{name: "empty", data: ``, wantErr: "unexpected end"},
	{name: "not JSON", data: `pipe:[100]`, wantErr: "invalid character"},
	{name: "truncated", data: `["/dev/null","pipe:[100]"`, wantErr: "unexpected end"},
	{name: "trailing data", data: `["/dev/null","pipe:[100]","pipe:[101]"] ["x"]`, wantErr: "invalid character"},
	{name: "single quotes", data: `['/dev/null','pipe:[100]']`, wantErr: "invalid character"},
	{name: "bad escape", data: `["x","pipe:\q"]`, wantErr: "invalid character"},
	// A pipe's entry that would smuggle a second argument, or that no
	// argument can carry, is refused; what is not passed on is not
	// looked at.
	{name: "newline", data: `["/dev/null","pipe:[100]\n--action-script=/x","pipe:[101]"]`, wantErr: "control character"},
	{name: "NUL", data: `["/dev/null","pipe:[100]","pipe:[101]\u0000x"]`, wantErr: "control character"},
	{name: "carriage return", data: `["/dev/null","pipe:[100]\r","pipe:[101]"]`, wantErr: "control character"},
	{name: "tab", data: `["/dev/null","pipe:[100]\t","pipe:[101]"]`, wantErr: "control character"},
	{name: "DEL", data: `["/dev/null","pipe:[100]\u007f","pipe:[101]"]`, wantErr: "control character"},
	{name: "C1 control", data: `["/dev/null","pipe:[100]\u0085","pipe:[101]"]`, wantErr: "control character"},
	{name: "control characters elsewhere", data: `["pipe:[1]\n","/tmp/a\nb\u0000","pipe:[101]","pipe:[3]\n"]`,
		want: []string{"--inherit-fd", "fd[2]:pipe:[101]"}},
	{name: "not UTF-8", data: "[\"x\",\"pipe:[\xff]\",\"y\"]",
		want: []string{"--inherit-fd", "fd[1]:pipe:[\uFFFD]"}},
	{name: "longest", data: `["x","pipe:` + strings.Repeat("9", maxDescriptorLen-len("pipe:")) + `"]`,
		want: []string{"--inherit-fd", "fd[1]:pipe:" + strings.Repeat("9", maxDescriptorLen-len("pipe:"))}},
	{name: "too long", data: `["x","pipe:[1]","pipe:` + strings.Repeat("9", maxDescriptorLen) + `"]`, wantErr: "bytes, at most"},
	{name: "huge elsewhere", data: `["` + strings.Repeat("a", 1<<20) + `","pipe:[100]","pipe:[101]","` + strings.Repeat("b", 1<<20) + `"]`,
		want: []string{"--inherit-fd", "fd[1]:pipe:[100]", "--inherit-fd", "fd[2]:pipe:[101]"}},
	{name: "many entries", data: `["/dev/null","pipe:[100]","pipe:[101]"` + strings.Repeat(`,"pipe:[7]"`, 100000) + `]`,
		want: []string{"--inherit-fd", "fd[1]:pipe:[100]", "--inherit-fd", "fd[2]:pipe:[101]"}},
	{name: "deep", data: strings.Repeat("[", 20000) + strings.Repeat("]", 20000), wantErr: "exceeded max depth"},
}

func TestInheritFDArgs(t *testing.T) {
	for _, tt := range inheritFDTests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := inheritFDArgs([]byte(tt.data))
			switch {
			case tt.wantErr == "" && err != nil:
				t.Fatalf("inheritFDArgs = %v, want nil", err)
			case tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)):
				t.Fatalf("inheritFDArgs = %q, %v; want an error with %q", got, err, tt.wantErr)
			case err != nil && got != nil:
				t.Errorf("inheritFDArgs = %q with the error %v, want none", got, err)
			}
			if !slices.Equal(got, tt.want) {
				t.Errorf("inheritFDArgs = %q, want %q", got, tt.want)
			}
		})
	}
}

// FuzzInheritFDArgs: no input panics; what comes out is "--inherit-fd"
// pairs for fd 1, then fd 2, each a pipe, with nothing that could be a
// second argument; and it agrees with what the JSON holds.
func FuzzInheritFDArgs(f *testing.F) {
	for _, tt := range inheritFDTests {
		if len(tt.data) < 1<<12 {
			f.Add([]byte(tt.data))
		}
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		args, err := inheritFDArgs(data)
		var descriptors []string
		jsonErr := json.Unmarshal(data, &descriptors)
		if jsonErr != nil {
			if err == nil {
				t.Fatalf("inheritFDArgs(%q) = %q, nil; encoding/json says %v", data, args, jsonErr)
			}
			return
		}
		if err != nil {
			if args != nil {
				t.Fatalf("inheritFDArgs(%q) = %q with the error %v", data, args, err)
			}
			// Refused only for a pipe's entry at fd 1 or 2.
			for fd := 1; fd <= 2 && fd < len(descriptors); fd++ {
				d := descriptors[fd]
				if strings.HasPrefix(d, "pipe:") && (len(d) > maxDescriptorLen || strings.ContainsFunc(d, unicode.IsControl)) {
					return
				}
			}
			t.Fatalf("inheritFDArgs(%q) = %v, but fd 1 and 2 hold nothing to refuse", data, err)
		}
		if len(args)%2 != 0 || len(args) > 4 {
			t.Fatalf("inheritFDArgs(%q) = %q: not up to two pairs", data, args)
		}
		var fds []int
		for i := 0; i < len(args); i += 2 {
			if args[i] != "--inherit-fd" {
				t.Fatalf("inheritFDArgs(%q): argument %d is %q, want --inherit-fd", data, i, args[i])
			}
			v := args[i+1]
			fd := -1
			switch {
			case strings.HasPrefix(v, "fd[1]:pipe:"):
				fd = 1
			case strings.HasPrefix(v, "fd[2]:pipe:"):
				fd = 2
			default:
				t.Fatalf("inheritFDArgs(%q): argument %q is no fd[1] or fd[2] pipe", data, v)
			}
			if strings.ContainsFunc(v, unicode.IsControl) || strings.ContainsAny(v, "\n\x00") {
				t.Fatalf("inheritFDArgs(%q): argument %q holds a control character", data, v)
			}
			if len(v) > len("fd[1]:")+maxDescriptorLen {
				t.Fatalf("inheritFDArgs(%q): argument of %d bytes", data, len(v))
			}
			if want := fmt.Sprintf("fd[%d]:%s", fd, descriptors[fd]); v != want {
				t.Fatalf("inheritFDArgs(%q): argument %q, want %q", data, v, want)
			}
			fds = append(fds, fd)
		}
		// Every pipe at fd 1 and 2 is passed on, in order, once.
		var want []int
		for fd := 1; fd <= 2 && fd < len(descriptors); fd++ {
			if strings.HasPrefix(descriptors[fd], "pipe:") {
				want = append(want, fd)
			}
		}
		if !slices.Equal(fds, want) {
			t.Fatalf("inheritFDArgs(%q) passes fds %v, want %v", data, fds, want)
		}
	})
}

// TestCRIURestoreCommandDescriptors: criuRestoreCommand reads the
// snapshot's descriptors.json, fails on a missing or malformed one before
// it takes a descriptor of the network namespace, and puts inheritFDArgs'
// arguments after runc's own.
func TestCRIURestoreCommandDescriptors(t *testing.T) {
	nsFile, err := os.Open(os.DevNull) // stands for the namespace: only dup'ed
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { nsFile.Close() })
	r := &Runtime{runDir: t.TempDir(), criuArgv: []string{"/opt/criu/sbin/criu"}}
	r.yardOnce.Do(func() {}) // no yard made: cgYard only names it
	src := t.TempDir()
	s := &Sandbox{
		r:         r,
		dir:       t.TempDir(),
		netns:     netNS{f: nsFile},
		cgPath:    "/kappa/env1",
		hostsBind: "/run/kappa/hosts",
		spec: sandbox.Spec{
			RestoreFrom: t.TempDir(),
			RootFS:      "/rootfs",
			Mounts:      []sandbox.Mount{{Source: src, Destination: "/opt/x"}},
		},
	}
	descriptors := filepath.Join(s.spec.RestoreFrom, "descriptors.json")
	restoreCommand := func() ([]string, error) {
		t.Helper()
		cmd, err := s.criuRestoreCommand(t.Context(), t.TempDir(), "/x/pid")
		if err != nil {
			if cmd != nil {
				t.Errorf("criuRestoreCommand = %v with the error %v", cmd, err)
			}
			return nil, err
		}
		if len(cmd.ExtraFiles) != 1 {
			t.Fatalf("ExtraFiles %v, want the network namespace", cmd.ExtraFiles)
		}
		cmd.ExtraFiles[0].Close()
		return cmd.Args, nil
	}
	// What follows runc's options: the inherited pipes, then the bind
	// mounts.
	tail := func(args []string) []string {
		t.Helper()
		i := slices.Index(args, "/dev/null:/dev/null")
		if i < 0 || args[i-1] != "--ext-mount-map" {
			t.Fatalf("no --ext-mount-map /dev/null:/dev/null in %q", args)
		}
		if j := slices.Index(args, "fd[3]:extRootNetNS"); j < 0 || j > i {
			t.Fatalf("no --inherit-fd fd[3]:extRootNetNS before it in %q", args)
		}
		return args[i+1:]
	}
	binds := []string{"--ext-mount-map", "/etc/hosts:/run/kappa/hosts", "--ext-mount-map", "/opt/x:" + src}

	if _, err := restoreCommand(); !errors.Is(err, os.ErrNotExist) || !strings.HasPrefix(err.Error(), "snapshot: ") {
		t.Errorf("criuRestoreCommand without descriptors.json = %v, want a missing file", err)
	}

	writeTestFile(t, descriptors, `["/dev/null","pipe:[100]","pipe:[101]"]`)
	args, err := restoreCommand()
	if err != nil {
		t.Fatal(err)
	}
	if got, want := tail(args), append([]string{"--inherit-fd", "fd[1]:pipe:[100]", "--inherit-fd", "fd[2]:pipe:[101]"}, binds...); !slices.Equal(got, want) {
		t.Errorf("criuRestoreCommand arguments end in %q, want %q", got, want)
	}

	writeTestFile(t, descriptors, `["/dev/null","/dev/null","/dev/null"]`)
	args, err = restoreCommand()
	if err != nil {
		t.Fatal(err)
	}
	if got := tail(args); !slices.Equal(got, binds) {
		t.Errorf("criuRestoreCommand arguments with no pipes end in %q, want %q", got, binds)
	}

	for _, bad := range []string{`{"1":"pipe:[100]"}`, `["/dev/null",1,2]`, `["/dev/null","pipe:[100]\n--x","pipe:[101]"]`, ``} {
		writeTestFile(t, descriptors, bad)
		if _, err := restoreCommand(); err == nil || !strings.HasPrefix(err.Error(), "snapshot: descriptors.json: ") {
			t.Errorf("criuRestoreCommand with descriptors.json %q = %v, want an error naming it", bad, err)
		}
	}

	// Nothing of the namespace's leaks on the errors: the descriptors a
	// failed call would have dup'ed.
	before := openFDs(t)
	for range 10 {
		if _, err := restoreCommand(); err == nil {
			t.Fatal("criuRestoreCommand with a malformed descriptors.json = nil error")
		}
	}
	if after := openFDs(t); after != before {
		t.Errorf("%d descriptors open after failed criuRestoreCommands, %d before", after, before)
	}
}

// openFDs counts this process's open descriptors.
func openFDs(t *testing.T) int {
	t.Helper()
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Fatal(err)
	}
	return len(ents)
}

func TestPlainPath(t *testing.T) {
	for p, want := range map[string]bool{
		"/run/kappa":                 true,
		"/opt/criu/sbin/criu-4.2.1":  true,
		"/var/lib/kappa@x,y=z~+:a_b": true,
		"":                           false,
		"/run/kappa dir":             false,
		"/run/kappa\tdir":            false,
		"/run/kappa\ndir":            false,
		"/run/#kappa":                false,
		"/run/'kappa'":               false,
		`/run/"kappa"`:               false,
		"/run/$(id)":                 false,
		"/run/kappa;rm":              false,
		"/run/käppa":                 false,
	} {
		if got := plainPath(p); got != want {
			t.Errorf("plainPath(%q) = %v, want %v", p, got, want)
		}
	}
}

func TestAddSearchBits(t *testing.T) {
	for _, mode := range []os.FileMode{0o700, 0o711, 0o755, 0o777 | os.ModeSticky} {
		dir := filepath.Join(t.TempDir(), "d")
		if err := os.Mkdir(dir, 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(dir, mode); err != nil {
			t.Fatal(err)
		}
		if err := addSearchBits(dir); err != nil {
			t.Fatal(err)
		}
		fi, err := os.Stat(dir)
		if err != nil {
			t.Fatal(err)
		}
		want := mode | 0o011
		if got := fi.Mode() &^ os.ModeDir; got != want {
			t.Errorf("mode %v after addSearchBits, want %v", got, want)
		}
	}
}
