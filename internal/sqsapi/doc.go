// Package sqsapi serves the producer side of the Amazon SQS API over
// Kappa's queues (package async), so that code and tools that send to SQS
// — the aws CLI, the SDKs, Terraform's aws_sqs_queue — feed event source
// mappings unchanged, pointed at Kappa's address:
//
//	CreateQueue, GetQueueUrl, ListQueues, DeleteQueue, PurgeQueue
//	GetQueueAttributes, SetQueueAttributes
//	SendMessage, SendMessageBatch
//	TagQueue, UntagQueue, ListQueueTags
//
// The protocol is AWS JSON 1.0 (X-Amz-Target AmazonSQS.<Operation>), which
// the current SDKs and the aws CLI speak. A queue URL is
// http://<the address the request came to>/<account>/<queue>. As in SQS,
// the name of a queue DeleteQueue deleted is free again 60 seconds later
// (QueueDeletedRecently until then; the server remembers this in memory,
// so a restart frees it early).
//
// What differs from SQS, by design:
//   - Messages are consumed by event source mappings (and read, without
//     consuming, by `kappa queue tail`): ReceiveMessage, DeleteMessage and
//     ChangeMessageVisibility answer UnsupportedOperation.
//   - Queues are standard queues: a .fifo name is refused.
//   - Attributes are stored and returned as set (Terraform reads them
//     back) but Kappa applies only its own: messages are kept 4 days
//     (async.QueueRetention), a failed batch comes again after the
//     server's --esm-retry-delay. DelaySeconds other than 0 and message
//     attributes are refused rather than dropped.
//   - A queue keeps a message for its retention period whether or not a
//     mapping has handled it, so ApproximateNumberOfMessages counts the
//     messages kept, not the ones waiting.
package sqsapi
