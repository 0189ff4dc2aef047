// Package runtimeapi serves the Lambda Runtime API to one execution
// environment: the runtime long-polls /invocation/next for events and posts
// each result to /response or /error. The API is a deny-by-default state
// machine; every request the current state does not list is refused with
// 403 InvalidStateTransition.
package runtimeapi
