package registry

import (
	"encoding/json"
	"net/http"
	"slices"
	"testing"

	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

func TestTagsList(t *testing.T) {
	ts := newTestServer(t)
	img := newTestImage(t, "tags", nil)
	ts.pushImage("r", "b", img).expect(t, 201, "")
	for _, tag := range []string{"a", "C", "c", "d_1", "e.2"} {
		ts.do("PUT", "/v2/r/manifests/"+tag, img.manifest, "Content-Type", ocispec.MediaTypeImageManifest).expect(t, 201, "")
	}
	tests := []struct {
		name     string
		query    string
		status   int
		code     string
		wantTags []string
		wantLink string
	}{
		{name: "all sorted", query: "", status: 200, wantTags: []string{"C", "a", "b", "c", "d_1", "e.2"}},
		{name: "first page", query: "?n=2", status: 200, wantTags: []string{"C", "a"}, wantLink: `</v2/r/tags/list?last=a&n=2>; rel="next"`},
		{name: "next page", query: "?n=2&last=a", status: 200, wantTags: []string{"b", "c"}, wantLink: `</v2/r/tags/list?last=c&n=2>; rel="next"`},
		{name: "last page", query: "?n=2&last=c", status: 200, wantTags: []string{"d_1", "e.2"}},
		{name: "last only", query: "?last=c", status: 200, wantTags: []string{"d_1", "e.2"}},
		{name: "last not a tag", query: "?last=bb", status: 200, wantTags: []string{"c", "d_1", "e.2"}},
		{name: "n larger than list", query: "?n=100", status: 200, wantTags: []string{"C", "a", "b", "c", "d_1", "e.2"}},
		{name: "n zero", query: "?n=0", status: 200, wantTags: []string{}},
		{name: "past the end", query: "?last=z", status: 200, wantTags: []string{}},
		{name: "negative n", query: "?n=-1", status: 400, code: "PAGINATION_NUMBER_INVALID"},
		{name: "non-numeric n", query: "?n=ten", status: 400, code: "PAGINATION_NUMBER_INVALID"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := ts.do("GET", "/v2/r/tags/list"+tt.query, nil)
			r.expect(t, tt.status, tt.code)
			if tt.status != 200 {
				return
			}
			var tl struct {
				Name string   `json:"name"`
				Tags []string `json:"tags"`
			}
			if err := json.Unmarshal(r.body, &tl); err != nil {
				t.Fatal(err)
			}
			if tl.Name != "r" || tl.Tags == nil || !slices.Equal(tl.Tags, tt.wantTags) {
				t.Errorf("got %s, want tags %q", r.body, tt.wantTags)
			}
			if got := r.header.Get("Link"); got != tt.wantLink {
				t.Errorf("Link = %q, want %q", got, tt.wantLink)
			}
		})
	}
	ts.do("GET", "/v2/unknown/tags/list", nil).expect(t, http.StatusNotFound, "NAME_UNKNOWN")
}

func TestCatalog(t *testing.T) {
	ts := newTestServer(t)
	for _, repo := range []string{"b", "a/x", "a", "a-c", "a/x/y", "z"} {
		ts.pushBlob(repo, []byte(repo))
	}
	// A failed push creates no repository.
	ts.do("POST", "/v2/ghost/blobs/uploads/?digest=sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a", []byte("no")).expect(t, 400, "")
	all := []string{"a", "a-c", "a/x", "a/x/y", "b", "z"}
	tests := []struct {
		name     string
		query    string
		want     []string
		wantLink string
	}{
		{name: "all", want: all},
		{name: "page", query: "?n=3", want: all[:3], wantLink: `</v2/_catalog?last=a%2Fx&n=3>; rel="next"`},
		{name: "next", query: "?n=3&last=a%2Fx", want: all[3:]},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := ts.do("GET", "/v2/_catalog"+tt.query, nil)
			r.expect(t, 200, "")
			var c struct {
				Repositories []string `json:"repositories"`
			}
			if err := json.Unmarshal(r.body, &c); err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(c.Repositories, tt.want) {
				t.Errorf("repositories = %q, want %q", c.Repositories, tt.want)
			}
			if got := r.header.Get("Link"); got != tt.wantLink {
				t.Errorf("Link = %q, want %q", got, tt.wantLink)
			}
		})
	}
}

func TestReferrers(t *testing.T) {
	ts := newTestServer(t)
	subject := newTestImage(t, "subject", nil)
	ts.pushImage("r", "subject", subject).expect(t, 201, "")
	subjDesc := ocispec.Descriptor{MediaType: ocispec.MediaTypeImageManifest, Digest: subject.digest, Size: int64(len(subject.manifest))}
	sig := newTestImage(t, "sig", func(m *ocispec.Manifest) {
		m.ArtifactType = "application/vnd.example.sig"
		m.Subject = &subjDesc
		m.Annotations = map[string]string{"k": "v"}
	})
	sbom := newTestImage(t, "sbom", func(m *ocispec.Manifest) {
		m.Config.MediaType = "application/vnd.example.sbom"
		m.Subject = &subjDesc
	})
	for _, a := range []testImage{sig, sbom} {
		r := ts.pushImage("r", a.digest.String(), a)
		r.expect(t, 201, "")
		if got := r.header.Get("OCI-Subject"); got != subject.digest.String() {
			t.Errorf("OCI-Subject = %q, want %s", got, subject.digest)
		}
	}
	// A referrer whose subject does not exist is accepted.
	dangling := newTestImage(t, "dangling", func(m *ocispec.Manifest) {
		m.Subject = &ocispec.Descriptor{MediaType: ocispec.MediaTypeImageManifest, Digest: "sha256:2d711642b726b04401627ca9fbac32f5c8530fb1903cc4db02258717921a4881", Size: 3}
	})
	ts.pushImage("r", "dangling", dangling).expect(t, 201, "")

	tests := []struct {
		name        string
		repo        string
		subject     string
		query       string
		want        map[string]string // digest -> artifactType
		wantFilters bool
	}{
		{name: "all", repo: "r", subject: subject.digest.String(), want: map[string]string{sig.digest.String(): "application/vnd.example.sig", sbom.digest.String(): "application/vnd.example.sbom"}},
		{name: "filtered", repo: "r", subject: subject.digest.String(), query: "?artifactType=application/vnd.example.sbom", want: map[string]string{sbom.digest.String(): "application/vnd.example.sbom"}, wantFilters: true},
		{name: "filter matches nothing", repo: "r", subject: subject.digest.String(), query: "?artifactType=application/x-none", want: map[string]string{}, wantFilters: true},
		{name: "unknown subject", repo: "r", subject: sig.digest.String(), want: map[string]string{}},
		{name: "unknown repository", repo: "nope", subject: subject.digest.String(), want: map[string]string{}},
		{name: "other repository", repo: "other", subject: subject.digest.String(), want: map[string]string{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := ts.do("GET", "/v2/"+tt.repo+"/referrers/"+tt.subject+tt.query, nil)
			r.expect(t, 200, "")
			if got := r.header.Get("Content-Type"); got != ocispec.MediaTypeImageIndex {
				t.Errorf("Content-Type = %q", got)
			}
			if got := r.header.Get("OCI-Filters-Applied") == "artifactType"; got != tt.wantFilters {
				t.Errorf("OCI-Filters-Applied = %q", r.header.Get("OCI-Filters-Applied"))
			}
			var idx ocispec.Index
			if err := json.Unmarshal(r.body, &idx); err != nil {
				t.Fatal(err)
			}
			if idx.SchemaVersion != 2 || idx.MediaType != ocispec.MediaTypeImageIndex || idx.Manifests == nil {
				t.Fatalf("not an OCI index: %s", r.body)
			}
			got := map[string]string{}
			for _, d := range idx.Manifests {
				got[d.Digest.String()] = d.ArtifactType
				if d.MediaType != ocispec.MediaTypeImageManifest || d.Size <= 0 {
					t.Errorf("descriptor %+v", d)
				}
				if d.Digest == sig.digest && d.Annotations["k"] != "v" {
					t.Errorf("annotations not carried: %+v", d)
				}
			}
			if len(got) != len(tt.want) {
				t.Fatalf("referrers %v, want %v", got, tt.want)
			}
			for k, v := range tt.want {
				if got[k] != v {
					t.Fatalf("referrers %v, want %v", got, tt.want)
				}
			}
		})
	}

	// Deleting a referrer removes it from the listing.
	ts.do("DELETE", "/v2/r/manifests/"+sig.digest.String(), nil).expect(t, 202, "")
	r := ts.do("GET", "/v2/r/referrers/"+subject.digest.String(), nil)
	var idx ocispec.Index
	if err := json.Unmarshal(r.body, &idx); err != nil {
		t.Fatal(err)
	}
	if len(idx.Manifests) != 1 || idx.Manifests[0].Digest != sbom.digest {
		t.Errorf("after delete: %s", r.body)
	}
}
