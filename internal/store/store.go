package store

import (
	"context"
	"errors"
)

// Errors every engine returns, wrapped or as is; test with errors.Is.
var (
	// ErrNotFound: the key does not exist (or was deleted).
	ErrNotFound = errors.New("key not found")
	// ErrExists: Create found the key already present.
	ErrExists = errors.New("key exists")
	// ErrRevision: Update's expected revision is not the current one.
	ErrRevision = errors.New("wrong revision")
)

// Entry is a stored value and the revision that wrote it.
type Entry struct {
	Key      string
	Value    []byte
	Revision uint64
}

// Bucket is a durable key-value map. Keys are dot-separated tokens of
// [-_=a-zA-Z0-9] ("fn.hello.config"). Every write is durable when the call
// returns. Implementations are safe for concurrent use.
type Bucket interface {
	Get(ctx context.Context, key string) (Entry, error)
	// Put writes unconditionally and returns the new revision.
	Put(ctx context.Context, key string, value []byte) (uint64, error)
	// Create writes only if key is absent (ErrExists otherwise).
	Create(ctx context.Context, key string, value []byte) (uint64, error)
	// Update writes only if key's current revision is rev (ErrRevision otherwise).
	Update(ctx context.Context, key string, value []byte, rev uint64) (uint64, error)
	// Delete removes key; deleting an absent key is not an error.
	Delete(ctx context.Context, key string) error
	// Keys lists the keys whose first tokens equal prefix's tokens
	// ("fn" lists "fn.a", "fn.b.c"); "" lists all. Order is unspecified.
	Keys(ctx context.Context, prefix string) ([]string, error)
}

// Store opens buckets. Close releases the engine.
type Store interface {
	Bucket(ctx context.Context, name string) (Bucket, error)
	Close() error
}
