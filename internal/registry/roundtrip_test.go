package registry

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/crane"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/opencontainers/go-digest"

	"github.com/kappa-run/kappa/internal/apierr"
)

func mustRef(t *testing.T, s string) name.Reference {
	t.Helper()
	ref, err := name.ParseReference(s)
	if err != nil {
		t.Fatal(err)
	}
	return ref
}

// checkImage pulls ref and checks it is img, layer by layer.
func checkImage(t *testing.T, ref name.Reference, want v1.Image) {
	t.Helper()
	got, err := remote.Image(ref)
	if err != nil {
		t.Fatalf("pull %s: %v", ref, err)
	}
	wd, _ := want.Digest()
	gd, err := got.Digest()
	if err != nil || gd != wd {
		t.Fatalf("pulled digest %s (%v), want %s", gd, err, wd)
	}
	wl, _ := want.Layers()
	gl, err := got.Layers()
	if err != nil || len(gl) != len(wl) {
		t.Fatalf("pulled %d layers (%v), want %d", len(gl), err, len(wl))
	}
	for i := range gl {
		rc, err := gl[i].Compressed()
		if err != nil {
			t.Fatal(err)
		}
		b, err := io.ReadAll(rc) // verifies the digest as it reads
		_ = rc.Close()
		if err != nil {
			t.Fatalf("layer %d: %v", i, err)
		}
		wrc, _ := wl[i].Compressed()
		wb, _ := io.ReadAll(wrc)
		_ = wrc.Close()
		if !bytes.Equal(b, wb) {
			t.Fatalf("layer %d content differs", i)
		}
	}
	if _, err := got.RawConfigFile(); err != nil {
		t.Fatalf("config: %v", err)
	}
}

func TestGoContainerRegistryRoundTrip(t *testing.T) {
	ts := newTestServer(t)
	img, err := random.Image(4096, 3)
	if err != nil {
		t.Fatal(err)
	}
	ref := mustRef(t, ts.host()+"/fn/hello:v1")
	if err := remote.Write(ref, img); err != nil {
		t.Fatalf("remote.Write: %v", err)
	}
	checkImage(t, ref, img)

	idx, err := random.Index(2048, 2, 3)
	if err != nil {
		t.Fatal(err)
	}
	iref := mustRef(t, ts.host()+"/fn/multi:latest")
	if err := remote.WriteIndex(iref, idx); err != nil {
		t.Fatalf("remote.WriteIndex: %v", err)
	}
	gotIdx, err := remote.Index(iref)
	if err != nil {
		t.Fatalf("remote.Index: %v", err)
	}
	wd, _ := idx.Digest()
	if gd, _ := gotIdx.Digest(); gd != wd {
		t.Fatalf("index digest %s, want %s", gd, wd)
	}
	im, _ := idx.IndexManifest()
	for _, desc := range im.Manifests {
		child, err := idx.Image(desc.Digest)
		if err != nil {
			t.Fatal(err)
		}
		checkImage(t, mustRef(t, ts.host()+"/fn/multi@"+desc.Digest.String()), child)
	}

	// crane copies across repositories by mounting blobs.
	if err := crane.Copy(ts.host()+"/fn/hello:v1", ts.host()+"/other/copy:v2"); err != nil {
		t.Fatalf("crane.Copy: %v", err)
	}
	checkImage(t, mustRef(t, ts.host()+"/other/copy:v2"), img)
	if err := crane.Copy(ts.host()+"/fn/multi:latest", ts.host()+"/other/multi:latest"); err != nil {
		t.Fatalf("crane.Copy index: %v", err)
	}
	tags, err := crane.ListTags(ts.host() + "/fn/hello")
	if err != nil || len(tags) != 1 || tags[0] != "v1" {
		t.Fatalf("ListTags = %v, %v", tags, err)
	}
	repos, err := crane.Catalog(ts.host())
	if err != nil || strings.Join(repos, ",") != "fn/hello,fn/multi,other/copy,other/multi" {
		t.Fatalf("Catalog = %v, %v", repos, err)
	}
	d, err := crane.Digest(ts.host() + "/other/copy:v2")
	if wd, _ := img.Digest(); err != nil || d != wd.String() {
		t.Fatalf("crane.Digest = %s, %v", d, err)
	}
	if err := crane.Delete(ts.host() + "/other/copy@" + d); err != nil {
		t.Fatalf("crane.Delete: %v", err)
	}
	if _, err := remote.Image(mustRef(t, ts.host()+"/other/copy:v2")); err == nil {
		t.Fatal("image still pullable after delete")
	}
}

func TestRestartDurability(t *testing.T) {
	dir := t.TempDir()
	ts := openTestServer(t, dir)
	img, err := random.Image(1024, 2)
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.Write(mustRef(t, ts.host()+"/durable:v1"), img); err != nil {
		t.Fatal(err)
	}
	// Leave a chunked upload half done, and a crash's temporary file.
	content := bytes.Repeat([]byte("resume"), 500)
	loc := ts.startUpload("durable")
	ts.do("PATCH", loc, content[:1000], "Content-Range", "0-999").expect(t, 202, "")
	stray := filepath.Join(dir, "blobs", "sha256", "ab", tmpPrefix+"crash")
	if err := os.MkdirAll(filepath.Dir(stray), 0o750); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(stray, []byte("partial"), 0o600); err != nil {
		t.Fatal(err)
	}
	ts.close()

	ts2 := openTestServer(t, dir)
	checkImage(t, mustRef(t, ts2.host()+"/durable:v1"), img)
	if _, err := os.Stat(stray); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("temporary file survived reopen: %v", err)
	}
	st := ts2.do("GET", loc, nil)
	st.expect(t, 204, "")
	if st.header.Get("Range") != "0-999" {
		t.Fatalf("resumed session Range = %q", st.header.Get("Range"))
	}
	d := digest.FromBytes(content)
	ts2.do("PATCH", loc, content[1000:2000], "Content-Range", "1000-1999").expect(t, 202, "")
	ts2.do("PUT", loc+"?digest="+d.String(), content[2000:], "Content-Range", fmt.Sprintf("2000-%d", len(content)-1)).expect(t, 201, "")
	g := ts2.do("GET", "/v2/durable/blobs/"+d.String(), nil)
	if !bytes.Equal(g.body, content) {
		t.Fatalf("resumed blob differs")
	}
}

func TestConcurrentPushes(t *testing.T) {
	ts := newTestServer(t)
	const workers = 8
	imgs := make([]v1.Image, workers)
	for i := range imgs {
		var err error
		if imgs[i], err = random.Image(2048, 2); err != nil {
			t.Fatal(err)
		}
	}
	var wg sync.WaitGroup
	errs := make(chan error, workers*2)
	for i, img := range imgs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			// Half the workers share one repository, every worker shares
			// one tag there, so links and tags race.
			repo := fmt.Sprintf("own/r%d", i)
			for _, r := range []string{repo + ":t", "shared/repo:t" + fmt.Sprint(i%2)} {
				ref, err := name.ParseReference(ts.host() + "/" + r)
				if err != nil {
					errs <- err
					return
				}
				if err := remote.Write(ref, img); err != nil {
					errs <- fmt.Errorf("push %s: %w", r, err)
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	for i, img := range imgs {
		checkImage(t, mustRef(t, fmt.Sprintf("%s/own/r%d:t", ts.host(), i)), img)
	}
	for i := range 2 {
		if _, err := remote.Image(mustRef(t, fmt.Sprintf("%s/shared/repo:t%d", ts.host(), i))); err != nil {
			t.Errorf("shared tag %d: %v", i, err)
		}
	}
}

func TestResolveAndOpenBlob(t *testing.T) {
	ts := newTestServer(t)
	img := newTestImage(t, "resolve", nil)
	ts.pushImage("a/b", "v1", img).expect(t, 201, "")
	ctx := context.Background()

	tests := []struct {
		name     string
		repo     string
		ref      string
		wantKind error
	}{
		{name: "by tag", repo: "a/b", ref: "v1"},
		{name: "by digest", repo: "a/b", ref: img.digest.String()},
		{name: "unknown tag", repo: "a/b", ref: "v2", wantKind: apierr.NotFound},
		{name: "unknown digest", repo: "a/b", ref: digest.FromString("x").String(), wantKind: apierr.NotFound},
		{name: "other repository", repo: "a", ref: "v1", wantKind: apierr.NotFound},
		{name: "bad name", repo: "../a", ref: "v1", wantKind: apierr.InvalidParameter},
		{name: "bad tag", repo: "a/b", ref: ".x", wantKind: apierr.InvalidParameter},
		{name: "bad digest", repo: "a/b", ref: "sha256:00", wantKind: apierr.InvalidParameter},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d, mt, err := ts.reg.Resolve(ctx, tt.repo, tt.ref)
			if tt.wantKind != nil {
				if !errors.Is(err, tt.wantKind) {
					t.Fatalf("err = %v, want %v", err, tt.wantKind)
				}
				return
			}
			if err != nil || d != img.digest.String() || mt != "application/vnd.oci.image.manifest.v1+json" {
				t.Fatalf("Resolve = %s, %s, %v", d, mt, err)
			}
		})
	}

	rc, size, err := ts.reg.OpenBlob(ctx, img.digest.String())
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(rc)
	_ = rc.Close()
	if size != int64(len(img.manifest)) || !bytes.Equal(b, img.manifest) {
		t.Fatalf("OpenBlob returned %d bytes, size %d", len(b), size)
	}
	if _, _, err := ts.reg.OpenBlob(ctx, digest.FromString("none").String()); !errors.Is(err, apierr.NotFound) {
		t.Fatalf("OpenBlob missing: %v", err)
	}
	if _, _, err := ts.reg.OpenBlob(ctx, "md5:00"); !errors.Is(err, apierr.InvalidParameter) {
		t.Fatalf("OpenBlob bad digest: %v", err)
	}
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	if _, _, err := ts.reg.Resolve(cctx, "a/b", "v1"); !errors.Is(err, context.Canceled) {
		t.Fatalf("Resolve with cancelled context: %v", err)
	}
}

func TestDirectoryLockAndClose(t *testing.T) {
	dir := t.TempDir()
	reg, err := New(dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	if r2, err := New(dir, nil); err == nil {
		_ = r2.Close()
		t.Fatal("second New on an open directory succeeded")
	}
	srvReg := openTestServerFrom(t, reg)
	if err := reg.Close(); err != nil {
		t.Fatal(err)
	}
	if err := reg.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	srvReg.do("GET", "/v2/", nil).expect(t, 503, "UNAVAILABLE")
	reg2, err := New(dir, nil)
	if err != nil {
		t.Fatalf("New after Close: %v", err)
	}
	_ = reg2.Close()

	if err := os.WriteFile(filepath.Join(dir, "layout.json"), []byte(`{"version":99}`), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := New(dir, nil); err == nil || !strings.Contains(err.Error(), "version 99") {
		t.Fatalf("New with a future layout: %v", err)
	}
}

// openTestServerFrom serves an already open registry; the caller closes it.
func openTestServerFrom(t *testing.T, reg *Registry) *testServer {
	ts := &testServer{t: t, reg: reg}
	ts.srv = httptest.NewServer(reg.Handler())
	t.Cleanup(ts.srv.Close)
	return ts
}

func TestPurgeUploads(t *testing.T) {
	ts := newTestServer(t)
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	ts.reg.now = func() time.Time { return now }
	old := ts.startUpload("r")
	now = now.Add(2 * time.Hour)
	fresh := ts.startUpload("r")
	// Debris of a session that crashed before writing its state.
	if err := os.MkdirAll(filepath.Join(ts.dir, "uploads", "6ba7b810-9dad-11d1-80b4-00c04fd430c8"), 0o750); err != nil {
		t.Fatal(err)
	}
	n, err := ts.reg.PurgeUploads(now.Add(-time.Hour))
	if err != nil || n != 2 {
		t.Fatalf("PurgeUploads = %d, %v; want 2", n, err)
	}
	ts.do("GET", old, nil).expect(t, 404, "BLOB_UPLOAD_UNKNOWN")
	ts.do("GET", fresh, nil).expect(t, 204, "")
}
