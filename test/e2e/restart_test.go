package e2e

import (
	"bytes"
	"context"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/lambda"
	"github.com/aws/aws-sdk-go-v2/service/lambda/types"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
)

// TestRestartAndCleanShutdown restarts a server on the same data directory
// and port: functions and images survive, and every stop (with warm and
// busy environments) leaves nothing behind on the host.
func TestRestartAndCleanShutdown(t *testing.T) {
	s := newServer(t)
	ctx := context.Background()
	img := s.pushProbe(t, "probe:restart", "PROBE_VERSION=1")
	before := s.createFunction(t, "keep", img)
	first := mustInvoke(t, s, "keep", map[string]any{"op": "echo"})
	if len(s.environmentProcs()) == 0 {
		t.Fatal("no environment process found after an invoke; the leftover checks below would be vacuous")
	}
	cgroups := s.sandboxCgroups()

	addr := s.addr
	s.stop()
	t.Run("nothing left after stop", func(t *testing.T) { s.assertNoLeftovers(t, cgroups) })
	s.start(addr)

	t.Run("function survives", func(t *testing.T) {
		fn, err := s.Lambda.GetFunction(ctx, &lambda.GetFunctionInput{FunctionName: aws.String("keep")})
		if err != nil {
			t.Fatal(err)
		}
		c := fn.Configuration
		if c.State != types.StateActive || aws.ToString(c.CodeSha256) != aws.ToString(before.Configuration.CodeSha256) {
			t.Errorf("after restart: State %s CodeSha256 %s; want Active %s",
				c.State, aws.ToString(c.CodeSha256), aws.ToString(before.Configuration.CodeSha256))
		}
		res := mustInvoke(t, s, "keep", map[string]any{"op": "echo", "text": "after restart"})
		if res["text"] != "after restart" || res["version"] != "1" {
			t.Errorf("invoke after restart = %v", res)
		}
		if res["env"] == first["env"] {
			t.Errorf("invoke after restart ran in environment %v of the previous process", res["env"])
		}
	})

	t.Run("registry serves the image", func(t *testing.T) {
		ref, err := name.ParseReference(img)
		if err != nil {
			t.Fatal(err)
		}
		im, err := remote.Image(ref)
		if err != nil {
			t.Fatalf("pull %s after restart: %v", img, err)
		}
		verifyImage(t, im)
		d, _ := im.Digest()
		if d.Hex != aws.ToString(before.Configuration.CodeSha256) {
			t.Errorf("registry digest %s, function CodeSha256 %s", d, aws.ToString(before.Configuration.CodeSha256))
		}
	})

	t.Run("stop with busy and idle environments", func(t *testing.T) {
		s.createFunction(t, "busy", img)
		mustInvoke(t, s, "keep", map[string]any{"op": "echo"}) // stays warm and idle
		done := make(chan error, 1)
		go func() {
			_, err := s.Lambda.Invoke(ctx, &lambda.InvokeInput{
				FunctionName: aws.String("busy"), Payload: []byte(`{"op":"sleep","ms":3000}`),
			})
			done <- err
		}()
		if !eventually(30*time.Second, func() bool { return len(s.environmentProcs()) >= 2 }) {
			t.Fatalf("the busy environment did not appear")
		}
		cgroups := s.sandboxCgroups()
		s.stop()
		select {
		case <-done: // answered or cut off, but not left hanging
		case <-time.After(time.Minute):
			t.Error("the invoke in flight at shutdown never returned")
		}
		s.assertNoLeftovers(t, cgroups)
	})

	t.Run("start after a crash cleans up", func(t *testing.T) {
		s.start(addr)
		mustInvoke(t, s, "keep", map[string]any{"op": "echo"})
		cgroups := s.sandboxCgroups()
		// SIGKILL: the server cannot clean up; the next start must.
		s.cmd.Process.Kill()
		<-s.done
		s.cmd = nil
		s.start(addr)
		if res := mustInvoke(t, s, "keep", map[string]any{"op": "echo", "text": "after crash"}); res["text"] != "after crash" {
			t.Errorf("invoke after a crash = %v", res)
		}
		cgroups = append(cgroups, s.sandboxCgroups()...)
		s.stop()
		s.assertNoLeftovers(t, cgroups)
	})
}

// verifyImage downloads the config and every layer of a remote image and
// checks them against the digests of its manifest.
func verifyImage(t *testing.T, im v1.Image) {
	t.Helper()
	m, err := im.Manifest()
	if err != nil {
		t.Fatalf("manifest: %v", err)
	}
	cfg, err := im.RawConfigFile()
	if err != nil {
		t.Fatalf("config: %v", err)
	}
	if h, _, _ := v1.SHA256(bytes.NewReader(cfg)); h != m.Config.Digest {
		t.Errorf("config digest %s, manifest says %s", h, m.Config.Digest)
	}
	layers, err := im.Layers()
	if err != nil || len(layers) != len(m.Layers) {
		t.Fatalf("layers: %d, %v; manifest lists %d", len(layers), err, len(m.Layers))
	}
	for i, l := range layers {
		rc, err := l.Compressed()
		if err != nil {
			t.Fatalf("layer %d: %v", i, err)
		}
		h, n, err := v1.SHA256(rc)
		rc.Close()
		if err != nil || h != m.Layers[i].Digest || n != m.Layers[i].Size {
			t.Errorf("layer %d: %s, %d bytes (%v); manifest says %s, %d bytes", i, h, n, err, m.Layers[i].Digest, m.Layers[i].Size)
		}
	}
}
