package registry

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// pinList is a Pins over a fixed list.
type pinList struct {
	digests []string
	err     error
}

func (p pinList) PinnedManifests(context.Context) ([]string, error) { return p.digests, p.err }

// newClockServer is a registry on a temp dir whose clock the test sets.
func newClockServer(t *testing.T) (*testServer, *testClock) {
	t.Helper()
	clock := &testClock{t: time.Now()}
	reg, err := Open(Options{Dir: t.TempDir(), Now: clock.now})
	if err != nil {
		t.Fatal(err)
	}
	ts := &testServer{t: t, dir: reg.store.root, reg: reg, srv: httptest.NewServer(reg.Handler())}
	t.Cleanup(ts.close)
	return ts, clock
}

func (ts *testServer) blobStored(d digest.Digest) bool {
	_, err := ts.reg.store.statBlob(d)
	return err == nil
}

// gcFixture pushes, into a fresh registry:
//
//	kept:      app:v1 (tagged), and an index in multi with two children
//	untagged:  app@<digest> with no tag (still a manifest: kept)
//	deleted:   gone/x:v1 whose manifest was deleted (blobs unreferenced)
//	pinned:    pin/x:v1 whose manifest was deleted, but pinned
//	lone:      a blob pushed to app and never referenced
type gcFixture struct {
	ts                              *testServer
	clock                           *testClock
	kept, untagged, deleted, pinned testImage
	childA, childB                  testImage
	index                           digest.Digest
	lone                            digest.Digest
}

func newGCFixture(t *testing.T) *gcFixture {
	t.Helper()
	ts, clock := newClockServer(t)
	f := &gcFixture{ts: ts, clock: clock}
	f.kept = newTestImage(t, "kept", nil)
	f.untagged = newTestImage(t, "untagged", nil)
	f.deleted = newTestImage(t, "deleted", nil)
	f.pinned = newTestImage(t, "pinned", nil)
	f.childA = newTestImage(t, "child-a", nil)
	f.childB = newTestImage(t, "child-b", nil)
	ts.pushImage("app", "v1", f.kept).expect(t, 201, "")
	ts.pushImage("app", f.untagged.digest.String(), f.untagged).expect(t, 201, "")
	ts.pushImage("gone/x", "v1", f.deleted).expect(t, 201, "")
	ts.do("DELETE", "/v2/gone/x/manifests/"+f.deleted.digest.String(), nil).expect(t, 202, "")
	ts.pushImage("pin/x", "v1", f.pinned).expect(t, 201, "")
	ts.do("DELETE", "/v2/pin/x/manifests/"+f.pinned.digest.String(), nil).expect(t, 202, "")
	ts.pushImage("multi", f.childA.digest.String(), f.childA).expect(t, 201, "")
	ts.pushImage("multi", f.childB.digest.String(), f.childB).expect(t, 201, "")
	idx := indexOf(t, nil, f.childA, f.childB)
	ts.do("PUT", "/v2/multi/manifests/latest", idx, "Content-Type", ocispec.MediaTypeImageIndex).expect(t, 201, "")
	f.index = digest.FromBytes(idx)
	f.lone = ts.pushBlob("app", []byte("never referenced"))
	return f
}

// age moves the registry's clock and every blob's mtime back by d, as if
// everything had happened d ago.
func (f *gcFixture) age(t *testing.T, d time.Duration) {
	t.Helper()
	f.clock.t = f.clock.t.Add(d)
	old := time.Now().Add(-d)
	err := filepath.Walk(filepath.Join(f.ts.dir, "blobs"), func(p string, fi os.FileInfo, err error) error {
		if err != nil || fi.IsDir() {
			return err
		}
		return os.Chtimes(p, old, old)
	})
	if err != nil {
		t.Fatal(err)
	}
}

func blobsOf(img testImage) []digest.Digest {
	return []digest.Digest{img.digest, digest.FromBytes(img.config), digest.FromBytes(img.layer)}
}

func TestGC(t *testing.T) {
	tests := []struct {
		name        string
		age         time.Duration
		opts        GCOptions
		touch       bool // HEAD the deleted image's layer just before GC
		wantRemoved func(f *gcFixture) []digest.Digest
		wantErr     bool
	}{
		{
			name: "mark and sweep", age: 2 * time.Hour,
			opts: GCOptions{},
			wantRemoved: func(f *gcFixture) []digest.Digest {
				return append(append(blobsOf(f.deleted), blobsOf(f.pinned)...), f.lone)
			},
		},
		{
			name: "pinned manifests keep their blobs", age: 2 * time.Hour,
			wantRemoved: func(f *gcFixture) []digest.Digest { return append(blobsOf(f.deleted), f.lone) },
		},
		{
			name: "young blobs are kept", age: 10 * time.Minute,
			wantRemoved: func(*gcFixture) []digest.Digest { return nil },
		},
		{
			name: "no grace", age: time.Second, opts: GCOptions{Grace: -1},
			wantRemoved: func(f *gcFixture) []digest.Digest {
				return append(append(blobsOf(f.deleted), blobsOf(f.pinned)...), f.lone)
			},
		},
		{
			name: "a blob a client just saw is kept", age: 2 * time.Hour, touch: true,
			wantRemoved: func(f *gcFixture) []digest.Digest {
				return append(append([]digest.Digest{f.deleted.digest, digest.FromBytes(f.deleted.config)}, blobsOf(f.pinned)...), f.lone)
			},
		},
		{
			name: "dry run removes nothing", age: 2 * time.Hour, opts: GCOptions{DryRun: true},
			wantRemoved: func(*gcFixture) []digest.Digest { return nil },
		},
		{
			name: "pins failing removes nothing", age: 2 * time.Hour, opts: GCOptions{Pins: pinList{err: errors.New("store down")}},
			wantErr:     true,
			wantRemoved: func(*gcFixture) []digest.Digest { return nil },
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newGCFixture(t)
			if tt.name == "pinned manifests keep their blobs" {
				tt.opts.Pins = pinList{digests: []string{f.pinned.digest.String(), ""}}
			}
			var all []digest.Digest
			for _, img := range []testImage{f.kept, f.untagged, f.deleted, f.pinned, f.childA, f.childB} {
				all = append(all, blobsOf(img)...)
			}
			all = append(all, f.index, f.lone)
			f.age(t, tt.age)
			if tt.touch {
				// The deleted image's layer is still linked in gone/x.
				r := f.ts.do("HEAD", "/v2/gone/x/blobs/"+digest.FromBytes(f.deleted.layer).String(), nil)
				if r.status != 200 {
					t.Fatalf("HEAD: %s", r)
				}
			}
			rep, err := f.ts.reg.GC(context.Background(), tt.opts)
			if (err != nil) != tt.wantErr {
				t.Fatalf("GC: %v", err)
			}
			removed := map[digest.Digest]bool{}
			for _, d := range tt.wantRemoved(f) {
				removed[d] = true
			}
			for _, d := range all {
				if got := !f.ts.blobStored(d); got != removed[d] {
					t.Errorf("blob %s removed = %v, want %v", d, got, removed[d])
				}
			}
			if tt.wantErr {
				return
			}
			if tt.opts.DryRun {
				if rep.BlobsRemoved != 7 || !rep.DryRun {
					t.Errorf("dry run report %+v, want 7 blobs", rep)
				}
			} else if rep.BlobsRemoved != len(removed) {
				t.Errorf("report %+v, want %d removed", rep, len(removed))
			}
			// Everything that stays is still pullable.
			for _, p := range []string{"/v2/app/manifests/v1", "/v2/app/manifests/" + f.untagged.digest.String(), "/v2/multi/manifests/latest",
				"/v2/multi/manifests/" + f.childB.digest.String(), "/v2/app/blobs/" + digest.FromBytes(f.kept.layer).String()} {
				f.ts.do("GET", p, nil).expect(t, 200, "")
			}
			// Links to removed blobs are gone with them.
			if removed[f.lone] {
				f.ts.do("GET", "/v2/app/blobs/"+f.lone.String(), nil).expect(t, 404, "BLOB_UNKNOWN")
				if _, err := os.Stat(f.ts.reg.store.layerLinkPath("app", f.lone)); !errors.Is(err, os.ErrNotExist) {
					t.Errorf("link to removed blob kept: %v", err)
				}
			}
		})
	}
}

func TestGCUploads(t *testing.T) {
	ts, clock := newClockServer(t)
	idle := ts.startUpload("up")
	fresh := ts.startUpload("up")
	ts.do("PATCH", idle, []byte("abc"), "Content-Range", "0-2").expect(t, 202, "")
	// The idle session's last chunk was two days ago.
	id := filepath.Base(idle)
	old := time.Now().Add(-48 * time.Hour)
	if err := os.Chtimes(ts.reg.uploadStatePath(id), old, old); err != nil {
		t.Fatal(err)
	}
	clock.t = clock.t.Add(time.Minute)
	rep, err := ts.reg.GC(context.Background(), GCOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if rep.UploadsRemoved != 1 {
		t.Fatalf("removed %d uploads, want 1", rep.UploadsRemoved)
	}
	ts.do("GET", idle, nil).expect(t, 404, "BLOB_UPLOAD_UNKNOWN")
	ts.do("GET", fresh, nil).expect(t, 204, "")
}

// TestGCDuringPushes runs garbage collection in a loop, with no grace for
// blobs a client has not seen, while clients push images and old garbage
// is there to remove; every push must succeed and every image stay whole.
func TestGCDuringPushes(t *testing.T) {
	ts := newTestServer(t)
	const workers, rounds = 6, 4
	// Garbage: blobs pushed "long ago" and never referenced.
	var garbage []digest.Digest
	for i := range 20 {
		garbage = append(garbage, ts.pushBlob("junk", []byte(fmt.Sprintf("garbage %d", i))))
	}
	old := time.Now().Add(-3 * time.Hour)
	for _, d := range garbage {
		if err := os.Chtimes(ts.reg.store.blobPath(d), old, old); err != nil {
			t.Fatal(err)
		}
	}
	ts.reg.seenMu.Lock()
	clear(ts.reg.seen)
	ts.reg.seenMu.Unlock()

	stop := make(chan struct{})
	gcDone := make(chan error, 1)
	var runs int
	go func() {
		defer close(gcDone)
		for {
			select {
			case <-stop:
				return
			default:
			}
			if _, err := ts.reg.GC(context.Background(), GCOptions{Grace: time.Minute}); err != nil {
				gcDone <- err
				return
			}
			runs++
		}
	}()
	var wg sync.WaitGroup
	errs := make(chan error, workers*rounds)
	refs := make([]string, 0, workers*rounds)
	var refsMu sync.Mutex
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for r := range rounds {
				img, err := random.Image(4096, 3)
				if err != nil {
					errs <- err
					return
				}
				ref := fmt.Sprintf("%s/push/w%d:r%d", ts.host(), w, r)
				if err := remote.Write(mustRef(t, ref), img); err != nil {
					errs <- fmt.Errorf("push %s: %w", ref, err)
					continue
				}
				refsMu.Lock()
				refs = append(refs, ref)
				refsMu.Unlock()
			}
		}()
	}
	wg.Wait()
	close(stop)
	if err := <-gcDone; err != nil {
		t.Fatalf("GC: %v", err)
	}
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if runs == 0 {
		t.Fatal("GC never ran")
	}
	for _, ref := range refs {
		img, err := remote.Image(mustRef(t, ref))
		if err != nil {
			t.Fatalf("pull %s: %v", ref, err)
		}
		layers, _ := img.Layers()
		for _, l := range layers {
			rc, err := l.Compressed()
			if err == nil {
				_, err = ioReadAllClose(rc)
			}
			if err != nil {
				t.Fatalf("%s layer: %v", ref, err)
			}
		}
	}
	for _, d := range garbage {
		if ts.blobStored(d) {
			t.Errorf("garbage %s survived %d GC runs", d, runs)
		}
	}
	t.Logf("%d pushes, %d GC runs", len(refs), runs)
}

func ioReadAllClose(rc io.ReadCloser) ([]byte, error) {
	defer rc.Close()
	return io.ReadAll(rc)
}
