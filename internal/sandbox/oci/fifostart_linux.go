package oci

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/google/uuid"
	"golang.org/x/sys/unix"

	"github.com/kappa-run/kappa/internal/sandbox"
)

// execFIFO is the fifo in crun's state directory of a created container
// that the container's init process blocks on, between `crun create` and
// `crun start`.
const execFIFO = "exec.fifo"

// errNoFIFO means a container has no exec fifo where crun keeps it: start
// it with `crun start` instead.
var errNoFIFO = errors.New("no exec fifo")

// releaseInit does what `crun start` does for Kappa's containers, without
// starting a crun process: crun's start opens <root>/<id>/exec.fifo for
// writing, unlinks it (which is how crun's state tells "running" from
// "created") and writes one byte, on which the init process — already in
// all of its namespaces, cgroup, mounts and rlimits, with capabilities
// dropped — goes on to load its seccomp filter and execute the program.
// crun's start does nothing else for a configuration without poststart
// hooks and NOTIFY_SOCKET, which Kappa never sets. Isolation is set up by
// `crun create` and the init process alone; this only lets it proceed.
//
// The fifo is opened non-blocking, so an init process that is gone (no
// reader) fails at once instead of hanging.
func releaseInit(stateRoot, id string) error {
	path := filepath.Join(stateRoot, id, execFIFO)
	fd, err := unix.Open(path, unix.O_WRONLY|unix.O_NONBLOCK|unix.O_CLOEXEC, 0)
	switch {
	case errors.Is(err, unix.ENOENT):
		return errNoFIFO
	case errors.Is(err, unix.ENXIO):
		return fmt.Errorf("container %s: init process is not waiting for start", id)
	case err != nil:
		return fmt.Errorf("open %s: %w", path, err)
	}
	defer unix.Close(fd)
	if err := unix.Unlink(path); err != nil {
		return fmt.Errorf("unlink %s: %w", path, err)
	}
	if _, err := unix.Write(fd, []byte{0}); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	return nil
}

// hasExecFIFO reports whether the created container id has crun's exec
// fifo, i.e. whether releaseInit can start it.
func hasExecFIFO(stateRoot, id string) bool {
	fi, err := os.Lstat(filepath.Join(stateRoot, id, execFIFO))
	return err == nil && fi.Mode()&os.ModeNamedPipe != 0
}

// start starts the container id that c created: through its exec fifo
// when New proved that works for crun, else with `<runtime> start`.
func (r *Runtime) start(ctx context.Context, c cli, logFile, id string) error {
	if r.fifoStart && c.name == r.cli.name && c.root == r.cli.root {
		err := releaseInit(c.root, id)
		if !errors.Is(err, errNoFIFO) {
			return err
		}
		r.log.Warn("created container has no exec fifo; using crun start", "id", id)
	}
	_, err := c.run(ctx, logFile, "start", id)
	return err
}

// proveFIFOStart turns fifoStart on when the runtime is crun and a probe
// container created from rootfs (whose /probe cannot be executed) leaves
// its exec fifo, and its init process proceeds and ends once released.
func (r *Runtime) proveFIFOStart(ctx context.Context, rootfs string) {
	if r.cli.name != "crun" || r.execStart {
		return
	}
	id := "probe-" + strings.ReplaceAll(uuid.NewString(), "-", "")[:12]
	sb, err := r.create(ctx, sandbox.Spec{
		ID: id, RootFS: rootfs, Args: []string{"/probe"}, Cwd: "/",
		MemoryMB: 128, TmpMB: 1, Hostname: "probe",
	}, false)
	if err != nil {
		r.log.Info("exec fifo probe: create failed; using crun start", "err", err)
		return
	}
	defer sb.Destroy(context.WithoutCancel(ctx))
	if !hasExecFIFO(r.cli.root, id) {
		r.log.Info("crun leaves no exec fifo; using crun start")
		return
	}
	if err := releaseInit(r.cli.root, id); err != nil {
		r.log.Info("exec fifo probe: release failed; using crun start", "err", err)
		return
	}
	select {
	case <-sb.Done():
	case <-time.After(10 * time.Second):
		r.log.Warn("exec fifo probe: init process did not proceed; using crun start")
		return
	}
	r.fifoStart = true // New has not returned: nothing reads it yet
	r.log.Debug("containers start through crun's exec fifo")
}
