package daemon

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"syscall"
)

// lockRunDir takes an exclusive lock on <runDir>.lock, beside the run
// directory rather than in it (Kappa mounts a tmpfs on it, which would
// hide the file from the next server), so that two servers never share a
// run directory: each cleans up every container, network namespace and
// cgroup it finds there at start and stop. Closing the file releases it;
// so does the process's exit, a crash included.
func lockRunDir(runDir string) (*os.File, error) {
	abs, err := filepath.Abs(runDir)
	if err != nil {
		return nil, err
	}
	return lockFile(filepath.Clean(abs)+".lock", "run directory "+runDir, "--run-dir")
}

// lockDataDir takes an exclusive lock on <dataDir>.lock, beside it as the
// run directory's: two servers on one data directory would share its
// stores, image overlays and logs.
func lockDataDir(dataDir string) (*os.File, error) {
	abs, err := filepath.Abs(dataDir)
	if err != nil {
		return nil, err
	}
	return lockFile(filepath.Clean(abs)+".lock", "data directory "+dataDir, "--data-dir")
}

// lockFile takes an exclusive, non-blocking flock on p, made if missing;
// what and flag name the directory and its flag in the error.
func lockFile(p, what, flag string) (*os.File, error) {
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		return nil, err
	}
	f, err := os.OpenFile(p, os.O_RDWR|os.O_CREATE|syscall.O_CLOEXEC, 0o600)
	if err != nil {
		return nil, err
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		f.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			return nil, fmt.Errorf("%s is in use by another kappa server (give this one its own %s)", what, flag)
		}
		return nil, fmt.Errorf("lock %s: %w", p, err)
	}
	return f, nil
}
