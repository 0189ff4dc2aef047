// Package rie owns the local emulator behind `kappa rie`, a drop-in for
// the AWS Lambda Runtime Interface Emulator (aws-lambda-rie): the invoke
// endpoint POST /2015-03-31/functions/function/invocations, served in front
// of a pool of execution environments, each a runtimeapi.Server and a
// sandbox/process environment running the bootstrap and the external
// extensions.
//
// Beyond aws-lambda-rie it serves concurrent invocations (up to
// Config.MaxConcurrency environments, 429 TooManyRequestsException past
// them; a sequential client always reuses the warm environment), Event
// invocations (202, run in the background), the response streaming endpoint
// POST /2021-11-15/functions/function/response-streaming-invocations (AWS
// event-stream framing), the Extensions and Telemetry APIs, a measured Max
// Memory Used, and START/END/REPORT lines as Lambda prints them. Where the
// two differ on purpose: an init failure answers as Lambda does (200 with
// X-Amz-Function-Error: Unhandled and the error document) where
// aws-lambda-rie answers 502; function errors carry X-Amz-Function-Error.
//
// Emulator is also the reference for how the server's invoker drives a
// runtimeapi.Server with extensions, telemetry and streaming: see
// Emulator.coldStart, Emulator.run and env.shutdown.
package rie
