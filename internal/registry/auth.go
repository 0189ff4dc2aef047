package registry

import (
	"crypto/sha256"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"time"

	"golang.org/x/crypto/bcrypt"
)

// InternalUser is the built-in account Kappa's own image pulls use. It may
// pull from every repository and do nothing else; its password exists only
// in the memory of the server (AuthOptions.InternalPassword).
const InternalUser = "kappa-internal"

// Defaults of AuthOptions.
const (
	DefaultService  = "kappa"
	DefaultTokenTTL = 5 * time.Minute
)

// AuthOptions turn on authentication: every request then needs a user's
// credentials, as Basic auth or as a token from the registry's token
// endpoint (/v2/token), which is what docker, podman, skopeo and crane do
// after a 401 with a Bearer challenge. Every user may do everything; a
// token grants what its request asked for, and each request needs the
// scope its challenge names (repository:<name>:pull; pull,push to push;
// delete to delete; registry:catalog:* to list repositories;
// registry:admin:* for Kappa's management API).
type AuthOptions struct {
	// Users maps user names to bcrypt hashes (ParseHtpasswd, HashPassword).
	Users map[string][]byte
	// InternalPassword, when not empty, enables InternalUser with it.
	InternalPassword string
	// Realm is the token endpoint URL advertised in challenges. Empty means
	// http://<the request's Host>/v2/token (https when served over TLS);
	// set it when a TLS proxy fronts Kappa.
	Realm string
	// Service is the token service ("aud"); empty means DefaultService.
	Service string
	// TokenTTL is how long a token is valid; 0 means DefaultTokenTTL.
	TokenTTL time.Duration
}

// authenticator checks the credentials of requests and issues tokens.
type authenticator struct {
	users    map[string][]byte
	internal string
	realm    string
	service  string
	now      func() time.Time
	signer   *tokenSigner
	// dummy is compared against for unknown users, so that a user's
	// existence does not show in the response time.
	dummy []byte

	// verified caches Basic credentials that passed bcrypt, by the SHA-256
	// of user and password, until the time stored: bcrypt is meant to be
	// slow and a Basic-auth client sends credentials on every request.
	mu       sync.Mutex
	verified map[[32]byte]time.Time
}

// maxVerified bounds the Basic-credentials cache; it is emptied when full.
const maxVerified = 1024

func newAuthenticator(o AuthOptions, now func() time.Time) (*authenticator, error) {
	if len(o.Users) == 0 && o.InternalPassword == "" {
		return nil, errors.New("auth: no users")
	}
	for u, h := range o.Users {
		if err := checkUserName(u); err != nil {
			return nil, fmt.Errorf("auth: %w", err)
		}
		if u == InternalUser {
			return nil, fmt.Errorf("auth: user name %q is reserved", u)
		}
		if _, err := bcrypt.Cost(h); err != nil {
			return nil, fmt.Errorf("auth: user %q: %w", u, err)
		}
	}
	if o.Service == "" {
		o.Service = DefaultService
	}
	if o.TokenTTL <= 0 {
		o.TokenTTL = DefaultTokenTTL
	}
	if o.Realm != "" {
		u, err := url.Parse(o.Realm)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || strings.ContainsAny(o.Realm, `"\`) {
			return nil, fmt.Errorf("auth: realm %q is not an http(s) URL", o.Realm)
		}
	}
	signer, err := newTokenSigner(o.Service, o.TokenTTL)
	if err != nil {
		return nil, err
	}
	dummy, err := bcrypt.GenerateFromPassword([]byte("kappa-no-such-user"), bcrypt.DefaultCost)
	if err != nil {
		return nil, err
	}
	return &authenticator{
		users: o.Users, internal: o.InternalPassword, realm: o.Realm, service: o.Service,
		now: now, signer: signer, dummy: dummy, verified: map[[32]byte]time.Time{},
	}, nil
}

// principal is who a request authenticated as.
type principal struct {
	name string
	// pullOnly is the internal user: it may pull and nothing else.
	pullOnly bool
}

// grant returns what p may have of want.
func (p principal) grant(want []access) []access {
	if !p.pullOnly {
		return want
	}
	var out []access
	for _, a := range want {
		if a.Type == typeRepository && (slices.Contains(a.Actions, actionPull) || slices.Contains(a.Actions, actionAll)) {
			out = append(out, access{Type: a.Type, Name: a.Name, Actions: []string{actionPull}})
		}
	}
	return out
}

// password returns the principal the Basic credentials name, or false.
func (a *authenticator) password(user, pass string) (principal, bool) {
	if user == InternalUser {
		ok := a.internal != "" && subtle.ConstantTimeCompare([]byte(pass), []byte(a.internal)) == 1
		return principal{name: user, pullOnly: true}, ok
	}
	key := sha256.Sum256([]byte(user + "\x00" + pass))
	now := a.now()
	a.mu.Lock()
	exp, hit := a.verified[key]
	a.mu.Unlock()
	if hit && now.Before(exp) {
		return principal{name: user}, true
	}
	hash, known := a.users[user]
	if !known {
		hash = a.dummy
	}
	if bcrypt.CompareHashAndPassword(hash, []byte(pass)) != nil || !known {
		return principal{}, false
	}
	a.mu.Lock()
	if len(a.verified) >= maxVerified {
		clear(a.verified)
	}
	a.verified[key] = now.Add(a.signer.ttl)
	a.mu.Unlock()
	return principal{name: user}, true
}

// authorize admits req if its credentials allow every access in need (an
// empty need admits any valid credentials). Otherwise it returns the 401
// (with a challenge naming need) or 403 to send.
func (a *authenticator) authorize(req *http.Request, need []access) error {
	c := parseAuthorization(req.Header.Get("Authorization"))
	switch c.scheme {
	case "basic":
		p, ok := a.password(c.user, c.password)
		if !ok {
			return a.challenge(req, need, "").withCause(fmt.Errorf("bad password for user %q", c.user))
		}
		if !allows(p.grant(need), need) {
			return newError(http.StatusForbidden, codeDenied).withDetail(accessDetail(need))
		}
		return nil
	case "bearer":
		claims, err := a.signer.verify(c.token, a.now())
		if err != nil {
			return a.challenge(req, need, "invalid_token").withCause(err)
		}
		if !allows(claims.Access, need) {
			return a.challenge(req, need, "insufficient_scope")
		}
		return nil
	}
	return a.challenge(req, need, "")
}

// challenge is the 401 that tells a client where to get a token for need.
func (a *authenticator) challenge(req *http.Request, need []access, errCode string) *regError {
	var b strings.Builder
	fmt.Fprintf(&b, `Bearer realm="%s",service="%s"`, a.realmFor(req), a.service)
	if len(need) > 0 {
		scopes := make([]string, len(need))
		for i, n := range need {
			scopes[i] = n.String()
		}
		fmt.Fprintf(&b, `,scope="%s"`, strings.Join(scopes, " "))
	}
	if errCode != "" {
		fmt.Fprintf(&b, `,error="%s"`, errCode)
	}
	return newError(http.StatusUnauthorized, codeUnauthorized).
		withDetail(accessDetail(need)).
		withHeader("WWW-Authenticate", b.String())
}

// realmFor returns the token endpoint URL for a request: the configured
// realm, else the request's own host. A Host header that is not a plain
// host[:port] (it is the client's to choose) is replaced by localhost.
func (a *authenticator) realmFor(req *http.Request) string {
	if a.realm != "" {
		return a.realm
	}
	scheme := "http"
	if req.TLS != nil {
		scheme = "https"
	}
	host := req.Host
	if !validHostPort(host) {
		host = "localhost"
	}
	return scheme + "://" + host + "/v2/token"
}

// validHostPort reports whether s is a host name or IP, with an optional
// port, made only of characters such names use.
func validHostPort(s string) bool {
	if s == "" || len(s) > 261 {
		return false
	}
	for _, r := range s {
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9', strings.ContainsRune(".-:[]_", r):
		default:
			return false
		}
	}
	return true
}

// accessDetail is the detail of an UNAUTHORIZED or DENIED error, in the
// shape Docker Distribution sends.
func accessDetail(need []access) any {
	type entry struct {
		Type   string `json:"Type"`
		Class  string `json:"Class"`
		Name   string `json:"Name"`
		Action string `json:"Action"`
	}
	out := []entry{}
	for _, n := range need {
		for _, act := range n.Actions {
			out = append(out, entry{Type: n.Type, Name: n.Name, Action: act})
		}
	}
	return out
}

// maxTokenForm bounds the body of a POST to the token endpoint.
const maxTokenForm = 64 << 10

// serveToken serves the token endpoint, /v2/token: GET with Basic auth and
// scope parameters (the Docker token protocol), or POST of a form with
// grant_type=password, username, password and scope (the OAuth2 flavour
// docker uses with --password-stdin logins). It answers a token granting
// what the user may have of the scopes asked for, or 401 with a Basic
// challenge when credentials are missing or wrong.
func (a *authenticator) serveToken(w http.ResponseWriter, req *http.Request) error {
	var c credentials
	var scopes []string
	oauth := false
	switch req.Method {
	case http.MethodGet:
		c = parseAuthorization(req.Header.Get("Authorization"))
		scopes = req.URL.Query()["scope"]
	case http.MethodPost:
		oauth = true
		body, err := io.ReadAll(io.LimitReader(req.Body, maxTokenForm+1))
		if err != nil {
			return newError(http.StatusBadRequest, codeUnsupported).withCause(err)
		}
		if len(body) > maxTokenForm {
			return errorf(http.StatusRequestEntityTooLarge, codeUnsupported, "token request too large")
		}
		form, err := url.ParseQuery(string(body))
		if err != nil {
			return errorf(http.StatusBadRequest, codeUnsupported, "malformed token request")
		}
		switch form.Get("grant_type") {
		case "password":
			c = credentials{scheme: "basic", user: form.Get("username"), password: form.Get("password")}
		default:
			return oauthError(w, http.StatusBadRequest, "unsupported_grant_type")
		}
		scopes = form["scope"]
	default:
		return errorf(http.StatusMethodNotAllowed, codeUnsupported, "method %s not allowed", req.Method).
			withHeader("Allow", "GET, POST")
	}
	basic := newError(http.StatusUnauthorized, codeUnauthorized).
		withHeader("WWW-Authenticate", fmt.Sprintf(`Basic realm="%s"`, a.service))
	if c.scheme != "basic" {
		return basic
	}
	p, ok := a.password(c.user, c.password)
	if !ok {
		return basic.withCause(fmt.Errorf("bad password for user %q", c.user))
	}
	granted := p.grant(parseScopes(scopes))
	now := a.now()
	tok, err := a.signer.mint(p.name, granted, now)
	if err != nil {
		return err
	}
	resp := map[string]any{
		"access_token": tok,
		"expires_in":   int(a.signer.ttl / time.Second),
		"issued_at":    now.UTC().Format(time.RFC3339),
	}
	if oauth {
		resp["token_type"] = "Bearer"
		names := make([]string, len(granted))
		for i, g := range granted {
			names[i] = g.String()
		}
		resp["scope"] = strings.Join(names, " ")
	} else {
		resp["token"] = tok
	}
	w.Header().Set("Cache-Control", "no-store")
	return writeJSON(w, req, "application/json", resp)
}

// oauthError writes an OAuth2 error response; it returns nil so that the
// caller's error renderer does not write a second one.
func oauthError(w http.ResponseWriter, status int, code string) error {
	b, _ := json.Marshal(map[string]string{"error": code})
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_, _ = w.Write(b)
	return nil
}

// loopbackPeer reports whether a request's remote address is on this host.
func loopbackPeer(remoteAddr string) bool {
	host, _, err := net.SplitHostPort(remoteAddr)
	if err != nil {
		return false
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}
