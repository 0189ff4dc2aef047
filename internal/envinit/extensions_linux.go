package envinit

import (
	"errors"
	"os"
	"strings"

	"golang.org/x/sys/unix"
)

// listExtensions lists the executable regular files of root/opt/extensions,
// resolving the directory's path inside root (openat2 RESOLVE_IN_ROOT; on
// kernels without it, a path with a symlink on the way lists nothing).
func listExtensions(root string) []string {
	rfd, err := unix.Open(root, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil
	}
	defer unix.Close(rfd)
	rel := strings.TrimPrefix(ExtensionsDir, "/")
	fd, err := unix.Openat2(rfd, rel, &unix.OpenHow{
		Flags:   unix.O_RDONLY | unix.O_DIRECTORY | unix.O_CLOEXEC,
		Resolve: unix.RESOLVE_IN_ROOT | unix.RESOLVE_NO_MAGICLINKS,
	})
	if errors.Is(err, unix.ENOSYS) {
		fd, err = openNoFollow(rfd, strings.Split(rel, "/"))
	}
	if err != nil {
		return nil
	}
	dir := os.NewFile(uintptr(fd), ExtensionsDir)
	defer dir.Close()
	ents, err := dir.ReadDir(-1)
	if err != nil {
		return nil
	}
	var names []string
	for _, e := range ents {
		var st unix.Stat_t
		if unix.Fstatat(fd, e.Name(), &st, unix.AT_SYMLINK_NOFOLLOW) != nil ||
			st.Mode&unix.S_IFMT != unix.S_IFREG || st.Mode&0o111 == 0 {
			continue
		}
		names = append(names, e.Name())
	}
	return names
}

// openNoFollow opens the directory at the path parts under dirfd, refusing
// a symlink at every step.
func openNoFollow(dirfd int, parts []string) (int, error) {
	fd := dirfd
	for i, p := range parts {
		next, err := unix.Openat(fd, p, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
		if i > 0 {
			unix.Close(fd)
		}
		if err != nil {
			return -1, err
		}
		fd = next
	}
	return fd, nil
}
