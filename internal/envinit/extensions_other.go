//go:build !linux

package envinit

import (
	"os"
	"path/filepath"
)

// listExtensions lists the executable regular files of root/opt/extensions.
// (Environments run on Linux only; this keeps the package building.)
func listExtensions(root string) []string {
	ents, err := os.ReadDir(filepath.Join(root, ExtensionsDir))
	if err != nil {
		return nil
	}
	var names []string
	for _, e := range ents {
		info, err := e.Info()
		if err != nil || !info.Mode().IsRegular() || info.Mode().Perm()&0o111 == 0 {
			continue
		}
		names = append(names, e.Name())
	}
	return names
}
