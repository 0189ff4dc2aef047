// Package leakcheck fails a test package whose goroutines outlive its
// tests. Use it from TestMain:
//
//	func TestMain(m *testing.M) { os.Exit(leakcheck.Run(m)) }
package leakcheck

import (
	"flag"
	"fmt"
	"os"
	"runtime"
	"testing"
	"time"
)

// slack is how many goroutines may remain (runtime and testing helpers).
const slack = 2

// Run runs the tests and returns their exit code, or 1 when more than a
// couple of goroutines are still alive 5 s after they passed; it prints
// every goroutine's stack then.
func Run(m *testing.M) int {
	before := runtime.NumGoroutine()
	code := m.Run()
	// Fuzzing runs workers whose goroutines outlive the targets.
	if f := flag.Lookup("test.fuzz"); code != 0 || (f != nil && f.Value.String() != "") {
		return code
	}
	deadline := time.Now().Add(5 * time.Second)
	for runtime.NumGoroutine() > before+slack && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
	}
	if n := runtime.NumGoroutine(); n > before+slack {
		buf := make([]byte, 1<<20)
		fmt.Fprintf(os.Stderr, "goroutine leak: %d before, %d after\n%s", before, n, buf[:runtime.Stack(buf, true)])
		return 1
	}
	return 0
}
