//go:build !linux

package process

import (
	"context"
	"errors"
	"io"
	"log/slog"

	"github.com/kappa-run/kappa/internal/sandbox"
)

var errNotLinux = errors.New("process sandboxes need Linux")

// DefaultAddr is where the Runtime API listener is bound by default.
const DefaultAddr = "127.0.0.1:9001"

// Options configure a Runtime (see the Linux implementation).
type Options struct {
	Addr            string
	ExtensionsDir   string
	ExtensionOutput func(id, name string) io.Writer
	Logger          *slog.Logger
}

// Runtime is unavailable outside Linux.
type Runtime struct{}

// New returns a Runtime whose Create always fails.
func New(Options) *Runtime { return &Runtime{} }

// Name returns "process".
func (r *Runtime) Name() string { return "process" }

// Create fails: process sandboxes need Linux.
func (r *Runtime) Create(ctx context.Context, spec sandbox.Spec) (sandbox.Sandbox, error) {
	return nil, errNotLinux
}

// Sandbox is unavailable outside Linux.
type Sandbox struct{ sandbox.Sandbox }

// CreateSandbox fails: process sandboxes need Linux.
func (r *Runtime) CreateSandbox(ctx context.Context, spec sandbox.Spec) (*Sandbox, error) {
	return nil, errNotLinux
}

// Extensions returns nothing.
func (s *Sandbox) Extensions() []string { return nil }

// ExtensionExited never delivers.
func (s *Sandbox) ExtensionExited() <-chan string { return nil }

// StartExtensions fails.
func (s *Sandbox) StartExtensions(context.Context) error { return errNotLinux }
