package eventsource

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"testing"

	"github.com/kappa-run/kappa/internal/apierr"
	"github.com/kappa-run/kappa/internal/function"
)

// TestTags: a mapping's tags come from its creation, change with
// TagResource and UntagResource, are checked as a function's, survive a
// restart and go with the mapping.
func TestTags(t *testing.T) {
	h := newHarness(t)
	ctx := context.Background()
	if _, err := h.queues.Create(ctx, "tq"); err != nil {
		t.Fatal(err)
	}
	m, err := h.svc.Create(ctx, Input{Function: ptr("f"), EventSourceArn: queueARN("tq"), Tags: map[string]string{"team": "a"}})
	if err != nil {
		t.Fatal(err)
	}
	want := func(what string, tags map[string]string) {
		t.Helper()
		got, err := h.svc.Tags(ctx, m.UUID)
		if err != nil || !maps.Equal(got, tags) || got == nil {
			t.Errorf("%s: tags %v, %v; want %v", what, got, err, tags)
		}
	}
	want("created", map[string]string{"team": "a"})
	if err := h.svc.TagResource(ctx, m.UUID, map[string]string{"team": "b", "env": "dev"}); err != nil {
		t.Fatal(err)
	}
	want("tagged", map[string]string{"team": "b", "env": "dev"})
	if err := h.svc.UntagResource(ctx, m.UUID, []string{"env", "absent"}); err != nil {
		t.Fatal(err)
	}
	want("untagged", map[string]string{"team": "b"})

	many := map[string]string{}
	for i := range function.MaxTags {
		many[fmt.Sprint("k", i)] = "v"
	}
	for _, tt := range []struct {
		name string
		err  error
		kind apierr.Kind
	}{
		{"over the limit with the one it has", h.svc.TagResource(ctx, m.UUID, many), apierr.InvalidParameter},
		{"nil", h.svc.TagResource(ctx, m.UUID, nil), apierr.Validation},
		{"empty", h.svc.TagResource(ctx, m.UUID, map[string]string{}), apierr.InvalidParameter},
		{"reserved key", h.svc.TagResource(ctx, m.UUID, map[string]string{"aws:x": "y"}), apierr.InvalidParameter},
		{"no keys", h.svc.UntagResource(ctx, m.UUID, nil), apierr.Validation},
		{"unknown mapping", h.svc.TagResource(ctx, "00000000-0000-0000-0000-000000000000", map[string]string{"a": "b"}), apierr.NotFound},
	} {
		if !errors.Is(tt.err, tt.kind) {
			t.Errorf("%s: %v, want %s", tt.name, tt.err, tt.kind)
		}
	}
	want("after refusals", map[string]string{"team": "b"})

	h.svc.Close(ctx)
	h.start(t)
	want("after a restart", map[string]string{"team": "b"})
	h.waitState(t, m.UUID, StateEnabled)
	if _, err := h.svc.Delete(ctx, m.UUID); err != nil {
		t.Fatal(err)
	}
	if _, err := h.svc.Tags(ctx, m.UUID); !errors.Is(err, apierr.NotFound) {
		t.Errorf("tags of a deleted mapping: %v, want not found", err)
	}
}
