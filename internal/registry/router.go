package registry

import (
	"net/http"
	"strings"

	"github.com/opencontainers/go-digest"
)

// routeKind is an endpoint of the Distribution API.
type routeKind int

const (
	routeBase        routeKind = iota + 1 // /v2/
	routeCatalog                          // /v2/_catalog
	routeTags                             // /v2/<name>/tags/list
	routeManifest                         // /v2/<name>/manifests/<reference>
	routeBlob                             // /v2/<name>/blobs/<digest>
	routeUploadStart                      // /v2/<name>/blobs/uploads/
	routeUpload                           // /v2/<name>/blobs/uploads/<id>
	routeReferrers                        // /v2/<name>/referrers/<digest>
)

// route is a parsed request path. Every field is validated: name is a valid
// repository name, and depending on kind, dgst is a valid digest, tag a valid
// tag, or upload a valid session id.
type route struct {
	kind   routeKind
	name   string
	dgst   digest.Digest // blob, referrers, or manifest by digest
	tag    string        // manifest by tag
	upload string        // upload session id
}

// reference returns the manifest reference of a manifest route as given: the
// digest or the tag.
func (rt route) reference() string {
	if rt.dgst != "" {
		return rt.dgst.String()
	}
	return rt.tag
}

// errNotFound is the error for a path that is no endpoint of the API.
func errNotFound() *regError {
	return errorf(http.StatusNotFound, codeUnsupported, "unknown API endpoint")
}

// parseRoute maps a request path to a route. Paths outside /v2/ and paths
// under it that match no endpoint get a 404; an endpoint whose repository
// name, digest or tag is malformed gets the spec's 400 (NAME_INVALID,
// DIGEST_INVALID, TAG_INVALID), and a malformed upload id a 404
// BLOB_UPLOAD_UNKNOWN. The name is matched from the right, so repository
// names may contain components such as "blobs" or "manifests".
func parseRoute(path string) (route, error) {
	rest, ok := strings.CutPrefix(path, "/v2")
	if !ok {
		return route{}, errNotFound()
	}
	if rest == "" || rest == "/" {
		return route{kind: routeBase}, nil
	}
	rest, ok = strings.CutPrefix(rest, "/")
	if !ok {
		return route{}, errNotFound()
	}
	if rest == "_catalog" {
		return route{kind: routeCatalog}, nil
	}
	segs := strings.Split(rest, "/")
	n := len(segs)
	var rt route
	var nameSegs []string
	var ref string
	switch {
	case n >= 3 && segs[n-2] == "tags" && segs[n-1] == "list":
		rt.kind, nameSegs = routeTags, segs[:n-2]
	case n >= 4 && segs[n-3] == "blobs" && segs[n-2] == "uploads":
		rt.kind, nameSegs, ref = routeUpload, segs[:n-3], segs[n-1]
		if ref == "" {
			rt.kind = routeUploadStart
		}
	case n >= 3 && segs[n-2] == "blobs" && segs[n-1] == "uploads":
		rt.kind, nameSegs = routeUploadStart, segs[:n-2]
	case n >= 3 && segs[n-2] == "blobs":
		rt.kind, nameSegs, ref = routeBlob, segs[:n-2], segs[n-1]
	case n >= 3 && segs[n-2] == "manifests":
		rt.kind, nameSegs, ref = routeManifest, segs[:n-2], segs[n-1]
	case n >= 3 && segs[n-2] == "referrers":
		rt.kind, nameSegs, ref = routeReferrers, segs[:n-2], segs[n-1]
	default:
		return route{}, errNotFound()
	}
	rt.name = strings.Join(nameSegs, "/")
	if !validName(rt.name) {
		return route{}, errorf(http.StatusBadRequest, codeNameInvalid, "invalid repository name %q", rt.name)
	}
	switch rt.kind {
	case routeBlob, routeReferrers:
		d, err := digestParam(ref)
		if err != nil {
			return route{}, err
		}
		rt.dgst = d
	case routeUpload:
		if !validUploadID(ref) {
			return route{}, newError(http.StatusNotFound, codeBlobUploadUnknown)
		}
		rt.upload = ref
	case routeManifest:
		if strings.Contains(ref, ":") {
			d, err := digestParam(ref)
			if err != nil {
				return route{}, err
			}
			rt.dgst = d
		} else {
			if !validTag(ref) {
				return route{}, errorf(http.StatusBadRequest, codeTagInvalid, "invalid tag %q", ref)
			}
			rt.tag = ref
		}
	}
	return rt, nil
}
