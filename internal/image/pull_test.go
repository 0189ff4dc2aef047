package image

import (
	"bytes"
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/registry"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// rawLayer is a layer from given bytes, so tests control compression and
// can lie about the diffID.
type rawLayer struct {
	compressed, uncompressed []byte
	mt                       types.MediaType
	diffID                   string
}

func (l rawLayer) Digest() (v1.Hash, error) { return v1.NewHash(digestOf(l.compressed)) }
func (l rawLayer) DiffID() (v1.Hash, error) {
	if l.diffID != "" {
		return v1.NewHash(l.diffID)
	}
	return v1.NewHash(digestOf(l.uncompressed))
}
func (l rawLayer) Compressed() (io.ReadCloser, error) {
	return io.NopCloser(bytes.NewReader(l.compressed)), nil
}
func (l rawLayer) Uncompressed() (io.ReadCloser, error) {
	return io.NopCloser(bytes.NewReader(l.uncompressed)), nil
}
func (l rawLayer) Size() (int64, error)                { return int64(len(l.compressed)), nil }
func (l rawLayer) MediaType() (types.MediaType, error) { return l.mt, nil }

func gzLayer(t testing.TB, ents ...ent) rawLayer {
	tb := mkTar(t, ents...)
	return rawLayer{compressed: gz(t, tb), uncompressed: tb, mt: types.OCILayer}
}

func zstdLayer(t testing.TB, ents ...ent) rawLayer {
	tb := mkTar(t, ents...)
	return rawLayer{compressed: zst(t, tb), uncompressed: tb, mt: types.OCILayerZStd}
}

func plainLayer(t testing.TB, ents ...ent) rawLayer {
	tb := mkTar(t, ents...)
	return rawLayer{compressed: tb, uncompressed: tb, mt: types.OCIUncompressedLayer}
}

// buildImage makes a linux/<arch> OCI image of layers (base first).
func buildImage(t testing.TB, arch string, cfg v1.Config, layers ...v1.Layer) v1.Image {
	t.Helper()
	img, err := mutate.AppendLayers(empty.Image, layers...)
	if err != nil {
		t.Fatal(err)
	}
	img = mutate.MediaType(img, types.OCIManifestSchema1)
	img = mutate.ConfigMediaType(img, types.OCIConfigJSON)
	cf, err := img.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	cf = cf.DeepCopy()
	cf.OS, cf.Architecture, cf.Config = "linux", arch, cfg
	if img, err = mutate.ConfigFile(img, cf); err != nil {
		t.Fatal(err)
	}
	return img
}

// newRegistry serves go-containerregistry's in-memory registry on a
// loopback port, through wrap if given, and returns its host:port.
func newRegistry(t testing.TB, wrap func(http.Handler) http.Handler) string {
	t.Helper()
	var h http.Handler = registry.New(registry.Logger(log.New(io.Discard, "", 0)))
	if wrap != nil {
		h = wrap(h)
	}
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return strings.TrimPrefix(srv.URL, "http://")
}

// push writes img to ref and returns its manifest digest.
func push(t testing.TB, ref string, img v1.Image, opts ...remote.Option) string {
	t.Helper()
	r, err := name.ParseReference(ref)
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.Write(r, img, opts...); err != nil {
		t.Fatalf("push %s: %v", ref, err)
	}
	d, err := img.Digest()
	if err != nil {
		t.Fatal(err)
	}
	return d.String()
}

// anonymous finds no credentials, so tests never read a docker config.
var anonymous = authn.NewMultiKeychain()

func newTestStore(t testing.TB, opts Options) *Store {
	t.Helper()
	if opts.Dir == "" {
		opts.Dir = t.TempDir()
	}
	if opts.Keychain == nil {
		opts.Keychain = anonymous
	}
	s, err := NewStore(opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return s
}

var lambdaConfig = v1.Config{
	Entrypoint: []string{"/lambda-entrypoint.sh"},
	Cmd:        []string{"app.handler"},
	Env:        []string{"PATH=/var/lang/bin:/usr/local/bin:/usr/bin/:/bin", "LAMBDA_TASK_ROOT=/var/task"},
	WorkingDir: "/var/task",
	User:       "",
}

func TestPull(t *testing.T) {
	host := newRegistry(t, nil)
	base := gzLayer(t, dir("var/"), dir("var/task/"), withMode(file("lambda-entrypoint.sh", "#!/bin/sh\n"), 0o755))
	app := zstdLayer(t, file("var/task/app.py", "def handler(e, c): return e\n"))
	extra := plainLayer(t, file("etc/motd", "hi"))
	img := buildImage(t, "amd64", lambdaConfig, base, app, extra)
	digest := push(t, host+"/hello:v1", img)

	s := newTestStore(t, Options{})
	got, err := s.Pull(context.Background(), host+"/hello:v1", "x86_64")
	if err != nil {
		t.Fatal(err)
	}
	want := &Image{
		Digest:       digest,
		Repository:   host + "/hello",
		ResolvedURI:  host + "/hello@" + digest,
		Architecture: "amd64",
		Config: Config{
			Entrypoint: lambdaConfig.Entrypoint, Cmd: lambdaConfig.Cmd,
			Env: lambdaConfig.Env, WorkingDir: lambdaConfig.WorkingDir,
		},
		DiffIDs: []string{digestOf(base.uncompressed), digestOf(app.uncompressed), digestOf(extra.uncompressed)},
		Size:    int64(len(base.uncompressed) + len(app.uncompressed) + len(extra.uncompressed)),
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("Pull =\n %+v\nwant\n %+v", got, want)
	}
	if n := s.unpacked.Load(); n != 3 {
		t.Errorf("unpacked %d layers, want 3", n)
	}
	hex := strings.TrimPrefix(want.DiffIDs[1], "sha256:")
	if b, err := os.ReadFile(filepath.Join(s.dir, "layers/sha256", hex, "fs/var/task/app.py")); err != nil || !strings.HasPrefix(string(b), "def handler") {
		t.Errorf("app layer: %q %v", b, err)
	}

	// Lookup from a new Store on the same directory: no network needed.
	s2 := newTestStore(t, Options{Dir: s.dir})
	looked, err := s2.Lookup(digest)
	if err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(looked) != fmt.Sprint(want) {
		t.Errorf("Lookup = %+v", looked)
	}
	if _, err := s2.Lookup("sha256:" + strings.Repeat("ab", 32)); !errors.Is(err, ErrNotFound) {
		t.Errorf("Lookup of unknown digest: %v", err)
	}
	if _, err := s2.Lookup("../../etc/passwd"); !errors.Is(err, ErrNotFound) {
		t.Errorf("Lookup of a path: %v", err)
	}

	// Pulling again, by digest, downloads no layer, and makes the record
	// young again for the layer GC's grace period.
	rec := filepath.Join(s.dir, "images/sha256", strings.TrimPrefix(digest, "sha256:")+".json")
	old := time.Now().Add(-48 * time.Hour)
	if err := os.Chtimes(rec, old, old); err != nil {
		t.Fatal(err)
	}
	again, err := s2.Pull(context.Background(), want.ResolvedURI, "x86_64")
	if fi, err := os.Stat(rec); err != nil || !fi.ModTime().After(old.Add(time.Hour)) {
		t.Errorf("record not touched by a second pull: %v %v", fi.ModTime(), err)
	}
	if err != nil {
		t.Fatal(err)
	}
	if again.Digest != digest || s2.unpacked.Load() != 0 {
		t.Errorf("second pull: digest %s, unpacked %d", again.Digest, s2.unpacked.Load())
	}
	if entries, _ := os.ReadDir(filepath.Join(s.dir, "tmp")); len(entries) != 0 {
		t.Errorf("tmp holds %v", entries)
	}
}

func TestPullIndex(t *testing.T) {
	host := newRegistry(t, nil)
	amd := buildImage(t, "amd64", lambdaConfig, gzLayer(t, file("arch", "amd64")))
	arm := buildImage(t, "arm64", lambdaConfig, gzLayer(t, file("arch", "arm64")))
	idx := mutate.AppendManifests(empty.Index,
		mutate.IndexAddendum{Add: amd, Descriptor: v1.Descriptor{Platform: &v1.Platform{OS: "linux", Architecture: "amd64"}}},
		mutate.IndexAddendum{Add: arm, Descriptor: v1.Descriptor{Platform: &v1.Platform{OS: "linux", Architecture: "arm64", Variant: "v8"}}},
	)
	ref, _ := name.ParseReference(host + "/multi:latest")
	if err := remote.WriteIndex(ref, idx); err != nil {
		t.Fatal(err)
	}
	amdDigest, _ := amd.Digest()
	armDigest, _ := arm.Digest()

	armOnly := mutate.AppendManifests(empty.Index,
		mutate.IndexAddendum{Add: arm, Descriptor: v1.Descriptor{Platform: &v1.Platform{OS: "linux", Architecture: "arm64"}}})
	ref2, _ := name.ParseReference(host + "/armonly:1")
	if err := remote.WriteIndex(ref2, armOnly); err != nil {
		t.Fatal(err)
	}

	s := newTestStore(t, Options{})
	for _, tt := range []struct {
		name, uri, arch, want string
		wantErr               string
	}{
		{name: "x86_64", uri: host + "/multi:latest", arch: "x86_64", want: amdDigest.String()},
		{name: "arm64", uri: host + "/multi:latest", arch: "arm64", want: armDigest.String()},
		{name: "amd64 spelled the OCI way", uri: host + "/multi", arch: "amd64", want: amdDigest.String()},
		{name: "missing arch", uri: host + "/armonly:1", arch: "x86_64", wantErr: "no linux/amd64 image"},
		{name: "unknown arch", uri: host + "/multi:latest", arch: "s390x", wantErr: "unsupported architecture"},
		{name: "single image of another arch", uri: host + "/multi@" + armDigest.String(), arch: "x86_64", wantErr: "does not match"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			img, err := s.Pull(context.Background(), tt.uri, tt.arch)
			if tt.wantErr != "" {
				if !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want ErrInvalid saying %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if img.Digest != tt.want {
				t.Errorf("digest %s, want %s", img.Digest, tt.want)
			}
			wantArch := map[string]string{"x86_64": "amd64", "amd64": "amd64", "arm64": "arm64"}[tt.arch]
			if img.Architecture != wantArch {
				t.Errorf("architecture %s", img.Architecture)
			}
		})
	}
}

// TestCheckPlatform: what CreateFunction refuses at once (no image for the
// architecture, no such repository or tag) and what it leaves to the
// deploy (a registry that refuses Kappa's credentials, or is not there).
func TestCheckPlatform(t *testing.T) {
	host := newRegistry(t, nil)
	arm := buildImage(t, "arm64", lambdaConfig, gzLayer(t, file("arch", "arm64")))
	armOnly := mutate.AppendManifests(empty.Index,
		mutate.IndexAddendum{Add: arm, Descriptor: v1.Descriptor{Platform: &v1.Platform{OS: "linux", Architecture: "arm64"}}})
	ref, _ := name.ParseReference(host + "/armonly:1")
	if err := remote.WriteIndex(ref, armOnly); err != nil {
		t.Fatal(err)
	}
	locked := newRegistry(t, basicAuth("u", "p"))
	s := newTestStore(t, Options{})
	for _, tt := range []struct {
		name, uri, arch string
		want            error // nil: left to the deploy
	}{
		{"runs", host + "/armonly:1", "arm64", nil},
		{"no image for the architecture", host + "/armonly:1", "x86_64", ErrInvalid},
		{"no such tag", host + "/armonly:2", "arm64", ErrNotFound},
		{"no such repository", host + "/nothing:1", "arm64", ErrNotFound},
		{"no such digest", host + "/armonly@sha256:" + strings.Repeat("0", 64), "arm64", ErrNotFound},
		{"credentials refused", locked + "/armonly:1", "arm64", nil},
		{"nothing listening", closedAddr(t) + "/armonly:1", "arm64", nil},
	} {
		t.Run(tt.name, func(t *testing.T) {
			err := s.CheckPlatform(context.Background(), tt.uri, tt.arch)
			if tt.want == nil && err != nil || tt.want != nil && !errors.Is(err, tt.want) {
				t.Errorf("CheckPlatform = %v, want %v", err, tt.want)
			}
		})
	}
}

// closedAddr returns a loopback address nothing listens on.
func closedAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr
}

// basicAuth requires user:pass on every request, as a registry with basic
// auth does.
func basicAuth(user, pass string) func(http.Handler) http.Handler {
	want := "Basic " + base64.StdEncoding.EncodeToString([]byte(user+":"+pass))
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.Header.Get("Authorization") != want {
				w.Header().Set("WWW-Authenticate", `Basic realm="kappa-test"`)
				w.Header().Set("Content-Type", "application/json")
				w.WriteHeader(http.StatusUnauthorized)
				io.WriteString(w, `{"errors":[{"code":"UNAUTHORIZED","message":"authentication required"}]}`)
				return
			}
			next.ServeHTTP(w, r)
		})
	}
}

type staticKeychain struct{ auth authn.Authenticator }

func (k staticKeychain) Resolve(authn.Resource) (authn.Authenticator, error) { return k.auth, nil }

// blobFilter rewrites GET responses for one blob.
func blobFilter(digest string, rewrite func(w http.ResponseWriter, body []byte)) func(http.Handler) http.Handler {
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.Method != http.MethodGet || !strings.HasSuffix(r.URL.Path, "/blobs/"+digest) {
				next.ServeHTTP(w, r)
				return
			}
			rec := httptest.NewRecorder()
			next.ServeHTTP(rec, r)
			rewrite(w, rec.Body.Bytes())
		})
	}
}

func TestPullErrors(t *testing.T) {
	good := gzLayer(t, file("f", "x"))
	goodImg := buildImage(t, "amd64", lambdaConfig, good)
	big := gzLayer(t, file("big", strings.Repeat("z", 64<<10)))

	for _, tt := range []struct {
		name    string
		wrap    func(http.Handler) http.Handler
		img     v1.Image
		pushTo  string // default "app:v1"
		pull    string // default "app:v1"
		opts    Options
		wantErr error
		errText string
	}{
		{name: "missing tag", pull: "app:nope", wantErr: ErrNotFound},
		{name: "missing repository", pull: "nothing:v1", wantErr: ErrNotFound},
		{name: "missing digest", pull: "app@sha256:" + strings.Repeat("1", 64), wantErr: ErrNotFound},
		{name: "malformed uri", pull: "UPPER CASE!!", wantErr: ErrInvalid},
		{
			name:    "wrong credentials",
			wrap:    basicAuth("kappa", "secret"),
			opts:    Options{Keychain: staticKeychain{&authn.Basic{Username: "kappa", Password: "wrong"}}},
			wantErr: ErrAccessDenied,
		},
		{
			name: "right credentials",
			wrap: basicAuth("kappa", "secret"),
			opts: Options{Keychain: staticKeychain{&authn.Basic{Username: "kappa", Password: "secret"}}},
		},
		{
			name: "missing layer blob",
			wrap: blobFilter(digestOf(good.compressed), func(w http.ResponseWriter, _ []byte) {
				w.Header().Set("Content-Type", "application/json")
				w.WriteHeader(http.StatusNotFound)
				io.WriteString(w, `{"errors":[{"code":"BLOB_UNKNOWN","message":"blob unknown"}]}`)
			}),
			wantErr: ErrInvalid,
		},
		{
			name: "corrupt layer blob",
			wrap: blobFilter(digestOf(good.compressed), func(w http.ResponseWriter, body []byte) {
				body = bytes.Clone(body)
				body[len(body)-5] ^= 0xff // inside the gzip trailer
				w.Header().Set("Content-Length", fmt.Sprint(len(body)))
				w.Write(body)
			}),
			wantErr: ErrInvalid,
		},
		{
			name: "layer blob longer than the manifest says",
			wrap: blobFilter(digestOf(good.compressed), func(w http.ResponseWriter, body []byte) {
				w.Header().Set("Content-Length", fmt.Sprint(len(body)+1))
				w.Write(append(bytes.Clone(body), 0))
			}),
			wantErr: ErrInvalid,
		},
		{
			name:    "diffID mismatch",
			img:     buildImage(t, "amd64", lambdaConfig, rawLayer{compressed: good.compressed, uncompressed: good.uncompressed, mt: types.OCILayer, diffID: "sha256:" + strings.Repeat("0", 64)}),
			wantErr: ErrInvalid,
			errText: "diffID",
		},
		{
			name:    "image too large",
			img:     buildImage(t, "amd64", lambdaConfig, big, big),
			opts:    Options{MaxImageBytes: 100 << 10},
			wantErr: ErrInvalid,
			errText: "image exceeds 102400 bytes uncompressed",
		},
		{
			name: "config too large",
			img: func() v1.Image {
				cf, _ := goodImg.ConfigFile()
				cf = cf.DeepCopy()
				cf.Config.Labels = map[string]string{"pad": strings.Repeat("p", maxConfigBytes)}
				i, _ := mutate.ConfigFile(goodImg, cf)
				return i
			}(),
			wantErr: ErrInvalid,
			errText: "image config",
		},
		{
			name: "not linux",
			img: func() v1.Image {
				i, _ := mutate.ConfigFile(goodImg, &v1.ConfigFile{OS: "windows", Architecture: "amd64", RootFS: v1.RootFS{Type: "layers", DiffIDs: []v1.Hash{mustHash(digestOf(good.uncompressed))}}})
				return i
			}(),
			wantErr: ErrInvalid,
			errText: "windows",
		},
	} {
		t.Run(tt.name, func(t *testing.T) {
			host := newRegistry(t, tt.wrap)
			img := tt.img
			if img == nil {
				img = goodImg
			}
			pushTo, pull := tt.pushTo, tt.pull
			if pushTo == "" {
				pushTo = "app:v1"
			}
			if pull == "" {
				pull = "app:v1"
			}
			push(t, host+"/"+pushTo, img, remote.WithAuth(&authn.Basic{Username: "kappa", Password: "secret"}))
			s := newTestStore(t, tt.opts)
			uri := host + "/" + pull
			if tt.name == "malformed uri" {
				uri = pull
			}
			_, err := s.Pull(context.Background(), uri, "x86_64")
			t.Logf("err: %v", err)
			if tt.wantErr == nil {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("err = %v, want %v", err, tt.wantErr)
			}
			for _, other := range []error{ErrNotFound, ErrAccessDenied, ErrInvalid} {
				if other != tt.wantErr && errors.Is(err, other) {
					t.Errorf("err = %v is also %v", err, other)
				}
			}
			if tt.errText != "" && !strings.Contains(err.Error(), tt.errText) {
				t.Errorf("err = %q, want it to say %q", err, tt.errText)
			}
			if entries, _ := os.ReadDir(filepath.Join(s.dir, "tmp")); len(entries) != 0 {
				t.Errorf("tmp holds %v after a failed pull", entries)
			}
			if entries, _ := os.ReadDir(filepath.Join(s.dir, "images/sha256")); len(entries) != 0 {
				t.Errorf("a failed pull recorded %v", entries)
			}
		})
	}
}

func mustHash(s string) v1.Hash {
	h, err := v1.NewHash(s)
	if err != nil {
		panic(err)
	}
	return h
}

func TestPullCanceled(t *testing.T) {
	host := newRegistry(t, nil)
	push(t, host+"/app:v1", buildImage(t, "amd64", lambdaConfig, gzLayer(t, file("f", "x"))))
	s := newTestStore(t, Options{})
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := s.Pull(ctx, host+"/app:v1", "x86_64"); !errors.Is(err, context.Canceled) {
		t.Fatalf("err = %v, want context.Canceled", err)
	}
}

// Images sharing a base layer, pulled at the same time, download and unpack
// the base once.
func TestPullSharedLayer(t *testing.T) {
	base := gzLayer(t, dir("usr/"), file("usr/base", "base"))
	var baseGets atomic.Int64
	host := newRegistry(t, func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.Method == http.MethodGet && strings.HasSuffix(r.URL.Path, "/blobs/"+digestOf(base.compressed)) {
				baseGets.Add(1)
			}
			next.ServeHTTP(w, r)
		})
	})
	const n = 4
	for i := range n {
		push(t, fmt.Sprintf("%s/app%d:v1", host, i), buildImage(t, "amd64", lambdaConfig, base, gzLayer(t, file("top", fmt.Sprint(i)))))
	}
	s := newTestStore(t, Options{})
	var wg sync.WaitGroup
	errs := make([]error, n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, errs[i] = s.Pull(context.Background(), fmt.Sprintf("%s/app%d:v1", host, i), "x86_64")
		}()
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		t.Fatal(err)
	}
	if got := s.unpacked.Load(); got != n+1 {
		t.Errorf("unpacked %d layers, want %d", got, n+1)
	}
	if got := baseGets.Load(); got != 1 {
		t.Errorf("base layer downloaded %d times", got)
	}
}

// A layer directory without its record (debris of an older version or a
// hand edit) is replaced by the pull.
func TestPullReplacesBrokenLayer(t *testing.T) {
	host := newRegistry(t, nil)
	l := gzLayer(t, file("f", "fresh"))
	push(t, host+"/app:v1", buildImage(t, "amd64", lambdaConfig, l))
	s := newTestStore(t, Options{})
	hex := strings.TrimPrefix(digestOf(l.uncompressed), "sha256:")
	debris := filepath.Join(s.dir, "layers/sha256", hex, "fs")
	if err := os.MkdirAll(debris, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(debris, "garbage"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Pull(context.Background(), host+"/app:v1", "x86_64"); err != nil {
		t.Fatal(err)
	}
	if got := names(t, debris); got != "f" {
		t.Errorf("layer holds %s", got)
	}
}

// Random images from go-containerregistry (Docker media types, no
// architecture in the config) pull too.
func TestPullRandomImage(t *testing.T) {
	host := newRegistry(t, nil)
	img, err := random.Image(1024, 3)
	if err != nil {
		t.Fatal(err)
	}
	digest := push(t, host+"/random:v1", img)
	s := newTestStore(t, Options{})
	got, err := s.Pull(context.Background(), host+"/random:v1", "arm64")
	if err != nil {
		t.Fatal(err)
	}
	if got.Digest != digest || len(got.DiffIDs) != 3 {
		t.Errorf("got %+v", got)
	}
}

// TestPullSilentRegistry: a registry that accepts the connection and never
// answers fails the pull after responseHeaderTimeout rather than holding it.
func TestPullSilentRegistry(t *testing.T) {
	old := responseHeaderTimeout
	responseHeaderTimeout = 200 * time.Millisecond
	defer func() { responseHeaderTimeout = old }()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	var conns []net.Conn
	var mu sync.Mutex
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				// A TLS hello gets the connection closed (the client then
				// tries plain HTTP); a plain request gets no answer.
				b := make([]byte, 1)
				if _, err := c.Read(b); err != nil || b[0] == 0x16 {
					c.Close()
					return
				}
				mu.Lock()
				conns = append(conns, c)
				mu.Unlock()
			}()
		}
	}()
	defer func() {
		mu.Lock()
		for _, c := range conns {
			c.Close()
		}
		mu.Unlock()
	}()
	s := newTestStore(t, Options{InsecureRegistries: []string{ln.Addr().String()}})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	_, err = s.Pull(ctx, ln.Addr().String()+"/app:v1", "x86_64")
	if err == nil || ctx.Err() != nil || !strings.Contains(err.Error(), "timeout awaiting response headers") {
		t.Fatalf("Pull from a silent registry = %v (context: %v); want it to give up on its own", err, ctx.Err())
	}
}
