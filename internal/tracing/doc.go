// Package tracing owns Kappa's traces: it reads and writes X-Amzn-Trace-Id
// headers, turns an invocation's phases (request, queue wait, init,
// invoke) into OpenTelemetry spans, and exports them to an OTLP/HTTP
// receiver as JSON.
//
// The exporter is written by hand rather than with the OpenTelemetry SDK:
// Kappa's spans are built after the fact from timestamps the invoker
// already measures, so the SDK's tracer API buys nothing, while its OTLP
// exporter would pull gRPC and generated protobuf code into the binary.
package tracing
