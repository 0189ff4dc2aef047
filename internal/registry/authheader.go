package registry

import (
	"encoding/base64"
	"slices"
	"strings"
)

// Parsers of what clients send for authentication: the Authorization header
// and token scopes. Every input here is hostile; every function is total
// and bounded.

// Limits on authentication input, far above what any client sends.
const (
	maxAuthHeader   = 8 << 10 // bytes of an Authorization header
	maxScopes       = 32      // scopes in one token request or challenge
	maxScopeLength  = 512     // bytes of one scope
	maxCredentialLn = 1024    // bytes of a user name or password
)

// credentials is a parsed Authorization header.
type credentials struct {
	// scheme is "basic" or "bearer"; "" when the header is absent or
	// unusable.
	scheme   string
	user     string
	password string
	token    string
}

// parseAuthorization parses an Authorization header value: "Basic
// base64(user:password)" or "Bearer <token>", scheme case-insensitive. A
// header that is absent, too long, of another scheme, or malformed yields
// the zero credentials.
func parseAuthorization(h string) credentials {
	if h == "" || len(h) > maxAuthHeader {
		return credentials{}
	}
	scheme, rest, ok := strings.Cut(strings.TrimSpace(h), " ")
	if !ok {
		return credentials{}
	}
	rest = strings.TrimSpace(rest)
	switch strings.ToLower(scheme) {
	case "basic":
		raw, err := base64.StdEncoding.DecodeString(rest)
		if err != nil {
			return credentials{}
		}
		user, pass, ok := strings.Cut(string(raw), ":")
		if !ok || user == "" || len(user) > maxCredentialLn || len(pass) > maxCredentialLn {
			return credentials{}
		}
		return credentials{scheme: "basic", user: user, password: pass}
	case "bearer":
		if rest == "" || strings.ContainsAny(rest, " \t") {
			return credentials{}
		}
		return credentials{scheme: "bearer", token: rest}
	}
	return credentials{}
}

// access is one resource and the actions wanted or granted on it, as a
// token scope says: "repository:<name>:pull,push", "registry:catalog:*".
type access struct {
	Type    string   `json:"type"`
	Name    string   `json:"name"`
	Actions []string `json:"actions"`
}

// String renders a as a scope.
func (a access) String() string {
	return a.Type + ":" + a.Name + ":" + strings.Join(a.Actions, ",")
}

// Resource types and actions Kappa knows. Unknown ones are never granted.
const (
	typeRepository = "repository"
	typeRegistry   = "registry"

	actionPull   = "pull"
	actionPush   = "push"
	actionDelete = "delete"
	actionAll    = "*"

	// registryCatalog is the resource of GET /v2/_catalog.
	registryCatalog = "catalog"
	// registryAdmin is the resource of Kappa's management API.
	registryAdmin = "admin"
)

// parseScopes parses the scopes of a token request: each value may hold
// several scopes separated by spaces (OAuth2 style). Malformed scopes,
// unknown resource types, invalid repository names and unknown actions are
// dropped, so the result only ever names what Kappa could grant. At most
// maxScopes scopes are read.
func parseScopes(values []string) []access {
	var out []access
	n := 0
	for _, v := range values {
		for s := range strings.FieldsSeq(v) {
			if n++; n > maxScopes {
				return out
			}
			if a, ok := parseScope(s); ok {
				out = append(out, a)
			}
		}
	}
	return out
}

// parseScope parses one "type:name:actions" scope. A repository name may
// not contain ":", but a registry host in front of it might, so the name
// is everything between the first and the last colon.
func parseScope(s string) (access, bool) {
	if len(s) > maxScopeLength {
		return access{}, false
	}
	typ, rest, ok := strings.Cut(s, ":")
	if !ok {
		return access{}, false
	}
	i := strings.LastIndexByte(rest, ':')
	if i < 0 {
		return access{}, false
	}
	name, acts := rest[:i], rest[i+1:]
	var allowed []string
	switch typ {
	case typeRepository:
		if !validName(name) {
			return access{}, false
		}
		allowed = []string{actionPull, actionPush, actionDelete, actionAll}
	case typeRegistry:
		if name != registryCatalog && name != registryAdmin {
			return access{}, false
		}
		allowed = []string{actionAll}
	default:
		return access{}, false
	}
	a := access{Type: typ, Name: name}
	for act := range strings.SplitSeq(acts, ",") {
		if slices.Contains(allowed, act) && !slices.Contains(a.Actions, act) {
			a.Actions = append(a.Actions, act)
		}
	}
	if len(a.Actions) == 0 {
		return access{}, false
	}
	return a, true
}

// allows reports whether granted covers every action of need.
func allows(granted, need []access) bool {
	for _, n := range need {
		for _, act := range n.Actions {
			if !covers(granted, n.Type, n.Name, act) {
				return false
			}
		}
	}
	return true
}

// covers reports whether the granted accesses allow action on the resource
// typ:name; "*" allows every action.
func covers(granted []access, typ, name, action string) bool {
	for _, g := range granted {
		if g.Type == typ && g.Name == name && (slices.Contains(g.Actions, action) || slices.Contains(g.Actions, actionAll)) {
			return true
		}
	}
	return false
}
