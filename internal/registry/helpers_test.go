package registry

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// testServer is a Registry on a temp dir served by httptest.
type testServer struct {
	t   *testing.T
	dir string
	reg *Registry
	srv *httptest.Server
}

func newTestServer(t *testing.T) *testServer {
	t.Helper()
	return openTestServer(t, t.TempDir())
}

func openTestServer(t *testing.T, dir string) *testServer {
	t.Helper()
	reg, err := New(dir, nil)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	ts := &testServer{t: t, dir: dir, reg: reg, srv: httptest.NewServer(reg.Handler())}
	t.Cleanup(ts.close)
	return ts
}

func (ts *testServer) close() {
	ts.srv.Close()
	if err := ts.reg.Close(); err != nil {
		ts.t.Errorf("Close: %v", err)
	}
}

// host is the server's host:port, for go-containerregistry references.
func (ts *testServer) host() string { return strings.TrimPrefix(ts.srv.URL, "http://") }

// response is a finished HTTP exchange.
type response struct {
	status int
	header http.Header
	body   []byte
}

// do sends a request; hdr is key, value pairs. A path with a scheme is used
// as is, otherwise it is relative to the server.
func (ts *testServer) do(method, path string, body []byte, hdr ...string) response {
	ts.t.Helper()
	url := path
	if !strings.HasPrefix(path, "http") {
		url = ts.srv.URL + path
	}
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequest(method, url, rd)
	if err != nil {
		ts.t.Fatalf("new request %s %s: %v", method, path, err)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := ts.srv.Client().Do(req)
	if err != nil {
		ts.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		ts.t.Fatalf("read body of %s %s: %v", method, path, err)
	}
	return response{status: resp.StatusCode, header: resp.Header, body: b}
}

// errorCode returns the code of the first error in a spec error body.
func (r response) errorCode() string {
	var eb struct {
		Errors []struct {
			Code string `json:"code"`
		} `json:"errors"`
	}
	if json.Unmarshal(r.body, &eb) != nil || len(eb.Errors) == 0 {
		return ""
	}
	return eb.Errors[0].Code
}

func (r response) String() string {
	return fmt.Sprintf("%d %v %q", r.status, r.header, r.body)
}

// expect fails the test unless r has the status and, when code is not
// empty, the error code.
func (r response) expect(t *testing.T, status int, code string) {
	t.Helper()
	if r.status != status {
		t.Fatalf("status = %d, want %d; response %s", r.status, status, r)
	}
	if code != "" && r.errorCode() != code {
		t.Fatalf("error code = %q, want %q; response %s", r.errorCode(), code, r)
	}
}

// pushBlob pushes content monolithically to repo and returns its digest.
func (ts *testServer) pushBlob(repo string, content []byte) digest.Digest {
	ts.t.Helper()
	d := digest.FromBytes(content)
	ts.do("POST", "/v2/"+repo+"/blobs/uploads/?digest="+d.String(), content).expect(ts.t, http.StatusCreated, "")
	return d
}

// testImage is a minimal image: its config and layer are pushed by
// pushImage.
type testImage struct {
	config, layer []byte
	manifest      []byte
	digest        digest.Digest
}

func newTestImage(t *testing.T, seed string, mutate func(*ocispec.Manifest)) testImage {
	t.Helper()
	img := testImage{config: []byte(`{"architecture":"amd64","os":"linux","seed":"` + seed + `"}`), layer: []byte("layer-" + seed)}
	m := ocispec.Manifest{
		MediaType: ocispec.MediaTypeImageManifest,
		Config:    ocispec.Descriptor{MediaType: ocispec.MediaTypeImageConfig, Digest: digest.FromBytes(img.config), Size: int64(len(img.config))},
		Layers:    []ocispec.Descriptor{{MediaType: ocispec.MediaTypeImageLayerGzip, Digest: digest.FromBytes(img.layer), Size: int64(len(img.layer))}},
	}
	m.SchemaVersion = 2
	if mutate != nil {
		mutate(&m)
	}
	b, err := json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	img.manifest = b
	img.digest = digest.FromBytes(b)
	return img
}

// pushImage pushes img's blobs and its manifest under ref (tag or digest).
func (ts *testServer) pushImage(repo, ref string, img testImage) response {
	ts.t.Helper()
	ts.pushBlob(repo, img.config)
	ts.pushBlob(repo, img.layer)
	return ts.do("PUT", "/v2/"+repo+"/manifests/"+ref, img.manifest, "Content-Type", ocispec.MediaTypeImageManifest)
}

// indexOf returns an OCI index of the given manifests.
func indexOf(t *testing.T, mutate func(*ocispec.Index), imgs ...testImage) []byte {
	t.Helper()
	idx := ocispec.Index{MediaType: ocispec.MediaTypeImageIndex, Manifests: []ocispec.Descriptor{}}
	idx.SchemaVersion = 2
	for _, img := range imgs {
		idx.Manifests = append(idx.Manifests, ocispec.Descriptor{MediaType: ocispec.MediaTypeImageManifest, Digest: img.digest, Size: int64(len(img.manifest))})
	}
	if mutate != nil {
		mutate(&idx)
	}
	b, err := json.Marshal(idx)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
