package funcurl

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"time"
)

// SigV4 constants.
const (
	sigAlgorithm    = "AWS4-HMAC-SHA256"
	amzDateLayout   = "20060102T150405Z"
	unsignedPayload = "UNSIGNED-PAYLOAD"
	maxClockSkew    = 15 * time.Minute
	maxPresignTime  = 7 * 24 * time.Hour
)

// ErrUnsigned means the request carries no signature at all.
var ErrUnsigned = errors.New("request is not signed")

// Verifier checks AWS Signature Version 4 signatures of requests (header
// or presigned query) made for one service in one region. The zero value
// is not usable; set every field but Now.
type Verifier struct {
	Region  string
	Service string
	// Secret returns the secret access key of an access key id.
	Secret func(accessKey string) (string, bool)
	Now    func() time.Time
}

// sigParams is a parsed signature.
type sigParams struct {
	accessKey, scopeDate, region, service string
	signedHeaders                         []string
	signature                             string
	amzDate                               string
	presigned                             bool
	expires                               time.Duration
}

// parseAuthorization parses "AWS4-HMAC-SHA256 Credential=…, SignedHeaders=…,
// Signature=…".
func parseAuthorization(h string) (sigParams, error) {
	var p sigParams
	alg, rest, ok := strings.Cut(strings.TrimSpace(h), " ")
	if !ok || alg != sigAlgorithm {
		return p, fmt.Errorf("authorization is not %s", sigAlgorithm)
	}
	fields := map[string]string{}
	for _, part := range strings.Split(rest, ",") {
		k, v, ok := strings.Cut(strings.TrimSpace(part), "=")
		if !ok {
			return p, fmt.Errorf("malformed authorization component %q", part)
		}
		if _, dup := fields[k]; dup {
			return p, fmt.Errorf("repeated authorization component %s", k)
		}
		fields[k] = v
	}
	return p, p.fill(fields["Credential"], fields["SignedHeaders"], fields["Signature"])
}

func (p *sigParams) fill(credential, signedHeaders, signature string) error {
	parts := strings.Split(credential, "/")
	if len(parts) != 5 || parts[4] != "aws4_request" || parts[0] == "" {
		return fmt.Errorf("malformed credential %q", credential)
	}
	p.accessKey, p.scopeDate, p.region, p.service = parts[0], parts[1], parts[2], parts[3]
	if signedHeaders == "" {
		return errors.New("no signed headers")
	}
	p.signedHeaders = strings.Split(signedHeaders, ";")
	for _, h := range p.signedHeaders {
		if h == "" || h != strings.ToLower(h) {
			return fmt.Errorf("signed header %q is not a lower-case name", h)
		}
	}
	if len(signature) != 64 {
		return errors.New("malformed signature")
	}
	if _, err := hex.DecodeString(signature); err != nil {
		return errors.New("malformed signature")
	}
	p.signature = signature
	return nil
}

// params extracts the signature of r from its Authorization header or its
// query (presigned).
func params(r *http.Request) (sigParams, error) {
	if h := r.Header.Get("Authorization"); h != "" {
		p, err := parseAuthorization(h)
		if err != nil {
			return p, err
		}
		p.amzDate = r.Header.Get("X-Amz-Date")
		return p, nil
	}
	q := r.URL.Query()
	if q.Get("X-Amz-Algorithm") == "" {
		return sigParams{}, ErrUnsigned
	}
	if q.Get("X-Amz-Algorithm") != sigAlgorithm {
		return sigParams{}, fmt.Errorf("X-Amz-Algorithm is not %s", sigAlgorithm)
	}
	p := sigParams{presigned: true, amzDate: q.Get("X-Amz-Date")}
	secs, err := strconv.Atoi(q.Get("X-Amz-Expires"))
	// Compared in seconds: a huge value would overflow a Duration.
	if err != nil || secs < 1 || int64(secs) > int64(maxPresignTime/time.Second) {
		return p, errors.New("X-Amz-Expires must be 1–604800 seconds")
	}
	p.expires = time.Duration(secs) * time.Second
	return p, p.fill(q.Get("X-Amz-Credential"), q.Get("X-Amz-SignedHeaders"), q.Get("X-Amz-Signature"))
}

// Verify checks r's signature over body and returns the access key id
// that made it. Errors are for logs; clients get a plain 403.
func (v *Verifier) Verify(r *http.Request, body []byte) (string, error) {
	p, err := params(r)
	if err != nil {
		return "", err
	}
	if p.region != v.Region || p.service != v.Service {
		return "", fmt.Errorf("credential scope %s/%s, want %s/%s", p.region, p.service, v.Region, v.Service)
	}
	t, err := time.Parse(amzDateLayout, p.amzDate)
	if err != nil {
		return "", fmt.Errorf("X-Amz-Date %q: want yyyymmddThhmmssZ", p.amzDate)
	}
	if p.scopeDate != t.Format("20060102") {
		return "", fmt.Errorf("credential date %s does not match X-Amz-Date %s", p.scopeDate, p.amzDate)
	}
	now := time.Now()
	if v.Now != nil {
		now = v.Now()
	}
	switch {
	case t.After(now.Add(maxClockSkew)):
		return "", errors.New("signature date is in the future")
	case !p.presigned && t.Before(now.Add(-maxClockSkew)):
		return "", errors.New("signature expired")
	case p.presigned && now.After(t.Add(p.expires)):
		return "", errors.New("presigned URL expired")
	}
	secret, ok := v.Secret(p.accessKey)
	if !ok {
		return "", fmt.Errorf("unknown access key %s", p.accessKey)
	}
	headers, err := canonicalHeaders(r, p.signedHeaders)
	if err != nil {
		return "", err
	}
	hashes, err := payloadHashes(r, body, p.presigned)
	if err != nil {
		return "", err
	}
	scope := strings.Join([]string{p.scopeDate, p.region, p.service, "aws4_request"}, "/")
	key := signingKey(secret, p.scopeDate, p.region, p.service)
	query := canonicalQuery(r.URL.RawQuery, p.presigned)
	want, _ := hex.DecodeString(p.signature)
	for _, uri := range canonicalURIs(r.URL) {
		for _, h := range hashes {
			creq := strings.Join([]string{r.Method, uri, query, headers, strings.Join(p.signedHeaders, ";"), h}, "\n")
			sum := sha256.Sum256([]byte(creq))
			sts := sigAlgorithm + "\n" + p.amzDate + "\n" + scope + "\n" + hex.EncodeToString(sum[:])
			if hmac.Equal(hmacSHA256(key, sts), want) {
				return p.accessKey, nil
			}
		}
	}
	return "", errors.New("signature does not match")
}

func hmacSHA256(key []byte, data string) []byte {
	m := hmac.New(sha256.New, key)
	m.Write([]byte(data))
	return m.Sum(nil)
}

func signingKey(secret, date, region, service string) []byte {
	k := hmacSHA256([]byte("AWS4"+secret), date)
	k = hmacSHA256(k, region)
	k = hmacSHA256(k, service)
	return hmacSHA256(k, "aws4_request")
}

// canonicalHeaders renders the signed headers, "name:value\n" each.
func canonicalHeaders(r *http.Request, names []string) (string, error) {
	var b strings.Builder
	hasHost := false
	for _, n := range names {
		var values []string
		switch n {
		case "host":
			hasHost = true
			values = []string{r.Host}
		case "content-length":
			values = r.Header.Values("Content-Length")
			if len(values) == 0 && r.ContentLength >= 0 {
				values = []string{strconv.FormatInt(r.ContentLength, 10)}
			}
		default:
			values = r.Header.Values(n)
		}
		if len(values) == 0 {
			return "", fmt.Errorf("signed header %s is missing", n)
		}
		b.WriteString(n)
		b.WriteByte(':')
		for i, v := range values {
			if i > 0 {
				b.WriteByte(',')
			}
			b.WriteString(strings.Join(strings.Fields(v), " "))
		}
		b.WriteByte('\n')
	}
	if !hasHost {
		return "", errors.New("the host header is not signed")
	}
	return b.String(), nil
}

// payloadHashes returns the payload hashes a signer may have used.
func payloadHashes(r *http.Request, body []byte, presigned bool) ([]string, error) {
	sum := sha256.Sum256(body)
	actual := hex.EncodeToString(sum[:])
	if h := r.Header.Get("X-Amz-Content-Sha256"); h != "" {
		if h != unsignedPayload && !strings.EqualFold(h, actual) {
			return nil, errors.New("X-Amz-Content-Sha256 does not match the body")
		}
		return []string{h}, nil
	}
	if presigned {
		return []string{unsignedPayload, actual}, nil
	}
	return []string{actual}, nil
}

// canonicalURIs returns the canonical URI as signers compute it: the path
// URI-encoded once more (AWS SDKs for services other than S3), and the path
// as sent (signers that do not encode again, such as curl).
func canonicalURIs(u *url.URL) []string {
	p := u.EscapedPath()
	if p == "" {
		p = "/"
	}
	twice := uriEncode(p, false)
	if twice == p {
		return []string{p}
	}
	return []string{twice, p}
}

// canonicalQuery sorts the decoded query parameters by key and value and
// encodes them per RFC 3986; a presigned request's X-Amz-Signature is left
// out.
func canonicalQuery(raw string, presigned bool) string {
	type kv struct{ k, v string }
	var params []kv
	for _, pair := range strings.Split(raw, "&") {
		if pair == "" {
			continue
		}
		k, v, _ := strings.Cut(pair, "=")
		if dk, err := url.QueryUnescape(k); err == nil {
			k = dk
		}
		if dv, err := url.QueryUnescape(v); err == nil {
			v = dv
		}
		if presigned && k == "X-Amz-Signature" {
			continue
		}
		params = append(params, kv{uriEncode(k, true), uriEncode(v, true)})
	}
	sort.Slice(params, func(i, j int) bool {
		if params[i].k != params[j].k {
			return params[i].k < params[j].k
		}
		return params[i].v < params[j].v
	})
	var b strings.Builder
	for i, p := range params {
		if i > 0 {
			b.WriteByte('&')
		}
		b.WriteString(p.k)
		b.WriteByte('=')
		b.WriteString(p.v)
	}
	return b.String()
}

// uriEncode percent-encodes every byte but the RFC 3986 unreserved ones
// (and '/' unless encodeSlash).
func uriEncode(s string, encodeSlash bool) string {
	const hexDigits = "0123456789ABCDEF"
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case 'A' <= c && c <= 'Z', 'a' <= c && c <= 'z', '0' <= c && c <= '9', c == '-', c == '_', c == '.', c == '~':
			b.WriteByte(c)
		case c == '/' && !encodeSlash:
			b.WriteByte(c)
		default:
			b.WriteByte('%')
			b.WriteByte(hexDigits[c>>4])
			b.WriteByte(hexDigits[c&15])
		}
	}
	return b.String()
}
