package registry

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"os"
	"path/filepath"

	"github.com/opencontainers/go-digest"

	"github.com/kappa-run/kappa/internal/apierr"
)

// Tag mutability settings, spelled as ECR spells imageTagMutability.
const (
	TagMutable   = "MUTABLE"
	TagImmutable = "IMMUTABLE"
)

// RepositorySettings are the per-repository options. The zero value is
// the default: tags may be moved.
type RepositorySettings struct {
	// TagMutability is TagMutable or TagImmutable. In an immutable
	// repository a tag, once pushed, can only be pushed again with the same
	// manifest; it can still be deleted, and then reused.
	TagMutability string `json:"tagMutability"`
}

// Immutable reports whether the repository's tags are immutable.
func (s RepositorySettings) Immutable() bool { return s.TagMutability == TagImmutable }

// maxSettingsBody bounds a settings document.
const maxSettingsBody = 4 << 10

// ParseSettings parses a settings document, {"tagMutability":"IMMUTABLE"}:
// one JSON object of at most 4 KiB, no unknown fields, no trailing data,
// tagMutability MUTABLE or IMMUTABLE. Errors wrap apierr.InvalidParameter
// and their text is fit for the client.
func ParseSettings(body []byte) (RepositorySettings, error) {
	var s RepositorySettings
	if len(body) > maxSettingsBody {
		return s, fmt.Errorf("%w: settings larger than %d bytes", apierr.InvalidParameter, maxSettingsBody)
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	var raw struct {
		TagMutability *string `json:"tagMutability"`
	}
	if err := dec.Decode(&raw); err != nil {
		return s, fmt.Errorf("%w: settings are not a valid JSON object: %v", apierr.InvalidParameter, err)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return s, fmt.Errorf("%w: trailing data after the settings object", apierr.InvalidParameter)
	}
	if raw.TagMutability == nil {
		return s, fmt.Errorf("%w: tagMutability is required", apierr.InvalidParameter)
	}
	switch *raw.TagMutability {
	case TagMutable, TagImmutable:
		s.TagMutability = *raw.TagMutability
	default:
		return s, fmt.Errorf("%w: tagMutability must be %s or %s", apierr.InvalidParameter, TagMutable, TagImmutable)
	}
	return s, nil
}

func (s *store) settingsPath(name string) string {
	return filepath.Join(s.repoDir(name), "_settings.json")
}

// Settings returns the settings of repository repo; a repository never
// configured (or not existing yet) has the defaults. Errors wrap
// apierr.InvalidParameter for a malformed name.
func (r *Registry) Settings(ctx context.Context, repo string) (RepositorySettings, error) {
	if err := ctx.Err(); err != nil {
		return RepositorySettings{}, err
	}
	if !validName(repo) {
		return RepositorySettings{}, fmt.Errorf("%w: invalid repository name %q", apierr.InvalidParameter, repo)
	}
	return r.store.settings(repo)
}

func (s *store) settings(name string) (RepositorySettings, error) {
	set := RepositorySettings{TagMutability: TagMutable}
	b, err := os.ReadFile(s.settingsPath(name))
	if errors.Is(err, fs.ErrNotExist) {
		return set, nil
	}
	if err != nil {
		return set, fmt.Errorf("read settings of %s: %w", name, err)
	}
	if err := json.Unmarshal(b, &set); err != nil {
		return set, fmt.Errorf("parse settings of %s: %w", name, err)
	}
	return set, nil
}

// SetSettings replaces the settings of repository repo, which need not
// exist yet (settings made ahead apply to its first push). Errors wrap
// apierr.InvalidParameter for a malformed name or value.
func (r *Registry) SetSettings(ctx context.Context, repo string, set RepositorySettings) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if !validName(repo) {
		return fmt.Errorf("%w: invalid repository name %q", apierr.InvalidParameter, repo)
	}
	if set.TagMutability != TagMutable && set.TagMutability != TagImmutable {
		return fmt.Errorf("%w: tagMutability must be %s or %s", apierr.InvalidParameter, TagMutable, TagImmutable)
	}
	b, err := json.Marshal(set)
	if err != nil {
		return err
	}
	defer r.repoLocks.lock(repo)()
	if err := writeFileAtomic(r.store.settingsPath(repo), b); err != nil {
		return fmt.Errorf("write settings of %s: %w", repo, err)
	}
	r.logger.InfoContext(ctx, "repository settings changed", "repo", repo, "tagMutability", set.TagMutability)
	return nil
}

// checkTagsMutable refuses, in an immutable repository, to move any of
// tags to a manifest other than d, with the 400 TAG_INVALID and the message
// ECR sends. The caller holds the repository's lock.
func (r *Registry) checkTagsMutable(name string, d digest.Digest, tags []string) error {
	if len(tags) == 0 {
		return nil
	}
	set, err := r.store.settings(name)
	if err != nil {
		return err
	}
	if !set.Immutable() {
		return nil
	}
	for _, t := range tags {
		cur, err := r.store.tagDigest(name, t)
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return err
		}
		if cur != d {
			return errorf(http.StatusBadRequest, codeTagInvalid,
				"The image tag '%s' already exists in the '%s' repository and cannot be overwritten because the tag is immutable.", t, name).
				withDetail(map[string]string{"tag": t, "digest": cur.String()})
		}
	}
	return nil
}
