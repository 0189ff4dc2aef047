package e2e

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/lambda"
	"github.com/aws/aws-sdk-go-v2/service/lambda/types"
	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
)

// What the registry tests (registry_*_test.go) share.

// runToolErr runs a command with extra environment entries and returns its
// combined output and error, for commands expected to fail.
func runToolErr(env []string, name string, args ...string) (string, error) {
	cmd := exec.Command(name, args...)
	cmd.Env = append(os.Environ(), env...)
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// probeArchive writes the probe image as a docker-save tarball and returns
// its path and the tag it carries.
func probeArchive(t *testing.T, version string) (string, name.Tag) {
	t.Helper()
	tag, err := name.NewTag("localhost/kappa-e2e-probe:" + randHex(4))
	if err != nil {
		t.Fatal(err)
	}
	archive := filepath.Join(t.TempDir(), "probe.tar")
	if err := tarball.WriteToFile(archive, tag, probeImage(t, "PROBE_VERSION="+version)); err != nil {
		t.Fatal(err)
	}
	return archive, tag
}

// writeDockerConfig writes dir/config.json holding credentials for host.
func writeDockerConfig(t *testing.T, dir, host, user, password string) {
	t.Helper()
	cfg := map[string]any{"auths": map[string]any{
		host: map[string]string{"auth": base64.StdEncoding.EncodeToString([]byte(user + ":" + password))},
	}}
	b, _ := json.Marshal(cfg)
	if err := os.WriteFile(filepath.Join(dir, "config.json"), b, 0o600); err != nil {
		t.Fatal(err)
	}
}

// pushImage pushes img as ref with the given credentials (nil: anonymous)
// and returns the reference by digest.
func pushImage(t *testing.T, ref string, img v1.Image, auth authn.Authenticator) string {
	t.Helper()
	r, err := name.ParseReference(ref)
	if err != nil {
		t.Fatal(err)
	}
	if auth == nil {
		auth = authn.Anonymous
	}
	if err := remote.Write(r, img, remote.WithAuth(auth)); err != nil {
		t.Fatalf("push %s: %v", ref, err)
	}
	d, _ := img.Digest()
	return r.Context().String() + "@" + d.String()
}

// waitSettled waits until fname leaves Pending and returns its
// configuration.
func (s *server) waitSettled(t *testing.T, fname string) *types.FunctionConfiguration {
	t.Helper()
	deadline := time.Now().Add(2 * time.Minute)
	for {
		out, err := s.Lambda.GetFunction(context.Background(), &lambda.GetFunctionInput{FunctionName: aws.String(fname)})
		if err != nil {
			t.Fatalf("GetFunction %s: %v", fname, err)
		}
		if c := out.Configuration; c.State != types.StatePending {
			return c
		}
		if time.Now().After(deadline) {
			t.Fatalf("function %s still Pending after 2 minutes", fname)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// expectFailed creates fname from image and requires it to end Failed
// with reasonCode and a reason containing each of want.
func (s *server) expectFailed(t *testing.T, fname, image string, reasonCode types.StateReasonCode, want ...string) {
	t.Helper()
	s.createPending(t, fname, image)
	c := s.waitSettled(t, fname)
	reason := aws.ToString(c.StateReason)
	if c.State != types.StateFailed || c.StateReasonCode != reasonCode {
		t.Fatalf("function %s: %s/%s (%s), want Failed/%s", fname, c.State, c.StateReasonCode, reason, reasonCode)
	}
	for _, w := range want {
		if !strings.Contains(reason, w) {
			t.Errorf("function %s: StateReason %q does not say %q", fname, reason, w)
		}
	}
}

// httpDo sends a request with optional Basic credentials and returns the
// status and body.
func httpDo(t *testing.T, method, url string, body []byte, user, password string) (int, []byte) {
	t.Helper()
	req, err := http.NewRequest(method, url, strings.NewReader(string(body)))
	if err != nil {
		t.Fatal(err)
	}
	if user != "" {
		req.SetBasicAuth(user, password)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("%s %s: read body: %v", method, url, err)
	}
	return resp.StatusCode, b
}

// gcResult is the answer of POST /kappa/registry/gc.
type gcResult struct {
	Registry struct {
		Manifests, Pinned, BlobsKept, BlobsYoung, BlobsRemoved, LinksRemoved, UploadsRemoved int
		BytesRemoved                                                                         int64
	}
	Layers struct {
		ImagesKept, ImagesRemoved, ImagesMounted, LayersKept, LayersRemoved int
		BytesRemoved                                                        int64
	}
}

// blobFile is where the registry of s stores blob d.
func (s *server) blobFile(d string) string {
	alg, hex, _ := strings.Cut(d, ":")
	return filepath.Join(s.dataDir, "registry", "blobs", alg, hex[:2], hex)
}

func exists(p string) bool {
	_, err := os.Stat(p)
	return err == nil
}

func b64(s string) string { return base64.StdEncoding.EncodeToString([]byte(s)) }

// writeFile writes s to path, failing the test on error.
func writeFile(t *testing.T, path, s string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(s), 0o600); err != nil {
		t.Fatal(err)
	}
}

// pushIndex pushes idx as ref with the given credentials.
func pushIndex(t *testing.T, ref string, idx v1.ImageIndex, auth authn.Authenticator) {
	t.Helper()
	r, err := name.ParseReference(ref)
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.WriteIndex(r, idx, remote.WithAuth(auth)); err != nil {
		t.Fatalf("push index %s: %v", ref, err)
	}
}
