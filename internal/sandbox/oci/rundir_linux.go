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

// MountRunDir makes sure dir, the server's run directory (Options.RunDir),
// is on a tmpfs, and reports whether that tmpfs is Kappa's own: one it
// mounted now, or one a server that crashed mounted before. The caller
// unmounts Kappa's own with UnmountRunDir when it stops.
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
// dir must exist. A tmpfs Kappa mounted there before is kept, since its
// contents are what Cleanup looks for; a directory on any other tmpfs (or
// ramfs), such as a host's /run, is left alone.
func MountRunDir(dir string) (bool, error) {
	dir, err := filepath.Abs(dir)
	if err != nil {
		return false, err
	}
	if ours, err := isRunDirMount(dir); err != nil || ours {
		return ours, err
	}
	var st unix.Statfs_t
	if err := unix.Statfs(dir, &st); err != nil {
		return false, err
	}
	if st.Type == unix.TMPFS_MAGIC || st.Type == unix.RAMFS_MAGIC {
		return false, nil
	}
	// No nodev: per-environment /dev trees made under the run directory
	// hold device nodes that environments open through bind mounts, and a
	// bind mount keeps its source's flags. mode=0700 as the directory had.
	if err := unix.Mount(runDirSource, dir, "tmpfs", unix.MS_NOSUID, "mode=0700"); err != nil {
		return false, fmt.Errorf("mount a tmpfs on %s: %w", dir, err)
	}
	return true, nil
}

// UnmountRunDir unmounts the tmpfs MountRunDir mounted on dir, once the
// runtime's Cleanup has emptied it. A mount still busy (a leftover
// process holding a file in it) is detached.
func UnmountRunDir(dir string) error {
	err := unix.Unmount(dir, 0)
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
		// id parent major:minor root mountpoint opts [optional...] - fstype source superopts
		fields := strings.Fields(sc.Text())
		for i, fl := range fields {
			if fl == "-" && i >= 5 && len(fields) >= i+3 {
				if fields[i+1] == "tmpfs" && fields[i+2] == runDirSource && unescapeMountinfo(fields[4]) == dir {
					return true, nil
				}
				break
			}
		}
	}
	return false, sc.Err()
}
