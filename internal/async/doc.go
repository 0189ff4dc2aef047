// Package async owns durable asynchronous (Event) invocations: the event
// queue, delivery with retries and maximum event age, destinations, the
// event-invoke configurations that steer them, and Kappa's own durable
// queues that destinations write to.
//
// # Acceptance
//
// Enqueue returns only after the event is stored in the KAPPA_ASYNC
// JetStream stream (file storage; with the server's SyncAlways the write is
// fsync'd before JetStream acknowledges it). An event's payload travels as
// the message body and its delivery state in headers; a payload too large
// for one NATS message (the 1 MB Lambda limit plus headers exceeds NATS's
// 1 MiB default) is stored first in the KAPPA_ASYNC_PAYLOADS object store.
//
// # Delivery
//
// Each function has a durable pull consumer (explicit ack) on its subject,
// drained by a dispatcher while it has events. Delivery is at least once:
// an event is acknowledged only after its outcome was handled (destination
// record stored, retry re-queued), and an in-progress ack every AckWait/3
// keeps long invocations from being redelivered. A server killed mid-way
// redelivers the unacknowledged events after AckWait. Since JetStream may
// lose an acknowledgement in a crash too, a durable marker per handled
// attempt (kept DoneMarkerTTL) is written before the ack; a redelivered
// attempt that has one is acknowledged without running again. Duplicates
// are left to the windows between running a function and storing its
// outcome, and to outages longer than DoneMarkerTTL.
//
// A function error (X-Amz-Function-Error) is retried MaximumRetryAttempts
// times (default 2), the n-th retry RetryDelay×n later (Lambda: about 1 and
// 2 minutes): the event is re-published with its counts and a not-before
// time. A throttle or platform error is not a retry: the event goes back to
// the queue with an exponential back-off from BackoffMin to BackoffMax
// (Lambda: 1 s … 5 min), and the function's dispatcher pauses as long. An
// event whose next attempt would come after MaximumEventAgeInSeconds
// (default 21,600) ends as EventAgeExceeded.
//
// # Concurrency
//
// Asynchronous invocations go through the same invoker as synchronous ones,
// so reserved concurrency holds for both; a function's dispatcher runs at
// most min(FunctionConcurrency, reserved concurrency) invocations at once
// (at least one, so that a function reserved at 0 throttles and ages out
// its events rather than keeping them forever), and all dispatchers
// together at most Concurrency. Synchronous invocations of functions without
// a reservation therefore always keep the account's unreserved concurrency
// minus Concurrency; when environments are free the queue drains at
// Concurrency invocations at a time.
//
// # Destinations
//
// Success, RetriesExhausted and EventAgeExceeded outcomes go to the
// configured OnSuccess / OnFailure destination as Lambda's destination
// record (version 1.0). A destination is a function ARN (invoked
// asynchronously with the record) or a queue ARN arn:aws:sqs:<region>:
// <account>:<name>, which Kappa maps to its own durable queue: a JetStream
// stream KQ_<name> that keeps messages for QueueRetention and is read by
// sequence number (HTTP API /kappa/queues, `kappa queue tail`). A failed
// event's payload also goes to the function's dead-letter queue when
// Options.DeadLetter names one, with or without an OnFailure destination
// (as in Lambda). A delivery is tried three times before the record is
// logged as lost; the function does not run again for it. Records larger than
// a message allows lose their responsePayload, then their requestPayload.
package async
