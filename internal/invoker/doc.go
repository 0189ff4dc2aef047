// Package invoker runs invocations in execution environments: it keeps warm
// environments per function configuration, starts a cold one when none is
// idle, enforces the environment cap, the init and invocation timeouts, and
// produces Lambda's START/END/REPORT lines and platform errors
// (Sandbox.Timedout, Runtime.ExitError, Runtime.OutOfMemory,
// Runtime.InvalidEntrypoint). An environment that crashed or timed out is
// discarded, never reused.
package invoker
