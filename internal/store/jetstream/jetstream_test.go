package jetstream

import (
	"context"
	"testing"

	"github.com/kappa-run/kappa/internal/store/storetest"
)

func TestConformance(t *testing.T) {
	s, err := Open(context.Background(), Options{Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	storetest.Run(t, s)
}

func TestDurableAcrossRestart(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	s, err := Open(ctx, Options{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	b, _ := s.Bucket(ctx, "fns")
	if _, err := b.Put(ctx, "fn.hello", []byte("cfg")); err != nil {
		t.Fatal(err)
	}
	s.Close()

	s2, err := Open(ctx, Options{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	defer s2.Close()
	b2, _ := s2.Bucket(ctx, "fns")
	e, err := b2.Get(ctx, "fn.hello")
	if err != nil || string(e.Value) != "cfg" {
		t.Fatalf("after restart Get = %q, %v", e.Value, err)
	}
}
