package e2e

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
)

// TestPushTools pushes the probe to the embedded registry with the tools
// users have (crane, skopeo, podman, and `kappa push` for a directory, a
// docker-save tarball and an OCI layout), then deploys and invokes each
// pushed image. A tool that is not installed skips its subtest.
func TestPushTools(t *testing.T) {
	s := newServer(t)
	dir := t.TempDir()
	// A docker-save tarball of the probe image, as `docker save` writes.
	archive := filepath.Join(dir, "probe.tar")
	tag, err := name.NewTag("localhost/kappa-e2e-probe:" + randHex(4))
	if err != nil {
		t.Fatal(err)
	}
	if err := tarball.WriteToFile(archive, tag, probeImage(t, "PROBE_VERSION=tar")); err != nil {
		t.Fatal(err)
	}

	deploy := func(t *testing.T, fname, ref, version string) {
		t.Helper()
		s.createFunction(t, fname, ref)
		res := mustInvoke(t, s, fname, map[string]any{"op": "echo", "text": fname})
		if res["text"] != fname || res["version"] != version {
			t.Errorf("invoke %s = %v, want echo %q from version %q", fname, res, fname, version)
		}
	}

	t.Run("crane", func(t *testing.T) {
		requireTool(t, "crane")
		ref := s.registry() + "/crane:v1"
		runTool(t, nil, "crane", "push", "--insecure", archive, ref)
		deploy(t, "crane", ref, "tar")
	})

	t.Run("skopeo", func(t *testing.T) {
		requireTool(t, "skopeo")
		ref := s.registry() + "/skopeo:v1"
		runTool(t, nil, "skopeo", "copy", "--dest-tls-verify=false", "docker-archive:"+archive, "docker://"+ref)
		deploy(t, "skopeo", ref, "tar")
	})

	t.Run("podman", func(t *testing.T) {
		requireTool(t, "podman")
		env := podmanEnv(t)
		out := runTool(t, env, "podman", "load", "-i", archive)
		t.Cleanup(func() { exec.Command("podman", "rmi", "--force", tag.String()).Run() })
		if !strings.Contains(out, tag.RepositoryStr()) {
			t.Logf("podman load: %s", out)
		}
		ref := s.registry() + "/podman:v1"
		runTool(t, env, "podman", "push", "--tls-verify=false", tag.String(), ref)
		deploy(t, "podman", ref, "tar")
	})

	t.Run("kappa push directory", func(t *testing.T) {
		ref := s.registry() + "/kp-dir:v1"
		runTool(t, nil, kappaBin, "push", probeDir, ref, "--entrypoint", "/bootstrap", "--env", "PROBE_VERSION=dir")
		deploy(t, "kp-dir", ref, "dir")
	})

	t.Run("kappa push tarball", func(t *testing.T) {
		ref := s.registry() + "/kp-tar:v1"
		runTool(t, nil, kappaBin, "push", archive, ref)
		deploy(t, "kp-tar", ref, "tar")
	})

	t.Run("kappa push OCI layout", func(t *testing.T) {
		lp, err := layout.Write(filepath.Join(dir, "oci"), empty.Index)
		if err != nil {
			t.Fatal(err)
		}
		if err := lp.AppendImage(probeImage(t, "PROBE_VERSION=oci")); err != nil {
			t.Fatal(err)
		}
		ref := s.registry() + "/kp-oci:v1"
		runTool(t, nil, kappaBin, "push", filepath.Join(dir, "oci"), ref)
		deploy(t, "kp-oci", ref, "oci")
	})
}

func requireTool(t *testing.T, tool string) {
	t.Helper()
	if _, err := exec.LookPath(tool); err != nil {
		t.Skipf("needs %s (scripts/deps.sh installs it)", tool)
	}
}

// runTool runs a command with extra environment entries and returns its
// combined output; it fails the test if the command fails.
func runTool(t *testing.T, env []string, name string, args ...string) string {
	t.Helper()
	cmd := exec.Command(name, args...)
	cmd.Env = append(os.Environ(), env...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	return string(out)
}

// podmanEnv returns the environment podman needs here: in a VM without a
// container manager its default rlimits exceed what root may set, so
// without default_ulimits in containers.conf (scripts/deps.sh adds them)
// the test points CONTAINERS_CONF at a file that sets them.
func podmanEnv(t *testing.T) []string {
	t.Helper()
	if b, err := os.ReadFile("/etc/containers/containers.conf"); err == nil && strings.Contains(string(b), "default_ulimits") {
		return nil
	}
	if os.Getenv("CONTAINERS_CONF") != "" {
		return nil
	}
	conf := filepath.Join(t.TempDir(), "containers.conf")
	err := os.WriteFile(conf, []byte("[containers]\ndefault_ulimits = [\"nofile=1024:1024\", \"nproc=1024:1024\"]\n"), 0o644)
	if err != nil {
		t.Fatal(err)
	}
	return []string{"CONTAINERS_CONF=" + conf}
}
