// Package envinit is the init process of an execution environment whose
// image has external extensions: Kappa bind-mounts its own (static) binary
// read-only into the environment and runs it as PID 1 under the name
// InitName. It starts every executable in /opt/extensions, then the
// runtime, forwards SIGTERM to them, reaps every child (it is PID 1) and
// exits with the runtime's status when the runtime exits. Lambda's own
// environments have the same kind of platform init.
package envinit

import (
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"sort"
	"syscall"
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
// image's root filesystem): the regular files of root/opt/extensions with
// an execute bit, sorted as Lambda starts them.
func Extensions(root string) []string {
	ents, err := os.ReadDir(filepath.Join(root, ExtensionsDir))
	if err != nil {
		return nil
	}
	var names []string
	for _, e := range ents {
		info, err := e.Info()
		if err != nil || !info.Mode().IsRegular() || info.Mode().Perm()&0o111 == 0 {
			continue
		}
		names = append(names, e.Name())
	}
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

	var children []*os.Process
	for _, name := range Extensions("/") {
		cmd := exec.Command(filepath.Join(ExtensionsDir, name))
		cmd.Stdout, cmd.Stderr, cmd.Env = os.Stdout, os.Stderr, os.Environ()
		if err := cmd.Start(); err != nil {
			fmt.Fprintf(os.Stderr, "%s: start extension %s: %v\n", InitName, name, err)
			continue
		}
		children = append(children, cmd.Process)
	}
	runtime := exec.Command(argv[0], argv[1:]...)
	runtime.Stdin, runtime.Stdout, runtime.Stderr, runtime.Env = os.Stdin, os.Stdout, os.Stderr, os.Environ()
	if err := runtime.Start(); err != nil {
		fmt.Fprintf(os.Stderr, "%s: start runtime %s: %v\n", InitName, argv[0], err)
		return 127
	}
	children = append(children, runtime.Process)
	rpid := runtime.Process.Pid

	for sig := range sigs {
		if sig != syscall.SIGCHLD {
			for _, p := range children {
				p.Signal(sig)
			}
			continue
		}
		// Reap every exited child; the runtime's end ends the environment.
		for {
			var ws syscall.WaitStatus
			pid, err := syscall.Wait4(-1, &ws, syscall.WNOHANG, nil)
			if pid <= 0 || err != nil {
				break
			}
			if pid != rpid {
				continue
			}
			if ws.Signaled() {
				return 128 + int(ws.Signal())
			}
			return ws.ExitStatus()
		}
	}
	return 1
}
