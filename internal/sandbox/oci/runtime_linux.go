package oci

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/google/uuid"
	"github.com/kappa-run/kappa/internal/sandbox"
	"github.com/kappa-run/kappa/internal/seccompbpf"
	"github.com/moby/profiles/seccomp"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
)

// Runtime creates execution environments with crun or runc. It is safe for
// concurrent use. It implements sandbox.Runtime.
type Runtime struct {
	cli      cli
	stateDir string
	netnsDir string
	runDir   string
	cgParent string // "/kappa"
	log      *slog.Logger
	cgroups  *cgroupHost
	cgroupNS bool
	seccomp  *specs.LinuxSeccomp

	mu   sync.Mutex
	live map[string]*Sandbox
	// seccompBPF caches, for crun, the filter it compiled from the
	// profile (base64 of <root>/<id>/seccomp.bpf of the first container).
	// Passing it back saves the ~25 ms libseccomp spends per create; the
	// profile is the same for every environment. runc has no equivalent.
	seccompBPF string
	noBPFCache bool

	// nsPool holds network namespaces created ahead (nil: none).
	nsPool *netnsPool
	// fifoStart is set once New has proved that crun's containers start by
	// their exec fifo (see releaseInit); Start then runs no process.
	fifoStart bool
	execStart bool
	// awaiting counts the Starts waiting for their process to exec.
	awaiting atomic.Int64

	// criu is Options.CRIU; snap is the runc that checkpoints and
	// restores, found by Snapshots on first use.
	criu       string
	viaRuntime bool // Options.RestoreViaRuntime
	snapOnce   sync.Once
	snap       cli
	criuArgv   []string // runs CRIU as the shim does
	snapErr    error
	yardOnce   sync.Once
}

var _ sandbox.Runtime = (*Runtime)(nil)

// idPattern is the shape of sandbox.Spec.ID.
var idPattern = regexp.MustCompile(`^[a-zA-Z0-9_-]{1,64}$`)

// New checks the host, picks the OCI runtime and proves it works by
// creating and deleting a probe container. With Options.Runtime "" it uses
// crun when crun's probe succeeds and runc otherwise; the error says why
// each failed. New makes the calling process a child subreaper (see the
// package documentation) and creates StateDir and RunDir.
func New(ctx context.Context, opts Options) (*Runtime, error) {
	if os.Geteuid() != 0 {
		return nil, errors.New("oci sandboxes need root")
	}
	if opts.StateDir == "" || opts.RunDir == "" {
		return nil, errors.New("oci: StateDir and RunDir are required")
	}
	stateDir, err := filepath.Abs(opts.StateDir)
	if err != nil {
		return nil, err
	}
	runDir, err := filepath.Abs(opts.RunDir)
	if err != nil {
		return nil, err
	}
	parent := opts.CgroupParent
	if parent == "" {
		parent = "kappa"
	}
	parent = "/" + strings.Trim(filepath.Clean("/"+parent), "/")
	if parent == "/" {
		return nil, fmt.Errorf("oci: invalid CgroupParent %q", opts.CgroupParent)
	}
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	for _, d := range []string{stateDir, runDir, filepath.Join(runDir, "netns")} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			return nil, err
		}
	}
	if err := becomeSubreaper(); err != nil {
		return nil, err
	}
	raiseSharedUserLimits(log)
	cgroups, err := detectCgroups()
	if err != nil {
		return nil, err
	}
	base := Runtime{
		stateDir:   stateDir,
		netnsDir:   filepath.Join(runDir, "netns"),
		runDir:     runDir,
		cgParent:   parent,
		log:        log,
		cgroups:    cgroups,
		live:       map[string]*Sandbox{},
		execStart:  opts.ExecStart,
		criu:       opts.CRIU,
		viaRuntime: opts.RestoreViaRuntime,
	}
	if opts.NetNSPool > 0 {
		base.nsPool = newNetNSPool(opts.NetNSPool, log)
	}
	if _, err := os.Stat("/proc/self/ns/cgroup"); err == nil {
		base.cgroupNS = true
	}
	// The profile's rules depend on the capabilities granted: none.
	base.seccomp, err = seccomp.GetDefaultProfile(&specs.Spec{Process: &specs.Process{Capabilities: &specs.LinuxCapabilities{}}})
	if err != nil {
		return nil, fmt.Errorf("seccomp profile: %w", err)
	}

	candidates := []string{opts.Runtime}
	switch opts.Runtime {
	case "":
		candidates = []string{"crun", "runc"}
	case "crun", "runc":
	default:
		return nil, fmt.Errorf("oci: unknown runtime %q (want crun or runc)", opts.Runtime)
	}
	var errs []error
	for _, name := range candidates {
		r, err := base.with(name)
		if err == nil {
			err = r.probe(ctx)
		}
		if err == nil {
			log.Info("sandbox runtime ready", "runtime", name, "bin", r.cli.bin, "cgroup_parent", parent)
			return r, nil
		}
		log.Info("sandbox runtime unusable", "runtime", name, "err", err)
		errs = append(errs, fmt.Errorf("%s: %w", name, err))
	}
	return nil, fmt.Errorf("no working OCI runtime: %w", errors.Join(errs...))
}

// with returns a copy of the base runtime bound to the named binary.
func (base *Runtime) with(name string) (*Runtime, error) {
	bin, err := exec.LookPath(name)
	if err != nil {
		return nil, err
	}
	if bin, err = filepath.Abs(bin); err != nil {
		return nil, err
	}
	root := filepath.Join(base.runDir, name)
	if err := os.MkdirAll(root, 0o700); err != nil {
		return nil, err
	}
	r := &Runtime{
		cli:        cli{name: name, bin: bin, root: root},
		stateDir:   base.stateDir,
		netnsDir:   base.netnsDir,
		runDir:     base.runDir,
		cgParent:   base.cgParent,
		log:        base.log.With("runtime", name),
		cgroups:    base.cgroups,
		cgroupNS:   base.cgroupNS,
		seccomp:    base.seccomp,
		live:       map[string]*Sandbox{},
		execStart:  base.execStart,
		criu:       base.criu,
		viaRuntime: base.viaRuntime,
	}
	if base.nsPool != nil {
		r.nsPool = newNetNSPool(base.nsPool.size, r.log)
	}
	return r, nil
}

// probeDir is a directory of StateDir that no environment ID can name.
const probeDir = ".probe"

// probe creates and deletes a container with the full configuration of an
// environment, never starting it.
func (r *Runtime) probe(ctx context.Context) error {
	rootfs := filepath.Join(r.stateDir, probeDir, "rootfs")
	for _, d := range []string{"proc", "dev", "sys", "tmp", "etc"} {
		if err := os.MkdirAll(filepath.Join(rootfs, d), 0o755); err != nil {
			return err
		}
	}
	// Never executed: the container is deleted before start. Both
	// runtimes check that it exists and is executable at create time.
	for name, mode := range map[string]os.FileMode{"probe": 0o755, "etc/hosts": 0o644} {
		f, err := os.OpenFile(filepath.Join(rootfs, name), os.O_CREATE|os.O_RDONLY, mode)
		if err != nil {
			return err
		}
		f.Close()
	}
	once := func() error {
		sb, err := r.create(ctx, sandbox.Spec{
			ID:       "probe-" + strings.ReplaceAll(uuid.NewString(), "-", "")[:12],
			RootFS:   rootfs,
			Args:     []string{"/probe"},
			Cwd:      "/",
			MemoryMB: 128,
			TmpMB:    1,
			Hostname: "probe",
		}, false)
		if err != nil {
			return err
		}
		return sb.Destroy(ctx)
	}
	if err := once(); err != nil {
		return err
	}
	r.proveFIFOStart(ctx, rootfs)
	if r.cachedSeccompBPF() == "" {
		return nil
	}
	// Prove that crun accepts the filter it compiled; do without the
	// cache otherwise.
	if err := once(); err != nil {
		r.log.Warn("crun rejects its own compiled seccomp filter; compiling per container", "err", err)
		r.mu.Lock()
		r.seccompBPF, r.noBPFCache = "", true
		r.mu.Unlock()
		return once()
	}
	return nil
}

// Name returns the OCI runtime in use, "crun" or "runc".
func (r *Runtime) Name() string { return r.cli.name }

// Create prepares an environment: network namespace and Runtime API
// listener, bundle, and a created container (cgroup, namespaces, mounts)
// whose init process waits for Start. An unusable entrypoint or working
// directory does not fail Create; Start reports it. On error nothing is
// left behind. ctx bounds the wait but does not interrupt the runtime
// mid-command.
func (r *Runtime) Create(ctx context.Context, spec sandbox.Spec) (sandbox.Sandbox, error) {
	return r.create(ctx, spec, true)
}

// create is Create; pooled lets the environment take a network namespace
// from the pool (New's probes do not, so that the pool fills only once
// the Runtime is in use).
func (r *Runtime) create(ctx context.Context, spec sandbox.Spec, pooled bool) (*Sandbox, error) {
	if err := validateSpec(spec); err != nil {
		return nil, err
	}
	if spec.Checkpointable || spec.RestoreFrom != "" {
		if err := r.Snapshots(); err != nil {
			return nil, fmt.Errorf("create sandbox %s: %w", spec.ID, err)
		}
	}
	r.mu.Lock()
	if _, dup := r.live[spec.ID]; dup {
		r.mu.Unlock()
		return nil, fmt.Errorf("create sandbox %s: id in use", spec.ID)
	}
	s := newSandbox(r, spec)
	s.pooledNS = pooled
	r.live[spec.ID] = s
	r.mu.Unlock()

	start := time.Now()
	if err := s.create(ctx); err != nil {
		if derr := s.Destroy(context.WithoutCancel(ctx)); derr != nil {
			r.log.Warn("clean up after failed create", "id", spec.ID, "err", derr)
		}
		return nil, fmt.Errorf("create sandbox %s: %w", spec.ID, err)
	}
	r.log.Debug("sandbox created", "id", spec.ID, "took", time.Since(start), "start_err", s.startErr)
	return s, nil
}

func (r *Runtime) forget(id string) {
	r.mu.Lock()
	delete(r.live, id)
	r.mu.Unlock()
}

func validateSpec(spec sandbox.Spec) error {
	switch {
	case !idPattern.MatchString(spec.ID):
		return fmt.Errorf("invalid sandbox id %q", spec.ID)
	case !filepath.IsAbs(spec.RootFS):
		return fmt.Errorf("sandbox %s: rootfs %q is not absolute", spec.ID, spec.RootFS)
	case len(spec.Args) == 0 || spec.Args[0] == "":
		return fmt.Errorf("sandbox %s: %w: no command", spec.ID, sandbox.ErrInvalidEntrypoint)
	case !filepath.IsAbs(spec.Cwd):
		return fmt.Errorf("sandbox %s: %w: %q is not absolute", spec.ID, sandbox.ErrInvalidWorkingDir, spec.Cwd)
	case spec.MemoryMB <= 0:
		return fmt.Errorf("sandbox %s: memory %d MB", spec.ID, spec.MemoryMB)
	case spec.TmpMB <= 0:
		return fmt.Errorf("sandbox %s: /tmp size %d MB", spec.ID, spec.TmpMB)
	}
	if fi, err := os.Stat(spec.RootFS); err != nil {
		return fmt.Errorf("sandbox %s: rootfs: %w", spec.ID, err)
	} else if !fi.IsDir() {
		return fmt.Errorf("sandbox %s: rootfs %s is not a directory", spec.ID, spec.RootFS)
	}
	return nil
}

// Cleanup removes what crashed or unfinished runs left behind: it destroys
// this Runtime's live environments, deletes every container in the crun and
// runc state roots under RunDir, removes every network namespace pin under
// RunDir/netns, kills the processes of and removes every cgroup under
// CgroupParent, and removes the bundles in StateDir. Call it at start and
// stop, never while another Runtime uses the same directories.
func (r *Runtime) Cleanup(ctx context.Context) error {
	var errs []error
	errs = append(errs, r.nsPool.drain())
	r.mu.Lock()
	live := make([]*Sandbox, 0, len(r.live))
	for _, s := range r.live {
		live = append(live, s)
	}
	r.mu.Unlock()
	for _, s := range live {
		errs = append(errs, s.Destroy(ctx))
	}

	for _, name := range []string{"crun", "runc"} {
		errs = append(errs, r.cleanupContainers(ctx, name))
	}
	entries, err := os.ReadDir(r.netnsDir)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		errs = append(errs, err)
	}
	for _, e := range entries {
		errs = append(errs, unmountNetNS(filepath.Join(r.netnsDir, e.Name())))
	}
	errs = append(errs, removeCgYard(filepath.Join(r.runDir, cgYardName)))
	for _, dir := range r.cgroups.dirs(r.cgParent) {
		subs, err := os.ReadDir(dir)
		if err != nil && !errors.Is(err, os.ErrNotExist) {
			errs = append(errs, err)
		}
		for _, e := range subs {
			if e.IsDir() {
				errs = append(errs, removeCgroupTree(ctx, filepath.Join(dir, e.Name())))
			}
		}
		// The parent itself, once empty; the runtime makes it again.
		_ = unix.Rmdir(dir)
	}
	bundles, err := os.ReadDir(r.stateDir)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		errs = append(errs, err)
	}
	for _, e := range bundles {
		if e.IsDir() && idPattern.MatchString(e.Name()) {
			errs = append(errs, removeBundle(filepath.Join(r.stateDir, e.Name())))
		}
	}
	return errors.Join(errs...)
}

// cleanupContainers force-deletes every container in the state root of the
// named runtime, if that runtime was ever used here and is installed.
func (r *Runtime) cleanupContainers(ctx context.Context, name string) error {
	root := filepath.Join(r.runDir, name)
	if _, err := os.Stat(root); err != nil {
		return nil
	}
	bin, err := exec.LookPath(name)
	if err != nil {
		r.log.Warn("cannot clean up containers: runtime not installed", "runtime", name, "root", root)
		return nil
	}
	c := cli{name: name, bin: bin, root: root}
	out, err := c.run(ctx, "", "list", "-q")
	if err != nil {
		return err
	}
	var errs []error
	for _, id := range strings.Fields(string(out)) {
		if _, err := c.run(ctx, "", "delete", "--force", id); err != nil {
			errs = append(errs, err)
		} else {
			r.log.Info("deleted leftover container", "runtime", name, "id", id)
		}
	}
	return errors.Join(errs...)
}

// cachedSeccompBPF returns the cached compiled seccomp filter, or "".
func (r *Runtime) cachedSeccompBPF() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.seccompBPF
}

// learnSeccompBPF caches the filter crun compiled for the just created
// container id. crun writes it to its state directory, which the container
// cannot reach, before the container runs anything.
func (r *Runtime) learnSeccompBPF(id string) {
	if r.cli.name != "crun" || r.seccomp == nil {
		return
	}
	r.mu.Lock()
	off := r.noBPFCache
	r.mu.Unlock()
	if off {
		return
	}
	data, err := os.ReadFile(filepath.Join(r.cli.root, id, "seccomp.bpf"))
	// A classic BPF program is a non-empty array of 8-byte instructions.
	if err != nil || len(data) == 0 || len(data)%8 != 0 {
		r.log.Debug("no compiled seccomp filter to cache", "id", id, "err", err, "len", len(data))
		return
	}
	// Put a binary search in front: the kernel attaches the filter, on
	// every start, in a fraction of the time (see package seccompbpf).
	if arches := auditArches[runtime.GOARCH]; arches != nil {
		if fast, err := seccompbpf.Dispatch(data, arches, maxSyscallNR); err == nil {
			data = fast
		} else {
			r.log.Debug("seccomp filter kept as compiled", "err", err)
		}
	}
	r.mu.Lock()
	r.seccompBPF = base64.StdEncoding.EncodeToString(data)
	r.mu.Unlock()
}

// auditArches are the AUDIT_ARCH_* values a host's filter serves: native
// and compat, the two whose syscalls the kernel caches (linux/audit.h).
var auditArches = map[string][]uint32{
	"amd64": {0xC000003E, 0x40000003}, // x86_64, i386
	"arm64": {0xC00000B7, 0x40000028}, // aarch64, arm
}

// maxSyscallNR bounds the syscall numbers dispatched by search; beyond it
// (x32's numbers among them) the filter runs as compiled.
const maxSyscallNR = 1024
