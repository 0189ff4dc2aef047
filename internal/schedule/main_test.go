package schedule

import (
	"os"
	"testing"

	"github.com/kappa-run/kappa/internal/leakcheck"
)

// TestMain fails the package when goroutines outlive the tests.
func TestMain(m *testing.M) { os.Exit(leakcheck.Run(m)) }
