package oci

import (
	"errors"
	"fmt"
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
