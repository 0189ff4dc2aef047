package registry

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net/http"
	"os"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/opencontainers/go-digest"

	"github.com/kappa-run/kappa/internal/apierr"
)

// Registry is an OCI registry whose whole state lives in one directory. Its
// methods and its Handler are safe for concurrent use; at most one Registry
// (in any process) has a given directory open at a time.
type Registry struct {
	store  store
	logger *slog.Logger
	// now is the clock, replaceable in tests; it stamps upload sessions.
	now     func() time.Time
	release func() error
	closed  atomic.Bool
	routes  map[routeKind]map[string]handlerFunc

	// repoLocks serialises manifest and tag mutations per repository, so
	// that a manifest, its tags and its referrer entry change together.
	repoLocks keyedMutex
	// uploadLocks serialises the requests of one upload session.
	uploadLocks keyedMutex

	// auth checks credentials; nil when the registry is open to all.
	auth *authenticator

	// gcMu keeps garbage collection (writer) apart from manifest pushes
	// (readers), so that no manifest can come to reference a blob between
	// the moment GC decides it is unreferenced and its removal.
	gcMu sync.RWMutex
	// seen records when blobs were last shown to exist to a client (HEAD,
	// GET, mount, upload), so that GC keeps a blob a client may be about to
	// reference although no manifest does yet.
	seenMu sync.Mutex
	seen   map[digest.Digest]time.Time
}

// Options configure a Registry.
type Options struct {
	// Dir holds the registry's whole state.
	Dir string
	// Logger receives the registry's logs; nil discards them.
	Logger *slog.Logger
	// Auth, when not nil, requires credentials for every request.
	Auth *AuthOptions
	// Now is the clock; nil means time.Now.
	Now func() time.Time
}

// handlerFunc serves one endpoint; a returned error is rendered by
// writeError, so it must not have written a response.
type handlerFunc func(w http.ResponseWriter, req *http.Request, rt route) error

// New opens the registry in dir without authentication; see Open.
func New(dir string, logger *slog.Logger) (*Registry, error) {
	return Open(Options{Dir: dir, Logger: logger})
}

// Open opens (creating if needed) a registry whose state lives under
// o.Dir. It takes an exclusive lock on the directory, held until Close, and
// removes temporary files a crash may have left behind. Upload sessions
// left open survive and can be resumed.
func Open(o Options) (*Registry, error) {
	logger, dir := o.Logger, o.Dir
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	r := &Registry{store: store{root: dir}, logger: logger, now: o.Now, seen: map[digest.Digest]time.Time{}}
	if o.Auth != nil {
		a, err := newAuthenticator(*o.Auth, o.Now)
		if err != nil {
			return nil, err
		}
		r.auth = a
	}
	if err := os.MkdirAll(dir, dirPerm); err != nil {
		return nil, fmt.Errorf("open registry: %w", err)
	}
	release, err := lockDir(dir)
	if err != nil {
		return nil, fmt.Errorf("open registry %s: %w", dir, err)
	}
	if err := r.store.init(); err != nil {
		_ = release()
		return nil, fmt.Errorf("open registry %s: %w", dir, err)
	}
	if err := r.store.sweepTemp(); err != nil {
		_ = release()
		return nil, fmt.Errorf("open registry %s: sweep temporary files: %w", dir, err)
	}
	r.release = release
	r.routes = map[routeKind]map[string]handlerFunc{
		routeBase:        {http.MethodGet: r.serveBase, http.MethodHead: r.serveBase},
		routeCatalog:     {http.MethodGet: r.serveCatalog},
		routeTags:        {http.MethodGet: r.serveTags},
		routeManifest:    {http.MethodGet: r.getManifest, http.MethodHead: r.getManifest, http.MethodPut: r.putManifest, http.MethodDelete: r.deleteManifest},
		routeBlob:        {http.MethodGet: r.getBlob, http.MethodHead: r.getBlob, http.MethodDelete: r.deleteBlob},
		routeUploadStart: {http.MethodPost: r.startUpload},
		routeUpload:      {http.MethodGet: r.uploadStatus, http.MethodPatch: r.patchUpload, http.MethodPut: r.finishUpload, http.MethodDelete: r.cancelUpload},
		routeReferrers:   {http.MethodGet: r.getReferrers},
	}
	return r, nil
}

// Close releases the directory lock. Requests served after Close get 503
// UNAVAILABLE; stop the HTTP server first so none are in flight. Close is
// idempotent.
func (r *Registry) Close() error {
	if r.closed.Swap(true) {
		return nil
	}
	return r.release()
}

// Handler serves /v2/ and everything under it: the Distribution API v1.1
// (pull, push, content discovery, content management, referrers). Requests
// outside /v2/ get 404. Mount it at "/v2/" of the server's mux.
func (r *Registry) Handler() http.Handler {
	return http.HandlerFunc(r.serveHTTP)
}

func (r *Registry) serveHTTP(w http.ResponseWriter, req *http.Request) {
	w.Header().Set("Docker-Distribution-API-Version", "registry/2.0")
	if r.closed.Load() {
		r.writeError(w, req, newError(http.StatusServiceUnavailable, codeUnavailable))
		return
	}
	if req.URL.Path == tokenPath && r.auth != nil {
		if err := r.auth.serveToken(w, req); err != nil {
			r.writeError(w, req, err)
		}
		return
	}
	rt, err := parseRoute(req.URL.Path)
	if err != nil {
		r.writeError(w, req, err)
		return
	}
	methods := r.routes[rt.kind]
	h, ok := methods[req.Method]
	if !ok {
		allow := make([]string, 0, len(methods))
		for m := range methods {
			allow = append(allow, m)
		}
		slices.Sort(allow)
		r.writeError(w, req, errorf(http.StatusMethodNotAllowed, codeUnsupported, "method %s not allowed", req.Method).
			withHeader("Allow", strings.Join(allow, ", ")))
		return
	}
	if r.auth != nil {
		if err := r.auth.authorize(req, needs(req, rt)); err != nil {
			r.writeError(w, req, err)
			return
		}
	}
	if err := h(w, req, rt); err != nil {
		r.writeError(w, req, err)
	}
}

// tokenPath is the token endpoint. No repository route can be this path:
// they all have at least two components after /v2/.
const tokenPath = "/v2/token"

// needs returns the accesses a request to rt needs, as Docker Distribution
// asks for them: pull to read, pull and push to write, delete to delete,
// registry:catalog:* to list repositories, and pull on the source of a
// cross-repository mount.
func needs(req *http.Request, rt route) []access {
	repo := func(actions ...string) access { return access{Type: typeRepository, Name: rt.name, Actions: actions} }
	switch rt.kind {
	case routeBase:
		return nil
	case routeCatalog:
		return []access{{Type: typeRegistry, Name: registryCatalog, Actions: []string{actionAll}}}
	case routeTags, routeReferrers:
		return []access{repo(actionPull)}
	case routeManifest, routeBlob:
		switch req.Method {
		case http.MethodGet, http.MethodHead:
			return []access{repo(actionPull)}
		case http.MethodDelete:
			return []access{repo(actionDelete)}
		}
		return []access{repo(actionPull, actionPush)}
	case routeUploadStart:
		need := []access{repo(actionPull, actionPush)}
		q := req.URL.Query()
		if from := q.Get("from"); q.Get("mount") != "" && from != "" && from != rt.name && validName(from) {
			need = append(need, access{Type: typeRepository, Name: from, Actions: []string{actionPull}})
		}
		return need
	}
	return []access{repo(actionPull, actionPush)}
}

// AuthEnabled reports whether the registry requires credentials.
func (r *Registry) AuthEnabled() bool { return r.auth != nil }

// Guard wraps h, a handler of Kappa's management API, so that it serves
// only callers allowed to manage the registry: with authentication, those
// whose credentials grant registry:admin:* (any user, Basic or token; not
// the internal user); without, only clients on this host. Refusals get the
// registry's 401 or 403 error bodies.
func (r *Registry) Guard(h http.Handler) http.Handler {
	need := []access{{Type: typeRegistry, Name: registryAdmin, Actions: []string{actionAll}}}
	return http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		var err error
		switch {
		case r.auth != nil:
			err = r.auth.authorize(req, need)
		case !loopbackPeer(req.RemoteAddr):
			err = errorf(http.StatusForbidden, codeDenied, "the registry management API is reachable from this host only unless credentials are configured")
		}
		if err != nil {
			r.writeError(w, req, err)
			return
		}
		h.ServeHTTP(w, req)
	})
}

// serveBase answers the API version check.
func (r *Registry) serveBase(w http.ResponseWriter, req *http.Request, _ route) error {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Content-Length", "2")
	w.WriteHeader(http.StatusOK)
	if req.Method != http.MethodHead {
		_, _ = io.WriteString(w, "{}")
	}
	return nil
}

// Resolve returns the digest and media type of the manifest that reference
// (a tag or a digest) names in repository repo. Errors wrap
// apierr.InvalidParameter for a malformed repo or reference and
// apierr.NotFound when there is no such manifest.
func (r *Registry) Resolve(ctx context.Context, repo, reference string) (dgst string, mediaType string, err error) {
	if err := ctx.Err(); err != nil {
		return "", "", err
	}
	if !validName(repo) {
		return "", "", fmt.Errorf("resolve %s: invalid repository name: %w", repo, apierr.InvalidParameter)
	}
	var d digest.Digest
	if strings.Contains(reference, ":") {
		if d, err = parseDigest(reference); err != nil {
			return "", "", fmt.Errorf("resolve %s@%s: %w: %w", repo, reference, apierr.InvalidParameter, err)
		}
	} else {
		if !validTag(reference) {
			return "", "", fmt.Errorf("resolve %s:%s: invalid tag: %w", repo, reference, apierr.InvalidParameter)
		}
		d, err = r.store.tagDigest(repo, reference)
		if errors.Is(err, fs.ErrNotExist) {
			return "", "", fmt.Errorf("resolve %s:%s: %w", repo, reference, apierr.NotFound)
		}
		if err != nil {
			return "", "", fmt.Errorf("resolve %s:%s: %w", repo, reference, err)
		}
	}
	link, err := r.store.manifestLink(repo, d)
	if errors.Is(err, fs.ErrNotExist) {
		return "", "", fmt.Errorf("resolve %s %s: manifest %s: %w", repo, reference, d, apierr.NotFound)
	}
	if err != nil {
		return "", "", fmt.Errorf("resolve %s %s: %w", repo, reference, err)
	}
	return d.String(), link.MediaType, nil
}

// OpenBlob opens the content with digest dgst (a layer, a config or a
// manifest) from the content store, whatever repository it was pushed to,
// and returns it with its size in bytes. The caller closes it. Errors wrap
// apierr.InvalidParameter for a malformed digest and apierr.NotFound when
// the content is absent.
func (r *Registry) OpenBlob(ctx context.Context, dgst string) (io.ReadCloser, int64, error) {
	if err := ctx.Err(); err != nil {
		return nil, 0, err
	}
	d, err := parseDigest(dgst)
	if err != nil {
		return nil, 0, fmt.Errorf("open blob: %w: %w", apierr.InvalidParameter, err)
	}
	f, size, err := r.store.openBlob(d)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, 0, fmt.Errorf("open blob %s: %w", d, apierr.NotFound)
	}
	if err != nil {
		return nil, 0, fmt.Errorf("open blob %s: %w", d, err)
	}
	return f, size, nil
}
