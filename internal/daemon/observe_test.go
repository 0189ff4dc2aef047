package daemon

import (
	"context"
	"testing"
	"time"

	"github.com/kappa-run/kappa/internal/invoker"
	"github.com/kappa-run/kappa/internal/sandbox"
)

func TestAliasOf(t *testing.T) {
	tests := []struct{ name, arn, want string }{
		{"unqualified", "arn:aws:lambda:us-east-1:000000000000:function:fn", ""},
		{"latest", "arn:aws:lambda:us-east-1:000000000000:function:fn:$LATEST", ""},
		{"version", "arn:aws:lambda:us-east-1:000000000000:function:fn:12", ""},
		{"alias", "arn:aws:lambda:us-east-1:000000000000:function:fn:live", "live"},
		{"garbage", "live", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := aliasOf(tt.arn); got != tt.want {
				t.Errorf("aliasOf(%q) = %q, want %q", tt.arn, got, tt.want)
			}
		})
	}
}

func TestPhaseStart(t *testing.T) {
	t0 := time.Unix(1_700_000_000, 0)
	if got := phaseStart(invoker.Record{Start: t0}); !got.Equal(t0) {
		t.Errorf("without QueueWait the invoke phase starts at Start, got %v", got)
	}
	if got := phaseStart(invoker.Record{Start: t0, QueueWait: time.Second}); !got.Equal(t0.Add(time.Second)) {
		t.Errorf("with QueueWait the invoke phase starts after it, got %v", got)
	}
}

type fakeRuntime struct{}

func (fakeRuntime) Name() string { return "fake" }
func (fakeRuntime) Create(ctx context.Context, spec sandbox.Spec) (sandbox.Sandbox, error) {
	return fakeSandbox{}, nil
}

type fakeSandbox struct{ sandbox.Sandbox }

func (fakeSandbox) Start(context.Context) error   { return nil }
func (fakeSandbox) Destroy(context.Context) error { return nil }

func TestCountingRuntime(t *testing.T) {
	ctx := context.Background()
	r := &countingRuntime{Runtime: fakeRuntime{}}
	a, _ := r.Create(ctx, sandbox.Spec{MemoryMB: 128})
	b, _ := r.Create(ctx, sandbox.Spec{MemoryMB: 1024})
	spare, _ := r.Create(ctx, sandbox.Spec{MemoryMB: 512})
	a.Start(ctx)
	b.Start(ctx)
	if got, n := r.committedMB.Load(), r.spares.Load(); got != 1152 || n != 1 {
		t.Fatalf("committed %d MB with %d spares, want 1152 and 1", got, n)
	}
	a.Destroy(ctx)
	a.Destroy(ctx) // idempotent
	if got := r.committedMB.Load(); got != 1024 {
		t.Errorf("after one Destroy (twice) committed %d MB, want 1024", got)
	}
	b.Destroy(ctx)
	spare.Destroy(ctx)
	if got, n := r.committedMB.Load(), r.spares.Load(); got != 0 || n != 0 {
		t.Errorf("after every Destroy committed %d MB, %d spares", got, n)
	}
}
