package sandboxtest

import (
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"testing"
)

// ProbePath is where BuildRootFS puts the probe program.
const ProbePath = "/bin/probe"

// BuildRootFS builds the probe program (a static Go binary, see
// sandboxtest/probe) and assembles a minimal root filesystem around it in a
// temporary directory:
//
//	/bin/probe      the probe, mode 0755
//	/bin/noexec     a regular file without execute permission
//	/bin/badinterp  an executable script whose interpreter does not exist
//	/etc/hosts      empty (a mount point for the sandbox's hosts file)
//	/proc /dev /sys /tmp /etc /work   empty directories
//
// It needs the go command. The directory is removed at the end of the test.
func BuildRootFS(t testing.TB) string {
	t.Helper()
	goBin := filepath.Join(runtime.GOROOT(), "bin", "go")
	if _, err := os.Stat(goBin); err != nil {
		var lerr error
		if goBin, lerr = exec.LookPath("go"); lerr != nil {
			t.Skip("sandboxtest needs the go command to build its probe")
		}
	}
	rootfs := filepath.Join(t.TempDir(), "rootfs")
	for _, d := range []string{"bin", "etc", "proc", "dev", "sys", "tmp", "work"} {
		if err := os.MkdirAll(filepath.Join(rootfs, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	cmd := exec.Command(goBin, "build", "-trimpath", "-ldflags=-s -w", "-o", filepath.Join(rootfs, ProbePath),
		"github.com/kappa-run/kappa/internal/sandbox/sandboxtest/probe")
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("build probe: %v\n%s", err, out)
	}
	for _, f := range []struct {
		name, content string
		mode          os.FileMode
	}{
		{"bin/noexec", "", 0o644},
		{"bin/badinterp", "#!/nonexistent/interpreter\n", 0o755},
		{"etc/hosts", "", 0o644},
	} {
		if err := os.WriteFile(filepath.Join(rootfs, f.name), []byte(f.content), f.mode); err != nil {
			t.Fatal(err)
		}
	}
	return rootfs
}
