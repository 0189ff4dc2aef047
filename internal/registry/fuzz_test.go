package registry

import (
	"bytes"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"
)

// Fuzz targets for every parser of what clients send for authentication
// and management: Authorization headers, token scopes, tokens, token
// requests, settings documents and users files.

func FuzzParseAuthorization(f *testing.F) {
	for _, s := range []string{
		basic("alice", "s3cret"), basic("a", ""), "Basic", "Basic ", "basic YTpi", "Bearer abc.def.ghi", "bearer  x",
		"Bearer a b", "Digest x", "Basic " + strings.Repeat("A", 100), "Basic Og==", "Basic OmE=", "\x00 \x00",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, h string) {
		c := parseAuthorization(h)
		switch c.scheme {
		case "":
			if c.user != "" || c.password != "" || c.token != "" {
				t.Fatalf("unusable header %q yielded %+v", h, c)
			}
		case "basic":
			if c.user == "" || strings.Contains(c.user, ":") || len(c.user) > maxCredentialLn || len(c.password) > maxCredentialLn {
				t.Fatalf("header %q yielded user %q", h, c.user)
			}
			// What a client would send for these credentials parses back.
			if back := parseAuthorization(basic(c.user, c.password)); back != c {
				t.Fatalf("round trip %+v -> %+v", c, back)
			}
		case "bearer":
			if c.token == "" || strings.ContainsAny(c.token, " \t") {
				t.Fatalf("header %q yielded token %q", h, c.token)
			}
		default:
			t.Fatalf("scheme %q", c.scheme)
		}
	})
}

func FuzzParseScopes(f *testing.F) {
	for _, s := range []string{
		"repository:a/b:pull,push", "repository:a:*", "registry:catalog:*", "registry:admin:*", "repository:a:pull repository:b:push",
		"repository:localhost:5000/a:pull", "repository::pull", "repository:A:pull", "x:y:z", "repository:a:", ":::", "repository:a:pull,pull,frob",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		got := parseScopes([]string{s})
		if len(got) > maxScopes {
			t.Fatalf("%d scopes", len(got))
		}
		for _, a := range got {
			switch a.Type {
			case typeRepository:
				if !validName(a.Name) {
					t.Fatalf("invalid name %q granted", a.Name)
				}
			case typeRegistry:
				if a.Name != registryCatalog && a.Name != registryAdmin {
					t.Fatalf("registry resource %q", a.Name)
				}
			default:
				t.Fatalf("type %q", a.Type)
			}
			if len(a.Actions) == 0 {
				t.Fatalf("no actions in %+v", a)
			}
			back, ok := parseScope(a.String())
			if !ok || back.String() != a.String() {
				t.Fatalf("scope %q does not parse back (%v, %q)", a, ok, back)
			}
		}
	})
}

func FuzzVerifyToken(f *testing.F) {
	signer, err := newTokenSigner(DefaultService, time.Minute)
	if err != nil {
		f.Fatal(err)
	}
	now := time.Unix(1_800_000_000, 0)
	tok, err := signer.mint("alice", []access{{Type: typeRepository, Name: "a", Actions: []string{actionPull}}}, now)
	if err != nil {
		f.Fatal(err)
	}
	f.Add(tok)
	f.Add(tok + "x")
	f.Add(strings.Replace(tok, "e", "f", 1))
	f.Add("eyJhbGciOiJub25lIn0.eyJhY2Nlc3MiOltdfQ.")
	f.Add("..")
	f.Add(encodedTokenHeader + ".e30.")
	f.Fuzz(func(t *testing.T, s string) {
		c, err := signer.verify(s, now)
		if err == nil && s != tok {
			t.Fatalf("verified a token the signer did not mint: %q -> %+v", s, c)
		}
		if s == tok && err != nil {
			t.Fatalf("minted token refused: %v", err)
		}
	})
}

func FuzzParseSettings(f *testing.F) {
	for _, s := range []string{
		`{"tagMutability":"IMMUTABLE"}`, `{"tagMutability":"MUTABLE"}`, `{}`, `[]`, `null`, `{"tagMutability":null}`,
		`{"tagMutability":"IMMUTABLE"} {}`, `{"tagMutability":"IMMUTABLE","x":1}`, `{"tagMutability":"\u0049MMUTABLE"}`, "",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		s, err := ParseSettings(b)
		if err != nil {
			return
		}
		if s.TagMutability != TagMutable && s.TagMutability != TagImmutable {
			t.Fatalf("accepted %q", s.TagMutability)
		}
		// The settings the registry would store parse back the same.
		out, _ := json.Marshal(s)
		if back, err := ParseSettings(out); err != nil || back != s {
			t.Fatalf("round trip %s: %v, %v", out, back, err)
		}
	})
}

func FuzzParseHtpasswd(f *testing.F) {
	hash, _ := bcrypt.GenerateFromPassword([]byte("pw"), bcrypt.MinCost)
	f.Add([]byte("alice:" + string(hash) + "\n"))
	f.Add([]byte("# users\n\nalice:" + string(hash) + "\nbob:" + string(hash) + "\n"))
	f.Add([]byte("alice:{SHA}abc\n"))
	f.Add([]byte("alice:$apr1$x$y\n"))
	f.Add([]byte("alice\n"))
	f.Add([]byte(":" + string(hash)))
	f.Fuzz(func(t *testing.T, b []byte) {
		users, err := ParseHtpasswd(bytes.NewReader(b))
		if err != nil {
			return
		}
		if len(users) == 0 {
			t.Fatal("no error and no users")
		}
		for u, h := range users {
			if checkUserName(u) != nil {
				t.Fatalf("accepted user name %q", u)
			}
			if _, err := bcrypt.Cost(h); err != nil {
				t.Fatalf("accepted hash %q of %q", h, u)
			}
		}
	})
}

// FuzzTokenRequest sends arbitrary token requests to a registry with one
// user: every answer is one the protocol allows, and a token is only ever
// issued to the right password and only for valid scopes.
func FuzzTokenRequest(f *testing.F) {
	hash, err := bcrypt.GenerateFromPassword([]byte("pw"), bcrypt.MinCost)
	if err != nil {
		f.Fatal(err)
	}
	reg, err := Open(Options{Dir: f.TempDir(), Auth: &AuthOptions{Users: map[string][]byte{"u": hash}}})
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { reg.Close() })
	h := reg.Handler()
	f.Add("GET", "service=kappa&scope=repository:a:pull", "", basic("u", "pw"))
	f.Add("GET", "scope=repository:a:pull&scope=registry:catalog:*", "", basic("u", "bad"))
	f.Add("POST", "", "grant_type=password&username=u&password=pw&scope=repository:x/y:push", "")
	f.Add("POST", "", "grant_type=refresh_token&refresh_token=abc", "")
	f.Add("GET", "scope=%zz", "", "Bearer abc")
	f.Add("PUT", "", "", "")
	f.Fuzz(func(t *testing.T, method, query, body, auth string) {
		if !validMethod(method) {
			return
		}
		req := httptest.NewRequest(http.MethodGet, tokenPath, strings.NewReader(body))
		req.Method = method
		req.URL.RawQuery = query
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		if auth != "" {
			req.Header["Authorization"] = []string{auth}
		}
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		switch rec.Code {
		case http.StatusOK:
		case http.StatusBadRequest, http.StatusUnauthorized, http.StatusMethodNotAllowed, http.StatusRequestEntityTooLarge:
			return
		default:
			t.Fatalf("status %d: %s", rec.Code, rec.Body)
		}
		var tr struct {
			AccessToken string `json:"access_token"`
		}
		if err := json.Unmarshal(rec.Body.Bytes(), &tr); err != nil {
			t.Fatalf("token answer %s: %v", rec.Body, err)
		}
		c, err := reg.auth.signer.verify(tr.AccessToken, time.Now())
		if err != nil || c.Subject != "u" {
			t.Fatalf("issued token does not verify: %+v, %v", c, err)
		}
		for _, a := range c.Access {
			if back, ok := parseScope(a.String()); !ok || back.String() != a.String() {
				t.Fatalf("granted invalid scope %q", a)
			}
		}
	})
}

// validMethod reports whether m is an HTTP token, as net/http requires of
// a method.
func validMethod(m string) bool {
	if m == "" {
		return false
	}
	for _, r := range m {
		if r <= ' ' || r >= 0x7f || strings.ContainsRune(`()<>@,;:\"/[]?={}`, r) {
			return false
		}
	}
	return true
}
