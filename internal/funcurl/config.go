package funcurl

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"sort"
	"strings"
	"time"

	"github.com/kappa-run/kappa/internal/apierr"
	"github.com/kappa-run/kappa/internal/function"
	"github.com/kappa-run/kappa/internal/store"
)

// Auth types and invoke modes.
const (
	AuthNone       = "NONE"
	AuthIAM        = "AWS_IAM"
	ModeBuffered   = "BUFFERED"
	ModeStream     = "RESPONSE_STREAM"
	maxCorsItems   = 100
	maxCorsMethods = 6
	maxCorsMaxAge  = 86400
)

// Cors is a function URL's CORS configuration, in Lambda's wire shape.
type Cors struct {
	AllowCredentials bool     `json:"AllowCredentials,omitempty"`
	AllowHeaders     []string `json:"AllowHeaders,omitempty"`
	AllowMethods     []string `json:"AllowMethods,omitempty"`
	AllowOrigins     []string `json:"AllowOrigins,omitempty"`
	ExposeHeaders    []string `json:"ExposeHeaders,omitempty"`
	MaxAge           int      `json:"MaxAge,omitempty"`
}

// Config is one function URL.
type Config struct {
	// ID is the url-id: 32 characters of [a-z0-9].
	ID               string    `json:"id"`
	FunctionName     string    `json:"functionName"`
	Qualifier        string    `json:"qualifier"` // $LATEST or an alias
	AuthType         string    `json:"authType"`
	Cors             *Cors     `json:"cors,omitempty"`
	InvokeMode       string    `json:"invokeMode"`
	CreationTime     time.Time `json:"creationTime"`
	LastModifiedTime time.Time `json:"lastModifiedTime"`
}

// Input is the body of Create/UpdateFunctionUrlConfig; nil fields are
// absent (Create: default; Update: unchanged).
type Input struct {
	AuthType   *string
	Cors       *Cors
	InvokeMode *string
}

type validation []string

// null renders as a JSON null in a validation message.
type null struct{}

func (null) String() string { return "null" }

func (v *validation) add(value any, field, constraint string) {
	if s, ok := value.(string); ok {
		value = "'" + s + "'"
	}
	*v = append(*v, fmt.Sprintf("Value %v at '%s' failed to satisfy constraint: %s", value, field, constraint))
}

func (v validation) err() error {
	if len(v) == 0 {
		return nil
	}
	noun := "error"
	if len(v) > 1 {
		noun = "errors"
	}
	return apierr.New(apierr.Validation, "%d validation %s detected: %s", len(v), noun, strings.Join(v, "; "))
}

// Validate checks in against Lambda's model; create requires AuthType.
func (in Input) Validate(create bool) error {
	var v validation
	switch {
	case in.AuthType == nil && create:
		v.add(null{}, "authType", "Member must not be null")
	case in.AuthType != nil && *in.AuthType != AuthNone && *in.AuthType != AuthIAM:
		v.add(*in.AuthType, "authType", "Member must satisfy enum value set: [NONE, AWS_IAM]")
	}
	if in.InvokeMode != nil && *in.InvokeMode != ModeBuffered && *in.InvokeMode != ModeStream {
		v.add(*in.InvokeMode, "invokeMode", "Member must satisfy enum value set: [BUFFERED, RESPONSE_STREAM]")
	}
	if c := in.Cors; c != nil {
		list := func(field string, items []string, maxItems, maxLen, minLen int) {
			if len(items) > maxItems {
				v.add(fmt.Sprint(items), field, fmt.Sprintf("Member must have length less than or equal to %d", maxItems))
			}
			for _, s := range items {
				if len(s) > maxLen || len(s) < minLen {
					v.add(s, field+".member", fmt.Sprintf("Member must have length between %d and %d", minLen, maxLen))
					return
				}
			}
		}
		list("cors.allowHeaders", c.AllowHeaders, maxCorsItems, 1024, 0)
		list("cors.allowMethods", c.AllowMethods, maxCorsMethods, 6, 0)
		list("cors.allowOrigins", c.AllowOrigins, maxCorsItems, 253, 1)
		list("cors.exposeHeaders", c.ExposeHeaders, maxCorsItems, 1024, 0)
		if c.MaxAge < 0 || c.MaxAge > maxCorsMaxAge {
			v.add(c.MaxAge, "cors.maxAge", fmt.Sprintf("Member must have value between 0 and %d", maxCorsMaxAge))
		}
	}
	return v.err()
}

var aliasRE = regexp.MustCompile(`^[a-zA-Z0-9_-]+$`)

// checkQualifier accepts $LATEST and alias names, as Lambda does for URLs.
func checkQualifier(q string) error {
	if q == "" || q == function.LatestVersion {
		return nil
	}
	if !aliasRE.MatchString(q) || strings.Trim(q, "0123456789") == "" || len(q) > 128 {
		return apierr.New(apierr.Validation,
			"1 validation error detected: Value '%s' at 'qualifier' failed to satisfy constraint: Member must satisfy regular expression pattern: ((?!^\\d+$)^[0-9a-zA-Z-_]+$)|(^\\$LATEST$)", q)
	}
	return nil
}

// Functions checks that a function or alias exists; *function.Service
// implements it.
type Functions interface {
	Config(ctx context.Context, ref function.Ref) (function.Config, error)
	Get(ctx context.Context, name string) (*function.Function, error)
	ARN(name, qualifier string) string
}

// Configs stores function URLs in a bucket: url.<fn>.<qualifier> holds the
// Config and id.<url-id> points back to it. Safe for concurrent use.
type Configs struct {
	bucket store.Bucket
	fns    Functions
	now    func() time.Time
	url    func(id string) string
}

// NewConfigs returns the store of function URLs; url formats a url-id as
// the FunctionUrl clients call.
func NewConfigs(b store.Bucket, fns Functions, url func(id string) string, now func() time.Time) *Configs {
	if now == nil {
		now = time.Now
	}
	return &Configs{bucket: b, fns: fns, now: now, url: url}
}

// FunctionURL is the URL clients call for url-id id.
func (c *Configs) FunctionURL(id string) string { return c.url(id) }

func qualifierKey(q string) string {
	if q == "" || q == function.LatestVersion {
		return "=LATEST"
	}
	return q
}

func urlKey(fn, q string) string { return "url." + fn + "." + qualifierKey(q) }
func idKey(id string) string     { return "id." + id }

func newID() string {
	const alphabet = "abcdefghijklmnopqrstuvwxyz0123456789"
	b := make([]byte, 32)
	rand.Read(b)
	for i := range b {
		b[i] = alphabet[int(b[i])%len(alphabet)]
	}
	return string(b)
}

func (c *Configs) notFound() error {
	return apierr.New(apierr.NotFound, "The resource you requested does not exist.")
}

func (c *Configs) target(ctx context.Context, fn, q string) error {
	if err := checkQualifier(q); err != nil {
		return err
	}
	_, err := c.fns.Config(ctx, function.Ref{Name: fn, Qualifier: q})
	return err
}

func latestOr(q string) string {
	if q == "" {
		return function.LatestVersion
	}
	return q
}

// Create makes the URL of fn:qualifier.
func (c *Configs) Create(ctx context.Context, fn, qualifier string, in Input) (*Config, error) {
	if err := in.Validate(true); err != nil {
		return nil, err
	}
	if err := c.target(ctx, fn, qualifier); err != nil {
		return nil, err
	}
	now := c.now().UTC()
	cfg := &Config{ID: newID(), FunctionName: fn, Qualifier: latestOr(qualifier), AuthType: *in.AuthType,
		Cors: in.Cors, InvokeMode: ModeBuffered, CreationTime: now, LastModifiedTime: now}
	if in.InvokeMode != nil {
		cfg.InvokeMode = *in.InvokeMode
	}
	b, _ := json.Marshal(cfg)
	if _, err := c.bucket.Create(ctx, urlKey(fn, qualifier), b); err != nil {
		if errors.Is(err, store.ErrExists) {
			return nil, apierr.New(apierr.Conflict, "Failed to create function url config for [functionArn = %s]. Error message:  FunctionUrlConfig exists for this Lambda function",
				c.fns.ARN(fn, qualifier))
		}
		return nil, apierr.Wrap(apierr.Internal, err, "store function url")
	}
	ref, _ := json.Marshal(function.Ref{Name: fn, Qualifier: cfg.Qualifier})
	if _, err := c.bucket.Put(ctx, idKey(cfg.ID), ref); err != nil {
		c.bucket.Delete(ctx, urlKey(fn, qualifier))
		return nil, apierr.Wrap(apierr.Internal, err, "store function url")
	}
	return cfg, nil
}

func (c *Configs) load(ctx context.Context, fn, qualifier string) (*Config, uint64, error) {
	e, err := c.bucket.Get(ctx, urlKey(fn, qualifier))
	if errors.Is(err, store.ErrNotFound) {
		return nil, 0, c.notFound()
	}
	if err != nil {
		return nil, 0, apierr.Wrap(apierr.Internal, err, "read function url")
	}
	var cfg Config
	if err := json.Unmarshal(e.Value, &cfg); err != nil {
		return nil, 0, apierr.Wrap(apierr.Internal, err, "decode function url")
	}
	return &cfg, e.Revision, nil
}

// Get returns the URL of fn:qualifier.
func (c *Configs) Get(ctx context.Context, fn, qualifier string) (*Config, error) {
	if err := c.target(ctx, fn, qualifier); err != nil {
		return nil, err
	}
	cfg, _, err := c.load(ctx, fn, qualifier)
	return cfg, err
}

// Update changes the fields present in in.
func (c *Configs) Update(ctx context.Context, fn, qualifier string, in Input) (*Config, error) {
	if err := in.Validate(false); err != nil {
		return nil, err
	}
	if err := c.target(ctx, fn, qualifier); err != nil {
		return nil, err
	}
	for range 50 {
		cfg, rev, err := c.load(ctx, fn, qualifier)
		if err != nil {
			return nil, err
		}
		if in.AuthType != nil {
			cfg.AuthType = *in.AuthType
		}
		if in.Cors != nil {
			cfg.Cors = in.Cors
		}
		if in.InvokeMode != nil {
			cfg.InvokeMode = *in.InvokeMode
		}
		cfg.LastModifiedTime = c.now().UTC()
		b, _ := json.Marshal(cfg)
		_, err = c.bucket.Update(ctx, urlKey(fn, qualifier), b, rev)
		if errors.Is(err, store.ErrRevision) {
			continue
		}
		if err != nil {
			return nil, apierr.Wrap(apierr.Internal, err, "store function url")
		}
		return cfg, nil
	}
	return nil, apierr.New(apierr.Internal, "too much contention on the function url of %s", fn)
}

// Delete removes the URL of fn:qualifier.
func (c *Configs) Delete(ctx context.Context, fn, qualifier string) error {
	cfg, err := c.Get(ctx, fn, qualifier)
	if err != nil {
		return err
	}
	if err := c.bucket.Delete(ctx, urlKey(fn, qualifier)); err != nil {
		return apierr.Wrap(apierr.Internal, err, "delete function url")
	}
	c.bucket.Delete(ctx, idKey(cfg.ID))
	return nil
}

// List returns the URLs of fn, sorted by qualifier.
func (c *Configs) List(ctx context.Context, fn string) ([]*Config, error) {
	if _, err := c.fns.Get(ctx, fn); err != nil {
		return nil, err
	}
	return c.list(ctx, fn)
}

func (c *Configs) list(ctx context.Context, fn string) ([]*Config, error) {
	keys, err := c.bucket.Keys(ctx, "url."+fn)
	if err != nil {
		return nil, apierr.Wrap(apierr.Internal, err, "list function urls")
	}
	var out []*Config
	for _, k := range keys {
		q := strings.TrimPrefix(k, "url."+fn+".")
		if q == "=LATEST" {
			q = ""
		}
		if cfg, _, err := c.load(ctx, fn, q); err == nil {
			out = append(out, cfg)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Qualifier < out[j].Qualifier })
	return out, nil
}

// FunctionDeleted removes every URL of a deleted function.
func (c *Configs) FunctionDeleted(ctx context.Context, fn string) {
	cfgs, _ := c.list(ctx, fn)
	for _, cfg := range cfgs {
		c.bucket.Delete(ctx, urlKey(fn, cfg.Qualifier))
		c.bucket.Delete(ctx, idKey(cfg.ID))
	}
}

// Lookup returns the URL with url-id id.
func (c *Configs) Lookup(ctx context.Context, id string) (*Config, error) {
	if !validID(id) {
		return nil, c.notFound()
	}
	e, err := c.bucket.Get(ctx, idKey(id))
	if errors.Is(err, store.ErrNotFound) {
		return nil, c.notFound()
	}
	if err != nil {
		return nil, apierr.Wrap(apierr.Internal, err, "read function url")
	}
	var ref function.Ref
	if err := json.Unmarshal(e.Value, &ref); err != nil {
		return nil, apierr.Wrap(apierr.Internal, err, "decode function url")
	}
	q := ref.Qualifier
	if q == function.LatestVersion {
		q = ""
	}
	cfg, _, err := c.load(ctx, ref.Name, q)
	if err == nil && cfg.ID != id {
		return nil, c.notFound() // deleted and re-created
	}
	return cfg, err
}

func validID(id string) bool {
	if len(id) == 0 || len(id) > 64 {
		return false
	}
	for _, r := range id {
		if !(r >= 'a' && r <= 'z' || r >= '0' && r <= '9') {
			return false
		}
	}
	return true
}
