package function

import (
	"context"
	"errors"
	"maps"
	"regexp"
	"slices"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/kappa-run/kappa/internal/apierr"
)

// Tags belong to a function, not to its versions or aliases, as in Lambda.
// They live in the Function record, where CreateFunction's Tags go, so
// TagResource, UntagResource, ListTags and GetFunction read and write one
// map.

// Tag limits, as Lambda enforces them. Lengths count characters.
const (
	MaxTags        = 50
	MaxTagKeyLen   = 128
	MaxTagValueLen = 256
)

// tagARNPattern is the resource pattern Lambda reports for tagging
// operations on functions.
const tagARNPattern = `arn:(aws[a-zA-Z-]*)?:lambda:[a-z]{2}((-gov)|(-iso(b?)))?-[a-z]+-\d{1}:\d{12}:function:[a-zA-Z0-9-_]+(:(\$LATEST|[a-zA-Z0-9-_]+))?`

var tagARNRE = regexp.MustCompile(`^` + tagARNPattern + `$`)

// ValidateTags checks tags as TagResource and CreateFunction do: at most
// MaxTags, keys of 1–MaxTagKeyLen characters not starting with "aws:",
// values of at most MaxTagValueLen characters, and no control characters.
func ValidateTags(tags map[string]string) error {
	if len(tags) > MaxTags {
		return tooManyTags()
	}
	for _, k := range slices.Sorted(maps.Keys(tags)) {
		if err := validateTagKey(k, "tags", "Map keys"); err != nil {
			return err
		}
		v := tags[k]
		if utf8.RuneCountInString(v) > MaxTagValueLen {
			return apierr.New(apierr.Validation,
				"1 validation error detected: Value at 'tags' failed to satisfy constraint: Map value must satisfy constraint: [Member must have length less than or equal to %d]", MaxTagValueLen)
		}
		if hasControl(v) {
			return apierr.New(apierr.Validation,
				"1 validation error detected: Value at 'tags' failed to satisfy constraint: Map value must satisfy constraint: [Member must not contain control characters]")
		}
	}
	return nil
}

// ValidateTagResource checks TagResource's tags, of a function or of any
// other taggable resource: present, not empty, and each valid.
func ValidateTagResource(tags map[string]string) error {
	if tags == nil {
		return apierr.New(apierr.Validation, "1 validation error detected: Value null at 'tags' failed to satisfy constraint: Member must not be null")
	}
	if len(tags) == 0 {
		return apierr.New(apierr.InvalidParameter, "An error occurred and the request cannot be processed.")
	}
	return ValidateTags(tags)
}

// ValidateTagKeys checks UntagResource's tagKeys; nil means the parameter
// was missing.
func ValidateTagKeys(keys []string) error {
	if keys == nil {
		return apierr.New(apierr.Validation, "1 validation error detected: Value null at 'tagKeys' failed to satisfy constraint: Member must not be null")
	}
	for _, k := range keys {
		if err := validateTagKey(k, "tagKeys", "Member"); err != nil {
			return err
		}
	}
	return nil
}

// validateTagKey checks one key; the key itself is left out of the
// message, which may be long or hostile.
func validateTagKey(k, field, what string) error {
	if n := utf8.RuneCountInString(k); n < 1 || n > MaxTagKeyLen {
		return apierr.New(apierr.Validation,
			"1 validation error detected: Value at '%s' failed to satisfy constraint: %s must satisfy constraint: [Member must have length less than or equal to %d, Member must have length greater than or equal to 1]", field, what, MaxTagKeyLen)
	}
	if hasControl(k) {
		return apierr.New(apierr.Validation,
			"1 validation error detected: Value at '%s' failed to satisfy constraint: %s must satisfy constraint: [Member must not contain control characters]", field, what)
	}
	if field == "tags" && strings.HasPrefix(strings.ToLower(k), "aws:") {
		return apierr.New(apierr.InvalidParameter, "Tag keys starting with 'aws:' are reserved for AWS use.")
	}
	return nil
}

func hasControl(s string) bool {
	return strings.ContainsFunc(s, unicode.IsControl)
}

func tooManyTags() error {
	return apierr.New(apierr.InvalidParameter, "Number of tags exceeds resource tag limit.")
}

// tagTarget returns the function a tagging operation's resource names: an
// unqualified function ARN of this region and account.
func (s *Service) tagTarget(resource string) (string, error) {
	if !tagARNRE.MatchString(resource) {
		return "", apierr.New(apierr.Validation,
			"1 validation error detected: Value '%s' at 'resource' failed to satisfy constraint: Member must satisfy regular expression pattern: %s", resource, tagARNPattern)
	}
	ref, err := ParseRef(resource, s.opts.Region, s.opts.Account)
	if err != nil {
		return "", err
	}
	if ref.Qualifier != "" {
		return "", apierr.New(apierr.InvalidParameter,
			"Tagging operations are permitted on Lambda functions only. Tags on aliases and versions are not supported. Please specify either a function name or a function ARN.")
	}
	return ref.Name, nil
}

// Tags returns the tags of the function resource names (ListTags); the map
// is the caller's and never nil.
func (s *Service) Tags(ctx context.Context, resource string) (map[string]string, error) {
	name, err := s.tagTarget(resource)
	if err != nil {
		return nil, err
	}
	fn, err := s.Get(ctx, name)
	if err != nil {
		return nil, err
	}
	tags := maps.Clone(fn.Tags)
	if tags == nil {
		tags = map[string]string{}
	}
	return tags, nil
}

// TagResource adds tags to the function resource names, replacing the
// values of keys it already has (TagResource). The function may then have
// at most MaxTags.
func (s *Service) TagResource(ctx context.Context, resource string, tags map[string]string) error {
	name, err := s.tagTarget(resource)
	if err != nil {
		return err
	}
	if err := ValidateTagResource(tags); err != nil {
		return err
	}
	_, err = s.mutate(ctx, name, func(fn *Function) error {
		merged := maps.Clone(fn.Tags)
		if merged == nil {
			merged = make(map[string]string, len(tags))
		}
		maps.Copy(merged, tags)
		if len(merged) > MaxTags {
			return tooManyTags()
		}
		fn.Tags = merged
		return nil
	})
	return err
}

// UntagResource removes tag keys from the function resource names
// (UntagResource); keys it does not have are ignored.
func (s *Service) UntagResource(ctx context.Context, resource string, keys []string) error {
	name, err := s.tagTarget(resource)
	if err != nil {
		return err
	}
	if err := ValidateTagKeys(keys); err != nil {
		return err
	}
	_, err = s.mutate(ctx, name, func(fn *Function) error {
		if !slices.ContainsFunc(keys, func(k string) bool { _, ok := fn.Tags[k]; return ok }) {
			return errSkip
		}
		left := maps.Clone(fn.Tags)
		for _, k := range keys {
			delete(left, k)
		}
		if len(left) == 0 {
			left = nil
		}
		fn.Tags = left
		return nil
	})
	if errors.Is(err, errSkip) {
		return nil
	}
	return err
}
