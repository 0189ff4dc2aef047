//go:build unix

package registry

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"syscall"
)

// lockDir takes an exclusive advisory lock on dir/lock so that two processes
// never serve the same registry directory. It returns the lock's release.
func lockDir(dir string) (release func() error, err error) {
	p := filepath.Join(dir, "lock")
	f, err := os.OpenFile(p, os.O_RDWR|os.O_CREATE, 0o640)
	if err != nil {
		return nil, err
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		_ = f.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			return nil, fmt.Errorf("registry directory %s is in use by another registry", dir)
		}
		return nil, fmt.Errorf("lock %s: %w", p, err)
	}
	return f.Close, nil
}
