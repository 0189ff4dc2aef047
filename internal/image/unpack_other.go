//go:build !linux

package image

import (
	"archive/tar"
	"errors"
	"io"
)

var errNeedsLinux = errors.New("unpacking image layers needs Linux")

type layerWriter struct{}

func newLayerWriter(string, bool, *Stats) (*layerWriter, error) { return nil, errNeedsLinux }
func (*layerWriter) entry(*tar.Header, io.Reader) error         { return errNeedsLinux }
func (*layerWriter) finish() error                              { return errNeedsLinux }
func (*layerWriter) close()                                     {}
