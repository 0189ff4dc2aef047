package sandbox

import (
	"context"
	"io"
	"net"
	"strconv"
	"time"
)

// Spec describes one execution environment. All paths are host paths.
type Spec struct {
	// ID names the environment; unique among live environments, at most 64
	// characters of [a-zA-Z0-9_-].
	ID string
	// RootFS is a directory holding the image's root filesystem. The
	// environment sees it read-only; it is shared between environments and
	// never written.
	RootFS string
	// Args is argv of the runtime process (ENTRYPOINT + CMD, resolved).
	Args []string
	// Env is the environment of the runtime process, KEY=VALUE. The sandbox
	// adds AWS_LAMBDA_RUNTIME_API=<RuntimeAPIAddr> itself.
	Env []string
	// Cwd is the working directory inside the environment (absolute).
	Cwd string
	// MemoryMB is the memory limit; CPU quota is proportional
	// (1,769 MB = one vCPU).
	MemoryMB int
	// TmpMB is the size of the writable tmpfs mounted at /tmp.
	TmpMB int
	// Hostname is the environment's host name (UTS namespace).
	Hostname string
	// Stdout and Stderr receive the process's output. They are written from
	// goroutines owned by the sandbox until the process exits.
	Stdout, Stderr io.Writer
	// Mounts are extra read-only bind mounts of host files into the
	// environment (Kappa's own init, for images with extensions).
	Mounts []Mount
	// Checkpointable makes an environment whose processes a Checkpointer
	// can dump (snapshots). Its init must relay the Runtime API (package
	// envinit): the sandbox binds RuntimeAPIListener at RelayAddr and
	// tells the init so in RelayEnv.
	Checkpointable bool
	// RestoreFrom, when set, is a directory a Checkpointer wrote: Start
	// restores the processes dumped there instead of running Args. The
	// spec must otherwise be the one the dumped environment was made from
	// (Checkpointable included), apart from ID, Env, Stdout and Stderr.
	RestoreFrom string
}

// Where a checkpointable environment's Runtime API listener is: its init
// listens on RuntimeAPIAddr (127.0.0.1:9001) for the runtime and forwards
// every request to RelayAddr, which it learns from the variable RelayEnv.
// The connection between runtime and init is inside the environment, so a
// snapshot keeps it; the init's own connections to Kappa are dropped
// before a checkpoint and made again after a restore.
const (
	RelayAddr = "127.0.0.2:9001"
	RelayEnv  = "_KAPPA_RUNTIME_API_UPSTREAM"
)

// Checkpointer is implemented by sandboxes of Spec.Checkpointable that can
// dump their processes.
type Checkpointer interface {
	// Checkpoint dumps every process of the running environment into dir
	// (which must exist and be empty) and ends them; a Spec with
	// RestoreFrom dir brings them back, any number of times. Connections
	// between the environment's own processes survive, others do not.
	Checkpoint(ctx context.Context, dir string) error
}

// Describer is implemented by sandboxes that can say, for diagnostics,
// what their processes are doing.
type Describer interface {
	Describe() string
}

// OutputWaiter is implemented by sandboxes that can wait until the
// output their processes have written so far has reached the spec's
// writers.
type OutputWaiter interface {
	WaitOutput(ctx context.Context)
}

// Wrapper is implemented by sandboxes that wrap another (to count or
// observe it) without offering its optional interfaces themselves.
type Wrapper interface {
	Unwrap() Sandbox
}

// As returns sb as a T (one of the optional interfaces above), looking
// through wrappers (Wrapper) for the sandbox that implements it.
func As[T any](sb Sandbox) (T, bool) {
	for sb != nil {
		if t, ok := sb.(T); ok {
			return t, true
		}
		w, ok := sb.(Wrapper)
		if !ok {
			break
		}
		sb = w.Unwrap()
	}
	var zero T
	return zero, false
}

// Snapshotter is implemented by runtimes that can make Checkpointable
// environments and restore them.
type Snapshotter interface {
	// Snapshots returns nil when they can, else why not.
	Snapshots() error
}

// Mount is a read-only bind mount of a host file or directory.
type Mount struct {
	Source      string // host path
	Destination string // absolute path inside the environment
}

// Dialer is implemented by sandboxes whose network is not the host's:
// DialContext connects to addr as seen from inside the environment, where
// the host name sandbox.localdomain means the environment itself.
type Dialer interface {
	DialContext(ctx context.Context, network, addr string) (net.Conn, error)
}

// Runtime creates execution environments. Implementations are safe for
// concurrent use.
type Runtime interface {
	// Name is the implementation's name ("crun", "runc", "process").
	Name() string
	// Create prepares an environment without starting its process: its
	// namespaces, cgroup and Runtime API listener exist when Create returns.
	Create(ctx context.Context, spec Spec) (Sandbox, error)
}

// Sandbox is one execution environment. Methods are safe for concurrent use.
type Sandbox interface {
	// ID returns Spec.ID.
	ID() string
	// RuntimeAPIListener is a TCP listener reachable from inside the
	// environment only, at RuntimeAPIAddr. The caller serves the Runtime API
	// on it; the sandbox closes it on Destroy.
	RuntimeAPIListener() net.Listener
	// RuntimeAPIAddr is the host:port the process must use as
	// AWS_LAMBDA_RUNTIME_API (inside the environment).
	RuntimeAPIAddr() string
	// Start starts the runtime process. It returns once the process runs,
	// or an error wrapping ErrInvalidEntrypoint / ErrInvalidWorkingDir when
	// the process could not be executed.
	Start(ctx context.Context) error
	// Done is closed when the process has exited (or never started and the
	// sandbox was destroyed).
	Done() <-chan struct{}
	// Exit reports how the process ended; valid after Done is closed.
	Exit() ExitStatus
	// Stats reads resource usage; valid while the sandbox exists.
	Stats() Stats
	// Freeze and Thaw pause and resume every process of the environment.
	// Implementations that cannot freeze return nil and do nothing.
	Freeze(ctx context.Context) error
	Thaw(ctx context.Context) error
	// Shutdown sends SIGTERM to the runtime process, waits up to grace
	// for it to exit, then kills every process of the environment.
	Shutdown(ctx context.Context, grace time.Duration) error
	// Destroy kills every process and removes every resource the
	// environment holds (container, cgroup, namespaces, mounts, listener).
	// It is idempotent.
	Destroy(ctx context.Context) error
}

// ExitStatus describes how a runtime process ended.
type ExitStatus struct {
	// Code is the exit code, or -1 when killed by a signal.
	Code int
	// Signal is the name of the signal that killed it ("killed"), or "".
	Signal string
	// OOMKilled is true when the memory limit killed a process.
	OOMKilled bool
}

// String renders the status as Go's os/exec does: "exit status 2",
// "signal: killed".
func (s ExitStatus) String() string {
	if s.Signal != "" {
		return "signal: " + s.Signal
	}
	return "exit status " + strconv.Itoa(s.Code)
}

// Stats is a resource usage sample.
type Stats struct {
	// MaxMemoryBytes is the peak memory use of the environment so far.
	MaxMemoryBytes uint64
}
