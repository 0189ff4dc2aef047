package registry

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"
)

// Registry tokens are JWTs signed with HMAC-SHA256 under a key that exists
// only in the memory of the process: the registry is its own token server,
// so no other party ever verifies them. A restart invalidates every token;
// clients then get a 401 and fetch a new one, as they do when one expires.

// tokenHeader is the one JOSE header Kappa issues and accepts.
const tokenHeader = `{"alg":"HS256","typ":"JWT"}`

// tokenIssuer is the iss claim of every token.
const tokenIssuer = "kappa"

var encodedTokenHeader = base64.RawURLEncoding.EncodeToString([]byte(tokenHeader))

// tokenClaims are the claims of a registry token.
type tokenClaims struct {
	Issuer    string   `json:"iss"`
	Subject   string   `json:"sub"`
	Audience  string   `json:"aud"`
	IssuedAt  int64    `json:"iat"`
	NotBefore int64    `json:"nbf"`
	Expires   int64    `json:"exp"`
	ID        string   `json:"jti"`
	Access    []access `json:"access"`
}

// tokenSigner mints and verifies tokens for one service.
type tokenSigner struct {
	key     []byte
	service string
	ttl     time.Duration
}

func newTokenSigner(service string, ttl time.Duration) (*tokenSigner, error) {
	key := make([]byte, 32)
	if _, err := rand.Read(key); err != nil {
		return nil, fmt.Errorf("token key: %w", err)
	}
	return &tokenSigner{key: key, service: service, ttl: ttl}, nil
}

// mint returns a token for subject granting acc, valid from now for the
// signer's TTL.
func (s *tokenSigner) mint(subject string, acc []access, now time.Time) (string, error) {
	id := make([]byte, 12)
	if _, err := rand.Read(id); err != nil {
		return "", err
	}
	if acc == nil {
		acc = []access{}
	}
	c := tokenClaims{
		Issuer:    tokenIssuer,
		Subject:   subject,
		Audience:  s.service,
		IssuedAt:  now.Unix(),
		NotBefore: now.Unix(),
		Expires:   now.Add(s.ttl).Unix(),
		ID:        base64.RawURLEncoding.EncodeToString(id),
		Access:    acc,
	}
	payload, err := json.Marshal(c)
	if err != nil {
		return "", err
	}
	signed := encodedTokenHeader + "." + base64.RawURLEncoding.EncodeToString(payload)
	return signed + "." + base64.RawURLEncoding.EncodeToString(s.sign(signed)), nil
}

func (s *tokenSigner) sign(signed string) []byte {
	m := hmac.New(sha256.New, s.key)
	m.Write([]byte(signed))
	return m.Sum(nil)
}

// Reasons a token is refused; the client only ever learns "invalid_token".
var (
	errTokenMalformed = errors.New("malformed token")
	errTokenSignature = errors.New("token signature does not verify")
	errTokenExpired   = errors.New("token expired or not yet valid")
	errTokenAudience  = errors.New("token is for another service")
)

// verify checks tok's form, header, signature, issuer, audience and
// validity period at now, and returns its claims. The signature is checked
// before the claims are parsed.
func (s *tokenSigner) verify(tok string, now time.Time) (tokenClaims, error) {
	var c tokenClaims
	if len(tok) > maxAuthHeader {
		return c, errTokenMalformed
	}
	h, rest, ok := strings.Cut(tok, ".")
	if !ok {
		return c, errTokenMalformed
	}
	p, sig, ok := strings.Cut(rest, ".")
	if !ok || strings.Contains(sig, ".") {
		return c, errTokenMalformed
	}
	if h != encodedTokenHeader {
		return c, errTokenMalformed // another algorithm, "none", or noise
	}
	got, err := base64.RawURLEncoding.DecodeString(sig)
	if err != nil {
		return c, errTokenMalformed
	}
	if !hmac.Equal(got, s.sign(h+"."+p)) {
		return c, errTokenSignature
	}
	payload, err := base64.RawURLEncoding.DecodeString(p)
	if err != nil {
		return c, errTokenMalformed
	}
	if err := json.Unmarshal(payload, &c); err != nil {
		return c, errTokenMalformed
	}
	if c.Issuer != tokenIssuer || c.Audience != s.service {
		return c, errTokenAudience
	}
	if t := now.Unix(); t < c.NotBefore || t >= c.Expires {
		return c, errTokenExpired
	}
	return c, nil
}
