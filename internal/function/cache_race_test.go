package function

import (
	"context"
	"errors"
	"testing"

	"github.com/kappa-run/kappa/internal/apierr"
	"github.com/kappa-run/kappa/internal/store"
	"github.com/kappa-run/kappa/internal/store/memstore"
)

// pausingBucket holds a Get of key, once armed, after reading it and
// before returning it, until released.
type pausingBucket struct {
	store.Bucket
	key     string
	read    chan struct{}
	release chan struct{}
	armed   bool
}

func (b *pausingBucket) Get(ctx context.Context, key string) (store.Entry, error) {
	e, err := b.Bucket.Get(ctx, key)
	if b.armed && key == b.key {
		b.armed = false
		close(b.read)
		<-b.release
	}
	return e, err
}

// TestDeletedFunctionNotCachedBack: a read that started before a Delete
// and ends after it does not put the deleted function back in the cache.
func TestDeletedFunctionNotCachedBack(t *testing.T) {
	ctx := context.Background()
	mb, _ := memstore.New().Bucket(ctx, "functions")
	b := &pausingBucket{Bucket: mb, key: key("hello"), read: make(chan struct{}), release: make(chan struct{})}
	s := NewService(Options{Bucket: b, Images: &fakeImages{}, Region: "us-east-1", Account: "000000000000"})
	t.Cleanup(s.Close)
	if _, err := s.Create(ctx, validInput()); err != nil {
		t.Fatal(err)
	}
	waitFor(t, s, "hello", func(f *Function) bool { return f.Latest.State == StateActive })
	s.remember("hello", nil, 0) // not cached: the next read goes to the store
	b.armed = true
	done := make(chan error, 1)
	go func() {
		_, err := s.Get(ctx, "hello")
		done <- err
	}()
	<-b.read // it has read the record
	if err := s.Delete(ctx, "hello"); err != nil {
		t.Fatal(err)
	}
	close(b.release)
	<-done
	if _, err := s.Get(ctx, "hello"); !errors.Is(err, apierr.NotFound) {
		t.Fatalf("Get after Delete = %v, want NotFound (the racing read cached the deleted function)", err)
	}
}
