package sandbox

import (
	"context"
	"testing"
)

// fakeSandbox is a unit-test stand-in: only the method sets matter here.
type fakeSandbox struct{ Sandbox }

type describing struct{ fakeSandbox }

func (describing) Describe() string { return "inner" }

type wrapper struct {
	Sandbox
	inner Sandbox
}

func (w wrapper) Unwrap() Sandbox { return w.inner }

type checkpointing struct{ fakeSandbox }

func (checkpointing) Checkpoint(context.Context, string) error { return nil }

func TestAs(t *testing.T) {
	inner := describing{}
	if d, ok := As[Describer](inner); !ok || d.Describe() != "inner" {
		t.Errorf("As on the sandbox itself = %v, %v", d, ok)
	}
	wrapped := wrapper{inner: wrapper{inner: inner}}
	if d, ok := As[Describer](wrapped); !ok || d.Describe() != "inner" {
		t.Errorf("As through two wrappers = %v, %v", d, ok)
	}
	if _, ok := As[Checkpointer](wrapped); ok {
		t.Errorf("As found a Checkpointer nothing implements")
	}
	if _, ok := As[Checkpointer](wrapper{inner: checkpointing{}}); !ok {
		t.Errorf("As did not find the wrapped Checkpointer")
	}
	if _, ok := As[Describer](nil); ok {
		t.Errorf("As on nil found something")
	}
}
