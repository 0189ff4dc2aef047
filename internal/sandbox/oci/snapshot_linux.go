package oci

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

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
var _ sandbox.Checkpointer = (*Sandbox)(nil)

// Snapshots reports whether this host can checkpoint and restore
// environments: runc is installed and CRIU is there and passes
// `criu check`. The answer is found once, on first use (a check takes
// ~0.4 s).
func (r *Runtime) Snapshots() error {
	r.snapOnce.Do(func() {
		r.snap, r.snapErr = findSnapshotter(r.runDir, r.criu)
		if r.snapErr != nil {
			r.log.Info("snapshots unavailable", "err", r.snapErr)
		} else {
			r.log.Info("snapshots available", "runc", r.snap.bin, "criu", r.snap.global[1])
		}
	})
	return r.snapErr
}

// findSnapshotter returns the runc command line that checkpoints and
// restores with a working CRIU.
func findSnapshotter(runDir, criu string) (cli, error) {
	runc, err := exec.LookPath("runc")
	if err != nil {
		return cli{}, errors.New("snapshots need runc (apt-get install runc)")
	}
	if runc, err = filepath.Abs(runc); err != nil {
		return cli{}, err
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
		return cli{}, err
	}
	if _, err := os.Stat(criu); err != nil {
		return cli{}, fmt.Errorf("snapshots need CRIU ≥ 4.2 (scripts/build-criu.sh builds it): %w", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, criu, "check").CombinedOutput()
	if err != nil {
		return cli{}, fmt.Errorf("%s check: %w: %s", criu, err, lastLine(out))
	}
	setpriv, err := exec.LookPath("setpriv")
	if err != nil {
		return cli{}, errors.New("snapshots need setpriv (util-linux)")
	}
	root := filepath.Join(runDir, "runc")
	if err := os.MkdirAll(root, 0o700); err != nil {
		return cli{}, err
	}
	// CRIU reads every dumped process's rlimits, which the kernel allows
	// a caller whose real ids are the process's, or that holds
	// CAP_SYS_RESOURCE. Root may lack that capability (containers, some
	// hardened hosts), so CRIU runs with the sandbox user's real ids and
	// root's effective ones: every capability root has, kept.
	shim := filepath.Join(runDir, criuShimName)
	script := fmt.Sprintf("#!/bin/sh\nexec %s --ruid %d --rgid %d --keep-groups %s \"$@\"\n", setpriv, sandboxUID, sandboxGID, criu)
	if err := writeFileAtomic(shim, []byte(script), 0o700); err != nil {
		return cli{}, err
	}
	// Options runc has no flag for (see criuConfig).
	if err := writeFileAtomic(filepath.Join(runDir, criuConfigName), []byte(criuConfig), 0o600); err != nil {
		return cli{}, err
	}
	return cli{name: "runc", bin: runc, root: root, global: []string{"--criu", shim}}, nil
}

// Files of RunDir for snapshots.
const (
	criuShimName   = "criu-shim"
	criuConfigName = "criu.conf"
)

// criuConfig is the CRIU configuration file of checkpointable
// environments (runc hands it to CRIU, named by the annotation
// criuConfigAnnotation). No network lock: it keeps the network namespace
// quiet with iptables rules for the dump, but the namespace is Kappa's,
// not dumped, and the only connections dumped are between processes of the
// frozen environment.
const criuConfig = "network-lock skip\n"

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

// restore is Start for a Spec with RestoreFrom: `runc restore --detach`
// from the bundle Create wrote, with the output pipes in place of the
// dumped environment's. s.lifecycle is held.
func (s *Sandbox) restore(ctx context.Context) error {
	if s.startErr != nil {
		return s.startErr
	}
	work := filepath.Join(s.dir, criuWorkName)
	if err := os.MkdirAll(work, 0o700); err != nil {
		return err
	}
	stdoutR, stdoutW, err := os.Pipe()
	if err != nil {
		return err
	}
	stderrR, stderrW, err := os.Pipe()
	if err != nil {
		stdoutR.Close()
		stdoutW.Close()
		return err
	}
	pidFile := filepath.Join(s.dir, pidFileName)
	runCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), restoreTimeout)
	defer cancel()
	cmd := s.cli.command(runCtx, s.logFile(), "restore", "--detach",
		"--image-path", s.spec.RestoreFrom, "--work-path", work, "--tcp-established",
		"--bundle", s.dir, "--pid-file", pidFile, s.spec.ID)
	// CRIU gives the restored processes these in place of the pipes
	// they had (runc matches them by descriptors.json).
	var said bytes.Buffer
	cmd.Stdout, cmd.Stderr = stdoutW, stderrW
	s.state = stateStarted // from here on Destroy deletes the container
	runErr := cmd.Run()
	stdoutW.Close()
	stderrW.Close()
	if runErr != nil {
		stdoutR.Close()
		said.Write(readAvailable(stderrR))
		stderrR.Close()
		reapLeftover(pidFile)
		return fmt.Errorf("%w%s", s.cli.failure("restore", runErr, said.Bytes(), s.logFile()),
			criuLogTail(filepath.Join(work, "restore.log")))
	}
	pid, err := readPIDFile(pidFile)
	if err == nil {
		s.init, err = adoptInit(pid)
	}
	if err != nil {
		stdoutR.Close()
		stderrR.Close()
		if pid > 0 {
			_ = unix.Kill(pid, unix.SIGKILL)
		}
		return err
	}
	// Restored, not executed: the process was running its program when
	// it was dumped.
	s.init.startComm = ""
	s.cg.files = openCgroupFiles(s.cg)
	go s.watch(stdoutR, stderrR)
	return nil
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
	if !s.spec.Checkpointable {
		return ""
	}
	return filepath.Join(s.r.runDir, criuConfigName)
}
