// Package envinit is the init process of an execution environment whose
// image has external extensions: Kappa bind-mounts a static binary
// read-only into the environment and runs it as PID 1 under the name
// InitName (cmd/kappa-init, which is this package alone, or the kappa
// binary itself). It starts every executable in /opt/extensions, then the
// runtime, forwards SIGTERM to the runtime, reaps every child (it is PID 1)
// and exits with the runtime's status when the runtime exits; during a
// shutdown (after SIGTERM) only once the extensions have exited too. Lambda's own
// environments have the same kind of platform init.
//
// In a checkpointable environment (the variable sandbox.RelayEnv is set) it
// also serves the Runtime API to the runtime and the extensions and relays
// it to Kappa (see relay), so that a snapshot keeps their connections.
package envinit

import (
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"syscall"

	"github.com/kappa-run/kappa/internal/sandbox"
)

// InitName is the base name the binary is run under as an init, and Path
// where the sandbox mounts it.
const (
	InitName = "kappa-init"
	Path     = "/dev/" + InitName
)

// ExtensionsDir is where Lambda images keep external extensions.
const ExtensionsDir = "/opt/extensions"

// Extensions lists the external extensions under root (a host path of an
// image's root filesystem, or "/" inside the environment): the regular
// files of opt/extensions with an execute bit, sorted as Lambda starts
// them. The directory is found as the environment sees it: a symlink on
// the way resolves inside root, never to the host's own files.
func Extensions(root string) []string {
	names := listExtensions(root)
	sort.Strings(names)
	return names
}

// Main runs the init with the runtime's argv and returns the exit code.
func Main(argv []string) int {
	if len(argv) == 0 {
		fmt.Fprintln(os.Stderr, InitName+": no runtime command")
		return 127
	}
	sigs := make(chan os.Signal, 4)
	signal.Notify(sigs, syscall.SIGTERM, syscall.SIGINT, syscall.SIGCHLD)

	env := os.Environ()
	if upstream := os.Getenv(sandbox.RelayEnv); upstream != "" {
		env = slices.DeleteFunc(env, func(kv string) bool { return strings.HasPrefix(kv, sandbox.RelayEnv+"=") })
		if _, err := serveRelay(os.Getenv("AWS_LAMBDA_RUNTIME_API"), upstream); err != nil {
			fmt.Fprintf(os.Stderr, "%s: runtime api relay: %v\n", InitName, err)
			return 1
		}
	}

	var children []*os.Process
	for _, name := range Extensions("/") {
		cmd := exec.Command(filepath.Join(ExtensionsDir, name))
		cmd.Stdout, cmd.Stderr, cmd.Env = os.Stdout, os.Stderr, env
		if err := cmd.Start(); err != nil {
			fmt.Fprintf(os.Stderr, "%s: start extension %s: %v\n", InitName, name, err)
			continue
		}
		children = append(children, cmd.Process)
	}
	runtime := exec.Command(argv[0], argv[1:]...)
	runtime.Stdin, runtime.Stdout, runtime.Stderr, runtime.Env = os.Stdin, os.Stdout, os.Stderr, env
	if err := runtime.Start(); err != nil {
		fmt.Fprintf(os.Stderr, "%s: start runtime %s: %v\n", InitName, argv[0], err)
		return 127
	}
	rpid := runtime.Process.Pid
	live := len(children) + 1

	// On SIGTERM (the environment shutting down) only the runtime is
	// signalled, as Lambda does: the extensions have their SHUTDOWN event
	// and its deadline, after which Kappa kills what is left. Until they
	// exit this init stays, since its exit would kill them with the PID
	// namespace. A runtime that exits on its own ends the environment at
	// once.
	terminating := false
	status, runtimeDone := 1, false
	for sig := range sigs {
		if sig != syscall.SIGCHLD {
			terminating = true
			if !runtimeDone {
				runtime.Process.Signal(sig)
			}
			continue
		}
		for {
			var ws syscall.WaitStatus
			pid, err := syscall.Wait4(-1, &ws, syscall.WNOHANG, nil)
			if pid <= 0 || err != nil {
				break
			}
			if isChild(children, pid) || pid == rpid {
				live--
			}
			if pid != rpid {
				continue
			}
			runtimeDone, status = true, ws.ExitStatus()
			if ws.Signaled() {
				status = 128 + int(ws.Signal())
			}
		}
		if runtimeDone && (!terminating || live == 0) {
			return status
		}
	}
	return status
}

func isChild(children []*os.Process, pid int) bool {
	for _, p := range children {
		if p.Pid == pid {
			return true
		}
	}
	return false
}
