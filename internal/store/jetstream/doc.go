// Package jetstream is the default store engine: an embedded NATS server
// with JetStream, file storage under a directory, reached in-process with no
// network listener. Every write is acknowledged by JetStream after it is
// stored (and synced per the server's sync policy) before a call returns.
package jetstream
