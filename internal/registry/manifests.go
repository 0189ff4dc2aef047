package registry

import (
	"errors"
	"io"
	"io/fs"
	"net/http"
	"strconv"
	"strings"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// getManifest serves GET and HEAD /v2/<name>/manifests/<reference> with the
// media type the manifest was pushed as.
func (r *Registry) getManifest(w http.ResponseWriter, req *http.Request, rt route) error {
	d, err := r.resolveRoute(rt)
	if err != nil {
		return err
	}
	link, err := r.store.manifestLink(rt.name, d)
	if errors.Is(err, fs.ErrNotExist) {
		return r.manifestUnknown(rt)
	}
	if err != nil {
		return err
	}
	body, err := r.store.readBlob(d)
	if errors.Is(err, fs.ErrNotExist) {
		r.logger.WarnContext(req.Context(), "manifest linked but content missing", "repo", rt.name, "digest", d)
		return r.manifestUnknown(rt)
	}
	if err != nil {
		return err
	}
	h := w.Header()
	h.Set("Content-Type", link.MediaType)
	h.Set("Docker-Content-Digest", d.String())
	h.Set("ETag", `"`+d.String()+`"`)
	h.Set("Content-Length", strconv.Itoa(len(body)))
	w.WriteHeader(http.StatusOK)
	if req.Method != http.MethodHead {
		_, _ = w.Write(body)
	}
	return nil
}

// resolveRoute returns the digest a manifest route names: its digest, or
// what its tag points at.
func (r *Registry) resolveRoute(rt route) (digest.Digest, error) {
	if rt.dgst != "" {
		return rt.dgst, nil
	}
	d, err := r.store.tagDigest(rt.name, rt.tag)
	if errors.Is(err, fs.ErrNotExist) {
		return "", r.manifestUnknown(rt)
	}
	return d, err
}

// manifestUnknown is the 404 for a manifest route: NAME_UNKNOWN when the
// repository does not exist, else MANIFEST_UNKNOWN.
func (r *Registry) manifestUnknown(rt route) error {
	if !r.store.repoExists(rt.name) {
		return newError(http.StatusNotFound, codeNameUnknown).withDetail(map[string]string{"name": rt.name})
	}
	return newError(http.StatusNotFound, codeManifestUnknown).withDetail(map[string]string{"reference": rt.reference()})
}

// putManifest serves PUT /v2/<name>/manifests/<reference>[?tag=<tag>...]. The
// body must be a valid manifest of at most 4 MiB whose blobs (image
// manifest) or child manifests (index) are already in <name>; pushed by
// digest, it must hash to that digest. Each ?tag= also tags it, reported
// back in OCI-Tag.
func (r *Registry) putManifest(w http.ResponseWriter, req *http.Request, rt route) error {
	if req.ContentLength > maxManifestSize {
		return errorf(http.StatusRequestEntityTooLarge, codeSizeInvalid, "manifest larger than %d bytes", maxManifestSize)
	}
	body, err := io.ReadAll(io.LimitReader(&bodyReader{r: req.Body}, maxManifestSize+1))
	if err != nil {
		return newError(http.StatusBadRequest, codeManifestInvalid).withCause(err)
	}
	if len(body) > maxManifestSize {
		return errorf(http.StatusRequestEntityTooLarge, codeSizeInvalid, "manifest larger than %d bytes", maxManifestSize)
	}
	m, err := parseManifest(body, req.Header.Get("Content-Type"))
	if err != nil {
		return err
	}
	d := digest.Canonical.FromBytes(body)
	if rt.dgst != "" {
		if d = rt.dgst.Algorithm().FromBytes(body); d != rt.dgst {
			return errorf(http.StatusBadRequest, codeDigestInvalid, "manifest digest is %s, not %s", d, rt.dgst)
		}
	}
	var tags []string
	if rt.tag != "" {
		tags = append(tags, rt.tag)
	}
	tagParams := req.URL.Query()["tag"]
	for _, t := range tagParams {
		if !validTag(t) {
			return errorf(http.StatusBadRequest, codeTagInvalid, "invalid tag %q", t)
		}
	}
	tags = append(tags, tagParams...)

	defer r.repoLocks.lock(rt.name)()
	if err := r.checkTagsMutable(rt.name, d, tags); err != nil {
		return err
	}
	// From the check of its references to its link, a manifest push and a
	// garbage collection exclude each other.
	r.gcMu.RLock()
	defer r.gcMu.RUnlock()
	if err := r.checkReferences(rt.name, m); err != nil {
		return err
	}
	if err := r.store.putBytes(body, d); err != nil {
		return err
	}
	link := manifestLink{MediaType: m.mediaType}
	if m.subject != nil {
		link.Subject = m.subject.Digest
	}
	if err := r.store.putManifestLink(rt.name, d, link); err != nil {
		return err
	}
	if m.subject != nil {
		desc := ocispec.Descriptor{
			MediaType:    m.mediaType,
			Digest:       d,
			Size:         int64(len(body)),
			ArtifactType: m.artifactType,
			Annotations:  m.annotations,
		}
		if err := r.store.putReferrer(rt.name, m.subject.Digest, desc); err != nil {
			return err
		}
	}
	for _, t := range tags {
		if err := r.store.setTag(rt.name, t, d); err != nil {
			return err
		}
	}
	h := w.Header()
	h.Set("Location", "/v2/"+rt.name+"/manifests/"+d.String())
	h.Set("Docker-Content-Digest", d.String())
	if m.subject != nil {
		h.Set("OCI-Subject", m.subject.Digest.String())
	}
	if len(tagParams) > 0 {
		h.Set("OCI-Tag", strings.Join(tagParams, ", "))
	}
	h.Set("Content-Length", "0")
	w.WriteHeader(http.StatusCreated)
	return nil
}

// checkReferences verifies that what m references is in repository name:
// the config and layers of an image manifest, with the sizes m gives, and
// the child manifests of an index. Missing content is 400
// MANIFEST_BLOB_UNKNOWN naming the digest.
func (r *Registry) checkReferences(name string, m *manifest) error {
	for _, b := range m.blobs {
		unknown := newError(http.StatusBadRequest, codeManifestBlobUnknown).withDetail(map[string]string{"digest": b.Digest.String()})
		if !r.store.blobInRepo(name, b.Digest) {
			return unknown
		}
		size, err := r.store.statBlob(b.Digest)
		if errors.Is(err, fs.ErrNotExist) {
			return unknown
		}
		if err != nil {
			return err
		}
		if size != b.Size {
			return errorf(http.StatusBadRequest, codeManifestInvalid, "blob %s has size %d, manifest says %d", b.Digest, size, b.Size).
				withDetail(map[string]string{"digest": b.Digest.String()})
		}
	}
	for _, c := range m.children {
		_, err := r.store.manifestLink(name, c.Digest)
		if errors.Is(err, fs.ErrNotExist) {
			return newError(http.StatusBadRequest, codeManifestBlobUnknown).withDetail(map[string]string{"digest": c.Digest.String()})
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// deleteManifest serves DELETE /v2/<name>/manifests/<reference>. By tag it
// removes the tag only; by digest it removes the manifest from <name>, with
// every tag pointing at it and its referrers entry.
func (r *Registry) deleteManifest(w http.ResponseWriter, _ *http.Request, rt route) error {
	defer r.repoLocks.lock(rt.name)()
	if rt.tag != "" {
		ok, err := r.store.removeTag(rt.name, rt.tag)
		if err != nil {
			return err
		}
		if !ok {
			return r.manifestUnknown(rt)
		}
	} else {
		link, err := r.store.manifestLink(rt.name, rt.dgst)
		if errors.Is(err, fs.ErrNotExist) {
			return r.manifestUnknown(rt)
		}
		if err != nil {
			return err
		}
		if _, err := r.store.removeManifestLink(rt.name, rt.dgst); err != nil {
			return err
		}
		if link.Subject != "" {
			if err := r.store.removeReferrer(rt.name, link.Subject, rt.dgst); err != nil {
				return err
			}
		}
		tags, err := r.store.tags(rt.name)
		if err != nil {
			return err
		}
		for _, t := range tags {
			if td, err := r.store.tagDigest(rt.name, t); err == nil && td == rt.dgst {
				if _, err := r.store.removeTag(rt.name, t); err != nil {
					return err
				}
			}
		}
	}
	w.Header().Set("Content-Length", "0")
	w.WriteHeader(http.StatusAccepted)
	return nil
}
