package function

import (
	"context"
	"encoding/json"
	"errors"
	"sort"
	"time"

	"github.com/kappa-run/kappa/internal/apierr"
	"github.com/kappa-run/kappa/internal/store"
)

// Provisioned is a provisioned-concurrency configuration of one version or
// alias. Its status is live state and is reported by the invoker.
type Provisioned struct {
	FunctionName string    `json:"functionName"`
	Qualifier    string    `json:"qualifier"`
	Requested    int       `json:"requested"`
	LastModified time.Time `json:"lastModified"`
}

func provisionedKey(fn, q string) string { return "pc." + fn + "." + q }

// Owner names the configuration for the invoker: "<function>:<qualifier>".
func (p *Provisioned) Owner() string { return p.FunctionName + ":" + p.Qualifier }

// PutProvisioned sets the provisioned concurrency of a published version or
// an alias.
func (s *Service) PutProvisioned(ctx context.Context, fn, qualifier string, n int) (*Provisioned, error) {
	if qualifier == "" {
		return nil, apierr.New(apierr.Validation, "1 validation error detected: Value null at 'qualifier' failed to satisfy constraint: Member must not be null")
	}
	if n < 1 {
		return nil, apierr.New(apierr.Validation,
			"1 validation error detected: Value '%d' at 'provisionedConcurrentExecutions' failed to satisfy constraint: Member must have value greater than or equal to 1", n)
	}
	if qualifier == LatestVersion {
		return nil, apierr.New(apierr.InvalidParameter, "Provisioned Concurrency Configs cannot be applied to unpublished function versions.")
	}
	f, err := s.Get(ctx, fn)
	if err != nil {
		return nil, err
	}
	if _, err := s.Config(ctx, Ref{Name: fn, Qualifier: qualifier}); err != nil {
		return nil, err
	}
	if f.ReservedConcurrency != nil && n > *f.ReservedConcurrency {
		return nil, apierr.New(apierr.InvalidParameter,
			"Requested Provisioned Concurrency should not be greater than the reservedConcurrentExecution for function")
	}
	p := &Provisioned{FunctionName: fn, Qualifier: qualifier, Requested: n, LastModified: s.opts.Now().UTC()}
	b, _ := json.Marshal(p)
	if _, err := s.opts.Bucket.Put(ctx, provisionedKey(fn, qualifier), b); err != nil {
		return nil, apierr.Wrap(apierr.Internal, err, "store provisioned concurrency")
	}
	s.changed(fn)
	return p, nil
}

// GetProvisioned returns one configuration, or a
// ProvisionedConcurrencyConfigNotFoundException.
func (s *Service) GetProvisioned(ctx context.Context, fn, qualifier string) (*Provisioned, error) {
	if qualifier == "" {
		return nil, apierr.New(apierr.Validation, "1 validation error detected: Value null at 'qualifier' failed to satisfy constraint: Member must not be null")
	}
	if _, err := s.Get(ctx, fn); err != nil {
		return nil, err
	}
	if qualifier == LatestVersion || !isVersion(qualifier) && !validAliasName(qualifier) {
		// $LATEST never has one; nor has what is neither a version nor
		// an alias name (and is no store key either).
		return nil, apierr.New(apierr.ProvisionedNotFound, "No Provisioned Concurrency Config found for this function")
	}
	e, err := s.opts.Bucket.Get(ctx, provisionedKey(fn, qualifier))
	if errors.Is(err, store.ErrNotFound) {
		return nil, apierr.New(apierr.ProvisionedNotFound, "No Provisioned Concurrency Config found for this function")
	}
	if err != nil {
		return nil, apierr.Wrap(apierr.Internal, err, "read provisioned concurrency")
	}
	var p Provisioned
	if err := json.Unmarshal(e.Value, &p); err != nil {
		return nil, apierr.Wrap(apierr.Internal, err, "decode provisioned concurrency")
	}
	return &p, nil
}

// DeleteProvisioned removes a configuration.
func (s *Service) DeleteProvisioned(ctx context.Context, fn, qualifier string) error {
	if _, err := s.GetProvisioned(ctx, fn, qualifier); err != nil {
		return err
	}
	if err := s.opts.Bucket.Delete(ctx, provisionedKey(fn, qualifier)); err != nil {
		return apierr.Wrap(apierr.Internal, err, "delete provisioned concurrency")
	}
	s.changed(fn)
	return nil
}

// ListProvisioned returns a function's configurations sorted by qualifier.
func (s *Service) ListProvisioned(ctx context.Context, fn string) ([]*Provisioned, error) {
	if _, err := s.Get(ctx, fn); err != nil {
		return nil, err
	}
	keys, err := s.opts.Bucket.Keys(ctx, "pc."+fn)
	if err != nil {
		return nil, apierr.Wrap(apierr.Internal, err, "list provisioned concurrency")
	}
	sort.Strings(keys)
	var out []*Provisioned
	for _, k := range keys {
		p, err := s.GetProvisioned(ctx, fn, k[len("pc."+fn+"."):])
		if errors.Is(err, apierr.ProvisionedNotFound) {
			continue
		}
		if err != nil {
			return nil, err
		}
		out = append(out, p)
	}
	return out, nil
}
