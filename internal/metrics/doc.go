// Package metrics owns Kappa's Prometheus collectors: the Lambda metric set
// per function, version and alias, host gauges of the execution
// environments, and billing (GB-seconds from billed durations). It also
// keeps one hour of per-minute history per function for the console's
// sparklines and charts, and serves both over HTTP.
//
// Recorders call Begin/End around an invocation, Invoked with its outcome
// and Throttled for a 429. The asynchronous invocation queue reports
// through AsyncEventReceived, AsyncEventDropped and AsyncEventAge; it
// should declare the small interface it needs and be handed *Metrics.
package metrics
