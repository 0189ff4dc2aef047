// Package memstore is an in-memory store engine for unit tests of logic. It
// is not durable; production code uses store/jetstream.
package memstore

import (
	"context"
	"fmt"
	"strings"
	"sync"

	"github.com/kappa-run/kappa/internal/store"
)

// Store is an in-memory store.Store. The zero value is not usable; use New.
type Store struct {
	mu      sync.Mutex
	buckets map[string]*bucket
}

// New returns an empty store.
func New() *Store { return &Store{buckets: map[string]*bucket{}} }

// Bucket returns the named bucket, creating it if needed.
func (s *Store) Bucket(_ context.Context, name string) (store.Bucket, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	b, ok := s.buckets[name]
	if !ok {
		b = &bucket{m: map[string]store.Entry{}}
		s.buckets[name] = b
	}
	return b, nil
}

// Close does nothing.
func (s *Store) Close() error { return nil }

type bucket struct {
	mu  sync.Mutex
	rev uint64
	m   map[string]store.Entry
}

func (b *bucket) Get(_ context.Context, key string) (store.Entry, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	e, ok := b.m[key]
	if !ok {
		return store.Entry{}, fmt.Errorf("%s: %w", key, store.ErrNotFound)
	}
	e.Value = append([]byte(nil), e.Value...)
	return e, nil
}

func (b *bucket) put(key string, value []byte) uint64 {
	b.rev++
	b.m[key] = store.Entry{Key: key, Value: append([]byte(nil), value...), Revision: b.rev}
	return b.rev
}

func (b *bucket) Put(_ context.Context, key string, value []byte) (uint64, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.put(key, value), nil
}

func (b *bucket) Create(_ context.Context, key string, value []byte) (uint64, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if _, ok := b.m[key]; ok {
		return 0, fmt.Errorf("%s: %w", key, store.ErrExists)
	}
	return b.put(key, value), nil
}

func (b *bucket) Update(_ context.Context, key string, value []byte, rev uint64) (uint64, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if e, ok := b.m[key]; !ok || e.Revision != rev {
		return 0, fmt.Errorf("%s: %w", key, store.ErrRevision)
	}
	return b.put(key, value), nil
}

func (b *bucket) Delete(_ context.Context, key string) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	delete(b.m, key)
	return nil
}

func (b *bucket) Keys(_ context.Context, prefix string) ([]string, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	var keys []string
	for k := range b.m {
		if prefix == "" || k == prefix || strings.HasPrefix(k, prefix+".") {
			keys = append(keys, k)
		}
	}
	return keys, nil
}
