package oci

import (
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/kappa-run/kappa/internal/sandbox"
	"golang.org/x/sys/unix"
)

// mountedDirs are the directories the environment gets from its own
// mounts rather than from the image.
var mountedDirs = []string{"/tmp", "/dev", "/proc", "/sys"}

// checkCwd reports sandbox.ErrInvalidWorkingDir when cwd does not name a
// directory of the image. Both runtimes would otherwise try to create it,
// which fails on the read-only root filesystem with a message that does
// not name the working directory (runc) or, on a writable one, writes into
// the shared image. Symlinks are resolved inside rootfs (openat2
// RESOLVE_IN_ROOT); on kernels without openat2 the check is skipped and
// the runtime's error is classified instead.
func checkCwd(rootfs, cwd string) error {
	for _, m := range mountedDirs {
		if cwd == m || strings.HasPrefix(cwd, m+"/") {
			return nil
		}
	}
	root, err := unix.Open(rootfs, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("open rootfs: %w", err)
	}
	defer unix.Close(root)
	fd, err := unix.Openat2(root, strings.TrimLeft(cwd, "/")+"/.", &unix.OpenHow{
		Flags:   unix.O_PATH | unix.O_DIRECTORY | unix.O_CLOEXEC,
		Resolve: unix.RESOLVE_IN_ROOT | unix.RESOLVE_NO_MAGICLINKS,
	})
	switch {
	case err == nil:
		unix.Close(fd)
		return nil
	case errors.Is(err, unix.ENOENT), errors.Is(err, unix.ENOTDIR):
		return fmt.Errorf("%w %q: %w", sandbox.ErrInvalidWorkingDir, cwd, err)
	}
	return nil
}

// fixTmpMode makes the /tmp of the created (not yet started) container
// with init process pid world-writable and sticky. runc gives a tmpfs mount
// the mode of the directory it covers, ignoring mode=1777, and images often
// ship /tmp as 0755. The path is resolved inside the container's root (a
// symlinked /tmp is followed there, as the runtime did to mount it), so
// the chmod cannot reach the host; the process has not run yet, so nothing
// of it can race the check either.
func fixTmpMode(pid int) error {
	root, err := unix.Open("/proc/"+strconv.Itoa(pid)+"/root", unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("open container root: %w", err)
	}
	defer unix.Close(root)
	fd, err := unix.Openat2(root, "tmp", &unix.OpenHow{
		Flags:   unix.O_RDONLY | unix.O_DIRECTORY | unix.O_CLOEXEC,
		Resolve: unix.RESOLVE_IN_ROOT | unix.RESOLVE_NO_MAGICLINKS,
	})
	if errors.Is(err, unix.ENOSYS) {
		return nil // kernel before 5.6: keep the runtime's mode
	}
	if err != nil {
		return fmt.Errorf("open container /tmp: %w", err)
	}
	defer unix.Close(fd)
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return err
	}
	const want = unix.S_ISVTX | 0o777
	if st.Mode&07777 == want {
		return nil
	}
	var fs unix.Statfs_t
	if err := unix.Fstatfs(fd, &fs); err != nil {
		return err
	}
	if fs.Type != unix.TMPFS_MAGIC {
		return fmt.Errorf("container /tmp is not the sandbox's tmpfs")
	}
	if err := unix.Fchmod(fd, want); err != nil {
		return fmt.Errorf("chmod container /tmp: %w", err)
	}
	return nil
}
