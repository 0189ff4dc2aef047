package registry

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/crane"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"
	"github.com/opencontainers/go-digest"
	"golang.org/x/crypto/bcrypt"
)

const (
	testUser     = "alice"
	testPassword = "s3cret"
	testInternal = "internal-password"
)

// testClock is a settable clock.
type testClock struct{ t time.Time }

func (c *testClock) now() time.Time { return c.t }

// newAuthServer is a registry with one user and the internal user.
func newAuthServer(t *testing.T) (*testServer, *testClock) {
	t.Helper()
	hash, err := bcrypt.GenerateFromPassword([]byte(testPassword), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	clock := &testClock{t: time.Now()}
	reg, err := Open(Options{
		Dir: t.TempDir(),
		Auth: &AuthOptions{
			Users:            map[string][]byte{testUser: hash},
			InternalPassword: testInternal,
		},
		Now: clock.now,
	})
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	ts := &testServer{t: t, reg: reg, srv: httptest.NewServer(reg.Handler())}
	t.Cleanup(ts.close)
	return ts, clock
}

func basic(user, pass string) string {
	return "Basic " + base64.StdEncoding.EncodeToString([]byte(user+":"+pass))
}

// token fetches a token from the registry's token endpoint.
func (ts *testServer) token(t *testing.T, user, pass string, scopes ...string) string {
	t.Helper()
	q := url.Values{"service": {DefaultService}, "scope": scopes}
	r := ts.do("GET", tokenPath+"?"+q.Encode(), nil, "Authorization", basic(user, pass))
	r.expect(t, http.StatusOK, "")
	var tr struct {
		Token       string `json:"token"`
		AccessToken string `json:"access_token"`
		ExpiresIn   int    `json:"expires_in"`
	}
	if err := json.Unmarshal(r.body, &tr); err != nil || tr.Token == "" || tr.Token != tr.AccessToken || tr.ExpiresIn != 300 {
		t.Fatalf("token response %s (%v)", r.body, err)
	}
	return tr.Token
}

func TestAuthChallenge(t *testing.T) {
	ts, _ := newAuthServer(t)
	img := newTestImage(t, "auth", nil)
	hash := basic(testUser, testPassword)
	// Seed content with valid credentials.
	ts.do("POST", "/v2/app/blobs/uploads/?digest="+img.configDigest().String(), img.config, "Authorization", hash).expect(t, 201, "")

	tests := []struct {
		name      string
		method    string
		path      string
		auth      string
		status    int
		code      string
		challenge string // substring of WWW-Authenticate
	}{
		{name: "base anonymous", method: "GET", path: "/v2/", status: 401, code: "UNAUTHORIZED",
			challenge: `Bearer realm="http://` + ts.host() + `/v2/token",service="kappa"`},
		{name: "pull anonymous", method: "GET", path: "/v2/app/manifests/v1", status: 401, code: "UNAUTHORIZED",
			challenge: `scope="repository:app:pull"`},
		{name: "push anonymous", method: "POST", path: "/v2/app/blobs/uploads/", status: 401, code: "UNAUTHORIZED",
			challenge: `scope="repository:app:pull,push"`},
		{name: "delete anonymous", method: "DELETE", path: "/v2/app/manifests/v1", status: 401, code: "UNAUTHORIZED",
			challenge: `scope="repository:app:delete"`},
		{name: "catalog anonymous", method: "GET", path: "/v2/_catalog", status: 401, code: "UNAUTHORIZED",
			challenge: `scope="registry:catalog:*"`},
		{name: "mount names its source", method: "POST", path: "/v2/app/blobs/uploads/?mount=" + img.configDigest().String() + "&from=other",
			status: 401, code: "UNAUTHORIZED", challenge: `scope="repository:app:pull,push repository:other:pull"`},
		{name: "wrong password", method: "GET", path: "/v2/", auth: basic(testUser, "nope"), status: 401, code: "UNAUTHORIZED", challenge: "Bearer"},
		{name: "unknown user", method: "GET", path: "/v2/", auth: basic("mallory", testPassword), status: 401, code: "UNAUTHORIZED"},
		{name: "garbage header", method: "GET", path: "/v2/", auth: "Basic !!!", status: 401, code: "UNAUTHORIZED"},
		{name: "other scheme", method: "GET", path: "/v2/", auth: "Digest x", status: 401, code: "UNAUTHORIZED"},
		{name: "forged token", method: "GET", path: "/v2/", auth: "Bearer eyJhbGciOiJub25lIn0.e30.", status: 401, code: "UNAUTHORIZED",
			challenge: `error="invalid_token"`},
		{name: "basic base", method: "GET", path: "/v2/", auth: hash, status: 200},
		{name: "basic pull", method: "HEAD", path: "/v2/app/blobs/" + img.configDigest().String(), auth: hash, status: 200},
		{name: "basic catalog", method: "GET", path: "/v2/_catalog", auth: hash, status: 200},
		{name: "internal pull", method: "HEAD", path: "/v2/app/blobs/" + img.configDigest().String(), auth: basic(InternalUser, testInternal), status: 200},
		{name: "internal push refused", method: "POST", path: "/v2/app/blobs/uploads/", auth: basic(InternalUser, testInternal), status: 403, code: "DENIED"},
		{name: "internal delete refused", method: "DELETE", path: "/v2/app/blobs/" + img.configDigest().String(), auth: basic(InternalUser, testInternal), status: 403, code: "DENIED"},
		{name: "internal wrong password", method: "GET", path: "/v2/", auth: basic(InternalUser, "x"), status: 401, code: "UNAUTHORIZED"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var hdr []string
			if tt.auth != "" {
				hdr = []string{"Authorization", tt.auth}
			}
			r := ts.do(tt.method, tt.path, nil, hdr...)
			if tt.method == "HEAD" {
				if r.status != tt.status {
					t.Fatalf("status %d, want %d", r.status, tt.status)
				}
			} else {
				r.expect(t, tt.status, tt.code)
			}
			if got := r.header.Get("WWW-Authenticate"); !strings.Contains(got, tt.challenge) || (tt.status == 401) != (got != "") {
				t.Fatalf("WWW-Authenticate = %q, want it to contain %q", got, tt.challenge)
			}
		})
	}
}

func TestTokenScopes(t *testing.T) {
	ts, clock := newAuthServer(t)
	img := newTestImage(t, "tok", nil)
	ts.do("POST", "/v2/app/blobs/uploads/?digest="+img.configDigest().String(), img.config,
		"Authorization", basic(testUser, testPassword)).expect(t, 201, "")
	blob := "/v2/app/blobs/" + img.configDigest().String()

	pull := ts.token(t, testUser, testPassword, "repository:app:pull")
	push := ts.token(t, testUser, testPassword, "repository:app:pull,push", "repository:other:pull")
	internal := ts.token(t, InternalUser, testInternal, "repository:app:pull,push,delete")
	none := ts.token(t, testUser, testPassword)

	tests := []struct {
		name   string
		method string
		path   string
		token  string
		status int
		extra  string // substring of WWW-Authenticate
	}{
		{name: "pull with pull", method: "GET", path: blob, token: pull, status: 200},
		{name: "base with any token", method: "GET", path: "/v2/", token: none, status: 200},
		{name: "push with pull", method: "POST", path: "/v2/app/blobs/uploads/", token: pull, status: 401, extra: `error="insufficient_scope"`},
		{name: "push with push", method: "POST", path: "/v2/app/blobs/uploads/", token: push, status: 202},
		{name: "other repository", method: "GET", path: "/v2/third/tags/list", token: push, status: 401, extra: `scope="repository:third:pull"`},
		{name: "mount from granted source", method: "POST", path: "/v2/app/blobs/uploads/?mount=" + img.configDigest().String() + "&from=other", token: push, status: 202},
		{name: "internal token pulls", method: "GET", path: blob, token: internal, status: 200},
		{name: "internal token never pushes", method: "POST", path: "/v2/app/blobs/uploads/", token: internal, status: 401},
		{name: "internal token never deletes", method: "DELETE", path: blob, token: internal, status: 401},
		{name: "tampered signature", method: "GET", path: blob, token: pull[:len(pull)-2] + "AA", status: 401, extra: "invalid_token"},
		{name: "swapped payload", method: "GET", path: blob, token: strings.Split(pull, ".")[0] + "." + strings.Split(push, ".")[1] + "." + strings.Split(pull, ".")[2], status: 401},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := ts.do(tt.method, tt.path, nil, "Authorization", "Bearer "+tt.token)
			if r.status != tt.status {
				t.Fatalf("status %d, want %d: %s", r.status, tt.status, r)
			}
			if !strings.Contains(r.header.Get("WWW-Authenticate"), tt.extra) {
				t.Fatalf("WWW-Authenticate = %q, want %q", r.header.Get("WWW-Authenticate"), tt.extra)
			}
		})
	}

	t.Run("expired", func(t *testing.T) {
		clock.t = clock.t.Add(DefaultTokenTTL + time.Second)
		defer func() { clock.t = clock.t.Add(-DefaultTokenTTL - time.Second) }()
		r := ts.do("GET", blob, nil, "Authorization", "Bearer "+pull)
		r.expect(t, 401, "UNAUTHORIZED")
	})
}

func TestTokenEndpoint(t *testing.T) {
	ts, _ := newAuthServer(t)
	tests := []struct {
		name   string
		method string
		query  string
		body   string
		auth   string
		status int
		want   string // substring of the body
	}{
		{name: "get", method: "GET", query: "?service=kappa&scope=repository:a/b:pull", auth: basic(testUser, testPassword), status: 200, want: `"token"`},
		{name: "get no scope", method: "GET", auth: basic(testUser, testPassword), status: 200, want: `"access_token"`},
		{name: "get anonymous", method: "GET", query: "?scope=repository:a:pull", status: 401, want: "UNAUTHORIZED"},
		{name: "get bad password", method: "GET", auth: basic(testUser, "x"), status: 401, want: "UNAUTHORIZED"},
		{name: "get bearer is not a login", method: "GET", auth: "Bearer x.y.z", status: 401},
		{name: "post password grant", method: "POST", body: "grant_type=password&username=alice&password=s3cret&scope=repository:a:pull+push&client_id=docker",
			status: 200, want: `"token_type":"Bearer"`},
		{name: "post bad password", method: "POST", body: "grant_type=password&username=alice&password=no", status: 401},
		{name: "post refresh unsupported", method: "POST", body: "grant_type=refresh_token&refresh_token=x", status: 400, want: "unsupported_grant_type"},
		{name: "post malformed", method: "POST", body: "%zz", status: 400},
		{name: "post too large", method: "POST", body: strings.Repeat("a", maxTokenForm+10), status: 413},
		{name: "delete", method: "DELETE", status: 405},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var hdr []string
			if tt.auth != "" {
				hdr = append(hdr, "Authorization", tt.auth)
			}
			var body []byte
			if tt.body != "" {
				body = []byte(tt.body)
				hdr = append(hdr, "Content-Type", "application/x-www-form-urlencoded")
			}
			r := ts.do(tt.method, tokenPath+tt.query, body, hdr...)
			if r.status != tt.status || !strings.Contains(string(r.body), tt.want) {
				t.Fatalf("got %s, want %d with %q", r, tt.status, tt.want)
			}
			if r.status == 401 && !strings.HasPrefix(r.header.Get("WWW-Authenticate"), "Basic ") {
				t.Fatalf("401 without a Basic challenge: %v", r.header)
			}
		})
	}
	// The POST grant answers the granted scopes, dropping what is invalid.
	r := ts.do("POST", tokenPath, []byte("grant_type=password&username=alice&password=s3cret&scope="+
		url.QueryEscape("repository:a:pull,push,frob repository:BAD:pull registry:catalog:* bogus")),
		"Content-Type", "application/x-www-form-urlencoded")
	var tr struct{ Scope string }
	if err := json.Unmarshal(r.body, &tr); err != nil || tr.Scope != "repository:a:pull,push registry:catalog:*" {
		t.Fatalf("granted scope %q (%v): %s", tr.Scope, err, r.body)
	}
}

// TestAuthClients drives the token flow with go-containerregistry, the
// client crane and Kappa's image package use.
func TestAuthClients(t *testing.T) {
	ts, _ := newAuthServer(t)
	img, err := random.Image(2048, 2)
	if err != nil {
		t.Fatal(err)
	}
	ref := mustRef(t, ts.host()+"/secure/app:v1")
	user := remote.WithAuth(&authn.Basic{Username: testUser, Password: testPassword})

	err = remote.Write(ref, img)
	var te *transport.Error
	if err == nil || !asTransportError(err, &te) || te.StatusCode != http.StatusUnauthorized {
		t.Fatalf("anonymous push: %v, want 401", err)
	}
	if err := remote.Write(ref, img, user); err != nil {
		t.Fatalf("push with credentials: %v", err)
	}
	if _, err := remote.Image(ref); err == nil {
		t.Fatal("anonymous pull succeeded")
	}
	got, err := remote.Image(ref, user)
	if err != nil {
		t.Fatalf("pull: %v", err)
	}
	if gd, _ := got.Digest(); gd != mustDigest(t, img) {
		t.Fatalf("pulled %s", gd)
	}
	internal := remote.WithAuth(&authn.Basic{Username: InternalUser, Password: testInternal})
	if _, err := remote.Image(ref, internal); err != nil {
		t.Fatalf("internal pull: %v", err)
	}
	if err := remote.Write(mustRef(t, ts.host()+"/secure/app:v2"), img, internal); err == nil {
		t.Fatal("internal user pushed")
	}
	// A cross-repository copy mounts with a token that covers the source.
	opt := crane.WithAuth(&authn.Basic{Username: testUser, Password: testPassword})
	if err := crane.Copy(ref.String(), ts.host()+"/secure/copy:v1", opt); err != nil {
		t.Fatalf("crane copy: %v", err)
	}
	if repos, err := crane.Catalog(ts.host(), opt); err != nil || strings.Join(repos, ",") != "secure/app,secure/copy" {
		t.Fatalf("catalog = %v, %v", repos, err)
	}
}

func TestGuard(t *testing.T) {
	ok := http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusTeapot) })
	authed, _ := newAuthServer(t)
	open := newTestServer(t)
	tests := []struct {
		name   string
		reg    *Registry
		remote string
		auth   string
		status int
	}{
		{name: "open, loopback", reg: open.reg, remote: "127.0.0.1:5000", status: http.StatusTeapot},
		{name: "open, ipv6 loopback", reg: open.reg, remote: "[::1]:5000", status: http.StatusTeapot},
		{name: "open, remote", reg: open.reg, remote: "192.0.2.1:5000", status: http.StatusForbidden},
		{name: "auth, anonymous", reg: authed.reg, remote: "127.0.0.1:5000", status: http.StatusUnauthorized},
		{name: "auth, user", reg: authed.reg, remote: "192.0.2.1:5000", auth: basic(testUser, testPassword), status: http.StatusTeapot},
		{name: "auth, internal", reg: authed.reg, remote: "127.0.0.1:5000", auth: basic(InternalUser, testInternal), status: http.StatusForbidden},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req := httptest.NewRequest("POST", "/kappa/registry/gc", nil)
			req.RemoteAddr = tt.remote
			if tt.auth != "" {
				req.Header.Set("Authorization", tt.auth)
			}
			rec := httptest.NewRecorder()
			tt.reg.Guard(ok).ServeHTTP(rec, req)
			if rec.Code != tt.status {
				t.Fatalf("status %d, want %d: %s", rec.Code, tt.status, rec.Body)
			}
		})
	}
}

func TestAuthOptionsRejected(t *testing.T) {
	good, _ := bcrypt.GenerateFromPassword([]byte("x"), bcrypt.MinCost)
	tests := []struct {
		name string
		o    AuthOptions
	}{
		{name: "no users", o: AuthOptions{}},
		{name: "reserved user", o: AuthOptions{Users: map[string][]byte{InternalUser: good}}},
		{name: "not bcrypt", o: AuthOptions{Users: map[string][]byte{"a": []byte("plain")}}},
		{name: "colon in name", o: AuthOptions{Users: map[string][]byte{"a:b": good}}},
		{name: "realm not a URL", o: AuthOptions{Users: map[string][]byte{"a": good}, Realm: "ftp://x"}},
		{name: "realm with quote", o: AuthOptions{Users: map[string][]byte{"a": good}, Realm: `http://x/"`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := Open(Options{Dir: t.TempDir(), Auth: &tt.o}); err == nil {
				t.Fatal("Open accepted the options")
			}
		})
	}
}

func (img testImage) configDigest() digest.Digest { return digest.FromBytes(img.config) }

func asTransportError(err error, te **transport.Error) bool { return errors.As(err, te) }

func mustDigest(t *testing.T, img v1.Image) v1.Hash {
	t.Helper()
	d, err := img.Digest()
	if err != nil {
		t.Fatal(err)
	}
	return d
}
