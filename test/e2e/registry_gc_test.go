package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/lambda"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"
)

// imageBlobs returns the digests of an image's manifest, config and layers.
func imageBlobs(t *testing.T, img v1.Image) []string {
	t.Helper()
	m, err := img.Manifest()
	if err != nil {
		t.Fatal(err)
	}
	d, _ := img.Digest()
	out := []string{d.String(), m.Config.Digest.String()}
	for _, l := range m.Layers {
		out = append(out, l.Digest.String())
	}
	return out
}

// TestRegistryGC deletes images from the registry and runs `kappa registry
// gc`: blobs no manifest references go, except those of an image a
// function version still runs; unpacked layers go when neither a function
// nor the registry needs them; functions keep working throughout.
func TestRegistryGC(t *testing.T) {
	s := newServer(t)
	ctx := context.Background()
	endpoint := "--endpoint=http://" + s.addr

	inUse := probeImage(t, "PROBE_VERSION=in-use", "SEED="+randHex(8))
	dropped := probeImage(t, "PROBE_VERSION=dropped", "SEED="+randHex(8))
	kept := probeImage(t, "PROBE_VERSION=kept", "SEED="+randHex(8))
	unused := probeImage(t, "PROBE_VERSION=unused", "SEED="+randHex(8))
	inUseRef := pushImage(t, s.registry()+"/gc/in-use:v1", inUse, nil)
	droppedRef := pushImage(t, s.registry()+"/gc/dropped:v1", dropped, nil)
	pushImage(t, s.registry()+"/gc/kept:v1", kept, nil)
	unusedRef := pushImage(t, s.registry()+"/gc/unused:v1", unused, nil)

	// A function runs in-use; a function that ran unused is deleted.
	s.createFunction(t, "gc-in-use", s.registry()+"/gc/in-use:v1")
	s.createFunction(t, "gc-unused", s.registry()+"/gc/unused:v1")
	if _, err := s.Lambda.DeleteFunction(ctx, &lambda.DeleteFunctionInput{FunctionName: aws.String("gc-unused")}); err != nil {
		t.Fatal(err)
	}
	// in-use, dropped and unused leave the registry.
	for _, ref := range []string{inUseRef, droppedRef, unusedRef} {
		r, _ := name.ParseReference(ref)
		if err := remote.Delete(r); err != nil {
			t.Fatalf("delete %s: %v", ref, err)
		}
	}

	// A dry run reports and removes nothing.
	var dry gcResult
	if err := json.Unmarshal([]byte(runTool(t, nil, kappaBin, "registry", "gc", endpoint, "--grace", "0s", "--dry-run")), &dry); err != nil {
		t.Fatal(err)
	}
	if dry.Registry.BlobsRemoved == 0 || !exists(s.blobFile(imageBlobs(t, dropped)[2])) {
		t.Fatalf("dry run: %+v", dry)
	}

	var res gcResult
	out := runTool(t, nil, kappaBin, "registry", "gc", endpoint, "--grace", "0s")
	if err := json.Unmarshal([]byte(out), &res); err != nil {
		t.Fatalf("gc output %s: %v", out, err)
	}
	t.Logf("gc: %s", out)
	// dropped and unused: manifest, config, and the config-unique blobs go;
	// the probe layer is shared with in-use and kept (which run or stay).
	for _, d := range imageBlobs(t, dropped)[:2] {
		if exists(s.blobFile(d)) {
			t.Errorf("blob %s of the deleted image survived gc", d)
		}
	}
	for _, img := range []v1.Image{inUse, kept} {
		for _, d := range imageBlobs(t, img) {
			if !exists(s.blobFile(d)) {
				t.Errorf("blob %s of a live image was removed", d)
			}
		}
	}
	if res.Registry.BlobsRemoved < 4 || res.Registry.Pinned != 1 {
		t.Errorf("registry report %+v, want at least 4 blobs removed and 1 pinned manifest", res.Registry)
	}
	// The layer store dropped unused's record (no function, no registry
	// image) and kept in-use's.
	if res.Layers.ImagesRemoved != 1 || res.Layers.ImagesKept != 1 {
		t.Errorf("layer report %+v, want 1 image removed, 1 kept", res.Layers)
	}
	ud, _ := unused.Digest()
	if exists(filepath.Join(s.dataDir, "images", "images", "sha256", ud.Hex+".json")) {
		t.Error("image record of the unused image survived")
	}
	mustInvoke(t, s, "gc-in-use", map[string]any{"op": "echo"})
	// A restart re-reads everything from disk: still fine.
	s.restart()
	if res := mustInvoke(t, s, "gc-in-use", map[string]any{"op": "echo"}); res["version"] != "in-use" {
		t.Fatalf("invoke after gc and restart = %v", res)
	}
}

// TestRegistryGCDuringPushes runs garbage collection over the API in a
// loop while clients push; every push succeeds and every image is whole.
func TestRegistryGCDuringPushes(t *testing.T) {
	s := newServer(t)
	const workers, rounds = 4, 5
	stop := make(chan struct{})
	gcErr := make(chan error, 1)
	runs := 0
	go func() {
		defer close(gcErr)
		for {
			select {
			case <-stop:
				return
			default:
			}
			status, body := httpDo(t, "POST", s.URL("/kappa/registry/gc?grace=30s"), nil, "", "")
			if status != 200 {
				gcErr <- fmt.Errorf("gc: %d %s", status, body)
				return
			}
			runs++
		}
	}()
	var wg sync.WaitGroup
	var mu sync.Mutex
	pushed := map[string]v1.Image{}
	errs := make(chan error, workers*rounds)
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for r := range rounds {
				img, err := random.Image(256<<10, 3)
				if err != nil {
					errs <- err
					return
				}
				ref := fmt.Sprintf("%s/race/w%d:r%d", s.registry(), w, r)
				nr, _ := name.ParseReference(ref)
				if err := remote.Write(nr, img); err != nil {
					errs <- fmt.Errorf("push %s: %w", ref, err)
					continue
				}
				mu.Lock()
				pushed[ref] = img
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	close(stop)
	if err := <-gcErr; err != nil {
		t.Fatal(err)
	}
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	for ref, want := range pushed {
		nr, _ := name.ParseReference(ref)
		got, err := remote.Image(nr)
		if err != nil {
			t.Fatalf("pull %s: %v", ref, err)
		}
		wd, _ := want.Digest()
		if gd, _ := got.Digest(); gd != wd {
			t.Fatalf("%s: digest %s, want %s", ref, gd, wd)
		}
		ls, _ := got.Layers()
		for _, l := range ls {
			rc, err := l.Compressed()
			if err == nil {
				_, err = io.Copy(io.Discard, rc) // verifies the digest
				rc.Close()
			}
			if err != nil {
				t.Fatalf("%s: layer: %v", ref, err)
			}
		}
	}
	if runs < 2 {
		t.Fatalf("gc ran %d times during the pushes", runs)
	}
	t.Logf("%d pushes verified, %d gc runs", len(pushed), runs)
}

// TestRegistryImmutableTags makes a repository's tags immutable with the
// CLI and the API; pushing an existing tag with other content then fails
// with TAG_INVALID.
func TestRegistryImmutableTags(t *testing.T) {
	requireTool(t, "crane")
	s := newServer(t)
	endpoint := "--endpoint=http://" + s.addr
	a, _ := probeArchive(t, "a")
	b, _ := probeArchive(t, "b")
	ref := s.registry() + "/imm/app:v1"
	runTool(t, nil, "crane", "push", "--insecure", a, ref)

	out := runTool(t, nil, kappaBin, "registry", "immutable", "imm/app", endpoint)
	if !strings.Contains(out, `"IMMUTABLE"`) {
		t.Fatalf("kappa registry immutable: %s", out)
	}
	out, err := runToolErr(nil, "crane", "push", "--insecure", b, ref)
	if err == nil || !strings.Contains(out, "TAG_INVALID") || !strings.Contains(out, "immutable") {
		t.Fatalf("pushing another image to an immutable tag: %v\n%s", err, out)
	}
	runTool(t, nil, "crane", "push", "--insecure", a, ref) // the same image again is fine
	runTool(t, nil, "crane", "push", "--insecure", b, s.registry()+"/imm/app:v2")
	if out := runTool(t, nil, kappaBin, "registry", "tags", "imm/app", endpoint); out != "v1\nv2\n" {
		t.Fatalf("tags: %q", out)
	}

	// The API, with hostile bodies refused.
	for _, body := range []string{`{"tagMutability":"SOMETIMES"}`, `{"tagMutability":"MUTABLE","x":1}`, `[`, ``} {
		status, resp := httpDo(t, "PUT", s.URL("/kappa/registry/repositories/imm/app/settings"), []byte(body), "", "")
		if status != 400 {
			t.Errorf("PUT settings %q: %d %s, want 400", body, status, resp)
		}
	}
	if status, resp := httpDo(t, "PUT", s.URL("/kappa/registry/repositories/Bad..Name/settings"), []byte(`{"tagMutability":"MUTABLE"}`), "", ""); status != 400 {
		t.Errorf("PUT settings of an invalid name: %d %s", status, resp)
	}
	status, resp := httpDo(t, "PUT", s.URL("/kappa/registry/repositories/imm/app/settings"), []byte(`{"tagMutability":"MUTABLE"}`), "", "")
	if status != 200 || !strings.Contains(string(resp), `"MUTABLE"`) {
		t.Fatalf("PUT settings: %d %s", status, resp)
	}
	runTool(t, nil, "crane", "push", "--insecure", b, ref)
	if out := runTool(t, nil, kappaBin, "registry", "settings", "imm/app", endpoint); !strings.Contains(out, `"MUTABLE"`) {
		t.Fatalf("settings: %s", out)
	}
}
