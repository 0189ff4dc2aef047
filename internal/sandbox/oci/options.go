package oci

import "log/slog"

// Options configures a Runtime. The zero value is not usable: StateDir and
// RunDir are required.
type Options struct {
	// Runtime is "crun", "runc", or "" to use crun when a probe container
	// works and runc otherwise.
	Runtime string
	// StateDir holds one bundle directory per environment (config.json,
	// hosts, pid file, runtime log), e.g. <data-dir>/sandboxes.
	StateDir string
	// RunDir holds the runtime's state (--root <RunDir>/<runtime>) and the
	// network namespace pins (<RunDir>/netns/<id>), e.g. /run/kappa. It
	// should be on a tmpfs so a reboot clears it (the server mounts one
	// there when it is not, see MountRunDir), and short: the runtimes
	// create fifos and sockets under it.
	RunDir string
	// CgroupParent is the cgroup under which every environment gets
	// <CgroupParent>/<id>, relative to the root of each hierarchy;
	// "" means "kappa".
	CgroupParent string
	// Logger receives diagnostics; nil discards them.
	Logger *slog.Logger
	// NetNSPool is how many network namespaces, each with its Runtime API
	// listener, are kept created ahead for Create; 0 makes one per Create.
	// A pooled namespace serves one environment only and is destroyed with
	// it.
	NetNSPool int
	// ExecStart makes Start always run `<runtime> start`. By default crun
	// containers are released through crun's exec fifo, which is what
	// `crun start` does, without starting a process (see releaseInit).
	ExecStart bool
	// CRIU is the criu binary runc checkpoints and restores environments
	// with (Spec.Checkpointable, Spec.RestoreFrom); "" uses
	// /opt/criu/sbin/criu, where scripts/build-criu.sh puts it, when it
	// exists, else criu in PATH. Such environments always run under runc, whichever runtime the
	// others use: Debian's crun is built without checkpoint support.
	CRIU string
	// RestoreViaRuntime restores every snapshot through `runc restore`,
	// even where Kappa runs CRIU itself by default (see Sandbox.restore).
	RestoreViaRuntime bool
}

// RunDirMount is what MountRunDir found or did.
type RunDirMount uint8

const (
	// RunDirElsewhere: dir is on a tmpfs that is not Kappa's (a host's
	// /run), or stays on its disk; nothing to unmount.
	RunDirElsewhere RunDirMount = iota
	// RunDirMounted: MountRunDir mounted Kappa's tmpfs on dir now.
	RunDirMounted
	// RunDirAdopted: Kappa's tmpfs was on dir already, left by a server
	// that did not stop cleanly; its contents are what Cleanup looks for.
	RunDirAdopted
)
