package oci

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"golang.org/x/sys/unix"
)

// runDirSource names the run directory's tmpfs in /proc/self/mountinfo.
const runDirSource = "kappa-run"

// runDirEntries are the names Kappa makes in a run directory; a
// directory on a disk holding anything else is not covered (MountRunDir).
var runDirEntries = map[string]bool{
	"crun": true, "runc": true, "netns": true, "sb": true,
	cgYardName: true, criuShimName: true, criuDumpConfigName: true,
}

// MountRunDir makes sure dir, the server's run directory (Options.RunDir),
// is on a tmpfs of Kappa's own, which the caller unmounts with
// UnmountRunDir when it stops (once Cleanup emptied it).
//
// Everything in the run directory is per boot: bundles, the OCI runtime's
// state, fifos, per-environment /dev trees. On most hosts /run is a tmpfs
// already, but not on all (this project's CI host has /run on ext4), and an
// operator may point --run-dir at a disk. On ext4 every environment's
// create and destroy then allocates and frees a dozen inodes in a journal,
// and inode allocation scans for recently deleted inodes: in a 0→200
// scale-out that was a quarter of all CPU time (perf record -a, ext4's
// recently_deleted and find_get_block_common under crun's and Kappa's
// openat and mkdir). A private tmpfs costs nothing and is cleared on
// reboot, as the directory is documented to be.
//
// dir must exist. A directory on any other tmpfs (or ramfs), such as a
// host's /run, is left alone, and so is a directory on a disk that holds
// anything but what Kappa makes there (an error says what): a tmpfs would
// hide it. The mount is private: nothing mounted under it propagates.
func MountRunDir(dir string) (RunDirMount, error) {
	dir, err := resolveDir(dir)
	if err != nil {
		return RunDirElsewhere, err
	}
	if ours, err := isRunDirMount(dir); err != nil || ours {
		if ours {
			return RunDirAdopted, nil
		}
		return RunDirElsewhere, err
	}
	var st unix.Statfs_t
	if err := unix.Statfs(dir, &st); err != nil {
		return RunDirElsewhere, err
	}
	if st.Type == unix.TMPFS_MAGIC || st.Type == unix.RAMFS_MAGIC {
		return RunDirElsewhere, nil
	}
	ents, err := os.ReadDir(dir)
	if err != nil {
		return RunDirElsewhere, err
	}
	for _, e := range ents {
		// writeFileAtomic's temporary files count as Kappa's too (a
		// crash between write and rename leaves them).
		if !runDirEntries[strings.TrimSuffix(e.Name(), ".tmp")] {
			return RunDirElsewhere, fmt.Errorf("%s is on a disk and holds %q, which a tmpfs mounted there would hide; "+
				"point --run-dir at an empty directory (or one on a tmpfs)", dir, e.Name())
		}
	}
	// No nodev: per-environment /dev trees made under the run directory
	// hold device nodes that environments open through bind mounts, and a
	// bind mount keeps its source's flags. mode=0700 as the directory had.
	if err := unix.Mount(runDirSource, dir, "tmpfs", unix.MS_NOSUID, "mode=0700"); err != nil {
		return RunDirElsewhere, fmt.Errorf("mount a tmpfs on %s: %w", dir, err)
	}
	if err := unix.Mount("", dir, "", unix.MS_PRIVATE, ""); err != nil {
		unix.Unmount(dir, 0)
		return RunDirElsewhere, fmt.Errorf("make the tmpfs on %s private: %w", dir, err)
	}
	return RunDirMounted, nil
}

// resolveDir returns dir absolute and with its symbolic links resolved, as
// /proc/self/mountinfo names mount points.
func resolveDir(dir string) (string, error) {
	dir, err := filepath.Abs(dir)
	if err != nil {
		return "", err
	}
	return filepath.EvalSymlinks(dir)
}

// UnmountRunDir unmounts the tmpfs MountRunDir mounted on dir, once the
// runtime's Cleanup has emptied it. A mount still busy (a leftover
// process holding a file in it) is detached.
func UnmountRunDir(dir string) error {
	dir, err := resolveDir(dir)
	if err != nil {
		return err
	}
	err = unix.Unmount(dir, 0)
	if errors.Is(err, unix.EBUSY) {
		err = unix.Unmount(dir, unix.MNT_DETACH)
	}
	if err != nil && !errors.Is(err, unix.EINVAL) {
		return fmt.Errorf("unmount %s: %w", dir, err)
	}
	return nil
}

// isRunDirMount reports whether a tmpfs MountRunDir mounted is on dir.
func isRunDirMount(dir string) (bool, error) {
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		return false, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if m, ok := parseMountinfoLine(sc.Text()); ok && m.fstype == "tmpfs" && m.source == runDirSource && m.mountpoint == dir {
			return true, nil
		}
	}
	return false, sc.Err()
}
