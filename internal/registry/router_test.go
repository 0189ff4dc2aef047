package registry

import (
	"errors"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
)

func TestBase(t *testing.T) {
	ts := newTestServer(t)
	tests := []struct {
		name   string
		method string
		path   string
		status int
		body   string
	}{
		{name: "get", method: "GET", path: "/v2/", status: 200, body: "{}"},
		{name: "head", method: "HEAD", path: "/v2/", status: 200},
		{name: "without slash", method: "GET", path: "/v2", status: 200, body: "{}"},
		{name: "put not allowed", method: "PUT", path: "/v2/", status: 405},
		{name: "outside v2", method: "GET", path: "/v1/", status: 404},
		{name: "root", method: "GET", path: "/", status: 404},
		{name: "v2 prefix only", method: "GET", path: "/v2x/", status: 404},
		{name: "unknown endpoint", method: "GET", path: "/v2/foo/bar", status: 404},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := ts.do(tt.method, tt.path, nil)
			r.expect(t, tt.status, "")
			if got := r.header.Get("Docker-Distribution-API-Version"); got != "registry/2.0" {
				t.Errorf("Docker-Distribution-API-Version = %q", got)
			}
			if tt.body != "" && string(r.body) != tt.body {
				t.Errorf("body = %q, want %q", r.body, tt.body)
			}
			if tt.status == 200 && r.header.Get("Content-Length") != "2" {
				t.Errorf("Content-Length = %q, want 2", r.header.Get("Content-Length"))
			}
			if tt.status == 405 && r.header.Get("Allow") == "" {
				t.Errorf("405 without Allow header")
			}
		})
	}
}

func TestHostilePaths(t *testing.T) {
	ts := newTestServer(t)
	ts.pushBlob("good", []byte("x"))
	const dg = "sha256:2d711642b726b04401627ca9fbac32f5c8530fb1903cc4db02258717921a4881"
	tests := []struct {
		name   string
		method string
		path   string
		status int
		code   string
	}{
		{name: "dotdot name", method: "GET", path: "/v2/../x/tags/list", status: 400, code: "NAME_INVALID"},
		{name: "dotdot inner", method: "GET", path: "/v2/a/../../b/tags/list", status: 400, code: "NAME_INVALID"},
		{name: "encoded dotdot", method: "GET", path: "/v2/%2e%2e/x/tags/list", status: 400, code: "NAME_INVALID"},
		{name: "uppercase", method: "GET", path: "/v2/Foo/tags/list", status: 400, code: "NAME_INVALID"},
		{name: "empty component", method: "GET", path: "/v2/a//b/tags/list", status: 400, code: "NAME_INVALID"},
		{name: "trailing slash name", method: "GET", path: "/v2/a//tags/list", status: 400, code: "NAME_INVALID"},
		{name: "leading underscore", method: "GET", path: "/v2/_tags/tags/list", status: 400, code: "NAME_INVALID"},
		{name: "nul byte", method: "GET", path: "/v2/a%00b/tags/list", status: 400, code: "NAME_INVALID"},
		{name: "name too long", method: "GET", path: "/v2/" + strings.Repeat("a", 256) + "/tags/list", status: 400, code: "NAME_INVALID"},
		{name: "no name", method: "GET", path: "/v2/blobs/" + dg, status: 404},
		{name: "bad digest", method: "GET", path: "/v2/good/blobs/sha256:xyz", status: 400, code: "DIGEST_INVALID"},
		{name: "uppercase hex", method: "GET", path: "/v2/good/blobs/sha256:" + strings.ToUpper(dg[7:]), status: 400, code: "DIGEST_INVALID"},
		{name: "unsupported algorithm", method: "GET", path: "/v2/good/blobs/sha384:" + strings.Repeat("a", 96), status: 400, code: "DIGEST_INVALID"},
		{name: "md5", method: "GET", path: "/v2/good/blobs/md5:d41d8cd98f00b204e9800998ecf8427e", status: 400, code: "DIGEST_INVALID"},
		{name: "digest traversal", method: "GET", path: "/v2/good/blobs/sha256:..%2f..%2fetc", status: 404},
		{name: "upload dotdot", method: "GET", path: "/v2/good/blobs/uploads/..", status: 404, code: "BLOB_UPLOAD_UNKNOWN"},
		{name: "upload encoded traversal", method: "PATCH", path: "/v2/good/blobs/uploads/..%2f..%2flayout.json", status: 404},
		{name: "upload braces uuid", method: "GET", path: "/v2/good/blobs/uploads/{6ba7b810-9dad-11d1-80b4-00c04fd430c8}", status: 404, code: "BLOB_UPLOAD_UNKNOWN"},
		{name: "upload uppercase uuid", method: "GET", path: "/v2/good/blobs/uploads/6BA7B810-9DAD-11D1-80B4-00C04FD430C8", status: 404, code: "BLOB_UPLOAD_UNKNOWN"},
		{name: "upload urn uuid", method: "DELETE", path: "/v2/good/blobs/uploads/urn:uuid:6ba7b810-9dad-11d1-80b4-00c04fd430c8", status: 404, code: "BLOB_UPLOAD_UNKNOWN"},
		{name: "upload unknown uuid", method: "GET", path: "/v2/good/blobs/uploads/6ba7b810-9dad-11d1-80b4-00c04fd430c8", status: 404, code: "BLOB_UPLOAD_UNKNOWN"},
		{name: "bad tag", method: "GET", path: "/v2/good/manifests/-tag", status: 400, code: "TAG_INVALID"},
		{name: "long tag", method: "GET", path: "/v2/good/manifests/" + strings.Repeat("t", 129), status: 400, code: "TAG_INVALID"},
		{name: "dot tag", method: "PUT", path: "/v2/good/manifests/..", status: 400, code: "TAG_INVALID"},
		{name: "bad manifest digest", method: "GET", path: "/v2/good/manifests/sha256:baddigeststring", status: 400, code: "DIGEST_INVALID"},
		{name: "bad referrers digest", method: "GET", path: "/v2/good/referrers/sha256:nope", status: 400, code: "DIGEST_INVALID"},
		{name: "method not allowed", method: "POST", path: "/v2/good/blobs/" + dg, status: 405, code: "UNSUPPORTED"},
		{name: "catalog post", method: "POST", path: "/v2/_catalog", status: 405, code: "UNSUPPORTED"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ts.do(tt.method, tt.path, nil).expect(t, tt.status, tt.code)
		})
	}
}

func TestParseRoute(t *testing.T) {
	const dg = "sha256:2d711642b726b04401627ca9fbac32f5c8530fb1903cc4db02258717921a4881"
	const id = "6ba7b810-9dad-11d1-80b4-00c04fd430c8"
	tests := []struct {
		name string
		path string
		want route
	}{
		{name: "tags", path: "/v2/a/b/c/tags/list", want: route{kind: routeTags, name: "a/b/c"}},
		{name: "manifest tag", path: "/v2/a/manifests/v1", want: route{kind: routeManifest, name: "a", tag: "v1"}},
		{name: "manifest digest", path: "/v2/a/manifests/" + dg, want: route{kind: routeManifest, name: "a", dgst: dg}},
		{name: "blob", path: "/v2/x.y-z/blobs/" + dg, want: route{kind: routeBlob, name: "x.y-z", dgst: dg}},
		{name: "upload start", path: "/v2/a/blobs/uploads/", want: route{kind: routeUploadStart, name: "a"}},
		{name: "upload start no slash", path: "/v2/a/blobs/uploads", want: route{kind: routeUploadStart, name: "a"}},
		{name: "upload", path: "/v2/a/blobs/uploads/" + id, want: route{kind: routeUpload, name: "a", upload: id}},
		{name: "referrers", path: "/v2/a/referrers/" + dg, want: route{kind: routeReferrers, name: "a", dgst: dg}},
		{name: "name with endpoint words", path: "/v2/blobs/manifests/tags/list", want: route{kind: routeTags, name: "blobs/manifests"}},
		{name: "catalog", path: "/v2/_catalog", want: route{kind: routeCatalog}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := parseRoute(tt.path)
			if err != nil {
				t.Fatalf("parseRoute(%q): %v", tt.path, err)
			}
			if got != tt.want {
				t.Fatalf("parseRoute(%q) = %+v, want %+v", tt.path, got, tt.want)
			}
		})
	}
}

// FuzzParseRoute checks that whatever path parseRoute accepts names a
// repository that stays inside the layout, with a valid reference.
func FuzzParseRoute(f *testing.F) {
	for _, s := range []string{
		"/v2/", "/v2/_catalog", "/v2/a/b/tags/list", "/v2/a/manifests/latest",
		"/v2/a/manifests/sha256:2d711642b726b04401627ca9fbac32f5c8530fb1903cc4db02258717921a4881",
		"/v2/a/blobs/uploads/", "/v2/a/blobs/uploads/6ba7b810-9dad-11d1-80b4-00c04fd430c8",
		"/v2/../../etc/passwd/tags/list", "/v2/a//b/blobs/uploads/..", "/v2/a/referrers/sha512:00",
	} {
		f.Add(s)
	}
	root := filepath.FromSlash("/data/registry/repos")
	f.Fuzz(func(t *testing.T, path string) {
		rt, err := parseRoute(path)
		if err != nil {
			var re *regError
			if !errors.As(err, &re) || re.status < 400 || re.status > 499 {
				t.Fatalf("parseRoute(%q) error %v is not a client error", path, err)
			}
			return
		}
		switch rt.kind {
		case routeBase, routeCatalog:
			return
		}
		if !validName(rt.name) {
			t.Fatalf("parseRoute(%q) accepted invalid name %q", path, rt.name)
		}
		p := filepath.Join(root, filepath.FromSlash(rt.name))
		if rel, err := filepath.Rel(root, p); err != nil || rel == "." || strings.HasPrefix(rel, "..") {
			t.Fatalf("parseRoute(%q): name %q escapes the layout (%q)", path, rt.name, rel)
		}
		for _, c := range strings.Split(rt.name, "/") {
			if c == "" || c == "." || c == ".." || strings.HasPrefix(c, "_") {
				t.Fatalf("parseRoute(%q): unsafe name component %q", path, c)
			}
		}
		switch rt.kind {
		case routeBlob, routeReferrers:
			if _, err := parseDigest(rt.dgst.String()); err != nil {
				t.Fatalf("parseRoute(%q): bad digest %q", path, rt.dgst)
			}
		case routeUpload:
			if !validUploadID(rt.upload) || strings.ContainsAny(rt.upload, "/.\\") {
				t.Fatalf("parseRoute(%q): bad upload id %q", path, rt.upload)
			}
		case routeManifest:
			if (rt.dgst == "") == (rt.tag == "") {
				t.Fatalf("parseRoute(%q): manifest route needs exactly one of digest and tag: %+v", path, rt)
			}
			if rt.tag != "" && (!validTag(rt.tag) || strings.HasPrefix(rt.tag, ".") || strings.Contains(rt.tag, "/")) {
				t.Fatalf("parseRoute(%q): bad tag %q", path, rt.tag)
			}
		}
	})
}

func TestMethodNotAllowedOnEveryRoute(t *testing.T) {
	ts := newTestServer(t)
	tests := []struct {
		name   string
		method string
		path   string
	}{
		{name: "tags delete", method: "DELETE", path: "/v2/a/tags/list"},
		{name: "referrers put", method: "PUT", path: "/v2/a/referrers/sha256:2d711642b726b04401627ca9fbac32f5c8530fb1903cc4db02258717921a4881"},
		{name: "upload start get", method: "GET", path: "/v2/a/blobs/uploads/"},
		{name: "manifest post", method: "POST", path: "/v2/a/manifests/latest"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := ts.do(tt.method, tt.path, nil)
			r.expect(t, http.StatusMethodNotAllowed, "UNSUPPORTED")
			if r.header.Get("Allow") == "" {
				t.Error("no Allow header")
			}
		})
	}
}
