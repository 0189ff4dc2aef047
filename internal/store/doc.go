// Package store is Kappa's durable state behind one small interface: named
// key-value buckets with optimistic concurrency. The default engine is an
// embedded NATS JetStream (store/jetstream), which a cluster can later share;
// store/memstore is an in-memory engine for unit tests of logic, and
// store/storetest is the conformance suite every engine passes.
package store
