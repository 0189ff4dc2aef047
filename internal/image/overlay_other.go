//go:build !linux

package image

import (
	"errors"
	"os"
)

func mountOverlay(string, []string, bool) error {
	return errors.New("mounting an image root filesystem needs Linux (overlayfs)")
}

func unmountOverlay(string) error { return nil }
func isMountPoint(string) bool    { return false }
func syncFilesystem(string) error { return nil }
func isWhiteout(os.FileInfo) bool { return false }
func isOpaque(string) bool        { return false }
