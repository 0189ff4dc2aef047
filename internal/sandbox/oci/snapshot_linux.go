package oci

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode"

	"github.com/kappa-run/kappa/internal/sandbox"
	"golang.org/x/sys/unix"
)

// Snapshots are runc's checkpoint and restore, which run CRIU: crun as
// Debian builds it has neither. A Checkpointable environment is therefore
// created, started, dumped and restored by runc, under the same state root
// Cleanup already sweeps, whichever runtime serves the other environments.

// defaultCRIU is where scripts/build-criu.sh installs CRIU.
const defaultCRIU = "/opt/criu/sbin/criu"

// criuTimeout bounds a checkpoint, restoreTimeout a restore (an
// invocation waits for it; a restore that fails is retried the ordinary
// way).
const (
	criuTimeout    = 60 * time.Second
	restoreTimeout = 20 * time.Second
)

var _ sandbox.Snapshotter = (*Runtime)(nil)
var (
	_ sandbox.Checkpointer = (*Sandbox)(nil)
	_ sandbox.Describer    = (*Sandbox)(nil)
	_ sandbox.OutputWaiter = (*Sandbox)(nil)
)

// Snapshots reports whether this host can checkpoint and restore
// environments: runc is installed and CRIU is there and passes
// `criu check`. The answer is found once, on first use (a check takes
// ~0.4 s).
func (r *Runtime) Snapshots() error {
	r.snapOnce.Do(func() {
		r.snap, r.criuArgv, r.snapErr = findSnapshotter(r.runDir, r.stateDir, r.criu)
		if r.snapErr != nil {
			r.log.Info("snapshots unavailable", "err", r.snapErr)
		} else {
			r.log.Info("snapshots available", "runc", r.snap.bin, "criu", r.snap.global[1])
		}
	})
	return r.snapErr
}

// findSnapshotter returns the runc command line that checkpoints and
// restores with a working CRIU, and the command that runs CRIU itself (see
// criuShimName).
func findSnapshotter(runDir, stateDir, criu string) (cli, []string, error) {
	runc, err := exec.LookPath("runc")
	if err != nil {
		return cli{}, nil, errors.New("snapshots need runc (apt-get install runc)")
	}
	if runc, err = filepath.Abs(runc); err != nil {
		return cli{}, nil, err
	}
	if criu == "" {
		// The built one first: Debian 12's criu 3.17 fails on kernels
		// since 6.13 (docs/snapshot-restore.md).
		criu = defaultCRIU
		if _, err := os.Stat(criu); err != nil {
			if p, err := exec.LookPath("criu"); err == nil {
				criu = p
			}
		}
	}
	if criu, err = filepath.Abs(criu); err != nil {
		return cli{}, nil, err
	}
	if _, err := os.Stat(criu); err != nil {
		return cli{}, nil, fmt.Errorf("snapshots need CRIU ≥ 4.2 (scripts/build-criu.sh builds it): %w", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, criu, "check").CombinedOutput()
	if err != nil {
		return cli{}, nil, fmt.Errorf("%s check: %w: %s", criu, err, lastLine(out))
	}
	setpriv, err := exec.LookPath("setpriv")
	if err != nil {
		return cli{}, nil, errors.New("snapshots need setpriv (util-linux)")
	}
	// The shim is a shell script and CRIU's configuration files split on
	// white space (and take # for a comment): what they name must be
	// plain, the shim's programs and the restores' directories (under
	// the state directory, see prepareRestore).
	for _, p := range []string{stateDir, criu, setpriv} {
		if !plainPath(p) {
			return cli{}, nil, fmt.Errorf("snapshots need paths of letters, digits and /._-+@:,=~ only: %q", p)
		}
	}
	root := filepath.Join(runDir, "runc")
	if err := os.MkdirAll(root, 0o700); err != nil {
		return cli{}, nil, err
	}
	// CRIU reads every dumped process's rlimits, which the kernel allows
	// a caller whose real ids are the process's, or that holds
	// CAP_SYS_RESOURCE. Root may lack that capability (containers, some
	// hardened hosts), so CRIU runs with the sandbox user's real ids and
	// root's effective ones: every capability root has, kept.
	shim := filepath.Join(runDir, criuShimName)
	argv := []string{setpriv, "--ruid", strconv.Itoa(sandboxUID), "--rgid", strconv.Itoa(sandboxGID), "--keep-groups", criu}
	script := "#!/bin/sh\nexec " + strings.Join(argv, " ") + " \"$@\"\n"
	if err := writeFileAtomic(shim, []byte(script), 0o700); err != nil {
		return cli{}, nil, err
	}
	// Options runc has no flag for (see criuConfigs); a restore's are
	// its bundle's (prepareRestore).
	dump, _ := criuConfigs("", "")
	if err := writeFileAtomic(filepath.Join(runDir, criuDumpConfigName), []byte(dump), 0o600); err != nil {
		return cli{}, nil, err
	}
	return cli{name: "runc", bin: runc, root: root, global: []string{"--criu", shim}}, argv, nil
}

// plainPath reports whether p is made only of characters that need no
// quoting in a shell script or a CRIU configuration file.
func plainPath(p string) bool {
	for _, c := range p {
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9':
		case strings.ContainsRune("/._-+@:,=~", c):
		default:
			return false
		}
	}
	return p != ""
}

// Files of RunDir for snapshots, and of a restore's bundle.
const (
	criuShimName          = "criu-shim"
	cgYardName            = "cgyard"
	criuDumpConfigName    = "criu-dump.conf"
	criuRestoreConfigName = "criu-restore.conf"
	emptyDirName          = "empty"
	devDirName            = "dev"
)

// maskedDirKey is the key of the masked directories in a snapshot,
// devKey that of /dev.
const (
	maskedDirKey = "kappa-masked-dir"
	devKey       = "kappa-dev"
)

// criuConfigs returns the CRIU configuration files of checkpointable
// environments, for their checkpoint and for their restores (runc hands
// CRIU the one the bundle names in the annotation criuConfigAnnotation):
//
//   - No network lock: it keeps the network namespace quiet with iptables
//     rules during the dump, but the namespace is Kappa's, not dumped, and
//     the only connections dumped are between processes of the frozen
//     environment.
//   - The masked directories of maskedPaths (read-only empty tmpfs mounts
//     runc puts over /proc/acpi, /sys/firmware, …) are external mounts:
//     their nothing is not archived at the dump and unpacked at every
//     restore (CRIU runs tar and gzip for each tmpfs, ~5 ms apiece here);
//     the restore binds emptyDir, a read-only empty directory, in their
//     place.
//   - /dev is external too, for the same reason: the restore binds devDir,
//     which holds what runc puts in a container's /dev (makeDevDir).
//
// emptyDir and devDir are the restored environment's own (in its bundle):
// shared ones would let one environment watch another's use of them
// (inotify, timestamps).
func criuConfigs(emptyDir, devDir string) (dump, restore string) {
	dump = "network-lock skip\n"
	restore = "network-lock skip\n"
	for _, p := range maskedPaths {
		// runc masks a directory with a tmpfs, a file with /dev/null; it
		// skips what does not exist. The environment's /proc and /sys show
		// the host's kernel, so the host's tell which is which.
		if fi, err := os.Stat(p); err == nil && fi.IsDir() {
			dump += "external mnt[" + p + "]:" + maskedDirKey + "\n"
		}
	}
	restore += "external mnt[" + maskedDirKey + "]:" + emptyDir + "\n"
	dump += "external mnt[/dev]:" + devKey + "\n"
	restore += "external mnt[" + devKey + "]:" + devDir + "\n"
	return dump, restore
}

// criuConfigAnnotation names, for runc, a CRIU configuration file.
const criuConfigAnnotation = "org.criu.config"

// writeFileAtomic writes a file by renaming a complete temporary one.
func writeFileAtomic(path string, data []byte, mode os.FileMode) error {
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, data, mode); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}

// lastLine is the last non-empty line of out, for error messages.
func lastLine(out []byte) string {
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	return strings.TrimSpace(lines[len(lines)-1])
}

// Checkpoint dumps the environment's processes into dir with
// `runc checkpoint --tcp-established` and ends them (see
// sandbox.Checkpointer). The network namespace is not dumped (runc joins
// it from outside): the sockets are, with the established connections
// between the environment's own processes.
func (s *Sandbox) Checkpoint(ctx context.Context, dir string) error {
	s.lifecycle.Lock()
	defer s.lifecycle.Unlock()
	if !s.spec.Checkpointable {
		return fmt.Errorf("checkpoint sandbox %s: not checkpointable", s.spec.ID)
	}
	if s.destroyed || s.state != stateStarted || s.init == nil {
		return fmt.Errorf("checkpoint sandbox %s: not running", s.spec.ID)
	}
	if s.frozen {
		// CRIU freezes the cgroup itself and thaws it to dump.
		if err := s.cg.freeze(ctx, false); err != nil {
			return fmt.Errorf("checkpoint sandbox %s: %w", s.spec.ID, err)
		}
		s.frozen = false
	}
	work := filepath.Join(s.dir, criuWorkName)
	if err := os.MkdirAll(work, 0o700); err != nil {
		return err
	}
	runCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), criuTimeout)
	defer cancel()
	_, err := s.cli.run(runCtx, s.logFile(), "checkpoint", "--image-path", dir, "--work-path", work,
		"--tcp-established", s.spec.ID)
	if err != nil {
		return fmt.Errorf("checkpoint sandbox %s: %w%s", s.spec.ID, err, criuLogTail(filepath.Join(work, "dump.log")))
	}
	return nil
}

// restore is Start for a Spec with RestoreFrom: CRIU restores the dumped
// processes into the namespaces and cgroup of the bundle Create wrote,
// with the output pipes in place of the dumped environment's. Where the
// devices controller is cgroup v1, Kappa runs CRIU itself
// (criuRestoreCommand), and checks the limits it restored; elsewhere through `runc restore`,
// which attaches cgroup v2's device filter (a BPF program CRIU does not
// restore) and costs ~40 ms more here (runc's start, a CRIU version query
// through a second CRIU process, cgroup setup). s.lifecycle is held.
func (s *Sandbox) restore(ctx context.Context) error {
	if s.startErr != nil {
		return s.startErr
	}
	work := filepath.Join(s.dir, criuWorkName)
	if err := os.MkdirAll(work, 0o700); err != nil {
		return err
	}
	stdoutR, stdoutW, stderrR, stderrW, err := outputPipes()
	if err != nil {
		return err
	}
	pidFile := filepath.Join(s.dir, pidFileName)
	runCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), restoreTimeout)
	defer cancel()
	var cmd *exec.Cmd
	restorer := s.cli
	if s.direct() {
		restorer = cli{name: "criu", bin: s.r.criuArgv[len(s.r.criuArgv)-1]}
		cmd, err = s.criuRestoreCommand(runCtx, work, pidFile)
		if err != nil {
			stdoutR.Close()
			stdoutW.Close()
			stderrR.Close()
			stderrW.Close()
			return err
		}
	} else {
		cmd = s.cli.command(runCtx, s.logFile(), "restore", "--detach",
			"--image-path", s.spec.RestoreFrom, "--work-path", work, "--tcp-established",
			"--bundle", s.dir, "--pid-file", pidFile, s.spec.ID)
	}
	// CRIU gives the restored processes these in place of the pipes
	// they had (matched by descriptors.json).
	cmd.Stdout, cmd.Stderr = stdoutW, stderrW
	s.state = stateStarted // from here on Destroy deletes the container
	runErr := cmd.Run()
	for _, f := range cmd.ExtraFiles {
		f.Close()
	}
	stdoutW.Close()
	stderrW.Close()
	if runErr != nil {
		stdoutR.Close()
		said := readAvailable(stderrR)
		stderrR.Close()
		reapLeftover(pidFile)
		return fmt.Errorf("%w%s", restorer.failure("restore", runErr, said, s.logFile()),
			criuLogTail(filepath.Join(work, "restore.log")))
	}
	if err := s.adopt(pidFile, stdoutR, stderrR, true); err != nil {
		return err
	}
	if s.direct() {
		// CRIU made the cgroup and restored the limits it dumped before
		// it resumed the processes; checked here before the environment
		// serves (a failure destroys it).
		if err := s.r.cgroups.checkLimits(s.cgPath, s.spec.MemoryMB); err != nil {
			return fmt.Errorf("restored environment: %w", err)
		}
	}
	return nil
}

// criuRestoreCommand is `criu restore` with the options runc would give
// it for this bundle (see restore): the snapshot's external mounts bound
// to this environment's sources, its network namespace joined, its output
// pipes swapped for the new ones, and its cgroup made anew under this
// environment's path, with the dumped limits.
func (s *Sandbox) criuRestoreCommand(ctx context.Context, work, pidFile string) (*exec.Cmd, error) {
	data, err := os.ReadFile(filepath.Join(s.spec.RestoreFrom, "descriptors.json"))
	if err != nil {
		return nil, fmt.Errorf("snapshot: %w", err)
	}
	inherit, err := inheritFDArgs(data)
	if err != nil {
		return nil, fmt.Errorf("snapshot: descriptors.json: %w", err)
	}
	nsFD, err := s.netns.dup()
	if err != nil {
		return nil, err
	}
	ns := os.NewFile(uintptr(nsFD), "netns")
	args := []string{"restore",
		"--images-dir", s.spec.RestoreFrom, "--work-dir", work, "--log-file", "restore.log",
		"--root", s.spec.RootFS, "--pidfile", pidFile,
		"--restore-detached", "--restore-sibling", "--tcp-established",
		"--manage-cgroups=soft", "--cgroup-root", s.cgPath, "--cgroup-yard", s.r.cgYard(),
		"--config", s.criuConfig(),
		// ExtraFiles[0]: runc names the joined network namespace so.
		"--inherit-fd", "fd[3]:extRootNetNS",
		// runc's keys: a bind mount's destination, a masked file's
		// /dev/null.
		"--ext-mount-map", "/dev/null:/dev/null",
	}
	args = append(args, inherit...)
	for _, m := range s.bindMounts() {
		args = append(args, "--ext-mount-map", m.Destination+":"+m.Source)
	}
	// The shim's command itself, without the shell.
	cmd := exec.CommandContext(ctx, s.r.criuArgv[0], append(slices.Clone(s.r.criuArgv[1:]), args...)...)
	cmd.Env = runtimeEnv
	cmd.WaitDelay = 5 * time.Second
	cmd.ExtraFiles = []*os.File{ns}
	return cmd, nil
}

// maxDescriptorLen bounds a descriptor inheritFDArgs passes on: what
// runc records is a /proc/<pid>/fd link's target, at most PATH_MAX.
const maxDescriptorLen = 4096

// inheritFDArgs returns the `--inherit-fd` arguments that swap a dumped
// process's output pipes for the ones the restore gives CRIU, from a
// snapshot's descriptors.json: a JSON array of strings, index = fd, that
// runc writes at dump (a pipe is "pipe:[inode]").
//
// Only fd 1 and 2 are considered, and only when they were pipes. Anything
// else (a file, /dev/null, a short array, null) yields no argument for
// that fd: CRIU restores it as what it was, and the restored process's
// output on it then does not reach the restore's pipes, so it is not
// captured. Extra entries are ignored. Data that is not an array of
// strings is an error, and so is a pipe's entry that is longer than
// maxDescriptorLen or holds a control character (a newline, a NUL): a
// pipe's link target has none, and no argument can carry a NUL.
func inheritFDArgs(data []byte) ([]string, error) {
	var descriptors []string
	if err := json.Unmarshal(data, &descriptors); err != nil {
		return nil, err
	}
	var args []string
	for fd := 1; fd <= 2 && fd < len(descriptors); fd++ {
		d := descriptors[fd]
		if !strings.HasPrefix(d, "pipe:") {
			continue
		}
		if len(d) > maxDescriptorLen {
			return nil, fmt.Errorf("fd %d: descriptor of %d bytes, at most %d", fd, len(d), maxDescriptorLen)
		}
		if strings.ContainsFunc(d, unicode.IsControl) {
			return nil, fmt.Errorf("fd %d: control character in descriptor %q", fd, d)
		}
		args = append(args, "--inherit-fd", fmt.Sprintf("fd[%d]:%s", fd, d))
	}
	return args, nil
}

// criuLogTail returns the last error lines of a CRIU log, prefixed for
// appending to an error, or "".
func criuLogTail(path string) string {
	data, err := os.ReadFile(path)
	if err != nil {
		return ""
	}
	var errs []string
	for _, line := range strings.Split(string(data), "\n") {
		if strings.Contains(line, "Error") || strings.Contains(line, "rror (") {
			errs = append(errs, strings.TrimSpace(line))
		}
	}
	if len(errs) > 5 {
		errs = errs[len(errs)-5:]
	}
	if len(errs) == 0 {
		return ""
	}
	return " (criu: " + strings.Join(errs, "; ") + ")"
}

// criuConfig returns the CRIU configuration file of a checkpointable
// environment, or "".
func (s *Sandbox) criuConfig() string {
	switch {
	case s.spec.RestoreFrom != "":
		return filepath.Join(s.dir, criuRestoreConfigName)
	case s.spec.Checkpointable:
		return filepath.Join(s.r.runDir, criuDumpConfigName)
	}
	return ""
}

// addSearchBits makes dir searchable by everyone, keeping its other bits
// (a run directory on a host's /run or /tmp keeps 1777).
func addSearchBits(dir string) error {
	fi, err := os.Stat(dir)
	if err != nil {
		return err
	}
	return os.Chmod(dir, fi.Mode()&(os.ModePerm|os.ModeSticky|os.ModeSetgid|os.ModeSetuid)|0o011)
}

// cgYard returns CRIU's cgroup yard for direct restores, made on first use:
// a directory with a bind mount of each of the host's hierarchies under
// the name CRIU gives it (its controllers, comma-separated; name=X as X;
// the unified one as "unified"). Without one CRIU mounts every hierarchy
// anew in a temporary directory on each restore (mounting cgroup2 takes
// ~8 ms here) and leaves the mounts behind if it is killed. (Links would
// not do: CRIU reaches the yard from inside the restored mount namespace.)
// Cleanup unmounts it.
func (r *Runtime) cgYard() string {
	dir := filepath.Join(r.runDir, cgYardName)
	r.yardOnce.Do(func() {
		if err := removeCgYard(dir); err != nil {
			r.log.Warn("cgroup yard", "err", err)
		}
		// CRIU runs with the sandbox user's real ids (see criuShimName)
		// and looks for the yard's entries with access(2), which checks
		// those: the way there must be searchable by others (not
		// readable: nothing in RunDir is listed).
		if err := addSearchBits(r.runDir); err != nil {
			r.log.Warn("cgroup yard", "err", err)
		}
		if err := os.Mkdir(dir, 0o711); err != nil {
			r.log.Warn("cgroup yard", "err", err)
			return
		}
		for _, hr := range r.cgroups.hierarchies {
			name := yardName(hr)
			if name == "" {
				continue
			}
			at := filepath.Join(dir, name)
			if err := os.Mkdir(at, 0o755); err != nil {
				r.log.Warn("cgroup yard", "err", err)
				continue
			}
			if err := unix.Mount(hr.mountpoint, at, "", unix.MS_BIND, ""); err != nil {
				r.log.Warn("cgroup yard", "hierarchy", hr.mountpoint, "err", err)
			}
		}
	})
	return dir
}

// yardName is CRIU's name of a hierarchy in its yard, or "" for one that
// has none of its own.
func yardName(hr hierarchy) string {
	if hr.v2 {
		return "unified"
	}
	var names []string
	for _, o := range hr.order {
		switch {
		case strings.HasPrefix(o, "name="):
			names = append(names, strings.TrimPrefix(o, "name="))
		case cgroupControllers[o]:
			names = append(names, o)
		}
	}
	return strings.Join(names, ",")
}

// cgroupControllers are the cgroup v1 controllers' names.
var cgroupControllers = map[string]bool{
	"cpu": true, "cpuacct": true, "cpuset": true, "memory": true, "devices": true, "freezer": true,
	"net_cls": true, "net_prio": true, "blkio": true, "perf_event": true, "hugetlb": true, "pids": true,
	"rdma": true, "misc": true, "debug": true,
}

// bindMounts are the bind mounts of the environment's bundle.
func (s *Sandbox) bindMounts() []sandbox.Mount {
	var out []sandbox.Mount
	if s.hostsBind != "" {
		out = append(out, sandbox.Mount{Source: s.hostsBind, Destination: "/etc/hosts"})
	}
	return append(out, s.spec.Mounts...)
}

// directRestore reports whether Kappa may run CRIU's restore itself: when
// the devices controller is cgroup v1, whose rules CRIU restores with the
// other limits (checkLimits checks them). Under cgroup v2 the device rules
// are a BPF program only the OCI runtime attaches.
func (h *cgroupHost) directRestore() bool { return h.hasV1("devices") }

// checkLimits verifies the limits of a restored environment's cgroup at
// path: memory, CPU quota and process count as newSpec sets them, and a
// device list that is not "everything".
func (h *cgroupHost) checkLimits(path string, memoryMB int) error {
	want := map[string]string{}
	for _, hr := range h.hierarchies {
		dir := filepath.Join(hr.mountpoint, path)
		switch {
		case hr.v2:
			if _, err := os.Stat(filepath.Join(dir, "memory.max")); err == nil && h.memoryV1 == nil {
				want[filepath.Join(dir, "memory.max")] = strconv.Itoa(memoryMB << 20)
			}
			if _, err := os.Stat(filepath.Join(dir, "cpu.max")); err == nil && !h.hasV1("cpu") {
				want[filepath.Join(dir, "cpu.max")] = fmt.Sprintf("%d %d", cpuQuota(memoryMB), cpuPeriod)
			}
			if _, err := os.Stat(filepath.Join(dir, "pids.max")); err == nil && !h.hasV1("pids") {
				want[filepath.Join(dir, "pids.max")] = strconv.Itoa(pidsLimit)
			}
		}
		if !hr.v2 && hr.options["memory"] {
			want[filepath.Join(dir, "memory.limit_in_bytes")] = strconv.Itoa(memoryMB << 20)
			// Swap = memory in the spec: no swap beyond the limit.
			if _, err := os.Stat(filepath.Join(dir, "memory.memsw.limit_in_bytes")); err == nil {
				want[filepath.Join(dir, "memory.memsw.limit_in_bytes")] = strconv.Itoa(memoryMB << 20)
			}
		}
		if !hr.v2 && hr.options["pids"] {
			want[filepath.Join(dir, "pids.max")] = strconv.Itoa(pidsLimit)
		}
		if !hr.v2 && hr.options["cpu"] {
			want[filepath.Join(dir, "cpu.cfs_quota_us")] = strconv.FormatInt(cpuQuota(memoryMB), 10)
			want[filepath.Join(dir, "cpu.cfs_period_us")] = strconv.Itoa(cpuPeriod)
		}
		if !hr.v2 && hr.options["devices"] {
			data, err := os.ReadFile(filepath.Join(dir, "devices.list"))
			if err != nil {
				return err
			}
			if strings.Contains(string(data), "a *:* rwm") {
				return errors.New("cgroup devices: every device allowed")
			}
		}
	}
	for file, v := range want {
		data, err := os.ReadFile(file)
		if err != nil {
			return err
		}
		if got := strings.TrimSpace(string(data)); got != v {
			return fmt.Errorf("cgroup %s = %s, want %s", file, got, v)
		}
	}
	return nil
}

// hasV1 reports whether controller is on a v1 hierarchy.
func (h *cgroupHost) hasV1(controller string) bool {
	for _, hr := range h.hierarchies {
		if !hr.v2 && hr.options[controller] {
			return true
		}
	}
	return false
}

// prepareParent makes the cgroup parent of environments on every
// hierarchy, as the OCI runtime does before it creates a container's: a new
// v1 cpuset starts with no CPUs and no memory nodes, which its children
// cannot then be given, so it gets its own parent's.
func (h *cgroupHost) prepareParent(parent string) error {
	for _, hr := range h.hierarchies {
		if hr.v2 || !hr.options["cpuset"] {
			if err := os.MkdirAll(filepath.Join(hr.mountpoint, parent), 0o755); err != nil {
				return err
			}
			continue
		}
		dir := hr.mountpoint
		for _, part := range strings.Split(strings.Trim(parent, "/"), "/") {
			up := dir
			dir = filepath.Join(dir, part)
			if err := os.Mkdir(dir, 0o755); err != nil && !errors.Is(err, os.ErrExist) {
				return err
			}
			for _, f := range []string{"cpuset.cpus", "cpuset.mems"} {
				cur, err := os.ReadFile(filepath.Join(dir, f))
				if err != nil {
					return err
				}
				if len(bytes.TrimSpace(cur)) > 0 {
					continue
				}
				v, err := os.ReadFile(filepath.Join(up, f))
				if err != nil {
					return err
				}
				if err := os.WriteFile(filepath.Join(dir, f), v, 0o644); err != nil {
					return fmt.Errorf("cgroup %s: %w", filepath.Join(dir, f), err)
				}
			}
		}
	}
	return nil
}

// prepareRestore does ahead of a restore what need not wait for it: the
// environment's /dev and empty directory for the masked paths, with the
// CRIU configuration binding them (criuConfigs), and, under a cgroup v1
// devices controller (direct restores), the environments' cgroup parent
// (prepareParent) and this environment's cgroup on the unified hierarchy, where the kernel takes 10-20 ms to make
// one here and CRIU has no limit to restore (the controllers are v1's);
// CRIU makes the v1 cgroups, with the limits it dumped.
func (s *Sandbox) prepareRestore() error {
	dev, empty := filepath.Join(s.dir, devDirName), filepath.Join(s.dir, emptyDirName)
	if err := makeDevDir(dev); err != nil {
		return fmt.Errorf("restore /dev: %w", err)
	}
	if err := s.devMountPoints(dev); err != nil {
		return err
	}
	if err := os.Mkdir(empty, 0o555); err != nil && !errors.Is(err, os.ErrExist) {
		return err
	}
	_, restore := criuConfigs(empty, dev)
	if err := os.WriteFile(filepath.Join(s.dir, criuRestoreConfigName), []byte(restore), 0o600); err != nil {
		return err
	}
	if !s.direct() {
		return nil
	}
	if err := s.r.cgroups.prepareParent(s.r.cgParent); err != nil {
		return err
	}
	if s.r.cgroups.v2 == nil {
		return nil
	}
	return os.Mkdir(filepath.Join(s.r.cgroups.v2.mountpoint, s.cgPath), 0o755)
}

// removeCgYard unmounts and removes a cgroup yard (see cgYard).
func removeCgYard(dir string) error {
	ents, err := os.ReadDir(dir)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	var errs []error
	for _, e := range ents {
		at := filepath.Join(dir, e.Name())
		if err := unix.Unmount(at, unix.MNT_DETACH); err != nil && !errors.Is(err, unix.EINVAL) {
			errs = append(errs, fmt.Errorf("unmount %s: %w", at, err))
			continue
		}
		errs = append(errs, os.Remove(at))
	}
	if err := errors.Join(errs...); err != nil {
		return err
	}
	return os.Remove(dir)
}

// makeDevDir fills dir with what runc puts in a container's /dev: the
// standard character devices (mode 0666), the usual links (/dev/core too
// where the host has /proc/kcore), and the mount points of /dev/pts and
// /dev/mqueue (devMountPoints adds those of the environment's own binds).
func makeDevDir(dir string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	if err := os.Chmod(dir, 0o755); err != nil {
		return err
	}
	for name, dev := range map[string][2]uint32{
		"null": {1, 3}, "zero": {1, 5}, "full": {1, 7}, "random": {1, 8}, "urandom": {1, 9}, "tty": {5, 0},
	} {
		p := filepath.Join(dir, name)
		var st unix.Stat_t
		if unix.Lstat(p, &st) != nil || st.Mode&unix.S_IFMT != unix.S_IFCHR || st.Rdev != unix.Mkdev(dev[0], dev[1]) {
			os.Remove(p)
			if err := unix.Mknod(p, unix.S_IFCHR|0o666, int(unix.Mkdev(dev[0], dev[1]))); err != nil {
				return err
			}
		}
		if err := os.Chmod(p, 0o666); err != nil { // past the umask
			return err
		}
	}
	links := map[string]string{
		"fd": "/proc/self/fd", "stdin": "/proc/self/fd/0", "stdout": "/proc/self/fd/1", "stderr": "/proc/self/fd/2",
		"ptmx": "pts/ptmx",
	}
	if _, err := os.Stat("/proc/kcore"); err == nil {
		links["core"] = "/proc/kcore"
	}
	for name, target := range links {
		p := filepath.Join(dir, name)
		if t, err := os.Readlink(p); err == nil && t == target {
			continue
		}
		os.Remove(p)
		if err := os.Symlink(target, p); err != nil {
			return err
		}
	}
	for _, d := range []string{"pts", "mqueue"} {
		if err := os.MkdirAll(filepath.Join(dir, d), 0o755); err != nil {
			return err
		}
	}
	return nil
}

// devMountPoints makes, in devDir (a restored environment's /dev), the
// mount points of the bind mounts the environment has under /dev (Kappa's
// init).
func (s *Sandbox) devMountPoints(devDir string) error {
	for _, m := range s.spec.Mounts {
		rel, ok := strings.CutPrefix(filepath.Clean(m.Destination), "/dev/")
		if !ok || strings.Contains(rel, "/") {
			continue
		}
		fi, err := os.Stat(m.Source)
		if err != nil {
			return err
		}
		p := filepath.Join(devDir, rel)
		if fi.IsDir() {
			err = os.Mkdir(p, 0o755)
		} else {
			var f *os.File
			if f, err = os.OpenFile(p, os.O_CREATE|os.O_EXCL|os.O_RDONLY, 0o644); err == nil {
				f.Close()
			}
		}
		if err != nil && !errors.Is(err, os.ErrExist) {
			return err
		}
	}
	return nil
}

// direct reports whether the environment is restored by running CRIU
// directly (see restore).
func (s *Sandbox) direct() bool { return s.r.cgroups.directRestore() && !s.r.viaRuntime }

// Describe reports, for diagnostics, the environment's processes and what
// each thread waits in (from /proc), and its freezer state.
func (s *Sandbox) Describe() string {
	var b strings.Builder
	if s.cg.freezer != "" {
		file := "freezer.state"
		if s.cg.freezerV2 {
			file = "cgroup.freeze"
		}
		if data, err := os.ReadFile(filepath.Join(s.cg.freezer, file)); err == nil {
			fmt.Fprintf(&b, "freezer %s; ", strings.TrimSpace(string(data)))
		}
	}
	procs, err := os.ReadFile(filepath.Join(s.cg.memory, "cgroup.procs"))
	if err != nil {
		return b.String() + err.Error()
	}
	for _, pid := range strings.Fields(string(procs)) {
		comm, _ := os.ReadFile("/proc/" + pid + "/comm")
		fmt.Fprintf(&b, "%s %s:", pid, strings.TrimSpace(string(comm)))
		tasks, _ := os.ReadDir("/proc/" + pid + "/task")
		for _, t := range tasks {
			wchan, _ := os.ReadFile("/proc/" + pid + "/task/" + t.Name() + "/wchan")
			stat, _ := os.ReadFile("/proc/" + pid + "/task/" + t.Name() + "/stat")
			state := ""
			if i := bytes.LastIndexByte(stat, ')'); i > 0 && i+2 < len(stat) {
				state = string(stat[i+2])
			}
			fmt.Fprintf(&b, " %s=%s/%s", t.Name(), state, wchan)
		}
		b.WriteString("; ")
	}
	return b.String()
}
