// Package runtimeapi serves the Lambda Runtime API to one execution
// environment: the runtime long-polls /invocation/next for events and posts
// each result to /response or /error. The API is a deny-by-default state
// machine; every request the current state does not list is refused with
// 403 InvalidStateTransition.
//
// One Server serves one environment. The invoker calls WaitInit, then Invoke
// once per event, and Close when it destroys the environment; the runtime
// process talks to Handler over HTTP. The state machine is the table in
// state.go, one row per State; the Runtime API's own errors are rendered in
// apierror.go only; each endpoint has its own file (next.go, response.go,
// invocation_error.go, init_error.go, ping.go). The Extensions and Telemetry
// APIs (extension.go, telemetry.go) are stubs that answer 501 until they get
// routers of their own beside the runtime routes in router.go.
//
// Delivery rule: an event is consumed only once it was written and flushed to
// a waiting /next. When the runtime's connection goes away before that, the
// event stays pending for the runtime's next /next. Bytes the kernel accepted
// for a peer that vanished a moment later cannot be told apart from delivered
// ones; the invoker's timeout covers that case.
//
// One /next at a time: a second /next while one is parked is refused with
// 403 InvalidStateTransition and the parked one keeps its place, so a runtime
// that long-polls twice cannot split or duplicate an event.
package runtimeapi
