package function

import (
	"context"
	"encoding/json"
	"errors"
	"maps"
	"regexp"
	"sort"
	"strconv"

	"github.com/google/uuid"

	"github.com/kappa-run/kappa/internal/apierr"
	"github.com/kappa-run/kappa/internal/store"
)

var aliasRE = regexp.MustCompile(`^[a-zA-Z0-9-_]{1,128}$`)

func aliasKey(fn, alias string) string { return "alias." + fn + "." + alias }

// AliasInput is a CreateAlias or UpdateAlias request. For updates, nil and
// empty fields are left unchanged.
type AliasInput struct {
	Name            string
	FunctionVersion string
	Description     *string
	// Weights is RoutingConfig.AdditionalVersionWeights; nil leaves it
	// unchanged on update, an empty non-nil map clears it.
	Weights    map[string]float64
	RevisionID string
}

func validAliasName(n string) bool {
	if !aliasRE.MatchString(n) {
		return false
	}
	_, err := strconv.Atoi(n)
	return err != nil
}

// checkAlias validates a's versions against the function's versions.
func (s *Service) checkAlias(ctx context.Context, fn string, a *Alias) error {
	if a.FunctionVersion != LatestVersion {
		if !isVersion(a.FunctionVersion) {
			return apierr.New(apierr.Validation,
				"1 validation error detected: Value '%s' at 'functionVersion' failed to satisfy constraint: Member must satisfy regular expression pattern: (\\$LATEST|[0-9]+)", a.FunctionVersion)
		}
		n, _ := strconv.Atoi(a.FunctionVersion)
		if _, err := s.version(ctx, fn, n); err != nil {
			return err
		}
	}
	if len(a.AdditionalWeights) > 1 {
		return apierr.New(apierr.InvalidParameter, "Number of items in AdditionalVersionWeights cannot be greater than 1")
	}
	for v, w := range a.AdditionalWeights {
		if w < 0 || w > 1 {
			return apierr.New(apierr.Validation,
				"1 validation error detected: Value '%v' at 'routingConfig.additionalVersionWeights' failed to satisfy constraint: Map value must satisfy constraint: [Member must have value less than or equal to 1.0, Member must have value greater than or equal to 0.0]", w)
		}
		if v == LatestVersion || a.FunctionVersion == LatestVersion {
			return apierr.New(apierr.InvalidParameter, "$LATEST is not supported for an alias pointing to more than 1 version")
		}
		if v == a.FunctionVersion {
			return apierr.New(apierr.InvalidParameter, "Alias routing cannot point to the alias's primary version %s", v)
		}
		n, err := strconv.Atoi(v)
		if err != nil {
			return apierr.New(apierr.InvalidParameter, "Invalid version %q in AdditionalVersionWeights", v)
		}
		if _, err := s.version(ctx, fn, n); err != nil {
			return err
		}
	}
	return nil
}

// CreateAlias creates an alias of a function.
func (s *Service) CreateAlias(ctx context.Context, fn string, in AliasInput) (*Alias, error) {
	if !validAliasName(in.Name) {
		return nil, apierr.New(apierr.Validation,
			"1 validation error detected: Value '%s' at 'name' failed to satisfy constraint: Member must satisfy regular expression pattern: (?!^[0-9]+$)([a-zA-Z0-9-_]+)", in.Name)
	}
	if in.FunctionVersion == "" {
		return nil, apierr.New(apierr.Validation, "1 validation error detected: Value null at 'functionVersion' failed to satisfy constraint: Member must not be null")
	}
	if _, err := s.Get(ctx, fn); err != nil {
		return nil, err
	}
	a := &Alias{Name: in.Name, FunctionName: fn, FunctionVersion: in.FunctionVersion, AdditionalWeights: in.Weights, RevisionID: uuid.NewString()}
	if in.Description != nil {
		a.Description = *in.Description
	}
	if err := s.checkAlias(ctx, fn, a); err != nil {
		return nil, err
	}
	b, _ := json.Marshal(a)
	if _, err := s.opts.Bucket.Create(ctx, aliasKey(fn, a.Name), b); err != nil {
		if errors.Is(err, store.ErrExists) {
			return nil, apierr.New(apierr.Conflict, "Alias already exists: %s", s.ARN(fn, a.Name))
		}
		return nil, apierr.Wrap(apierr.Internal, err, "store alias")
	}
	return a, nil
}

// GetAlias returns one alias.
func (s *Service) GetAlias(ctx context.Context, fn, name string) (*Alias, error) {
	a, _, err := s.loadAlias(ctx, fn, name)
	return a, err
}

func (s *Service) loadAlias(ctx context.Context, fn, name string) (*Alias, uint64, error) {
	if !validAliasName(name) {
		return nil, 0, apierr.New(apierr.NotFound, "Alias not found: %s", s.ARN(fn, name))
	}
	e, err := s.opts.Bucket.Get(ctx, aliasKey(fn, name))
	if errors.Is(err, store.ErrNotFound) {
		if _, ferr := s.Get(ctx, fn); ferr != nil {
			return nil, 0, ferr
		}
		return nil, 0, apierr.New(apierr.NotFound, "Alias not found: %s", s.ARN(fn, name))
	}
	if err != nil {
		return nil, 0, apierr.Wrap(apierr.Internal, err, "read alias")
	}
	var a Alias
	if err := json.Unmarshal(e.Value, &a); err != nil {
		return nil, 0, apierr.Wrap(apierr.Internal, err, "decode alias")
	}
	return &a, e.Revision, nil
}

// UpdateAlias changes an alias; RevisionID, when given, must match.
func (s *Service) UpdateAlias(ctx context.Context, fn string, in AliasInput) (*Alias, error) {
	for range 100 {
		a, rev, err := s.loadAlias(ctx, fn, in.Name)
		if err != nil {
			return nil, err
		}
		if in.RevisionID != "" && in.RevisionID != a.RevisionID {
			return nil, apierr.New(apierr.PreconditionFailed,
				"The Revision Id provided does not match the latest Revision Id. Call the GetFunction/GetAlias API to retrieve the latest Revision Id")
		}
		if in.FunctionVersion != "" {
			a.FunctionVersion = in.FunctionVersion
		}
		if in.Description != nil {
			a.Description = *in.Description
		}
		if in.Weights != nil {
			a.AdditionalWeights = maps.Clone(in.Weights)
			if len(a.AdditionalWeights) == 0 {
				a.AdditionalWeights = nil
			}
		}
		if err := s.checkAlias(ctx, fn, a); err != nil {
			return nil, err
		}
		a.RevisionID = uuid.NewString()
		b, _ := json.Marshal(a)
		_, err = s.opts.Bucket.Update(ctx, aliasKey(fn, a.Name), b, rev)
		if errors.Is(err, store.ErrRevision) {
			continue
		}
		if err != nil {
			return nil, apierr.Wrap(apierr.Internal, err, "write alias")
		}
		s.changed(fn) // provisioned concurrency on the alias follows it
		return a, nil
	}
	return nil, apierr.New(apierr.Internal, "too much contention on alias %s", in.Name)
}

// DeleteAlias removes an alias; deleting an absent alias of an existing
// function succeeds, as in Lambda.
func (s *Service) DeleteAlias(ctx context.Context, fn, name string) error {
	if _, err := s.Get(ctx, fn); err != nil {
		return err
	}
	if !validAliasName(name) {
		return apierr.New(apierr.Validation,
			"1 validation error detected: Value '%s' at 'name' failed to satisfy constraint: Member must satisfy regular expression pattern: (?!^[0-9]+$)([a-zA-Z0-9-_]+)", name)
	}
	if err := s.opts.Bucket.Delete(ctx, aliasKey(fn, name)); err != nil {
		return apierr.Wrap(apierr.Internal, err, "delete alias")
	}
	// The alias's provisioned concurrency goes with it.
	if err := s.opts.Bucket.Delete(ctx, provisionedKey(fn, name)); err != nil {
		return apierr.Wrap(apierr.Internal, err, "delete provisioned concurrency")
	}
	// And so does its resource-based policy.
	if err := s.dropPolicy(ctx, fn, name); err != nil {
		// The alias is gone: its environments must still be told.
		s.log.Warn("delete the policy of a deleted alias", "function", fn, "alias", name, "err", err)
	}
	s.changed(fn)
	return nil
}

// Aliases lists a function's aliases sorted by name, optionally only those
// pointing at version.
func (s *Service) Aliases(ctx context.Context, fn, version string) ([]*Alias, error) {
	if _, err := s.Get(ctx, fn); err != nil {
		return nil, err
	}
	keys, err := s.opts.Bucket.Keys(ctx, "alias."+fn)
	if err != nil {
		return nil, apierr.Wrap(apierr.Internal, err, "list aliases")
	}
	sort.Strings(keys)
	var out []*Alias
	for _, k := range keys {
		a, err := s.GetAlias(ctx, fn, k[len("alias."+fn+"."):])
		if errors.Is(err, apierr.NotFound) {
			continue
		}
		if err != nil {
			return nil, err
		}
		if version == "" || a.FunctionVersion == version || a.AdditionalWeights[version] > 0 {
			out = append(out, a)
		}
	}
	return out, nil
}
