package e2e

import (
	"context"
	"crypto/subtle"
	"errors"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/lambda"
	"github.com/aws/aws-sdk-go-v2/service/lambda/types"
	"github.com/google/go-containerregistry/pkg/authn"
	ggcrregistry "github.com/google/go-containerregistry/pkg/registry"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/random"
)

// TestRegistryRemote deploys functions from registries other than the
// server's own, on loopback, that require credentials; the credentials come
// from the docker config named by DOCKER_CONFIG in the server's
// environment. It covers wrong credentials, indexes with and without the
// function's platform, a missing layer, and a function that keeps working
// after its image is deleted and its registry is gone.
func TestRegistryRemote(t *testing.T) {
	requireEnv(t)
	const user, password = "remote-user", "remote-password"
	// The second registry: another Kappa, with credentials (token flow).
	other := newServer(t, "--registry-user", user, "--registry-password", password)
	// A third one that knows Basic auth only: go-containerregistry's
	// registry behind a Basic check.
	basicOnly := basicAuthRegistry(t, user, password)

	dockerConfig := t.TempDir()
	t.Setenv("DOCKER_CONFIG", dockerConfig)
	writeDockerConfig(t, dockerConfig, other.registry(), user, "wrong-password")
	s := newServer(t)

	auth := &authn.Basic{Username: user, Password: password}
	probe := probeImage(t, "PROBE_VERSION=remote")
	ref := pushImage(t, other.registry()+"/remote/app:v1", probe, auth)

	t.Run("wrong credentials", func(t *testing.T) {
		s.expectFailed(t, "remote-denied", other.registry()+"/remote/app:v1", types.StateReasonCodeImageAccessDenied, "permission")
	})

	// From here on, the config holds the right password for both.
	cfg := `{"auths":{"` + other.registry() + `":{"auth":"` + b64(user+":"+password) + `"},"` +
		basicOnly + `":{"auth":"` + b64(user+":"+password) + `"}}}`
	writeFile(t, dockerConfig+"/config.json", cfg)

	t.Run("token registry", func(t *testing.T) {
		s.createFunction(t, "remote-token", other.registry()+"/remote/app:v1")
		if res := mustInvoke(t, s, "remote-token", map[string]any{"op": "echo"}); res["version"] != "remote" {
			t.Fatalf("invoke = %v", res)
		}
	})

	t.Run("basic-auth registry", func(t *testing.T) {
		pushImage(t, basicOnly+"/basic/app:v1", probeImage(t, "PROBE_VERSION=basic"), auth)
		s.createFunction(t, "remote-basic", basicOnly+"/basic/app:v1")
		if res := mustInvoke(t, s, "remote-basic", map[string]any{"op": "echo"}); res["version"] != "basic" {
			t.Fatalf("invoke = %v", res)
		}
	})

	t.Run("index picks amd64", func(t *testing.T) {
		arm := platformImage(t, "arm64")
		idx := mutate.AppendManifests(empty.Index,
			mutate.IndexAddendum{Add: arm, Descriptor: v1.Descriptor{Platform: &v1.Platform{OS: "linux", Architecture: "arm64"}}},
			mutate.IndexAddendum{Add: probeImage(t, "PROBE_VERSION=index"), Descriptor: v1.Descriptor{Platform: &v1.Platform{OS: "linux", Architecture: "amd64"}}},
		)
		pushIndex(t, other.registry()+"/remote/multi:v1", idx, auth)
		s.createFunction(t, "remote-index", other.registry()+"/remote/multi:v1")
		if res := mustInvoke(t, s, "remote-index", map[string]any{"op": "echo"}); res["version"] != "index" {
			t.Fatalf("invoke = %v", res)
		}
	})

	t.Run("index without amd64", func(t *testing.T) {
		idx := mutate.AppendManifests(empty.Index,
			mutate.IndexAddendum{Add: platformImage(t, "arm64"), Descriptor: v1.Descriptor{Platform: &v1.Platform{OS: "linux", Architecture: "arm64"}}},
			mutate.IndexAddendum{Add: platformImage(t, "s390x"), Descriptor: v1.Descriptor{Platform: &v1.Platform{OS: "linux", Architecture: "s390x"}}},
		)
		pushIndex(t, other.registry()+"/remote/armonly:v1", idx, auth)
		// Lambda refuses such an image in CreateFunction itself.
		_, err := s.Lambda.CreateFunction(context.Background(), &lambda.CreateFunctionInput{
			FunctionName: aws.String("remote-armonly"),
			PackageType:  types.PackageTypeImage,
			Code:         &types.FunctionCode{ImageUri: aws.String(other.registry() + "/remote/armonly:v1")},
			Role:         aws.String(testRole),
		})
		var ipe *types.InvalidParameterValueException
		if !errors.As(err, &ipe) {
			t.Fatalf("CreateFunction of an index without amd64 = %v, want InvalidParameterValueException", err)
		}
		for _, w := range []string{"no linux/amd64 image", "linux/arm64", "linux/s390x"} {
			if !strings.Contains(aws.ToString(ipe.Message), w) {
				t.Errorf("message %q does not say %q", aws.ToString(ipe.Message), w)
			}
		}
	})

	t.Run("missing layer", func(t *testing.T) {
		layer, err := random.Layer(4096, "application/vnd.oci.image.layer.v1.tar")
		if err != nil {
			t.Fatal(err)
		}
		img, err := mutate.AppendLayers(probeImage(t, "PROBE_VERSION=broken"), layer)
		if err != nil {
			t.Fatal(err)
		}
		pushImage(t, other.registry()+"/remote/broken:v1", img, auth)
		d, _ := layer.Digest()
		// Unlink the layer from the repository: the manifest stays, its
		// layer answers 404.
		if status, body := httpDo(t, "DELETE", other.URL("/v2/remote/broken/blobs/"+d.String()), nil, user, password); status != 202 {
			t.Fatalf("delete layer: %d %s", status, body)
		}
		s.expectFailed(t, "remote-broken", other.registry()+"/remote/broken:v1", types.StateReasonCodeInvalidImage, d.String())
	})

	t.Run("survives deletion and an unreachable registry", func(t *testing.T) {
		s.createFunction(t, "remote-survivor", ref)
		mustInvoke(t, s, "remote-survivor", map[string]any{"op": "echo"})
		_, dg, _ := strings.Cut(ref, "@")
		if status, body := httpDo(t, "DELETE", other.URL("/v2/remote/app/manifests/"+dg), nil, user, password); status != 202 {
			t.Fatalf("delete manifest: %d %s", status, body)
		}
		if status, _ := httpDo(t, "GET", other.URL("/v2/remote/app/manifests/"+dg), nil, user, password); status != 404 {
			t.Fatalf("manifest still served: %d", status)
		}
		other.stop()
		s.restart()
		if res := mustInvoke(t, s, "remote-survivor", map[string]any{"op": "echo", "text": "still here"}); res["text"] != "still here" {
			t.Fatalf("invoke after deletion, registry stop and restart = %v", res)
		}
		c := s.waitSettled(t, "remote-survivor")
		if c.State != types.StateActive {
			t.Fatalf("state after restart: %s", c.State)
		}
	})
}

// platformImage is a small image whose config says linux/arch; it is
// never run.
func platformImage(t *testing.T, arch string) v1.Image {
	t.Helper()
	img, err := random.Image(1024, 1)
	if err != nil {
		t.Fatal(err)
	}
	cf, err := img.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	cf = cf.DeepCopy()
	cf.OS, cf.Architecture = "linux", arch
	if img, err = mutate.ConfigFile(img, cf); err != nil {
		t.Fatal(err)
	}
	return img
}

// basicAuthRegistry serves go-containerregistry's in-memory registry on a
// loopback port behind a Basic-auth check, and returns its host:port.
func basicAuthRegistry(t *testing.T, user, password string) string {
	t.Helper()
	reg := ggcrregistry.New(ggcrregistry.Logger(log.New(io.Discard, "", 0)))
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		u, p, ok := r.BasicAuth()
		if !ok || subtle.ConstantTimeCompare([]byte(u+":"+p), []byte(user+":"+password)) != 1 {
			w.Header().Set("WWW-Authenticate", `Basic realm="test"`)
			w.WriteHeader(http.StatusUnauthorized)
			io.WriteString(w, `{"errors":[{"code":"UNAUTHORIZED","message":"authentication required"}]}`)
			return
		}
		reg.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	return strings.TrimPrefix(srv.URL, "http://")
}
