package oci

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"time"

	"github.com/kappa-run/kappa/internal/sandbox"
)

// runtimeEnv is the environment of every runtime command: nothing of
// Kappa's own (NOTIFY_SOCKET in particular would make the runtime hand
// systemd's socket to the container).
var runtimeEnv = []string{"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"}

// cli runs one OCI runtime binary against one state root.
type cli struct {
	name string // "crun" or "runc"
	bin  string // absolute path
	root string // --root
	// global are more options before the command (runc's --criu).
	global []string
}

// command builds `<bin> --root <root> [--log <logFile> --log-format json] args...`.
func (c cli) command(ctx context.Context, logFile string, args ...string) *exec.Cmd {
	full := make([]string, 0, len(args)+len(c.global)+6)
	full = append(full, "--root", c.root)
	full = append(full, c.global...)
	if logFile != "" {
		full = append(full, "--log", logFile, "--log-format", "json")
	}
	full = append(full, args...)
	cmd := exec.CommandContext(ctx, c.bin, full...)
	cmd.Env = runtimeEnv
	cmd.WaitDelay = 5 * time.Second
	return cmd
}

// run runs a runtime command to completion and returns its stdout. A
// failure is a *runtimeError holding the command's stderr and the tail of
// logFile.
func (c cli) run(ctx context.Context, logFile string, args ...string) ([]byte, error) {
	cmd := c.command(ctx, logFile, args...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return stdout.Bytes(), c.failure(args[0], err, stderr.Bytes(), logFile)
	}
	return stdout.Bytes(), nil
}

// failure builds the error of a failed runtime command.
func (c cli) failure(op string, err error, stderr []byte, logFile string) *runtimeError {
	return &runtimeError{
		runtime: c.name,
		op:      op,
		err:     err,
		stderr:  strings.TrimSpace(string(stderr)),
		log:     readRuntimeLog(logFile),
	}
}

// runtimeError is a failed runtime command.
type runtimeError struct {
	runtime, op string
	err         error  // the exec error (exit status)
	stderr      string // what the runtime printed
	log         string // error messages from its --log file
}

func (e *runtimeError) Error() string {
	msg := e.log
	if msg == "" {
		msg = e.stderr
	}
	if msg == "" {
		msg = e.err.Error()
	}
	return fmt.Sprintf("%s %s: %s", e.runtime, e.op, msg)
}

func (e *runtimeError) Unwrap() error { return e.err }

// text is everything the runtime said about the failure.
func (e *runtimeError) text() string { return e.stderr + "\n" + e.log }

// readRuntimeLog returns the messages of warning and error entries of a
// JSON runtime log (runc and crun write {"level","msg","time"} lines),
// one per line, at most the last 4 KiB.
func readRuntimeLog(path string) string {
	if path == "" {
		return ""
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return ""
	}
	if len(data) > 64<<10 {
		data = data[len(data)-64<<10:]
	}
	var msgs []string
	for _, line := range bytes.Split(data, []byte("\n")) {
		var entry struct {
			Level string `json:"level"`
			Msg   string `json:"msg"`
		}
		if json.Unmarshal(line, &entry) != nil {
			continue
		}
		switch entry.Level {
		case "error", "fatal", "panic", "warning":
			msgs = append(msgs, entry.Msg)
		}
	}
	out := strings.Join(msgs, "\n")
	if len(out) > 4<<10 {
		out = out[len(out)-4<<10:]
	}
	return out
}

// classify wraps err with sandbox.ErrInvalidWorkingDir or
// sandbox.ErrInvalidEntrypoint when the runtime's output says that the
// working directory or the executable was the problem.
func classify(spec sandbox.Spec, err error) error {
	var re *runtimeError
	if !errors.As(err, &re) {
		return err
	}
	switch classifyText(re.text()) {
	case errCwd:
		return fmt.Errorf("%w %q: %w", sandbox.ErrInvalidWorkingDir, spec.Cwd, err)
	case errExec:
		return fmt.Errorf("%w %q: %w", sandbox.ErrInvalidEntrypoint, spec.Args[0], err)
	}
	return err
}

type failureKind int

const (
	errOther failureKind = iota
	errCwd
	errExec
)

// classifyText recognises the messages crun and runc print when the
// working directory or the executable is unusable.
func classifyText(text string) failureKind {
	t := strings.ToLower(text)
	switch {
	case strings.Contains(t, "chdir"), strings.Contains(t, "cwd"), strings.Contains(t, "working directory"):
		return errCwd
	case strings.Contains(t, "exec:"), // runc: exec: "/x": stat /x: no such file or directory
		strings.Contains(t, "executable"), // crun: executable file `x` not found; open executable: ...
		strings.Contains(t, "exec container process"),
		strings.Contains(t, "exec format error"):
		return errExec
	}
	return errOther
}
