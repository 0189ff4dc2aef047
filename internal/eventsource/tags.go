package eventsource

import (
	"context"
	"maps"

	"github.com/kappa-run/kappa/internal/apierr"
	"github.com/kappa-run/kappa/internal/function"
)

// A mapping has tags of its own, as in Lambda (TagResource, UntagResource
// and ListTags on its EventSourceMappingArn; Tags on create). They are
// kept in the mapping's record and go with it, and checked as a
// function's are (function.ValidateTags; at most function.MaxTags).

// Tags returns the tags of mapping id (ListTags); the map is the caller's
// and never nil.
func (s *Service) Tags(_ context.Context, id string) (map[string]string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	m, err := s.taggedLocked(id)
	if err != nil {
		return nil, err
	}
	tags := maps.Clone(m.Tags)
	if tags == nil {
		tags = map[string]string{}
	}
	return tags, nil
}

// TagResource adds tags to mapping id, replacing the values of keys it
// already has.
func (s *Service) TagResource(ctx context.Context, id string, tags map[string]string) error {
	if err := function.ValidateTagResource(tags); err != nil {
		return err
	}
	return s.retag(ctx, id, func(t map[string]string) { maps.Copy(t, tags) })
}

// UntagResource removes keys from mapping id's tags; absent keys are
// fine.
func (s *Service) UntagResource(ctx context.Context, id string, keys []string) error {
	if err := function.ValidateTagKeys(keys); err != nil {
		return err
	}
	return s.retag(ctx, id, func(t map[string]string) {
		for _, k := range keys {
			delete(t, k)
		}
	})
}

// retag stores mapping id with its tags changed by edit.
func (s *Service) retag(ctx context.Context, id string, edit func(map[string]string)) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	cur, err := s.taggedLocked(id)
	if err != nil {
		return err
	}
	m := *cur
	m.Tags = maps.Clone(cur.Tags)
	if m.Tags == nil {
		m.Tags = map[string]string{}
	}
	edit(m.Tags)
	if len(m.Tags) > function.MaxTags {
		return apierr.New(apierr.InvalidParameter, "Number of tags exceeds resource tag limit.")
	}
	if len(m.Tags) == 0 {
		m.Tags = nil
	}
	if err := s.put(ctx, &m, false); err != nil {
		return err
	}
	s.mappings[id] = &m
	return nil
}

// taggedLocked returns the live mapping id; s.mu must be held.
func (s *Service) taggedLocked(id string) (*Mapping, error) {
	m, ok := s.mappings[id]
	if !ok || m.State == StateDeleting {
		return nil, notFound(id)
	}
	return m, nil
}
