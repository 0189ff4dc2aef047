package oci

import (
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/kappa-run/kappa/internal/sandbox"
)

// The messages crun 1.8 and runc 1.1 print.
func TestClassify(t *testing.T) {
	tests := []struct {
		name string
		text string
		want error
	}{
		{"crun missing", "executable file `/bin/nope` not found in $PATH: No such file or directory", sandbox.ErrInvalidEntrypoint},
		{"crun not executable", "open executable: Permission denied", sandbox.ErrInvalidEntrypoint},
		{"crun directory", "open executable: Operation not permitted", sandbox.ErrInvalidEntrypoint},
		{"crun exec", "exec container process (missing dynamic library?) `/bin/script`: No such file or directory", sandbox.ErrInvalidEntrypoint},
		{"crun cwd", "chdir `/bin/probe`: Not a directory", sandbox.ErrInvalidWorkingDir},
		{"runc missing", `runc create failed: unable to start container process: exec: "/bin/nope": stat /bin/nope: no such file or directory`, sandbox.ErrInvalidEntrypoint},
		{"runc not executable", `runc create failed: unable to start container process: exec: "/bin/noexec": permission denied`, sandbox.ErrInvalidEntrypoint},
		{"runc cwd", `runc create failed: unable to start container process: error during container init: chdir to cwd ("/x") set in config.json failed: permission denied`, sandbox.ErrInvalidWorkingDir},
		{"cgroup trouble", "cgroups in hybrid mode not supported, drop all controllers from cgroupv2", nil},
		{"mount trouble", `error mounting "proc" to rootfs at "/proc": permission denied`, nil},
	}
	spec := sandbox.Spec{Args: []string{"/bin/x"}, Cwd: "/x"}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := classify(spec, &runtimeError{runtime: "r", op: "create", err: errors.New("exit status 1"), stderr: tt.text})
			if tt.want == nil {
				if errors.Is(err, sandbox.ErrInvalidEntrypoint) || errors.Is(err, sandbox.ErrInvalidWorkingDir) {
					t.Errorf("classify(%q) = %v, want unclassified", tt.text, err)
				}
				return
			}
			if !errors.Is(err, tt.want) {
				t.Errorf("classify(%q) = %v, want %v", tt.text, err, tt.want)
			}
		})
	}
}

func TestReadRuntimeLog(t *testing.T) {
	path := filepath.Join(t.TempDir(), "log")
	log := `{"level":"info","msg":"hello","time":"x"}
not json
{"msg":"exec container process: No such file","level":"error","time":"x"}
{"level":"warning","msg":"careful"}
`
	if err := os.WriteFile(path, []byte(log), 0o600); err != nil {
		t.Fatal(err)
	}
	if got, want := readRuntimeLog(path), "exec container process: No such file\ncareful"; got != want {
		t.Errorf("readRuntimeLog = %q, want %q", got, want)
	}
	if got := readRuntimeLog(filepath.Join(t.TempDir(), "missing")); got != "" {
		t.Errorf("missing log = %q", got)
	}
}

func FuzzReadRuntimeLog(f *testing.F) {
	f.Add([]byte(`{"level":"error","msg":"exec: \"/x\": permission denied"}`))
	f.Add([]byte("{\"level\":\"error\",\"msg\":\"\\u0000\"}\n{"))
	dir := f.TempDir()
	f.Fuzz(func(t *testing.T, data []byte) {
		path := filepath.Join(dir, "log")
		if err := os.WriteFile(path, data, 0o600); err != nil {
			t.Fatal(err)
		}
		out := readRuntimeLog(path)
		if len(out) > 4<<10 {
			t.Errorf("%d bytes, want at most 4 KiB", len(out))
		}
		_ = classifyText(out)
	})
}
