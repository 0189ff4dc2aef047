package registry

import (
	"errors"
	"io/fs"
	"net/http"
	"time"

	"github.com/opencontainers/go-digest"
)

// getBlob serves GET and HEAD /v2/<name>/blobs/<digest>, with Range support.
// Only blobs pushed or mounted into <name> (or its manifests) are visible
// through it.
func (r *Registry) getBlob(w http.ResponseWriter, req *http.Request, rt route) error {
	if !r.store.blobInRepo(rt.name, rt.dgst) {
		return newError(http.StatusNotFound, codeBlobUnknown).withDetail(map[string]string{"digest": rt.dgst.String()})
	}
	// Opened under the blob's lock and marked seen: garbage collection
	// keeps a blob a client was just told exists (it may reference it from
	// a manifest next) and the open file stays readable whatever happens.
	unlock := r.store.blobLocks.lock(rt.dgst.String())
	r.markSeen(rt.dgst)
	f, _, err := r.store.openBlob(rt.dgst)
	unlock()
	if errors.Is(err, fs.ErrNotExist) {
		return newError(http.StatusNotFound, codeBlobUnknown).withDetail(map[string]string{"digest": rt.dgst.String()})
	}
	if err != nil {
		return err
	}
	defer f.Close()
	h := w.Header()
	h.Set("Content-Type", "application/octet-stream")
	h.Set("Docker-Content-Digest", rt.dgst.String())
	h.Set("ETag", `"`+rt.dgst.String()+`"`)
	h.Set("Cache-Control", "max-age=31536000")
	// ServeContent sets Content-Length, honours Range, If-Range and
	// If-None-Match (against the ETag), and writes no body for HEAD.
	http.ServeContent(w, req, "", time.Time{}, f)
	return nil
}

// deleteBlob serves DELETE /v2/<name>/blobs/<digest>: it removes the blob
// from <name> only; the content stays for garbage collection.
func (r *Registry) deleteBlob(w http.ResponseWriter, _ *http.Request, rt route) error {
	ok, err := r.store.unlinkBlob(rt.name, rt.dgst)
	if err != nil {
		return err
	}
	if !ok {
		return newError(http.StatusNotFound, codeBlobUnknown).withDetail(map[string]string{"digest": rt.dgst.String()})
	}
	w.Header().Set("Content-Length", "0")
	w.WriteHeader(http.StatusAccepted)
	return nil
}

// blobCreated writes the 201 that completes a blob upload or mount.
func blobCreated(w http.ResponseWriter, name string, d digest.Digest) {
	h := w.Header()
	h.Set("Location", "/v2/"+name+"/blobs/"+d.String())
	h.Set("Docker-Content-Digest", d.String())
	h.Set("Content-Length", "0")
	w.WriteHeader(http.StatusCreated)
}
