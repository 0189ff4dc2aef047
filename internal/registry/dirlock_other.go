//go:build !unix

package registry

// lockDir is a no-op where flock(2) is unavailable: nothing stops two
// processes from sharing a registry directory there.
func lockDir(string) (func() error, error) {
	return func() error { return nil }, nil
}
