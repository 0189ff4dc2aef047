package e2e

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/crypto/bcrypt"
)

// TestRegistryAuth runs a server with registry credentials: anonymous
// clients get the standard 401 and challenge, and crane, skopeo and podman
// log in (Docker token flow) and push and pull; functions deploy from the
// protected registry, since the server's own pulls use internal
// credentials; the management CLI finds the credentials crane stored.
func TestRegistryAuth(t *testing.T) {
	const user, password = "alice", "correct-horse-battery"
	s := newServer(t, "--registry-user", user, "--registry-password", password)
	archive, tag := probeArchive(t, "auth")

	t.Run("anonymous is refused with a challenge", func(t *testing.T) {
		for _, path := range []string{"/v2/", "/v2/app/manifests/v1", "/v2/_catalog"} {
			r := s.do(t, "GET", path, nil, nil)
			var body struct {
				Errors []struct{ Code string } `json:"errors"`
			}
			if err := json.Unmarshal(r.body, &body); err != nil || r.status != 401 || len(body.Errors) == 0 || body.Errors[0].Code != "UNAUTHORIZED" {
				t.Fatalf("GET %s: %d %s, want 401 UNAUTHORIZED", path, r.status, r.body)
			}
			want := `Bearer realm="http://` + s.addr + `/v2/token",service="kappa"`
			if got := r.header.Get("WWW-Authenticate"); !strings.HasPrefix(got, want) {
				t.Fatalf("GET %s: WWW-Authenticate %q, want prefix %q", path, got, want)
			}
		}
		if r := s.do(t, "POST", "/kappa/registry/gc", nil, nil); r.status != 401 {
			t.Fatalf("anonymous gc: %d %s", r.status, r.body)
		}
	})

	t.Run("crane", func(t *testing.T) {
		requireTool(t, "crane")
		env := []string{"DOCKER_CONFIG=" + t.TempDir()}
		ref := s.registry() + "/crane:v1"
		if out, err := runToolErr(env, "crane", "push", "--insecure", archive, ref); err == nil || !strings.Contains(out, "UNAUTHORIZED") {
			t.Fatalf("anonymous crane push: %v\n%s", err, out)
		}
		runTool(t, env, "crane", "auth", "login", s.registry(), "-u", user, "-p", password)
		runTool(t, env, "crane", "push", "--insecure", archive, ref)
		runTool(t, env, "crane", "manifest", "--insecure", ref)
		s.createFunction(t, "crane-auth", ref)
		if res := mustInvoke(t, s, "crane-auth", map[string]any{"op": "echo", "text": "hi"}); res["version"] != "auth" {
			t.Fatalf("invoke = %v", res)
		}
		// kappa registry finds the credentials crane stored.
		out := runTool(t, env, kappaBin, "registry", "repos", "--endpoint", "http://"+s.addr)
		if !strings.Contains(out, "crane") {
			t.Fatalf("kappa registry repos: %s", out)
		}
		runTool(t, env, kappaBin, "registry", "gc", "--dry-run", "--endpoint", "http://"+s.addr)
	})

	t.Run("skopeo", func(t *testing.T) {
		requireTool(t, "skopeo")
		ref := "docker://" + s.registry() + "/skopeo:v1"
		if out, err := runToolErr(nil, "skopeo", "copy", "--dest-tls-verify=false", "docker-archive:"+archive, ref); err == nil {
			t.Fatalf("anonymous skopeo copy succeeded:\n%s", out)
		}
		if out, err := runToolErr(nil, "skopeo", "copy", "--dest-tls-verify=false", "--dest-creds", user+":wrong", "docker-archive:"+archive, ref); err == nil {
			t.Fatalf("skopeo copy with a wrong password succeeded:\n%s", out)
		}
		runTool(t, nil, "skopeo", "copy", "--dest-tls-verify=false", "--dest-creds", user+":"+password, "docker-archive:"+archive, ref)
		out := runTool(t, nil, "skopeo", "inspect", "--tls-verify=false", "--creds", user+":"+password, ref)
		if !strings.Contains(out, `"Digest"`) {
			t.Fatalf("skopeo inspect: %s", out)
		}
		s.createFunction(t, "skopeo-auth", s.registry()+"/skopeo:v1")
		mustInvoke(t, s, "skopeo-auth", map[string]any{"op": "echo"})
	})

	t.Run("podman", func(t *testing.T) {
		requireTool(t, "podman")
		env := append(podmanEnv(t), "REGISTRY_AUTH_FILE="+filepath.Join(t.TempDir(), "auth.json"))
		runTool(t, env, "podman", "load", "-i", archive)
		t.Cleanup(func() { runToolErr(nil, "podman", "rmi", "--force", tag.String()) })
		ref := s.registry() + "/podman:v1"
		if out, err := runToolErr(env, "podman", "login", "--tls-verify=false", "-u", user, "-p", "wrong", s.registry()); err == nil {
			t.Fatalf("podman login with a wrong password succeeded:\n%s", out)
		}
		if out, err := runToolErr(env, "podman", "push", "--tls-verify=false", tag.String(), ref); err == nil {
			t.Fatalf("anonymous podman push succeeded:\n%s", out)
		}
		runTool(t, env, "podman", "login", "--tls-verify=false", "-u", user, "-p", password, s.registry())
		runTool(t, env, "podman", "push", "--tls-verify=false", tag.String(), ref)
		runTool(t, env, "podman", "pull", "--tls-verify=false", ref)
		t.Cleanup(func() { runToolErr(nil, "podman", "rmi", "--force", ref) })
		s.createFunction(t, "podman-auth", ref)
		mustInvoke(t, s, "podman-auth", map[string]any{"op": "echo"})
	})
}

// TestRegistryHtpasswd configures users from an htpasswd-style file.
func TestRegistryHtpasswd(t *testing.T) {
	requireTool(t, "crane")
	hash, err := bcrypt.GenerateFromPassword([]byte("pw-bob"), bcrypt.DefaultCost)
	if err != nil {
		t.Fatal(err)
	}
	users := filepath.Join(t.TempDir(), "htpasswd")
	if err := os.WriteFile(users, []byte("# users\nbob:"+string(hash)+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	s := newServer(t, "--registry-htpasswd", users)
	archive, _ := probeArchive(t, "htpasswd")
	env := []string{"DOCKER_CONFIG=" + t.TempDir()}
	ref := s.registry() + "/ht:v1"
	runTool(t, env, "crane", "auth", "login", s.registry(), "-u", "bob", "-p", "wrong")
	if out, err := runToolErr(env, "crane", "push", "--insecure", archive, ref); err == nil {
		t.Fatalf("push with a wrong password succeeded:\n%s", out)
	}
	runTool(t, env, "crane", "auth", "login", s.registry(), "-u", "bob", "-p", "pw-bob")
	runTool(t, env, "crane", "push", "--insecure", archive, ref)
	s.createFunction(t, "ht", ref)
	mustInvoke(t, s, "ht", map[string]any{"op": "echo"})
}
