package registry

import (
	"bytes"
	"net/http"
	"os"
	"path"
	"path/filepath"
	"strconv"
	"testing"

	"github.com/opencontainers/go-digest"
)

func TestBlobGetHeadDelete(t *testing.T) {
	ts := newTestServer(t)
	content := []byte("hello, blob")
	d := ts.pushBlob("a/b", content)
	sha512 := digest.SHA512.FromBytes(content)
	ts.do("POST", "/v2/a/b/blobs/uploads/?digest="+sha512.String(), content).expect(t, 201, "")
	missing := digest.FromString("missing")

	tests := []struct {
		name    string
		method  string
		path    string
		hdr     []string
		status  int
		code    string
		body    string
		headers map[string]string
	}{
		{name: "get", method: "GET", path: "/v2/a/b/blobs/" + d.String(), status: 200, body: string(content),
			headers: map[string]string{"Content-Length": strconv.Itoa(len(content)), "Docker-Content-Digest": d.String(), "Content-Type": "application/octet-stream"}},
		{name: "head", method: "HEAD", path: "/v2/a/b/blobs/" + d.String(), status: 200,
			headers: map[string]string{"Content-Length": strconv.Itoa(len(content)), "Docker-Content-Digest": d.String()}},
		{name: "get sha512", method: "GET", path: "/v2/a/b/blobs/" + sha512.String(), status: 200, body: string(content),
			headers: map[string]string{"Docker-Content-Digest": sha512.String()}},
		{name: "range", method: "GET", path: "/v2/a/b/blobs/" + d.String(), hdr: []string{"Range", "bytes=7-10"}, status: 206, body: "blob",
			headers: map[string]string{"Content-Range": "bytes 7-10/11", "Content-Length": "4"}},
		{name: "suffix range", method: "GET", path: "/v2/a/b/blobs/" + d.String(), hdr: []string{"Range", "bytes=-4"}, status: 206, body: "blob"},
		{name: "unsatisfiable range", method: "GET", path: "/v2/a/b/blobs/" + d.String(), hdr: []string{"Range", "bytes=50-60"}, status: 416},
		{name: "inverted range", method: "GET", path: "/v2/a/b/blobs/" + d.String(), hdr: []string{"Range", "bytes=5-1"}, status: 416},
		{name: "if-none-match", method: "GET", path: "/v2/a/b/blobs/" + d.String(), hdr: []string{"If-None-Match", `"` + d.String() + `"`}, status: 304},
		{name: "missing", method: "GET", path: "/v2/a/b/blobs/" + missing.String(), status: 404, code: "BLOB_UNKNOWN"},
		{name: "head missing", method: "HEAD", path: "/v2/a/b/blobs/" + missing.String(), status: 404},
		{name: "other repository", method: "GET", path: "/v2/other/blobs/" + d.String(), status: 404, code: "BLOB_UNKNOWN"},
		{name: "parent repository", method: "GET", path: "/v2/a/blobs/" + d.String(), status: 404, code: "BLOB_UNKNOWN"},
		{name: "delete missing", method: "DELETE", path: "/v2/a/b/blobs/" + missing.String(), status: 404, code: "BLOB_UNKNOWN"},
		{name: "delete", method: "DELETE", path: "/v2/a/b/blobs/" + d.String(), status: 202},
		{name: "get after delete", method: "GET", path: "/v2/a/b/blobs/" + d.String(), status: 404, code: "BLOB_UNKNOWN"},
		{name: "delete again", method: "DELETE", path: "/v2/a/b/blobs/" + d.String(), status: 404, code: "BLOB_UNKNOWN"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := ts.do(tt.method, tt.path, nil, tt.hdr...)
			r.expect(t, tt.status, tt.code)
			if tt.body != "" && string(r.body) != tt.body {
				t.Errorf("body = %q, want %q", r.body, tt.body)
			}
			if tt.method == "HEAD" && len(r.body) != 0 {
				t.Errorf("HEAD returned a body: %q", r.body)
			}
			for k, v := range tt.headers {
				if got := r.header.Get(k); got != v {
					t.Errorf("%s = %q, want %q", k, got, v)
				}
			}
		})
	}
}

func TestUploadFlows(t *testing.T) {
	content := bytes.Repeat([]byte("0123456789"), 1000)
	d := digest.FromBytes(content)
	tests := []struct {
		name string
		// push uploads content to repo "r" and returns the final response.
		push func(ts *testServer) response
	}{
		{name: "monolithic post", push: func(ts *testServer) response {
			return ts.do("POST", "/v2/r/blobs/uploads/?digest="+d.String(), content)
		}},
		{name: "post then put", push: func(ts *testServer) response {
			loc := ts.startUpload("r")
			return ts.do("PUT", loc+"?digest="+d.String(), content)
		}},
		{name: "stream patch then put", push: func(ts *testServer) response {
			loc := ts.startUpload("r")
			r := ts.do("PATCH", loc, content)
			r.expect(ts.t, 202, "")
			if got := r.header.Get("Range"); got != "0-9999" {
				ts.t.Errorf("Range = %q", got)
			}
			return ts.do("PUT", r.header.Get("Location")+"?digest="+d.String(), nil)
		}},
		{name: "chunked with content range", push: func(ts *testServer) response {
			loc := ts.startUpload("r")
			for off := 0; off < 9000; off += 3000 {
				r := ts.do("PATCH", loc, content[off:off+3000], "Content-Range", strconv.Itoa(off)+"-"+strconv.Itoa(off+2999))
				r.expect(ts.t, 202, "")
				if got, want := r.header.Get("Range"), "0-"+strconv.Itoa(off+2999); got != want {
					ts.t.Errorf("Range = %q, want %q", got, want)
				}
			}
			return ts.do("PUT", loc+"?digest="+d.String(), content[9000:], "Content-Range", "9000-9999")
		}},
		{name: "chunked without content range", push: func(ts *testServer) response {
			loc := ts.startUpload("r")
			ts.do("PATCH", loc, content[:5000]).expect(ts.t, 202, "")
			ts.do("PATCH", loc, content[5000:]).expect(ts.t, 202, "")
			return ts.do("PUT", loc+"?digest="+d.String(), nil)
		}},
		{name: "out of order chunk then recover", push: func(ts *testServer) response {
			loc := ts.startUpload("r")
			ts.do("PATCH", loc, content[:4000], "Content-Range", "0-3999").expect(ts.t, 202, "")
			r := ts.do("PATCH", loc, content[5000:6000], "Content-Range", "5000-5999")
			r.expect(ts.t, 416, "BLOB_UPLOAD_INVALID")
			if r.header.Get("Range") != "0-3999" || r.header.Get("Location") != loc {
				ts.t.Errorf("416 headers: Range %q Location %q", r.header.Get("Range"), r.header.Get("Location"))
			}
			ts.do("PATCH", loc, content[:1000], "Content-Range", "0-999").expect(ts.t, 416, "")
			ts.do("PUT", loc+"?digest="+d.String(), content[9000:], "Content-Range", "9000-9999").expect(ts.t, 416, "")
			st := ts.do("GET", loc, nil)
			st.expect(ts.t, 204, "")
			if st.header.Get("Range") != "0-3999" {
				ts.t.Errorf("status Range = %q", st.header.Get("Range"))
			}
			return ts.do("PUT", loc+"?digest="+d.String(), content[4000:], "Content-Range", "4000-9999")
		}},
		{name: "wrong digest then retry", push: func(ts *testServer) response {
			loc := ts.startUpload("r")
			ts.do("PATCH", loc, content[:5000]).expect(ts.t, 202, "")
			bad := append(bytes.Clone(content[5000:]), 'x')
			ts.do("PUT", loc+"?digest="+d.String(), bad).expect(ts.t, 400, "DIGEST_INVALID")
			ts.do("GET", "/v2/r/blobs/"+d.String(), nil).expect(ts.t, 404, "BLOB_UNKNOWN")
			return ts.do("PUT", loc+"?digest="+d.String(), content[5000:])
		}},
		{name: "mount from other repository", push: func(ts *testServer) response {
			ts.pushBlob("src", content)
			return ts.do("POST", "/v2/r/blobs/uploads/?mount="+d.String()+"&from=src", nil)
		}},
		{name: "anonymous mount", push: func(ts *testServer) response {
			ts.pushBlob("src", content)
			return ts.do("POST", "/v2/r/blobs/uploads/?mount="+d.String(), nil)
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ts := newTestServer(t)
			r := tt.push(ts)
			r.expect(t, 201, "")
			if got, want := r.header.Get("Location"), "/v2/r/blobs/"+d.String(); got != want {
				t.Errorf("Location = %q, want %q", got, want)
			}
			if got := r.header.Get("Docker-Content-Digest"); got != d.String() {
				t.Errorf("Docker-Content-Digest = %q", got)
			}
			g := ts.do("GET", r.header.Get("Location"), nil)
			g.expect(t, 200, "")
			if !bytes.Equal(g.body, content) {
				t.Errorf("pulled %d bytes, want the %d pushed", len(g.body), len(content))
			}
		})
	}
}

// startUpload opens a session in repo and returns its Location.
func (ts *testServer) startUpload(repo string) string {
	ts.t.Helper()
	r := ts.do("POST", "/v2/"+repo+"/blobs/uploads/", nil)
	r.expect(ts.t, 202, "")
	loc := r.header.Get("Location")
	if loc == "" || loc[0] != '/' || r.header.Get("Docker-Upload-UUID") == "" || r.header.Get("Range") != "0-0" {
		ts.t.Fatalf("POST upload headers: %v", r.header)
	}
	return loc
}

func TestUploadErrors(t *testing.T) {
	ts := newTestServer(t)
	content := []byte("some content")
	d := digest.FromBytes(content)
	ts.pushBlob("src", content)
	tests := []struct {
		name string
		run  func(t *testing.T) response
		// status and code the last response must have.
		status int
		code   string
	}{
		{name: "monolithic wrong digest", status: 400, code: "DIGEST_INVALID", run: func(t *testing.T) response {
			return ts.do("POST", "/v2/r/blobs/uploads/?digest="+digest.FromString("other").String(), content)
		}},
		{name: "monolithic bad digest", status: 400, code: "DIGEST_INVALID", run: func(t *testing.T) response {
			return ts.do("POST", "/v2/r/blobs/uploads/?digest=sha256:abc", content)
		}},
		{name: "put without digest", status: 400, code: "DIGEST_INVALID", run: func(t *testing.T) response {
			return ts.do("PUT", ts.startUpload("r"), content)
		}},
		{name: "put malformed digest", status: 400, code: "DIGEST_INVALID", run: func(t *testing.T) response {
			return ts.do("PUT", ts.startUpload("r")+"?digest=sha256:zz", content)
		}},
		{name: "mount missing falls back to session", status: 202, run: func(t *testing.T) response {
			return ts.do("POST", "/v2/r/blobs/uploads/?mount="+digest.FromString("nope").String()+"&from=src", nil)
		}},
		{name: "mount from repo without blob", status: 202, run: func(t *testing.T) response {
			return ts.do("POST", "/v2/r/blobs/uploads/?mount="+d.String()+"&from=empty", nil)
		}},
		{name: "mount from invalid name", status: 202, run: func(t *testing.T) response {
			return ts.do("POST", "/v2/r/blobs/uploads/?mount="+d.String()+"&from=../src", nil)
		}},
		{name: "mount bad digest", status: 400, code: "DIGEST_INVALID", run: func(t *testing.T) response {
			return ts.do("POST", "/v2/r/blobs/uploads/?mount=nope&from=src", nil)
		}},
		{name: "session of another repository", status: 404, code: "BLOB_UPLOAD_UNKNOWN", run: func(t *testing.T) response {
			loc := ts.startUpload("r")
			return ts.do("PATCH", "/v2/other"+loc[len("/v2/r"):], content)
		}},
		{name: "cancel then use", status: 404, code: "BLOB_UPLOAD_UNKNOWN", run: func(t *testing.T) response {
			loc := ts.startUpload("r")
			ts.do("DELETE", loc, nil).expect(t, 204, "")
			ts.do("DELETE", loc, nil).expect(t, 404, "BLOB_UPLOAD_UNKNOWN")
			return ts.do("GET", loc, nil)
		}},
		{name: "finished session is gone", status: 404, code: "BLOB_UPLOAD_UNKNOWN", run: func(t *testing.T) response {
			loc := ts.startUpload("r")
			ts.do("PUT", loc+"?digest="+d.String(), content).expect(t, 201, "")
			return ts.do("PATCH", loc, content)
		}},
		{name: "first chunk not at zero", status: 416, code: "BLOB_UPLOAD_INVALID", run: func(t *testing.T) response {
			return ts.do("PATCH", ts.startUpload("r"), content, "Content-Range", "5-16")
		}},
		{name: "malformed content range", status: 416, run: func(t *testing.T) response {
			return ts.do("PATCH", ts.startUpload("r"), content, "Content-Range", "zero-ten")
		}},
		{name: "content range longer than body", status: 400, code: "SIZE_INVALID", run: func(t *testing.T) response {
			return ts.do("PATCH", ts.startUpload("r"), content, "Content-Range", "0-99")
		}},
		{name: "content range shorter than body", status: 400, code: "SIZE_INVALID", run: func(t *testing.T) response {
			return ts.do("PATCH", ts.startUpload("r"), content, "Content-Range", "0-3")
		}},
		{name: "session whose data a crash moved away", status: 404, code: "BLOB_UPLOAD_UNKNOWN", run: func(t *testing.T) response {
			loc := ts.startUpload("r")
			if err := os.Remove(filepath.Join(ts.dir, "uploads", path.Base(loc), "data")); err != nil {
				t.Fatal(err)
			}
			return ts.do("PATCH", loc, content)
		}},
		{name: "status of fresh session", status: 204, run: func(t *testing.T) response {
			r := ts.do("GET", ts.startUpload("r"), nil)
			if r.header.Get("Range") != "0-0" || r.header.Get("Location") == "" || r.header.Get("Docker-Upload-UUID") == "" {
				t.Errorf("status headers: %v", r.header)
			}
			return r
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.run(t).expect(t, tt.status, tt.code)
		})
	}
}

func TestEmptyBlob(t *testing.T) {
	ts := newTestServer(t)
	d := digest.FromBytes(nil)
	loc := ts.startUpload("r")
	ts.do("PUT", loc+"?digest="+d.String(), nil).expect(t, 201, "")
	r := ts.do("HEAD", "/v2/r/blobs/"+d.String(), nil)
	r.expect(t, 200, "")
	if r.header.Get("Content-Length") != "0" {
		t.Errorf("Content-Length = %q, want 0", r.header.Get("Content-Length"))
	}
	ts.do("GET", "/v2/r/blobs/"+d.String(), nil).expect(t, http.StatusOK, "")
}
