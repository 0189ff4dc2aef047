package jetstream

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/kappa-run/kappa/internal/store"
)

// Options configure the embedded engine.
type Options struct {
	// Dir holds JetStream's files.
	Dir    string
	Logger *slog.Logger
	// SyncAlways fsyncs every write before acknowledging it (slower, and
	// what a single node without replicas needs to lose nothing on power
	// loss). When false, JetStream syncs on its interval (default 2 min).
	SyncAlways bool
}

// Store is the JetStream engine. Safe for concurrent use.
type Store struct {
	srv *server.Server
	nc  *nats.Conn
	js  jetstream.JetStream

	mu      sync.Mutex
	buckets map[string]*bucket
}

// Open starts the embedded server and connects to it in-process.
func Open(ctx context.Context, opts Options) (*Store, error) {
	sopts := &server.Options{
		ServerName: "kappa",
		DontListen: true,
		JetStream:  true,
		StoreDir:   opts.Dir,
		NoSigs:     true,
		NoLog:      true,
		SyncAlways: opts.SyncAlways,
	}
	srv, err := server.NewServer(sopts)
	if err != nil {
		return nil, fmt.Errorf("start embedded nats: %w", err)
	}
	srv.Start()
	if !srv.ReadyForConnections(30 * time.Second) {
		srv.Shutdown()
		return nil, errors.New("start embedded nats: not ready after 30s")
	}
	nc, err := nats.Connect("", nats.InProcessServer(srv), nats.Name("kappa"))
	if err != nil {
		srv.Shutdown()
		return nil, fmt.Errorf("connect embedded nats: %w", err)
	}
	js, err := jetstream.New(nc)
	if err != nil {
		nc.Close()
		srv.Shutdown()
		return nil, fmt.Errorf("jetstream: %w", err)
	}
	return &Store{srv: srv, nc: nc, js: js, buckets: map[string]*bucket{}}, nil
}

// Conn returns the in-process NATS connection, for packages that use
// streams directly (async invocations, logs).
func (s *Store) Conn() *nats.Conn { return s.nc }

// JetStream returns the JetStream context of Conn.
func (s *Store) JetStream() jetstream.JetStream { return s.js }

// Bucket opens (creating if needed) a KV bucket with file storage.
func (s *Store) Bucket(ctx context.Context, name string) (store.Bucket, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if b, ok := s.buckets[name]; ok {
		return b, nil
	}
	kv, err := s.js.CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{
		Bucket:  name,
		History: 1,
		Storage: jetstream.FileStorage,
	})
	if err != nil {
		return nil, fmt.Errorf("open bucket %s: %w", name, err)
	}
	b := &bucket{kv: kv}
	s.buckets[name] = b
	return b, nil
}

// Close drains the connection and stops the server.
func (s *Store) Close() error {
	s.nc.Close()
	s.srv.Shutdown()
	s.srv.WaitForShutdown()
	return nil
}

type bucket struct {
	kv jetstream.KeyValue
}

func (b *bucket) Get(ctx context.Context, key string) (store.Entry, error) {
	e, err := b.kv.Get(ctx, key)
	if err != nil {
		return store.Entry{}, mapErr(key, err)
	}
	return store.Entry{Key: key, Value: e.Value(), Revision: e.Revision()}, nil
}

func (b *bucket) Put(ctx context.Context, key string, value []byte) (uint64, error) {
	rev, err := b.kv.Put(ctx, key, value)
	return rev, mapErr(key, err)
}

func (b *bucket) Create(ctx context.Context, key string, value []byte) (uint64, error) {
	rev, err := b.kv.Create(ctx, key, value)
	return rev, mapErr(key, err)
}

func (b *bucket) Update(ctx context.Context, key string, value []byte, rev uint64) (uint64, error) {
	nrev, err := b.kv.Update(ctx, key, value, rev)
	if err != nil {
		var apiErr *jetstream.APIError
		if errors.As(err, &apiErr) && apiErr.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequence {
			return 0, fmt.Errorf("update %s: %w", key, store.ErrRevision)
		}
		if errors.Is(err, jetstream.ErrKeyExists) {
			return 0, fmt.Errorf("update %s: %w", key, store.ErrRevision)
		}
	}
	return nrev, mapErr(key, err)
}

func (b *bucket) Delete(ctx context.Context, key string) error {
	// Purge removes history too; absent keys are fine.
	err := b.kv.Purge(ctx, key)
	if err != nil && !errors.Is(err, jetstream.ErrKeyNotFound) {
		return mapErr(key, err)
	}
	return nil
}

func (b *bucket) Keys(ctx context.Context, prefix string) ([]string, error) {
	filter := ">"
	if prefix != "" {
		filter = prefix + ".>"
	}
	lister, err := b.kv.ListKeysFiltered(ctx, filter)
	if err != nil {
		if errors.Is(err, jetstream.ErrNoKeysFound) {
			return nil, nil
		}
		return nil, fmt.Errorf("list keys %s: %w", prefix, err)
	}
	var keys []string
	for k := range lister.Keys() {
		keys = append(keys, k)
	}
	if prefix != "" {
		// A key equal to the prefix itself is also a match.
		if _, err := b.kv.Get(ctx, prefix); err == nil {
			keys = append(keys, prefix)
		}
	}
	return keys, nil
}

func mapErr(key string, err error) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, jetstream.ErrKeyNotFound), errors.Is(err, jetstream.ErrKeyDeleted):
		return fmt.Errorf("%s: %w", key, store.ErrNotFound)
	case errors.Is(err, jetstream.ErrKeyExists):
		return fmt.Errorf("%s: %w", key, store.ErrExists)
	default:
		return fmt.Errorf("%s: %w", key, err)
	}
}
