package registry

import (
	"bytes"
	"encoding/json"
	"errors"
	"net/http"
	"strconv"
	"strings"
	"testing"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

func TestManifestPutGet(t *testing.T) {
	ts := newTestServer(t)
	img := newTestImage(t, "one", nil)
	r := ts.pushImage("app/fn", "v1", img)
	r.expect(t, 201, "")
	if got, want := r.header.Get("Location"), "/v2/app/fn/manifests/"+img.digest.String(); got != want {
		t.Errorf("Location = %q, want %q", got, want)
	}
	if got := r.header.Get("Docker-Content-Digest"); got != img.digest.String() {
		t.Errorf("Docker-Content-Digest = %q, want %s", got, img.digest)
	}
	if r.header.Get("OCI-Subject") != "" {
		t.Errorf("OCI-Subject set for a manifest without subject")
	}

	tests := []struct {
		name   string
		method string
		ref    string
		status int
		code   string
	}{
		{name: "get by tag", method: "GET", ref: "v1", status: 200},
		{name: "get by digest", method: "GET", ref: img.digest.String(), status: 200},
		{name: "head by tag", method: "HEAD", ref: "v1", status: 200},
		{name: "head by digest", method: "HEAD", ref: img.digest.String(), status: 200},
		{name: "unknown tag", method: "GET", ref: "v2", status: 404, code: "MANIFEST_UNKNOWN"},
		{name: "unknown digest", method: "GET", ref: digest.FromString("x").String(), status: 404, code: "MANIFEST_UNKNOWN"},
		{name: "sha512 of known content", method: "GET", ref: digest.SHA512.FromBytes(img.manifest).String(), status: 404, code: "MANIFEST_UNKNOWN"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := ts.do(tt.method, "/v2/app/fn/manifests/"+tt.ref, nil, "Accept", ocispec.MediaTypeImageManifest)
			r.expect(t, tt.status, tt.code)
			if tt.status != 200 {
				return
			}
			if got := r.header.Get("Content-Type"); got != ocispec.MediaTypeImageManifest {
				t.Errorf("Content-Type = %q", got)
			}
			if got := r.header.Get("Docker-Content-Digest"); got != img.digest.String() {
				t.Errorf("Docker-Content-Digest = %q", got)
			}
			if got := r.header.Get("Content-Length"); got != strconv.Itoa(len(img.manifest)) {
				t.Errorf("Content-Length = %q, want %d", got, len(img.manifest))
			}
			if tt.method == "GET" && !bytes.Equal(r.body, img.manifest) {
				t.Errorf("body differs from the pushed manifest")
			}
		})
	}
	ts.do("GET", "/v2/nope/manifests/v1", nil).expect(t, 404, "NAME_UNKNOWN")
	// The manifest is readable as a blob of its repository too.
	ts.do("GET", "/v2/app/fn/blobs/"+img.digest.String(), nil).expect(t, 200, "")
}

func TestManifestMediaTypes(t *testing.T) {
	ts := newTestServer(t)
	img := newTestImage(t, "mt", nil)
	ts.pushImage("r", "base", img).expect(t, 201, "")
	docker := newTestImage(t, "docker", func(m *ocispec.Manifest) {
		m.MediaType = mediaTypeDockerManifest
		m.Config.MediaType = "application/vnd.docker.container.image.v1+json"
		m.Layers[0].MediaType = "application/vnd.docker.image.rootfs.diff.tar.gzip"
	})
	ts.pushBlob("r", docker.config)
	ts.pushBlob("r", docker.layer)
	noType := newTestImage(t, "notype", func(m *ocispec.Manifest) { m.MediaType = "" })
	ts.pushBlob("r", noType.config)
	ts.pushBlob("r", noType.layer)
	dockerList := indexOf(t, func(i *ocispec.Index) {
		i.MediaType = mediaTypeDockerManifestList
		i.Manifests[0].MediaType = mediaTypeDockerManifest
	}, docker)
	ociIndex := indexOf(t, nil, img)

	tests := []struct {
		name        string
		tag         string
		body        []byte
		contentType string
		wantType    string
	}{
		{name: "docker manifest", tag: "docker", body: docker.manifest, contentType: mediaTypeDockerManifest, wantType: mediaTypeDockerManifest},
		{name: "docker manifest list", tag: "list", body: dockerList, contentType: mediaTypeDockerManifestList, wantType: mediaTypeDockerManifestList},
		{name: "oci index", tag: "index", body: ociIndex, contentType: ocispec.MediaTypeImageIndex, wantType: ocispec.MediaTypeImageIndex},
		{name: "type from body when content type generic", tag: "generic", body: docker.manifest, contentType: "application/json", wantType: mediaTypeDockerManifest},
		{name: "type from body when no content type", tag: "none", body: ociIndex, wantType: ocispec.MediaTypeImageIndex},
		{name: "type from content type when body has none", tag: "hdr", body: noType.manifest, contentType: ocispec.MediaTypeImageManifest + "; charset=utf-8", wantType: ocispec.MediaTypeImageManifest},
		{name: "type inferred", tag: "inferred", body: noType.manifest, wantType: ocispec.MediaTypeImageManifest},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var hdr []string
			if tt.contentType != "" {
				hdr = []string{"Content-Type", tt.contentType}
			}
			ts.do("PUT", "/v2/r/manifests/"+tt.tag, tt.body, hdr...).expect(t, 201, "")
			r := ts.do("HEAD", "/v2/r/manifests/"+tt.tag, nil)
			r.expect(t, 200, "")
			if got := r.header.Get("Content-Type"); got != tt.wantType {
				t.Errorf("Content-Type = %q, want %q", got, tt.wantType)
			}
		})
	}
}

func TestManifestPutErrors(t *testing.T) {
	ts := newTestServer(t)
	img := newTestImage(t, "ok", nil)
	ts.pushImage("r", "ok", img).expect(t, 201, "")
	missingLayer := newTestImage(t, "missing", func(m *ocispec.Manifest) {
		m.Config = ocispec.Descriptor{MediaType: ocispec.MediaTypeImageConfig, Digest: digest.FromBytes(img.config), Size: int64(len(img.config))}
	})
	wrongSize := newTestImage(t, "size", func(m *ocispec.Manifest) {
		m.Config = ocispec.Descriptor{MediaType: ocispec.MediaTypeImageConfig, Digest: digest.FromBytes(img.config), Size: 1}
		m.Layers = nil
	})
	otherRepo := newTestImage(t, "elsewhere", nil)
	ts.pushBlob("elsewhere", otherRepo.config)
	ts.pushBlob("elsewhere", otherRepo.layer)
	orphanChild := newTestImage(t, "orphan", nil)
	big := newTestImage(t, "big", func(m *ocispec.Manifest) {
		m.Annotations = map[string]string{"pad": strings.Repeat("A", maxManifestSize)}
	})
	badData := newTestImage(t, "data", func(m *ocispec.Manifest) { m.Layers[0].Data = []byte("not the layer") })
	mt := ocispec.MediaTypeImageManifest

	tests := []struct {
		name   string
		ref    string
		body   []byte
		ct     string
		query  string
		status int
		code   string
	}{
		{name: "bad json", ref: "t", body: []byte(`{"schemaVersion":2,`), ct: mt, status: 400, code: "MANIFEST_INVALID"},
		{name: "json array", ref: "t", body: []byte(`[1,2]`), ct: mt, status: 400, code: "MANIFEST_INVALID"},
		{name: "json null", ref: "t", body: []byte(`null`), ct: mt, status: 400, code: "MANIFEST_INVALID"},
		{name: "empty body", ref: "t", body: []byte{}, ct: mt, status: 400, code: "MANIFEST_INVALID"},
		{name: "schema version 1", ref: "t", body: bytes.Replace(img.manifest, []byte(`"schemaVersion":2`), []byte(`"schemaVersion":1`), 1), ct: mt, status: 400, code: "MANIFEST_INVALID"},
		{name: "unknown media type", ref: "t", body: bytes.Replace(img.manifest, []byte(mt), []byte("application/x-evil"), 1), ct: "application/x-evil", status: 400, code: "MANIFEST_INVALID"},
		{name: "schema1 media type", ref: "t", body: img.manifest, ct: "application/vnd.docker.distribution.manifest.v1+prettyjws", status: 400, code: "MANIFEST_INVALID"},
		{name: "content type mismatch", ref: "t", body: img.manifest, ct: ocispec.MediaTypeImageIndex, status: 400, code: "MANIFEST_INVALID"},
		{name: "malformed content type", ref: "t", body: img.manifest, ct: "a/b; =;", status: 400, code: "MANIFEST_INVALID"},
		{name: "bad layer digest", ref: "t", body: bytes.Replace(img.manifest, []byte(digest.FromBytes(img.layer).String()), []byte("sha256:nothex"), 1), ct: mt, status: 400, code: "MANIFEST_INVALID"},
		{name: "missing config", ref: "t", body: []byte(`{"schemaVersion":2,"mediaType":"` + mt + `","layers":[]}`), ct: mt, status: 400, code: "MANIFEST_INVALID"},
		{name: "negative size", ref: "t", body: bytes.Replace(img.manifest, []byte(`"size":`+strconv.Itoa(len(img.layer))), []byte(`"size":-1`), 1), ct: mt, status: 400, code: "MANIFEST_INVALID"},
		{name: "bad embedded data", ref: "t", body: badData.manifest, ct: mt, status: 400, code: "MANIFEST_INVALID"},
		{name: "missing layer blob", ref: "t", body: missingLayer.manifest, ct: mt, status: 400, code: "MANIFEST_BLOB_UNKNOWN"},
		{name: "blobs in another repository", ref: "t", body: otherRepo.manifest, ct: mt, status: 400, code: "MANIFEST_BLOB_UNKNOWN"},
		{name: "wrong blob size", ref: "t", body: wrongSize.manifest, ct: mt, status: 400, code: "MANIFEST_INVALID"},
		{name: "index with missing child", ref: "t", body: indexOf(t, nil, orphanChild), ct: ocispec.MediaTypeImageIndex, status: 400, code: "MANIFEST_BLOB_UNKNOWN"},
		{name: "digest mismatch", ref: digest.FromString("other").String(), body: img.manifest, ct: mt, status: 400, code: "DIGEST_INVALID"},
		{name: "trailing whitespace by digest", ref: img.digest.String(), body: append(bytes.Clone(img.manifest), ' ', ' '), ct: mt, status: 400, code: "DIGEST_INVALID"},
		{name: "oversized", ref: "t", body: big.manifest, ct: mt, status: 413, code: "SIZE_INVALID"},
		{name: "bad tag param", ref: img.digest.String(), body: img.manifest, ct: mt, query: "?tag=-x", status: 400, code: "TAG_INVALID"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ts.do("PUT", "/v2/r/manifests/"+tt.ref+tt.query, tt.body, "Content-Type", tt.ct).expect(t, tt.status, tt.code)
		})
	}
	r := ts.do("GET", "/v2/r/tags/list", nil)
	if !bytes.Equal(r.body, []byte(`{"name":"r","tags":["ok"]}`)) {
		t.Errorf("failed pushes left tags: %s", r.body)
	}
}

func TestManifestByDigestAndTagParams(t *testing.T) {
	ts := newTestServer(t)
	img := newTestImage(t, "d", nil)
	ts.pushBlob("r", img.config)
	ts.pushBlob("r", img.layer)
	r := ts.do("PUT", "/v2/r/manifests/"+img.digest.String()+"?tag=a&tag=b", img.manifest, "Content-Type", ocispec.MediaTypeImageManifest)
	r.expect(t, 201, "")
	if got := r.header.Get("OCI-Tag"); got != "a, b" {
		t.Errorf("OCI-Tag = %q", got)
	}
	for _, tag := range []string{"a", "b"} {
		g := ts.do("GET", "/v2/r/manifests/"+tag, nil)
		g.expect(t, 200, "")
		if g.header.Get("Docker-Content-Digest") != img.digest.String() {
			t.Errorf("tag %s -> %s", tag, g.header.Get("Docker-Content-Digest"))
		}
	}

	// sha512 manifest pushed by digest.
	d512 := digest.SHA512.FromBytes(img.manifest)
	r = ts.do("PUT", "/v2/r/manifests/"+d512.String(), img.manifest, "Content-Type", ocispec.MediaTypeImageManifest)
	r.expect(t, 201, "")
	if r.header.Get("Docker-Content-Digest") != d512.String() {
		t.Errorf("sha512 Docker-Content-Digest = %q", r.header.Get("Docker-Content-Digest"))
	}
	ts.do("GET", "/v2/r/manifests/"+d512.String(), nil).expect(t, 200, "")
}

func TestManifestDelete(t *testing.T) {
	ts := newTestServer(t)
	img := newTestImage(t, "del", nil)
	ts.pushImage("r", "t1", img).expect(t, 201, "")
	ts.do("PUT", "/v2/r/manifests/t2", img.manifest, "Content-Type", ocispec.MediaTypeImageManifest).expect(t, 201, "")
	other := newTestImage(t, "other", nil)
	ts.pushImage("r", "keep", other).expect(t, 201, "")

	steps := []struct {
		name   string
		method string
		ref    string
		status int
		code   string
	}{
		{name: "delete tag", method: "DELETE", ref: "t1", status: 202},
		{name: "deleted tag gone", method: "HEAD", ref: "t1", status: 404},
		{name: "delete tag again", method: "DELETE", ref: "t1", status: 404, code: "MANIFEST_UNKNOWN"},
		{name: "manifest still by digest", method: "GET", ref: img.digest.String(), status: 200},
		{name: "other tag still there", method: "GET", ref: "t2", status: 200},
		{name: "delete by digest", method: "DELETE", ref: img.digest.String(), status: 202},
		{name: "gone by digest", method: "GET", ref: img.digest.String(), status: 404, code: "MANIFEST_UNKNOWN"},
		{name: "its tags went with it", method: "GET", ref: "t2", status: 404, code: "MANIFEST_UNKNOWN"},
		{name: "delete by digest again", method: "DELETE", ref: img.digest.String(), status: 404, code: "MANIFEST_UNKNOWN"},
		{name: "unrelated manifest kept", method: "GET", ref: "keep", status: 200},
		{name: "delete in unknown repository", method: "DELETE", ref: "keep", status: 404},
	}
	for _, s := range steps {
		t.Run(s.name, func(t *testing.T) {
			repo := "r"
			if s.name == "delete in unknown repository" {
				repo = "nope"
			}
			ts.do(s.method, "/v2/"+repo+"/manifests/"+s.ref, nil).expect(t, s.status, s.code)
		})
	}
	r := ts.do("GET", "/v2/r/tags/list", nil)
	if string(r.body) != `{"name":"r","tags":["keep"]}` {
		t.Errorf("tags after deletes: %s", r.body)
	}
}

func TestParseManifest(t *testing.T) {
	cfg := `{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a","size":2}`
	nd := `{"mediaType":"application/vnd.oci.image.layer.nondistributable.v1.tar+gzip","digest":"sha256:2d711642b726b04401627ca9fbac32f5c8530fb1903cc4db02258717921a4881","size":5,"urls":["https://example.com/x"]}`
	tests := []struct {
		name          string
		body          string
		ct            string
		wantType      string
		wantArtifact  string
		wantBlobs     int
		wantChildren  int
		wantErrSubstr string
	}{
		{name: "image", body: `{"schemaVersion":2,"config":` + cfg + `,"layers":[]}`, ct: ocispec.MediaTypeImageManifest, wantType: ocispec.MediaTypeImageManifest, wantArtifact: ocispec.MediaTypeImageConfig, wantBlobs: 1},
		{name: "artifact type wins", body: `{"schemaVersion":2,"artifactType":"application/x.a","config":` + cfg + `}`, wantType: ocispec.MediaTypeImageManifest, wantArtifact: "application/x.a", wantBlobs: 1},
		{name: "non-distributable layers not required", body: `{"schemaVersion":2,"config":` + cfg + `,"layers":[` + nd + `]}`, wantType: ocispec.MediaTypeImageManifest, wantArtifact: ocispec.MediaTypeImageConfig, wantBlobs: 1},
		{name: "empty index", body: `{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[]}`, wantType: ocispec.MediaTypeImageIndex},
		{name: "index with config", body: `{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[],"config":` + cfg + `}`, wantErrSubstr: "config"},
		{name: "image with manifests", body: `{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","manifests":[],"config":` + cfg + `}`, wantErrSubstr: "manifests"},
		{name: "ambiguous shape", body: `{"schemaVersion":2}`, wantErrSubstr: "no media type"},
		{name: "bad artifact type", body: `{"schemaVersion":2,"artifactType":"nonsense","config":` + cfg + `}`, wantErrSubstr: "artifactType"},
		{name: "bad subject", body: `{"schemaVersion":2,"config":` + cfg + `,"subject":{"mediaType":"a/b","digest":"x","size":1}}`, wantErrSubstr: "subject"},
		{name: "wrong field type", body: `{"schemaVersion":"2","config":` + cfg + `}`, wantErrSubstr: "JSON"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m, err := parseManifest([]byte(tt.body), tt.ct)
			if tt.wantErrSubstr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErrSubstr) {
					t.Fatalf("err = %v, want one mentioning %q", err, tt.wantErrSubstr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if m.mediaType != tt.wantType || m.artifactType != tt.wantArtifact || len(m.blobs) != tt.wantBlobs || len(m.children) != tt.wantChildren {
				t.Fatalf("got %+v", m)
			}
		})
	}
}

// FuzzParseManifest checks that parseManifest never panics, rejects only
// with a 400 MANIFEST_INVALID, and accepts only manifests of a known type
// whose every referenced digest is valid.
func FuzzParseManifest(f *testing.F) {
	cfg := `{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a","size":2,"data":"e30="}`
	f.Add([]byte(`{"schemaVersion":2,"config":`+cfg+`,"layers":[`+cfg+`]}`), ocispec.MediaTypeImageManifest)
	f.Add([]byte(`{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[`+cfg+`],"subject":`+cfg+`}`), "")
	f.Add([]byte(`{"schemaVersion":2,"mediaType":"application/vnd.docker.distribution.manifest.list.v2+json","manifests":[]}`), "application/json")
	f.Add([]byte(`{"schemaVersion":1}`), "application/vnd.docker.distribution.manifest.v1+prettyjws")
	f.Add([]byte(`[]`), "")
	f.Fuzz(func(t *testing.T, body []byte, ct string) {
		m, err := parseManifest(body, ct)
		if err != nil {
			var re *regError
			if !errors.As(err, &re) || re.status != http.StatusBadRequest || re.code != codeManifestInvalid {
				t.Fatalf("rejection %v is not a 400 MANIFEST_INVALID", err)
			}
			return
		}
		if !json.Valid(body) {
			t.Fatalf("accepted invalid JSON %q", body)
		}
		switch m.mediaType {
		case ocispec.MediaTypeImageManifest, mediaTypeDockerManifest:
			if len(m.blobs) == 0 || len(m.children) != 0 {
				t.Fatalf("image manifest with %d blobs, %d children", len(m.blobs), len(m.children))
			}
		case ocispec.MediaTypeImageIndex, mediaTypeDockerManifestList:
			if len(m.blobs) != 0 {
				t.Fatalf("index with blobs")
			}
		default:
			t.Fatalf("accepted media type %q", m.mediaType)
		}
		descs := append(append([]ocispec.Descriptor{}, m.blobs...), m.children...)
		if m.subject != nil {
			descs = append(descs, *m.subject)
		}
		for _, d := range descs {
			if _, err := parseDigest(d.Digest.String()); err != nil || d.Size < 0 {
				t.Fatalf("accepted descriptor %+v", d)
			}
		}
	})
}
