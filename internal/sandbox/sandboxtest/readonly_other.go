//go:build !linux

package sandboxtest

import "testing"

// ReadOnly needs Linux; elsewhere it skips the test.
func ReadOnly(t testing.TB, dir string) string {
	t.Skip("sandboxtest.ReadOnly needs Linux")
	return ""
}
