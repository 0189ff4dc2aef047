package oci

import (
	"log/slog"
	"os"
	"strconv"
	"strings"
)

// sharedUserLimits are kernel limits counted per host uid, which every
// environment shares (they all run as uid 993): at the kernel's defaults
// (128 inotify instances) a few hundred environments of a runtime that
// watches files (.NET's reloadOnChange, Node's fs.watch) would run out
// between them. New raises each to at least this; it never lowers one.
var sharedUserLimits = []struct {
	path string
	min  int
}{
	{"/proc/sys/fs/inotify/max_user_instances", 8192},
	{"/proc/sys/fs/inotify/max_user_watches", 524288},
}

// raiseSharedUserLimits applies sharedUserLimits, logging each change and
// warning when one cannot be made.
func raiseSharedUserLimits(log *slog.Logger) {
	for _, l := range sharedUserLimits {
		b, err := os.ReadFile(l.path)
		if err != nil {
			continue // no inotify here
		}
		cur, err := strconv.Atoi(strings.TrimSpace(string(b)))
		if err != nil || cur >= l.min {
			continue
		}
		if err := os.WriteFile(l.path, []byte(strconv.Itoa(l.min)), 0o644); err != nil {
			log.Warn("cannot raise a per-uid kernel limit every environment shares (uid 993); set it on the host",
				"sysctl", l.path, "now", cur, "want", l.min, "err", err)
			continue
		}
		log.Info("raised a per-uid kernel limit every environment shares (uid 993)", "sysctl", l.path, "from", cur, "to", l.min)
	}
}
