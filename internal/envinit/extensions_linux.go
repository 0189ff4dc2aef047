package envinit

import (
	"os"
	"strings"

	"golang.org/x/sys/unix"
)

// listExtensions lists the executable regular files of root/opt/extensions,
// resolving the directory's path inside root (openat2 RESOLVE_IN_ROOT,
// Linux 5.6, the sandbox's floor; without it, none are listed).
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
