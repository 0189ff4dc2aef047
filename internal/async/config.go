package async

import (
	"context"
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

// Limits and defaults of the event-invoke configuration (LAMBDA_SURFACE §1).
const (
	DefaultMaxRetries = 2
	MaxRetries        = 2
	DefaultMaxAge     = 21600
	MinMaxAge         = 60
	MaxMaxAge         = 21600
	maxDestinationLen = 350
)

// Destinations is a DestinationConfig.
type Destinations struct {
	OnSuccess string `json:"onSuccess,omitempty"`
	OnFailure string `json:"onFailure,omitempty"`
}

// Config is a function's (or a version's or alias's) asynchronous
// invocation configuration.
type Config struct {
	FunctionName string `json:"functionName"`
	// Qualifier is $LATEST, a version or an alias.
	Qualifier                string       `json:"qualifier"`
	MaximumRetryAttempts     *int         `json:"maximumRetryAttempts,omitempty"`
	MaximumEventAgeInSeconds *int         `json:"maximumEventAgeInSeconds,omitempty"`
	Destinations             Destinations `json:"destinations"`
	LastModified             time.Time    `json:"lastModified"`
}

// Retries is the effective MaximumRetryAttempts.
func (c *Config) Retries() int {
	if c == nil || c.MaximumRetryAttempts == nil {
		return DefaultMaxRetries
	}
	return *c.MaximumRetryAttempts
}

// MaxAge is the effective MaximumEventAgeInSeconds as a duration.
func (c *Config) MaxAge() time.Duration {
	if c == nil || c.MaximumEventAgeInSeconds == nil {
		return DefaultMaxAge * time.Second
	}
	return time.Duration(*c.MaximumEventAgeInSeconds) * time.Second
}

// ConfigInput is the body of Put/UpdateFunctionEventInvokeConfig. A nil
// field is absent: Put resets it to its default, Update keeps it.
type ConfigInput struct {
	MaximumRetryAttempts     *int
	MaximumEventAgeInSeconds *int
	// OnSuccess and OnFailure are nil when absent; "" removes a destination.
	OnSuccess *string
	OnFailure *string
}

var arnShape = regexp.MustCompile(`^arn:(aws[a-zA-Z0-9-]*):([a-zA-Z0-9-]+):([a-z]{2}(-gov)?-[a-z]+-\d{1})?:(\d{12})?:(.*)$`)

// Validate checks ranges and destination ARN shapes, as Lambda's model does.
func (in ConfigInput) Validate() error {
	var msgs []string
	add := func(value any, field, constraint string) {
		msgs = append(msgs, fmt.Sprintf("Value '%v' at '%s' failed to satisfy constraint: %s", value, field, constraint))
	}
	if p := in.MaximumRetryAttempts; p != nil {
		switch {
		case *p < 0:
			add(*p, "maximumRetryAttempts", "Member must have value greater than or equal to 0")
		case *p > MaxRetries:
			add(*p, "maximumRetryAttempts", fmt.Sprintf("Member must have value less than or equal to %d", MaxRetries))
		}
	}
	if p := in.MaximumEventAgeInSeconds; p != nil {
		switch {
		case *p < MinMaxAge:
			add(*p, "maximumEventAgeInSeconds", fmt.Sprintf("Member must have value greater than or equal to %d", MinMaxAge))
		case *p > MaxMaxAge:
			add(*p, "maximumEventAgeInSeconds", fmt.Sprintf("Member must have value less than or equal to %d", MaxMaxAge))
		}
	}
	for _, d := range []struct {
		field string
		arn   *string
	}{{"destinationConfig.onSuccess.destination", in.OnSuccess}, {"destinationConfig.onFailure.destination", in.OnFailure}} {
		switch {
		case d.arn == nil || *d.arn == "":
		case len(*d.arn) > maxDestinationLen:
			add(*d.arn, d.field, fmt.Sprintf("Member must have length less than or equal to %d", maxDestinationLen))
		case !arnShape.MatchString(*d.arn):
			add(*d.arn, d.field, "Member must satisfy regular expression pattern: ^$|arn:(aws[a-zA-Z0-9-]*):([a-zA-Z0-9\\-])+:([a-z]{2}(-gov)?-[a-z]+-\\d{1})?:(\\d{12})?:(.*)")
		}
	}
	if len(msgs) > 0 {
		noun := "error"
		if len(msgs) > 1 {
			noun = "errors"
		}
		return apierr.New(apierr.Validation, "%d validation %s detected: %s", len(msgs), noun, strings.Join(msgs, "; "))
	}
	return nil
}

// Destination is a parsed destination ARN.
type Destination struct {
	ARN string
	// Function and Qualifier are set for a function destination.
	Function, Qualifier string
	// Queue is set for a queue destination.
	Queue string
}

// ParseDestination maps a destination ARN to a Kappa target: a function in
// this region and account, or a Kappa queue (arn:aws:sqs:…).
func ParseDestination(arn, region, account string) (Destination, error) {
	bad := func(why string) error {
		return apierr.New(apierr.InvalidParameter, "The destination ARN %s is invalid: %s", arn, why)
	}
	m := arnShape.FindStringSubmatch(arn)
	if m == nil {
		return Destination{}, bad("it is not an ARN")
	}
	if m[3] != region || m[5] != account {
		return Destination{}, bad(fmt.Sprintf("Kappa reaches only region %s and account %s", region, account))
	}
	d := Destination{ARN: arn}
	switch m[2] {
	case "lambda":
		res, ok := strings.CutPrefix(m[6], "function:")
		if !ok {
			return Destination{}, bad("a Lambda destination is a function ARN")
		}
		ref, err := function.ParseRef(res, "", "")
		if err != nil || strings.Contains(res, ":") && ref.Qualifier == "" {
			return Destination{}, bad("the function name is not valid")
		}
		d.Function, d.Qualifier = ref.Name, ref.Qualifier
	case "sqs":
		if !ValidQueueName(m[6]) {
			return Destination{}, bad("a queue name is 1–80 characters of [a-zA-Z0-9_-]")
		}
		d.Queue = m[6]
	default:
		return Destination{}, bad(fmt.Sprintf("Kappa delivers to functions (arn:aws:lambda:…) and to its own queues (arn:aws:sqs:…), not to %s", m[2]))
	}
	return d, nil
}

// configKey is the store key of a configuration; $LATEST is spelled =LATEST
// since '$' is not a key character and '=' is never in an alias name.
func configKey(fn, qualifier string) string {
	return "eic." + fn + "." + strings.Replace(qualifier, "$", "=", 1)
}

// configs reads and writes configurations in the store.
type configs struct {
	bucket store.Bucket
	now    func() time.Time
}

func (c *configs) get(ctx context.Context, fn, qualifier string) (*Config, uint64, error) {
	e, err := c.bucket.Get(ctx, configKey(fn, qualifier))
	if errors.Is(err, store.ErrNotFound) {
		return nil, 0, nil
	}
	if err != nil {
		return nil, 0, apierr.Wrap(apierr.Internal, err, "read event invoke config")
	}
	var cfg Config
	if err := json.Unmarshal(e.Value, &cfg); err != nil {
		return nil, 0, apierr.Wrap(apierr.Internal, err, "decode event invoke config")
	}
	return &cfg, e.Revision, nil
}

// put writes cfg, merging onto the stored one when partial, under
// optimistic concurrency.
func (c *configs) put(ctx context.Context, fn, qualifier string, in ConfigInput, partial bool) (*Config, error) {
	for range 50 {
		old, rev, err := c.get(ctx, fn, qualifier)
		if err != nil {
			return nil, err
		}
		cfg := &Config{FunctionName: fn, Qualifier: qualifier}
		if partial && old != nil {
			*cfg = *old
		}
		if !partial || in.MaximumRetryAttempts != nil {
			cfg.MaximumRetryAttempts = in.MaximumRetryAttempts
		}
		if !partial || in.MaximumEventAgeInSeconds != nil {
			cfg.MaximumEventAgeInSeconds = in.MaximumEventAgeInSeconds
		}
		if in.OnSuccess != nil {
			cfg.Destinations.OnSuccess = *in.OnSuccess
		}
		if in.OnFailure != nil {
			cfg.Destinations.OnFailure = *in.OnFailure
		}
		cfg.LastModified = c.now().UTC()
		b, _ := json.Marshal(cfg)
		if old == nil {
			_, err = c.bucket.Create(ctx, configKey(fn, qualifier), b)
		} else {
			_, err = c.bucket.Update(ctx, configKey(fn, qualifier), b, rev)
		}
		if errors.Is(err, store.ErrExists) || errors.Is(err, store.ErrRevision) {
			continue
		}
		if err != nil {
			return nil, apierr.Wrap(apierr.Internal, err, "write event invoke config")
		}
		return cfg, nil
	}
	return nil, apierr.New(apierr.Internal, "too much contention on the event invoke config of %s", fn)
}

func (c *configs) delete(ctx context.Context, fn, qualifier string) error {
	if err := c.bucket.Delete(ctx, configKey(fn, qualifier)); err != nil {
		return apierr.Wrap(apierr.Internal, err, "delete event invoke config")
	}
	return nil
}

// list returns a function's configurations sorted by qualifier.
func (c *configs) list(ctx context.Context, fn string) ([]*Config, error) {
	keys, err := c.bucket.Keys(ctx, "eic."+fn)
	if err != nil {
		return nil, apierr.Wrap(apierr.Internal, err, "list event invoke configs")
	}
	var out []*Config
	for _, k := range keys {
		e, err := c.bucket.Get(ctx, k)
		if errors.Is(err, store.ErrNotFound) {
			continue
		}
		if err != nil {
			return nil, apierr.Wrap(apierr.Internal, err, "read event invoke config")
		}
		var cfg Config
		if json.Unmarshal(e.Value, &cfg) == nil {
			out = append(out, &cfg)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Qualifier < out[j].Qualifier })
	return out, nil
}
