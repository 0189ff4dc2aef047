package registry

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/opencontainers/go-digest"
)

// An upload session is the directory uploads/<id>/ holding data (the bytes
// received so far, possibly followed by the torn tail of a failed request)
// and state.json (an uploadState, replaced atomically after every accepted
// chunk). Size in state.json is the authority: data is truncated to it
// before every append, so a chunk that failed half way, or a final chunk
// whose digest did not match, is as if never sent. Sessions survive a
// restart of the process.

// uploadState is the durable state of an upload session.
type uploadState struct {
	Repo    string    `json:"repo"`
	Size    int64     `json:"size"`
	Started time.Time `json:"started"`
}

func (r *Registry) uploadDir(id string) string { return filepath.Join(r.store.uploadsDir(), id) }

func (r *Registry) uploadDataPath(id string) string { return filepath.Join(r.uploadDir(id), "data") }

func (r *Registry) uploadStatePath(id string) string {
	return filepath.Join(r.uploadDir(id), "state.json")
}

// startUpload serves POST /v2/<name>/blobs/uploads/: a cross-repository
// mount (?mount=&from=), a monolithic upload (?digest=), or else a new
// session.
func (r *Registry) startUpload(w http.ResponseWriter, req *http.Request, rt route) error {
	q := req.URL.Query()
	if m := q.Get("mount"); m != "" {
		d, err := digestParam(m)
		if err != nil {
			return err
		}
		ok, err := r.mount(rt.name, q.Get("from"), d)
		if err != nil {
			return err
		}
		if ok {
			blobCreated(w, rt.name, d)
			return nil
		}
		// Not mountable: the spec's fallback is a new upload session.
	} else if dg := q.Get("digest"); dg != "" {
		d, err := digestParam(dg)
		if err != nil {
			return err
		}
		if _, err := r.store.ingest(&bodyReader{r: req.Body}, d); err != nil {
			return uploadError(err, d)
		}
		r.markSeen(d)
		if err := r.store.linkBlob(rt.name, d); err != nil {
			return err
		}
		blobCreated(w, rt.name, d)
		return nil
	}
	id := uuid.NewString()
	if err := os.MkdirAll(r.uploadDir(id), dirPerm); err != nil {
		return err
	}
	f, err := os.OpenFile(r.uploadDataPath(id), os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o640)
	if err != nil {
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	st := uploadState{Repo: rt.name, Started: r.now().UTC()}
	if err := r.saveUpload(id, st); err != nil {
		return err
	}
	uploadAccepted(w, http.StatusAccepted, rt.name, id, 0)
	return nil
}

// mount links blob d of repository from into name. Without from, any blob in
// the store is mountable: every user of this registry may read every
// repository, so knowing a digest reveals nothing a pull would not. With
// from, the caller needs pull on it (see needs).
func (r *Registry) mount(name, from string, d digest.Digest) (bool, error) {
	if from != "" && (!validName(from) || !r.store.blobInRepo(from, d)) {
		return false, nil
	}
	defer r.store.blobLocks.lock(d.String())()
	r.markSeen(d)
	if _, err := r.store.statBlob(d); err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return false, nil
		}
		return false, err
	}
	if err := r.store.linkBlob(name, d); err != nil {
		return false, err
	}
	return true, nil
}

// uploadStatus serves GET /v2/<name>/blobs/uploads/<id>.
func (r *Registry) uploadStatus(w http.ResponseWriter, _ *http.Request, rt route) error {
	defer r.uploadLocks.lock(rt.upload)()
	st, err := r.loadUpload(rt)
	if err != nil {
		return err
	}
	uploadAccepted(w, http.StatusNoContent, rt.name, rt.upload, st.Size)
	return nil
}

// patchUpload serves PATCH /v2/<name>/blobs/uploads/<id>: it appends a chunk,
// which must start where the session stands when Content-Range is given.
func (r *Registry) patchUpload(w http.ResponseWriter, req *http.Request, rt route) error {
	defer r.uploadLocks.lock(rt.upload)()
	st, err := r.loadUpload(rt)
	if err != nil {
		return err
	}
	size, err := r.appendChunk(req, rt, st)
	if err != nil {
		return err
	}
	st.Size = size
	if err := r.saveUpload(rt.upload, st); err != nil {
		return err
	}
	uploadAccepted(w, http.StatusAccepted, rt.name, rt.upload, st.Size)
	return nil
}

// finishUpload serves PUT /v2/<name>/blobs/uploads/<id>?digest=: it appends
// the optional final chunk, verifies the digest and moves the content into
// the store. On a digest mismatch the session stays as it was before the
// request.
func (r *Registry) finishUpload(w http.ResponseWriter, req *http.Request, rt route) error {
	defer r.uploadLocks.lock(rt.upload)()
	st, err := r.loadUpload(rt)
	if err != nil {
		return err
	}
	dg := req.URL.Query().Get("digest")
	if dg == "" {
		return errorf(http.StatusBadRequest, codeDigestInvalid, "digest query parameter required")
	}
	d, err := digestParam(dg)
	if err != nil {
		return err
	}
	if _, err := r.appendChunk(req, rt, st); err != nil {
		return err
	}
	if _, err := r.store.ingestFile(r.uploadDataPath(rt.upload), d); err != nil {
		return uploadError(err, d)
	}
	r.markSeen(d)
	if err := r.store.linkBlob(rt.name, d); err != nil {
		return err
	}
	if err := r.removeUpload(rt.upload); err != nil {
		r.logger.WarnContext(req.Context(), "remove finished upload", "upload", rt.upload, "err", err)
	}
	blobCreated(w, rt.name, d)
	return nil
}

// cancelUpload serves DELETE /v2/<name>/blobs/uploads/<id>.
func (r *Registry) cancelUpload(w http.ResponseWriter, _ *http.Request, rt route) error {
	defer r.uploadLocks.lock(rt.upload)()
	if _, err := r.loadUpload(rt); err != nil {
		return err
	}
	if err := r.removeUpload(rt.upload); err != nil {
		return err
	}
	w.Header().Set("Content-Length", "0")
	w.WriteHeader(http.StatusNoContent)
	return nil
}

// appendChunk writes the request body after the st.Size bytes the session
// holds, fsyncs it and returns the new size; it does not save the state. A
// Content-Range must start at st.Size (else 416) and match the body length
// (else 400 SIZE_INVALID).
func (r *Registry) appendChunk(req *http.Request, rt route, st uploadState) (int64, error) {
	want := int64(-1)
	if cr := req.Header.Get("Content-Range"); cr != "" {
		start, end, ok := parseContentRange(cr)
		if !ok || start != st.Size {
			return 0, errorf(http.StatusRequestedRangeNotSatisfiable, codeBlobUploadInvalid,
				"content range %q does not continue the upload at offset %d", cr, st.Size).
				withHeader("Location", uploadLocation(rt.name, rt.upload)).
				withHeader("Range", rangeHeader(st.Size)).
				withHeader("Docker-Upload-UUID", rt.upload)
		}
		want = end - start + 1
	}
	f, err := os.OpenFile(r.uploadDataPath(rt.upload), os.O_WRONLY, 0)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	if err := f.Truncate(st.Size); err != nil {
		return 0, err
	}
	if _, err := f.Seek(st.Size, io.SeekStart); err != nil {
		return 0, err
	}
	br := &bodyReader{r: req.Body}
	var src io.Reader = br
	if want >= 0 {
		src = io.LimitReader(br, want+1)
	}
	n, err := io.Copy(f, src)
	if err != nil {
		return 0, uploadError(err, "")
	}
	if want >= 0 && n != want {
		return 0, errorf(http.StatusBadRequest, codeSizeInvalid, "content range announces %d bytes, body has %d", want, n)
	}
	if err := f.Sync(); err != nil {
		return 0, err
	}
	return st.Size + n, f.Close()
}

// loadUpload returns the state of the session rt names, or 404
// BLOB_UPLOAD_UNKNOWN if there is none for rt's repository.
func (r *Registry) loadUpload(rt route) (uploadState, error) {
	var st uploadState
	b, err := os.ReadFile(r.uploadStatePath(rt.upload))
	if errors.Is(err, fs.ErrNotExist) {
		return st, newError(http.StatusNotFound, codeBlobUploadUnknown)
	}
	if err != nil {
		return st, err
	}
	if err := json.Unmarshal(b, &st); err != nil {
		return st, fmt.Errorf("parse upload state %s: %w", rt.upload, err)
	}
	if st.Repo != rt.name {
		return st, newError(http.StatusNotFound, codeBlobUploadUnknown)
	}
	// A crash between moving the data of a finished upload into the store
	// and removing the session leaves state without data: it is over.
	if _, err := os.Stat(r.uploadDataPath(rt.upload)); errors.Is(err, fs.ErrNotExist) {
		return st, newError(http.StatusNotFound, codeBlobUploadUnknown)
	} else if err != nil {
		return st, err
	}
	return st, nil
}

func (r *Registry) saveUpload(id string, st uploadState) error {
	b, err := json.Marshal(st)
	if err != nil {
		return err
	}
	return writeFileAtomic(r.uploadStatePath(id), b)
}

// removeUpload ends session id: its state goes first, so a crash part way
// leaves no session, only debris for PurgeUploads.
func (r *Registry) removeUpload(id string) error {
	if _, err := removeFile(r.uploadStatePath(id)); err != nil {
		return err
	}
	return os.RemoveAll(r.uploadDir(id))
}

// PurgeUploads removes the upload sessions started before t, and the debris
// of sessions a crash left without state, and returns how many it removed.
// Run it periodically; sessions in use are skipped while a request holds
// them.
func (r *Registry) PurgeUploads(t time.Time) (int, error) {
	ents, err := os.ReadDir(r.store.uploadsDir())
	if err != nil {
		return 0, fmt.Errorf("purge uploads: %w", err)
	}
	n := 0
	for _, e := range ents {
		id := e.Name()
		if !validUploadID(id) {
			continue
		}
		unlock := r.uploadLocks.lock(id)
		b, err := os.ReadFile(r.uploadStatePath(id))
		var st uploadState
		stale := errors.Is(err, fs.ErrNotExist) ||
			(err == nil && (json.Unmarshal(b, &st) != nil || st.Started.Before(t)))
		if stale {
			err = r.removeUpload(id)
			if err == nil {
				n++
			}
		}
		unlock()
		if err != nil {
			return n, fmt.Errorf("purge upload %s: %w", id, err)
		}
	}
	return n, nil
}

// uploadAccepted writes the response that reports a session's progress.
func uploadAccepted(w http.ResponseWriter, status int, name, id string, size int64) {
	h := w.Header()
	h.Set("Location", uploadLocation(name, id))
	h.Set("Range", rangeHeader(size))
	h.Set("Docker-Upload-UUID", id)
	h.Set("Content-Length", "0")
	w.WriteHeader(status)
}

func uploadLocation(name, id string) string { return "/v2/" + name + "/blobs/uploads/" + id }

// rangeHeader is the Range of a session holding size bytes: "0-<last byte>",
// and "0-0" when empty, as clients expect.
func rangeHeader(size int64) string {
	return "0-" + strconv.FormatInt(max(size-1, 0), 10)
}

// parseContentRange parses an upload Content-Range, "<start>-<end>"
// inclusive, tolerating a "bytes " or "bytes=" prefix and a "/<total>"
// suffix.
func parseContentRange(s string) (start, end int64, ok bool) {
	s = strings.TrimSpace(s)
	s = strings.TrimPrefix(strings.TrimPrefix(s, "bytes "), "bytes=")
	s, _, _ = strings.Cut(s, "/")
	a, b, found := strings.Cut(s, "-")
	if !found {
		return 0, 0, false
	}
	start, err1 := strconv.ParseInt(a, 10, 64)
	end, err2 := strconv.ParseInt(b, 10, 64)
	// end < MaxInt64 keeps end-start+1, the chunk's length, from
	// overflowing.
	if err1 != nil || err2 != nil || start < 0 || end < start || end == math.MaxInt64 {
		return 0, 0, false
	}
	return start, end, true
}

// bodyReader marks the errors of the request body it reads as
// *bodyReadError, so that a failed copy can be blamed on the client rather
// than on the disk.
type bodyReader struct {
	r io.Reader
}

func (b *bodyReader) Read(p []byte) (int, error) {
	n, err := b.r.Read(p)
	if err != nil && err != io.EOF {
		err = &bodyReadError{err: err}
	}
	return n, err
}

// bodyReadError is a failure to read the request body.
type bodyReadError struct{ err error }

func (e *bodyReadError) Error() string { return "read request body: " + e.err.Error() }

func (e *bodyReadError) Unwrap() error { return e.err }

// uploadError maps an error of ingesting client content: a digest mismatch
// is 400 DIGEST_INVALID, a failed request body 400 BLOB_UPLOAD_INVALID, and
// anything else (the disk) stays internal.
func uploadError(err error, d digest.Digest) error {
	var be *bodyReadError
	switch {
	case errors.Is(err, errDigestMismatch):
		return newError(http.StatusBadRequest, codeDigestInvalid).withDetail(map[string]string{"digest": d.String()}).withCause(err)
	case errors.As(err, &be):
		return newError(http.StatusBadRequest, codeBlobUploadInvalid).withCause(err)
	}
	return err
}
