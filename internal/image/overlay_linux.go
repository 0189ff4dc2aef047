package image

import (
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"
)

// mountSource names Kappa's overlays in /proc/self/mountinfo.
const mountSource = "kappa"

// Linux's limits on what the two mount interfaces accept: fsconfig takes
// one string of at most 255 bytes per call, mount(2) one page of options.
const (
	maxFsconfigValue = 255
	maxMountData     = 4096 - 1
)

var errNoNewMountAPI = errors.New("new mount API unavailable")

// mountOverlay mounts a read-only overlay of lowers (top first) on target.
// It uses the new mount API with one "lowerdir+" per layer (Linux 6.8+),
// where the layer count is limited by overlayfs only, and falls back to
// mount(2). A lower directory whose path is too long, or holds a character
// mount options treat specially, is passed as /proc/self/fd/N.
func mountOverlay(target string, lowers []string, legacy bool) error {
	if os.Geteuid() != 0 {
		return errors.New("mounting an overlay needs root")
	}
	fds := make([]int, 0, len(lowers))
	defer func() {
		for _, fd := range fds {
			unix.Close(fd)
		}
	}()
	for _, l := range lowers {
		fd, err := unix.Open(l, unix.O_PATH|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
		if err != nil {
			return &os.PathError{Op: "open", Path: l, Err: err}
		}
		fds = append(fds, fd)
	}
	if !legacy {
		err := mountNewAPI(target, lowers, fds)
		if !errors.Is(err, errNoNewMountAPI) {
			return err
		}
	}
	return mountLegacy(target, lowers, fds)
}

func lowerArg(path string, fd, max int) string {
	if len(path) <= max && !strings.ContainsAny(path, ":,\\") {
		return path
	}
	return "/proc/self/fd/" + strconv.Itoa(fd)
}

func mountNewAPI(target string, lowers []string, fds []int) error {
	fsfd, err := unix.Fsopen("overlay", unix.FSOPEN_CLOEXEC)
	if err == unix.ENOSYS {
		return errNoNewMountAPI
	}
	if err != nil {
		return fmt.Errorf("fsopen overlay: %w", err)
	}
	defer unix.Close(fsfd)
	set := func(k, v string) error {
		if err := unix.FsconfigSetString(fsfd, k, v); err != nil {
			return fmt.Errorf("overlay option %s=%s: %w%s", k, v, err, fsLog(fsfd))
		}
		return nil
	}
	if err := set("source", mountSource); err != nil {
		return err
	}
	for i, l := range lowers {
		if err := set("lowerdir+", lowerArg(l, fds[i], maxFsconfigValue)); err != nil {
			if i == 0 && errors.Is(err, unix.EINVAL) {
				return errNoNewMountAPI // overlayfs before 6.8
			}
			return err
		}
	}
	// Only opaque markers are honoured in layers: redirects and metacopy
	// xattrs are never written by Unpack, and never followed either.
	for _, o := range [][2]string{{"index", "off"}, {"xino", "off"}, {"redirect_dir", "nofollow"}, {"metacopy", "off"}} {
		if err := set(o[0], o[1]); err != nil {
			return err
		}
	}
	if err := unix.FsconfigCreate(fsfd); err != nil {
		return fmt.Errorf("create overlay: %w%s", err, fsLog(fsfd))
	}
	mfd, err := unix.Fsmount(fsfd, unix.FSMOUNT_CLOEXEC, unix.MOUNT_ATTR_RDONLY|unix.MOUNT_ATTR_NOSUID|unix.MOUNT_ATTR_NODEV)
	if err != nil {
		return fmt.Errorf("fsmount overlay: %w%s", err, fsLog(fsfd))
	}
	defer unix.Close(mfd)
	if err := unix.MoveMount(mfd, "", unix.AT_FDCWD, target, unix.MOVE_MOUNT_F_EMPTY_PATH); err != nil {
		return fmt.Errorf("move overlay mount to %s: %w", target, err)
	}
	return nil
}

// fsLog drains the messages the kernel attached to a filesystem context.
func fsLog(fsfd int) string {
	var msgs []string
	buf := make([]byte, 1024)
	for range 16 {
		n, err := unix.Read(fsfd, buf)
		if err != nil || n <= 0 {
			break
		}
		msgs = append(msgs, strings.TrimSpace(string(buf[:n])))
	}
	if len(msgs) == 0 {
		return ""
	}
	return " (" + strings.Join(msgs, "; ") + ")"
}

func mountLegacy(target string, lowers []string, fds []int) error {
	build := func(max int) string {
		args := make([]string, len(lowers))
		for i, l := range lowers {
			args[i] = lowerArg(l, fds[i], max)
		}
		return "lowerdir=" + strings.Join(args, ":")
	}
	const extra = ",index=off,xino=off,redirect_dir=nofollow,metacopy=off"
	data := build(maxMountData)
	if len(data)+len(extra) > maxMountData {
		data = build(0) // every layer by descriptor
	}
	if len(data)+len(extra) > maxMountData {
		return fmt.Errorf("%w: too many layers (%d) for mount(2); Linux 6.8 or later mounts more", ErrInvalid, len(lowers)-1)
	}
	flags := uintptr(unix.MS_RDONLY | unix.MS_NOSUID | unix.MS_NODEV)
	err := unix.Mount(mountSource, target, "overlay", flags, data+extra)
	if err == unix.EINVAL {
		err = unix.Mount(mountSource, target, "overlay", flags, data)
	}
	if err != nil {
		return fmt.Errorf("mount overlay on %s: %w", target, err)
	}
	return nil
}

// unmountOverlay unmounts path, lazily when it is busy, so that no mount
// stays behind. Unmounting what is not mounted succeeds.
func unmountOverlay(path string) error {
	err := unix.Unmount(path, unix.UMOUNT_NOFOLLOW)
	if err == unix.EBUSY {
		err = unix.Unmount(path, unix.UMOUNT_NOFOLLOW|unix.MNT_DETACH)
	}
	if err == unix.EINVAL || err == unix.ENOENT {
		return nil
	}
	return err
}

// isMountPoint reports whether path is the root of a mount.
func isMountPoint(path string) bool {
	var stx unix.Statx_t
	if err := unix.Statx(unix.AT_FDCWD, path, unix.AT_SYMLINK_NOFOLLOW, unix.STATX_BASIC_STATS, &stx); err != nil {
		return false
	}
	if stx.Attributes_mask&unix.STATX_ATTR_MOUNT_ROOT != 0 {
		return stx.Attributes&unix.STATX_ATTR_MOUNT_ROOT != 0
	}
	var parent unix.Stat_t
	if unix.Lstat(path+"/..", &parent) != nil {
		return false
	}
	return uint64(parent.Dev) != unix.Mkdev(stx.Dev_major, stx.Dev_minor)
}

// syncFilesystem flushes the filesystem holding dir, so that a layer is on
// disk before the rename that makes it visible.
func syncFilesystem(dir string) error {
	fd, err := unix.Open(dir, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	return unix.Syncfs(fd)
}

// isWhiteout reports whether fi is an overlayfs whiteout (0/0 char device).
func isWhiteout(fi os.FileInfo) bool {
	if fi.Mode()&os.ModeCharDevice == 0 {
		return false
	}
	st, ok := fi.Sys().(*syscall.Stat_t)
	return ok && st.Rdev == 0
}

// isOpaque reports whether directory path is marked opaque. Reading the
// trusted namespace needs root; without it nothing looks opaque.
func isOpaque(path string) bool {
	buf := make([]byte, 4)
	n, err := unix.Lgetxattr(path, opaqueXattr, buf)
	return err == nil && n == 1 && buf[0] == 'y'
}
