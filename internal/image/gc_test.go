package image

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// gcImages pushes three images sharing a base layer and pulls them.
type gcImages struct {
	s                *Store
	host             string
	a, b, c          *Image
	base, la, lb, lc string // layer diffIDs
}

func newGCImages(t *testing.T) *gcImages {
	t.Helper()
	host := newRegistry(t, nil)
	base := gzLayer(t, dir("etc/"), file("etc/base", "base"))
	mk := func(name string) (v1.Image, rawLayer) {
		l := gzLayer(t, file(name, name))
		return buildImage(t, "amd64", lambdaConfig, base, l), l
	}
	g := &gcImages{s: newTestStore(t, Options{}), host: host, base: digestOf(base.uncompressed)}
	ctx := context.Background()
	for _, x := range []struct {
		name  string
		img   **Image
		layer *string
	}{{"a", &g.a, &g.la}, {"b", &g.b, &g.lb}, {"c", &g.c, &g.lc}} {
		im, l := mk(x.name)
		push(t, host+"/gc/"+x.name+":v1", im)
		pulled, err := g.s.Pull(ctx, host+"/gc/"+x.name+":v1", "x86_64")
		if err != nil {
			t.Fatal(err)
		}
		*x.img, *x.layer = pulled, digestOf(l.uncompressed)
	}
	return g
}

func (g *gcImages) hasLayer(diffID string) bool {
	h, _ := digestHex(diffID)
	_, ok := g.s.readLayer(h)
	return ok
}

func keepOnly(digests ...string) func(string) bool {
	return func(d string) bool {
		for _, k := range digests {
			if k == d {
				return true
			}
		}
		return false
	}
}

func TestStoreGC(t *testing.T) {
	tests := []struct {
		name       string
		keep       func(g *gcImages) func(string) bool
		grace      time.Duration
		dry        bool
		wantImages func(g *gcImages) []*Image // records that remain
		wantLayers func(g *gcImages) []string // layers that remain
	}{
		{
			name: "unneeded images and their own layers go", grace: -1,
			keep:       func(g *gcImages) func(string) bool { return keepOnly(g.a.Digest) },
			wantImages: func(g *gcImages) []*Image { return []*Image{g.a} },
			wantLayers: func(g *gcImages) []string { return []string{g.base, g.la} },
		},
		{
			name: "nothing needed", grace: -1,
			keep:       func(*gcImages) func(string) bool { return nil },
			wantImages: func(*gcImages) []*Image { return nil },
			wantLayers: func(*gcImages) []string { return nil },
		},
		{
			name: "young records stay", grace: 0,
			keep:       func(*gcImages) func(string) bool { return nil },
			wantImages: func(g *gcImages) []*Image { return []*Image{g.a, g.b, g.c} },
			wantLayers: func(g *gcImages) []string { return []string{g.base, g.la, g.lb, g.lc} },
		},
		{
			name: "dry run", grace: -1, dry: true,
			keep:       func(*gcImages) func(string) bool { return nil },
			wantImages: func(g *gcImages) []*Image { return []*Image{g.a, g.b, g.c} },
			wantLayers: func(g *gcImages) []string { return []string{g.base, g.la, g.lb, g.lc} },
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g := newGCImages(t)
			rep, err := g.s.GC(context.Background(), GCOptions{Keep: tt.keep(g), Grace: tt.grace, DryRun: tt.dry})
			if err != nil {
				t.Fatal(err)
			}
			want := map[string]bool{}
			for _, img := range tt.wantImages(g) {
				want[img.Digest] = true
			}
			for _, img := range []*Image{g.a, g.b, g.c} {
				_, err := g.s.Lookup(img.Digest)
				if got := err == nil; got != want[img.Digest] {
					t.Errorf("image %s recorded = %v, want %v (%v)", img.Digest, got, want[img.Digest], err)
				}
				if err != nil && !errors.Is(err, ErrNotFound) {
					t.Errorf("Lookup after GC: %v", err)
				}
			}
			wantL := map[string]bool{}
			for _, l := range tt.wantLayers(g) {
				wantL[l] = true
			}
			for _, l := range []string{g.base, g.la, g.lb, g.lc} {
				if got := g.hasLayer(l); got != wantL[l] {
					t.Errorf("layer %s present = %v, want %v", l, got, wantL[l])
				}
			}
			if !tt.dry && rep.LayersRemoved != 4-len(wantL) {
				t.Errorf("report %+v", rep)
			}
			// Nothing is left in tmp, and a removed image pulls again.
			if ents, _ := os.ReadDir(g.s.tmpDir()); len(ents) != 0 {
				t.Errorf("tmp holds %d entries after GC", len(ents))
			}
			if _, err := g.s.Pull(context.Background(), g.host+"/gc/b:v1", "x86_64"); err != nil {
				t.Fatalf("pull again after GC: %v", err)
			}
			if !g.hasLayer(g.lb) || !g.hasLayer(g.base) {
				t.Fatal("layers of the pulled-again image missing")
			}
		})
	}
}

func TestStoreGCKeepsMounted(t *testing.T) {
	requireOverlay(t)
	g := newGCImages(t)
	ctx := context.Background()
	root, err := g.s.RootFS(ctx, g.c.Digest)
	if err != nil {
		t.Fatal(err)
	}
	rep, err := g.s.GC(ctx, GCOptions{Grace: -1})
	if err != nil {
		t.Fatal(err)
	}
	if rep.ImagesMounted != 1 || rep.ImagesKept != 1 {
		t.Fatalf("report %+v, want the mounted image kept", rep)
	}
	if b, err := os.ReadFile(filepath.Join(root, "c")); err != nil || string(b) != "c" {
		t.Fatalf("mounted rootfs after GC: %q, %v", b, err)
	}
	if !g.hasLayer(g.lc) || !g.hasLayer(g.base) || g.hasLayer(g.la) {
		t.Fatal("GC removed a mounted image's layer, or kept another's")
	}
	if err := g.s.Release(g.c.Digest); err != nil {
		t.Fatal(err)
	}
	if rep, err = g.s.GC(ctx, GCOptions{Grace: -1}); err != nil || rep.ImagesRemoved != 1 {
		t.Fatalf("GC after Release: %+v, %v", rep, err)
	}
}

// TestStoreGCDuringPulls collects with nothing to keep while pulls run:
// every pull succeeds, and every image record left names layers that are
// all there.
func TestStoreGCDuringPulls(t *testing.T) {
	host := newRegistry(t, nil)
	s := newTestStore(t, Options{})
	base := gzLayer(t, file("base", strings.Repeat("b", 64<<10)))
	var refs []string
	for i := range 6 {
		img := buildImage(t, "amd64", lambdaConfig, base, gzLayer(t, file(fmt.Sprintf("f%d", i), "x")))
		ref := fmt.Sprintf("%s/race/i%d:v1", host, i)
		push(t, ref, img)
		refs = append(refs, ref)
	}
	ctx := context.Background()
	stop := make(chan struct{})
	gcErr := make(chan error, 1)
	go func() {
		defer close(gcErr)
		for {
			select {
			case <-stop:
				return
			default:
			}
			if _, err := s.GC(ctx, GCOptions{Grace: -1}); err != nil {
				gcErr <- err
				return
			}
		}
	}()
	var wg sync.WaitGroup
	errs := make(chan error, 64)
	for w := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for r := range 8 {
				img, err := s.Pull(ctx, refs[(w+r)%len(refs)], "x86_64")
				if err != nil {
					errs <- err
					return
				}
				if len(img.DiffIDs) != 2 {
					errs <- fmt.Errorf("pulled %d layers", len(img.DiffIDs))
				}
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
	ents, _ := os.ReadDir(filepath.Join(s.dir, "images", "sha256"))
	for _, e := range ents {
		d := "sha256:" + strings.TrimSuffix(e.Name(), ".json")
		img, err := s.Lookup(d)
		if err != nil {
			t.Fatal(err)
		}
		if !s.haveLayers(img) {
			t.Fatalf("image %s recorded without its layers", d)
		}
	}
}
