package function

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"strings"
	"testing"

	"github.com/kappa-run/kappa/internal/apierr"
	"github.com/kappa-run/kappa/internal/store/memstore"
)

const helloARN = "arn:aws:lambda:us-east-1:000000000000:function:hello"

func TestValidateTags(t *testing.T) {
	fifty := map[string]string{}
	for i := range MaxTags {
		fifty[fmt.Sprintf("k%d", i)] = "v"
	}
	fiftyOne := maps.Clone(fifty)
	fiftyOne["one-more"] = ""
	tests := []struct {
		name string
		tags map[string]string
		kind apierr.Kind
	}{
		{name: "nil", tags: nil},
		{name: "fifty", tags: fifty},
		{name: "empty value", tags: map[string]string{"k": ""}},
		{name: "128-character key of multibyte runes", tags: map[string]string{strings.Repeat("é", 128): strings.Repeat("ü", 256)}},
		{name: "fifty-one", tags: fiftyOne, kind: apierr.InvalidParameter},
		{name: "empty key", tags: map[string]string{"": "v"}, kind: apierr.Validation},
		{name: "long key", tags: map[string]string{strings.Repeat("k", 129): "v"}, kind: apierr.Validation},
		{name: "long value", tags: map[string]string{"k": strings.Repeat("v", 257)}, kind: apierr.Validation},
		{name: "aws prefix", tags: map[string]string{"aws:cloudformation:stack-name": "x"}, kind: apierr.InvalidParameter},
		{name: "AWS prefix any case", tags: map[string]string{"AwS:x": "x"}, kind: apierr.InvalidParameter},
		{name: "NUL in key", tags: map[string]string{"a\x00b": "v"}, kind: apierr.Validation},
		{name: "newline in value", tags: map[string]string{"k": "line\nbreak"}, kind: apierr.Validation},
		{name: "escape in key", tags: map[string]string{"\x1b[31mred": "v"}, kind: apierr.Validation},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := ValidateTags(tt.tags)
			if tt.kind == "" {
				if err != nil {
					t.Fatalf("refused: %v", err)
				}
				return
			}
			if !errors.Is(err, tt.kind) {
				t.Fatalf("= %v, want %s", err, tt.kind)
			}
			if strings.Contains(err.Error(), "\x00") || strings.Contains(err.Error(), "\x1b") || len(err.Error()) > 400 {
				t.Errorf("message repeats the hostile key: %q", err)
			}
		})
	}
}

func TestTagOperations(t *testing.T) {
	b, _ := memstore.New().Bucket(context.Background(), "functions")
	s := NewService(Options{Bucket: b, Images: &fakeImages{}, Region: "us-east-1", Account: "000000000000"})
	t.Cleanup(s.Close)
	ctx := context.Background()
	in := validInput()
	in.Tags = map[string]string{"team": "a"}
	if _, err := s.Create(ctx, in); err != nil {
		t.Fatal(err)
	}

	if err := s.TagResource(ctx, helloARN, map[string]string{"team": "b", "env": "dev"}); err != nil {
		t.Fatal(err)
	}
	if err := s.UntagResource(ctx, helloARN, []string{"env", "absent"}); err != nil {
		t.Fatal(err)
	}
	if err := s.UntagResource(ctx, helloARN, []string{"absent"}); err != nil {
		t.Fatalf("untag of absent keys only = %v", err)
	}
	got, err := s.Tags(ctx, helloARN)
	if err != nil || !maps.Equal(got, map[string]string{"team": "b"}) {
		t.Fatalf("Tags = %v, %v", got, err)
	}
	got["team"] = "changed by the caller"
	if fn, _ := s.Get(ctx, "hello"); fn.Tags["team"] != "b" {
		t.Errorf("Tags returned the stored map: Get sees %v", fn.Tags)
	}

	// Another Service on the same bucket reads the tags from the store.
	again := NewService(Options{Bucket: b, Images: &fakeImages{}, Region: "us-east-1", Account: "000000000000"})
	t.Cleanup(again.Close)
	if got, _ := again.Tags(ctx, helloARN); !maps.Equal(got, map[string]string{"team": "b"}) {
		t.Errorf("tags after restart = %v", got)
	}

	many := map[string]string{}
	for i := range MaxTags {
		many[fmt.Sprintf("k%d", i)] = "v"
	}
	tests := []struct {
		name     string
		op       func() error
		kind     apierr.Kind
		contains string
	}{
		{"bare name", func() error { return s.TagResource(ctx, "hello", map[string]string{"a": "b"}) }, apierr.Validation, "at 'resource'"},
		{"partial ARN", func() error { _, err := s.Tags(ctx, "000000000000:function:hello"); return err }, apierr.Validation, "at 'resource'"},
		{"qualified ARN", func() error { return s.TagResource(ctx, helloARN+":1", map[string]string{"a": "b"}) }, apierr.InvalidParameter, "Tags on aliases and versions are not supported"},
		{"$LATEST ARN", func() error { _, err := s.Tags(ctx, helloARN+":$LATEST"); return err }, apierr.InvalidParameter, "Tagging operations"},
		{"qualified untag", func() error { return s.UntagResource(ctx, helloARN+":live", []string{"a"}) }, apierr.InvalidParameter, "Tagging operations"},
		{"other region", func() error {
			_, err := s.Tags(ctx, "arn:aws:lambda:eu-west-1:000000000000:function:hello")
			return err
		}, apierr.InvalidParameter, "not reachable in this region"},
		{"other account", func() error {
			_, err := s.Tags(ctx, "arn:aws:lambda:us-east-1:111111111111:function:hello")
			return err
		}, apierr.NotFound, ""},
		{"layer ARN", func() error { _, err := s.Tags(ctx, "arn:aws:lambda:us-east-1:000000000000:layer:x"); return err }, apierr.Validation, ""},
		{"unknown function", func() error { return s.TagResource(ctx, helloARN+"2", map[string]string{"a": "b"}) }, apierr.NotFound, "Function not found"},
		{"unknown function untag", func() error { return s.UntagResource(ctx, helloARN+"2", []string{"a"}) }, apierr.NotFound, ""},
		{"nil tags", func() error { return s.TagResource(ctx, helloARN, nil) }, apierr.Validation, "Value null at 'tags'"},
		{"no tags", func() error { return s.TagResource(ctx, helloARN, map[string]string{}) }, apierr.InvalidParameter, ""},
		{"over the limit with existing", func() error { return s.TagResource(ctx, helloARN, many) }, apierr.InvalidParameter, "exceeds resource tag limit"},
		{"aws prefix", func() error { return s.TagResource(ctx, helloARN, map[string]string{"aws:x": "y"}) }, apierr.InvalidParameter, "reserved"},
		{"nil tag keys", func() error { return s.UntagResource(ctx, helloARN, nil) }, apierr.Validation, "Value null at 'tagKeys'"},
		{"empty tag key", func() error { return s.UntagResource(ctx, helloARN, []string{""}) }, apierr.Validation, "at 'tagKeys'"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.op()
			if !errors.Is(err, tt.kind) || !strings.Contains(fmt.Sprint(err), tt.contains) {
				t.Fatalf("= %v, want %s containing %q", err, tt.kind, tt.contains)
			}
		})
	}
	if got, _ := s.Tags(ctx, helloARN); !maps.Equal(got, map[string]string{"team": "b"}) {
		t.Errorf("refused operations changed the tags: %v", got)
	}
}
