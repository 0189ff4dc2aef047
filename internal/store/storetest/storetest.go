// Package storetest is the conformance suite every store engine passes.
package storetest

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"

	"github.com/kappa-run/kappa/internal/store"
)

// Run runs the suite against the store newStore returns. Each subtest gets
// a fresh bucket name.
func Run(t *testing.T, s store.Store) {
	ctx := context.Background()
	n := 0
	bucket := func(t *testing.T) store.Bucket {
		n++
		b, err := s.Bucket(ctx, fmt.Sprintf("conf%d", n))
		if err != nil {
			t.Fatalf("Bucket: %v", err)
		}
		return b
	}

	t.Run("get missing", func(t *testing.T) {
		b := bucket(t)
		if _, err := b.Get(ctx, "nope"); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("Get missing = %v, want ErrNotFound", err)
		}
	})
	t.Run("put get", func(t *testing.T) {
		b := bucket(t)
		rev, err := b.Put(ctx, "a.b", []byte("v1"))
		if err != nil {
			t.Fatal(err)
		}
		e, err := b.Get(ctx, "a.b")
		if err != nil || string(e.Value) != "v1" || e.Revision != rev {
			t.Fatalf("Get = %+v, %v; want v1 rev %d", e, err, rev)
		}
	})
	t.Run("create twice", func(t *testing.T) {
		b := bucket(t)
		if _, err := b.Create(ctx, "k", []byte("1")); err != nil {
			t.Fatal(err)
		}
		if _, err := b.Create(ctx, "k", []byte("2")); !errors.Is(err, store.ErrExists) {
			t.Fatalf("second Create = %v, want ErrExists", err)
		}
	})
	t.Run("create after delete", func(t *testing.T) {
		b := bucket(t)
		if _, err := b.Create(ctx, "k", []byte("1")); err != nil {
			t.Fatal(err)
		}
		if err := b.Delete(ctx, "k"); err != nil {
			t.Fatal(err)
		}
		if _, err := b.Get(ctx, "k"); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("Get after Delete = %v", err)
		}
		if _, err := b.Create(ctx, "k", []byte("2")); err != nil {
			t.Fatalf("Create after Delete = %v", err)
		}
	})
	t.Run("update revision", func(t *testing.T) {
		b := bucket(t)
		rev, _ := b.Create(ctx, "k", []byte("1"))
		rev2, err := b.Update(ctx, "k", []byte("2"), rev)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := b.Update(ctx, "k", []byte("3"), rev); !errors.Is(err, store.ErrRevision) {
			t.Fatalf("stale Update = %v, want ErrRevision", err)
		}
		if _, err := b.Update(ctx, "k", []byte("3"), rev2); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("delete absent", func(t *testing.T) {
		if err := bucket(t).Delete(ctx, "ghost"); err != nil {
			t.Fatalf("Delete absent = %v", err)
		}
	})
	t.Run("keys prefix", func(t *testing.T) {
		b := bucket(t)
		for _, k := range []string{"fn.a", "fn.b.c", "fnx.a", "other"} {
			if _, err := b.Put(ctx, k, []byte("x")); err != nil {
				t.Fatal(err)
			}
		}
		got, err := b.Keys(ctx, "fn")
		if err != nil {
			t.Fatal(err)
		}
		slices.Sort(got)
		if want := []string{"fn.a", "fn.b.c"}; !slices.Equal(got, want) {
			t.Fatalf("Keys(fn) = %v, want %v", got, want)
		}
		all, _ := b.Keys(ctx, "")
		if len(all) != 4 {
			t.Fatalf("Keys() = %v, want 4 keys", all)
		}
		empty, err := bucket(t).Keys(ctx, "fn")
		if err != nil || len(empty) != 0 {
			t.Fatalf("Keys on empty = %v, %v", empty, err)
		}
	})
	t.Run("concurrent updates", func(t *testing.T) {
		b := bucket(t)
		b.Create(ctx, "ctr", []byte("0"))
		var wg sync.WaitGroup
		var mu sync.Mutex
		wins := 0
		e, _ := b.Get(ctx, "ctr")
		for i := 0; i < 8; i++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				if _, err := b.Update(ctx, "ctr", []byte("1"), e.Revision); err == nil {
					mu.Lock()
					wins++
					mu.Unlock()
				}
			}()
		}
		wg.Wait()
		if wins != 1 {
			t.Fatalf("%d concurrent updates at one revision won, want 1", wins)
		}
	})
}
