// Package eventsource runs Lambda event source mappings over Kappa's own
// queues (arn:aws:sqs:<region>:<account>:<queue>, see async.Queues): the
// CreateEventSourceMapping family of the Lambda API, and a poller per
// enabled mapping that hands the queue's messages to the function in
// batches shaped as SQS events.
//
// How it maps SQS semantics onto a Kappa queue, which is a JetStream stream
// that keeps every message for its retention period whoever reads it:
//
//   - Each mapping reads the queue through a durable consumer of its own
//     ("esm-<UUID>"), from the queue's first message. Consuming does not
//     remove a message from the queue (`kappa queue tail` still shows it);
//     two mappings of one queue (to different functions) each get every
//     message.
//   - A batch is up to BatchSize messages, gathered for up to
//     MaximumBatchingWindowInSeconds (0: what is there, as soon as one
//     message is), and cut short so that the event stays under the 6 MB
//     synchronous payload limit.
//   - The function is invoked synchronously. Success acknowledges the batch;
//     a function error, a throttle or any other failure sends every message
//     back after Options.RetryDelay (the queue's visibility timeout in SQS);
//     with FunctionResponseTypes [ReportBatchItemFailures] only the messages
//     the function lists in batchItemFailures go back, and an answer that is
//     not a valid batch response fails the whole batch, as in Lambda.
//   - A message is never dropped: without a redrive policy, as in SQS, it is
//     tried again until the queue's retention ends. A mapping has at most
//     20,000 messages out (in batches or waiting for their retry); past
//     that, newer messages wait until some succeed.
//   - Messages a batch has no room for (the size cap) are held for the next
//     batch rather than sent back, so ApproximateReceiveCount counts only
//     deliveries to the function.
//   - Batches of one mapping run one at a time, or up to
//     ScalingConfig.MaximumConcurrency (2–1,000) at once when it is set.
//     (Lambda scales an SQS mapping on its own; Kappa leaves the choice to
//     the user, so that a backlog never takes more of the function's
//     concurrency than asked for.)
//
// A change answers in a transition state (Creating, Enabling, Disabling,
// Updating, Deleting) and settles on Enabled or Disabled once the batch in
// flight, if any, has ended. As in Lambda, a mapping in transition refuses
// UpdateEventSourceMapping and DeleteEventSourceMapping with
// ResourceInUseException (a mapping disabled during a long batch stays
// Disabling until the batch ends).
//
// Mappings are stored in the "esm" bucket and survive restarts; deleting a
// function deletes its mappings (their messages stay in the queue), in
// transition or not.
package eventsource
