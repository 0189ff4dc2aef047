// Package metrics owns Kappa's Prometheus collectors: the Lambda metric set
// per function, version and alias, host gauges of the execution
// environments, and billing (GB-seconds from billed durations). It also
// keeps one hour of per-minute history per function for the console's
// sparklines and charts, and serves both over HTTP.
//
// Recorders call Begin/End around an invocation, Invoked with its outcome
// and Throttled for a 429. The asynchronous invocation queue reports
// through three methods that take plain values, so that it can declare the
// interface it consumes without importing this package:
//
//	type Metrics interface {
//		AsyncEventReceived(function, version, alias string) // an event queued
//		AsyncEventDropped(function, reason string)          // EventAgeExceeded, RetriesExhausted, …
//		AsyncEventAge(function string, age time.Duration)   // queued → invoked
//	}
//
// The daemon's *metrics.Metrics (observability.metrics) implements it.
package metrics
