// Package runtimeapi serves the APIs of one execution environment: the
// Lambda Runtime API (the runtime long-polls /invocation/next for events and
// posts each result to /response or /error), the Extensions API
// (/2020-01-01/extension/…), the Telemetry API (PUT /2022-07-01/telemetry)
// and the legacy Logs API (PUT /2020-08-15/logs). The runtime and every
// extension each have a deny-by-default state machine; a request the
// current state does not list is refused with 403 (InvalidStateTransition,
// Extension.InvalidExtensionState).
//
// One Server serves one environment. The runtime and the extensions talk to
// Handler over HTTP; the invoker drives the phases:
//
//	api := runtimeapi.New(opts)                      serve api.Handler() on the sandbox's listener
//	api.Telemetry().Platform(PlatformInitStart{…})
//	api.ExpectExtensions(names...)                   external extensions, before they start
//	(start them) api.WaitExtensionsRegistered(ctx)
//	(start the runtime) api.WaitInit(ctx)            runtime and every extension called next
//	api.Telemetry().Platform(PlatformInitRuntimeDone{…}, PlatformInitReport{…})
//
//	per invocation:
//	api.Telemetry().Platform(PlatformStart{…})
//	res, err := api.Invoke(ctx, inv)                 at the runtime's answer (stream: its start)
//	(reply to the caller; read res.Body for a stream)
//	comp, err := api.WaitInvokeDone(ctx)             runtime done and INVOKE extensions back in next
//	api.Telemetry().Platform(PlatformRuntimeDone{…}, PlatformReport{…})
//
//	at the end:
//	grace := api.ShutdownGrace()                     0, 500 ms or 2 s by what registered
//	api.Shutdown(ctx, reason, now+grace)             with the sandbox's Shutdown(ctx, grace) beside it
//	api.Close()
//
// The runtime state machine is the table in state.go, the extensions' the
// table in extension_state.go; the APIs' own errors are rendered in
// apierror.go only; each endpoint has its own file (next.go, response.go,
// stream.go, invocation_error.go, init_error.go, ping.go, extension_*.go,
// telemetry_subscribe.go).
//
// Delivery rule: an event is consumed only once it was written and flushed to
// a waiting /next (or /extension/event/next). When the connection goes away
// before that, the event stays pending for the next call. Bytes the kernel
// accepted for a peer that vanished a moment later cannot be told apart from
// delivered ones; the invoker's timeout covers that case.
//
// One /next at a time: a second /next while one is parked is refused with
// 403 InvalidStateTransition and the parked one keeps its place, so a runtime
// that long-polls twice cannot split or duplicate an event. The same holds
// for each extension's /event/next.
//
// Init and invocations wait for the extensions as Lambda does: the runtime
// gets its first event only once init is complete, and an invocation is
// complete (the next Invoke is accepted) only once every extension
// subscribed to INVOKE called next again. Invoke itself returns as soon as
// the runtime answered, so a synchronous caller gets its response before
// the extensions' post-processing.
//
// Telemetry: subscribers get what the invoker emits (see Telemetry) plus
// platform.extension, platform.telemetrySubscription and
// platform.logsDropped; events emitted during init are kept and replayed to
// each subscriber, so that it sees platform.initStart. Subscriptions close
// when init ends (403 Telemetry.SubscriptionClosed). A sender goroutine per
// subscription delivers batches through Options.DialContext; Close stops
// them.
package runtimeapi
