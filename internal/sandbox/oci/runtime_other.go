//go:build !linux

package oci

import (
	"context"
	"errors"

	"github.com/kappa-run/kappa/internal/sandbox"
)

var errNotLinux = errors.New("oci sandboxes need Linux")

// Runtime is unavailable outside Linux; New always fails.
type Runtime struct{}

// New reports that OCI sandboxes need Linux.
func New(ctx context.Context, opts Options) (*Runtime, error) { return nil, errNotLinux }

// Name returns "oci".
func (r *Runtime) Name() string { return "oci" }

// Create fails: OCI sandboxes need Linux.
func (r *Runtime) Create(ctx context.Context, spec sandbox.Spec) (sandbox.Sandbox, error) {
	return nil, errNotLinux
}

// Cleanup does nothing outside Linux.
func (r *Runtime) Cleanup(ctx context.Context) error { return nil }

// MountRunDir does nothing outside Linux.
func MountRunDir(dir string) (RunDirMount, error) { return RunDirElsewhere, nil }

// UnmountRunDir does nothing outside Linux.
func UnmountRunDir(dir string) error { return nil }
