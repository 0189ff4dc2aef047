package daemon

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"

	"github.com/kappa-run/kappa/internal/apierr"
	"github.com/kappa-run/kappa/internal/image"
	"github.com/kappa-run/kappa/internal/registry"
)

// This file wires the embedded registry: its authentication, the
// credentials Kappa's own image pulls use against it, the management API
// under /kappa/registry/ (garbage collection, repository settings), and
// the rule that keeps the unauthenticated Lambda API on loopback.

// adminPrefix is where the registry management API is served.
const adminPrefix = "/kappa/registry/"

// openRegistry opens the embedded registry, with authentication when
// credentials are configured, and returns the keychain the image store
// pulls with: the internal user for the server's own addresses, the docker
// config of the user running Kappa for every other registry.
func (d *Daemon) openRegistry(addr *net.TCPAddr) (authn.Keychain, error) {
	opts := registry.Options{Dir: filepath.Join(d.cfg.DataDir, "registry"), Logger: d.log.With("svc", "registry")}
	var keychain authn.Keychain = authn.DefaultKeychain
	if d.cfg.RegistryAuth() {
		users := map[string][]byte{}
		if d.cfg.RegistryHtpasswd != "" {
			f, err := os.Open(d.cfg.RegistryHtpasswd)
			if err != nil {
				return nil, fmt.Errorf("registry users: %w", err)
			}
			users, err = registry.ParseHtpasswd(f)
			f.Close()
			if err != nil {
				return nil, fmt.Errorf("registry users %s: %w", d.cfg.RegistryHtpasswd, err)
			}
		}
		if d.cfg.RegistryUser != "" {
			h, err := registry.HashPassword(d.cfg.RegistryPassword)
			if err != nil {
				return nil, fmt.Errorf("--registry-password: %w", err)
			}
			users[d.cfg.RegistryUser] = h
		}
		secret := make([]byte, 32)
		if _, err := rand.Read(secret); err != nil {
			return nil, err
		}
		internal := hex.EncodeToString(secret)
		opts.Auth = &registry.AuthOptions{Users: users, InternalPassword: internal, Realm: d.cfg.RegistryRealm}
		keychain = authn.NewMultiKeychain(&selfKeychain{hosts: selfHosts(d.cfg.Listen, addr), password: internal}, authn.DefaultKeychain)
	}
	reg, err := registry.Open(opts)
	if err != nil {
		return nil, fmt.Errorf("registry: %w", err)
	}
	d.registry = reg
	return keychain, nil
}

// selfHosts returns the host:port names under which image references reach
// this server's registry.
func selfHosts(listen string, addr *net.TCPAddr) map[string]bool {
	port := strconv.Itoa(addr.Port)
	hosts := map[string]bool{listen: true, addr.String(): true}
	for _, h := range []string{"localhost", "127.0.0.1", "[::1]"} {
		hosts[h+":"+port] = true
	}
	return hosts
}

// selfKeychain gives the internal user's credentials for the server's own
// registry, and nothing for any other.
type selfKeychain struct {
	hosts    map[string]bool
	password string
}

func (k *selfKeychain) Resolve(r authn.Resource) (authn.Authenticator, error) {
	if k.hosts[strings.ToLower(r.RegistryStr())] {
		return authn.FromConfig(authn.AuthConfig{Username: registry.InternalUser, Password: k.password}), nil
	}
	return authn.Anonymous, nil
}

// loopbackPeer reports whether a request comes from this host.
func loopbackPeer(r *http.Request) bool {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return false
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// refuseRemote answers a request for an unauthenticated surface (the
// Lambda API, metrics, health) from another host, when the server listens
// beyond loopback for its registry only, with Lambda's AccessDenied shape.
func refuseRemote(w http.ResponseWriter) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("X-Amzn-ErrorType", "AccessDeniedException")
	w.WriteHeader(http.StatusForbidden)
	io.WriteString(w, `{"Type":"User","message":"Kappa's Lambda API has no authentication yet: it answers clients on this host only unless the server runs with --insecure"}`+"\n")
}

// functionPins lists the images function versions run, for registry and
// layer-store garbage collection: $LATEST, every published version, and
// the code an UpdateFunctionCode is deploying.
type functionPins struct{ d *Daemon }

func (p functionPins) PinnedManifests(ctx context.Context) ([]string, error) {
	fns, err := p.d.functions.List(ctx)
	if err != nil {
		return nil, err
	}
	var out []string
	for _, fn := range fns {
		out = append(out, fn.Latest.Code.Digest)
		vs, err := p.d.functions.Versions(ctx, fn.Latest.Name)
		if errors.Is(err, apierr.NotFound) {
			continue // deleted meanwhile
		}
		if err != nil {
			return nil, err
		}
		for _, v := range vs {
			out = append(out, v.Code.Digest, digestOf(v.Code.ResolvedImageURI))
		}
	}
	return compact(out), nil
}

// digestOf returns the digest of a "repo@sha256:…" reference, or "".
func digestOf(ref string) string {
	if _, d, ok := strings.Cut(ref, "@"); ok {
		return d
	}
	return ""
}

func compact(list []string) []string {
	seen := map[string]bool{}
	out := list[:0]
	for _, s := range list {
		if s != "" && !seen[s] {
			seen[s] = true
			out = append(out, s)
		}
	}
	return out
}

// registryAdmin serves the registry management API:
//
//	POST /kappa/registry/gc[?dryRun=true][&grace=1h]
//	GET|PUT /kappa/registry/repositories/<name>/settings   {"tagMutability":"IMMUTABLE"}
//
// behind registry.Guard: with credentials configured any registry user
// may call it; without, clients on this host only.
type registryAdmin struct {
	d  *Daemon
	mu sync.Mutex // one collection at a time
}

// gcResult is the answer of POST /kappa/registry/gc.
type gcResult struct {
	Registry registry.GCReport `json:"registry"`
	Layers   image.GCReport    `json:"layers"`
	Seconds  float64           `json:"seconds"`
}

// maxAdminBody bounds a management API request body.
const maxAdminBody = 64 << 10

func (a *registryAdmin) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	rest := strings.TrimPrefix(r.URL.Path, adminPrefix)
	switch {
	case rest == "gc":
		if r.Method != http.MethodPost {
			adminError(w, http.StatusMethodNotAllowed, "UNSUPPORTED", "use POST")
			return
		}
		a.gc(w, r)
	case strings.HasPrefix(rest, "repositories/") && strings.HasSuffix(rest, "/settings"):
		name := strings.TrimSuffix(strings.TrimPrefix(rest, "repositories/"), "/settings")
		a.settings(w, r, name)
	default:
		adminError(w, http.StatusNotFound, "NOT_FOUND", "unknown management endpoint")
	}
}

func (a *registryAdmin) gc(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	dry := false
	if v := q.Get("dryRun"); v != "" {
		var err error
		if dry, err = strconv.ParseBool(v); err != nil {
			adminError(w, http.StatusBadRequest, "INVALID_PARAMETER", "dryRun must be true or false")
			return
		}
	}
	grace := registry.DefaultGCGrace
	if g := q.Get("grace"); g != "" {
		var err error
		if grace, err = time.ParseDuration(g); err != nil || grace < 0 || grace > 365*24*time.Hour {
			adminError(w, http.StatusBadRequest, "INVALID_PARAMETER", "grace must be a duration such as 30m, at least 0s")
			return
		}
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	res, err := a.d.collect(r.Context(), grace, dry)
	if err != nil {
		a.d.log.Error("registry garbage collection", "err", err)
		adminError(w, http.StatusInternalServerError, "UNKNOWN", "garbage collection failed; see the server log")
		return
	}
	adminJSON(w, http.StatusOK, res)
}

// collect runs a registry garbage collection, then a layer-store one that
// keeps the images function versions run and those the registry holds.
func (d *Daemon) collect(ctx context.Context, grace time.Duration, dry bool) (gcResult, error) {
	start := time.Now()
	g := grace
	if g == 0 {
		g = -1 // the caller asked for none
	}
	pins := functionPins{d}
	var res gcResult
	var err error
	if res.Registry, err = d.registry.GC(ctx, registry.GCOptions{Pins: pins, Grace: g, DryRun: dry}); err != nil {
		return res, err
	}
	keep := map[string]bool{}
	pinned, err := pins.PinnedManifests(ctx)
	if err != nil {
		return res, err
	}
	held, err := d.registry.ManifestDigests(ctx)
	if err != nil {
		return res, err
	}
	for _, s := range append(pinned, held...) {
		keep[s] = true
	}
	if res.Layers, err = d.images.GC(ctx, image.GCOptions{
		Keep: func(digest string) bool { return keep[digest] }, Grace: g, DryRun: dry,
	}); err != nil {
		return res, err
	}
	res.Seconds = time.Since(start).Seconds()
	return res, nil
}

func (a *registryAdmin) settings(w http.ResponseWriter, r *http.Request, name string) {
	ctx := r.Context()
	switch r.Method {
	case http.MethodGet:
	case http.MethodPut:
		body, err := io.ReadAll(io.LimitReader(r.Body, maxAdminBody))
		if err != nil {
			adminError(w, http.StatusBadRequest, "INVALID_PARAMETER", "could not read the request body")
			return
		}
		set, err := registry.ParseSettings(body)
		if err == nil {
			err = a.d.registry.SetSettings(ctx, name, set)
		}
		if errors.Is(err, apierr.InvalidParameter) {
			adminError(w, http.StatusBadRequest, "INVALID_PARAMETER", strings.TrimPrefix(err.Error(), apierr.InvalidParameter.Error()+": "))
			return
		}
		if err != nil {
			a.d.log.Error("set repository settings", "repo", name, "err", err)
			adminError(w, http.StatusInternalServerError, "UNKNOWN", "could not save the settings")
			return
		}
	default:
		adminError(w, http.StatusMethodNotAllowed, "UNSUPPORTED", "use GET or PUT")
		return
	}
	set, err := a.d.registry.Settings(ctx, name)
	if errors.Is(err, apierr.InvalidParameter) {
		adminError(w, http.StatusBadRequest, "NAME_INVALID", "invalid repository name")
		return
	}
	if err != nil {
		a.d.log.Error("read repository settings", "repo", name, "err", err)
		adminError(w, http.StatusInternalServerError, "UNKNOWN", "could not read the settings")
		return
	}
	adminJSON(w, http.StatusOK, map[string]string{"repositoryName": name, "tagMutability": set.TagMutability})
}

func adminJSON(w http.ResponseWriter, status int, v any) {
	b, _ := json.MarshalIndent(v, "", "  ")
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	w.Write(append(b, '\n'))
}

// adminError writes an error of the management API in the registry's
// error shape.
func adminError(w http.ResponseWriter, status int, code, msg string) {
	adminJSON(w, status, map[string]any{"errors": []map[string]string{{"code": code, "message": msg}}})
}
