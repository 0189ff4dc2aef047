package sqsapi

import (
	"context"
	"crypto/md5"
	"encoding/hex"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/kappa-run/kappa/internal/async"
)

// checkEntry refuses what a Kappa queue cannot carry rather than drop it.
func checkEntry(e entry) error {
	switch {
	case e.MessageBody == nil:
		return missing("MessageBody")
	case *e.MessageBody == "":
		return invalidParam("The request must contain a non-empty message body.")
	case len(*e.MessageBody) > maxMessage:
		return invalidParam("One or more parameters are invalid. Reason: Message must be shorter than %d bytes.", maxMessage)
	case strings.ContainsFunc(*e.MessageBody, disallowed):
		return &sqsError{"InvalidMessageContents", "InvalidMessageContents",
			"Invalid characters found. Valid unicode characters are #x9 | #xA | #xD | #x20 to #xD7FF | #xE000 to #xFFFD | #x10000 to #x10FFFF"}
	case e.DelaySeconds != nil && *e.DelaySeconds != 0:
		return invalidParam("Kappa delivers messages at once: DelaySeconds must be 0.")
	case len(e.MessageAttributes) > 0 && string(e.MessageAttributes) != "null" && string(e.MessageAttributes) != "{}":
		return invalidParam("Kappa's queues carry message bodies only: MessageAttributes are not kept.")
	case len(e.MessageSystemAttributes) > 0 && string(e.MessageSystemAttributes) != "null" && string(e.MessageSystemAttributes) != "{}":
		return invalidParam("Kappa's queues carry message bodies only: MessageSystemAttributes are not kept.")
	case e.MessageGroupID != nil:
		return invalidParam("The request include parameter that is not valid for this queue type: MessageGroupId.")
	case e.MessageDeduplicationID != nil:
		return invalidParam("The request include parameter that is not valid for this queue type: MessageDeduplicationId.")
	}
	return nil
}

// disallowed reports a character SQS does not take in a message body
// (U+FFFD is allowed, but it is also what JSON decoding made of invalid
// UTF-8 and lone surrogates, which the request's raw bytes are checked
// for first: see rawBodyOK).
func disallowed(r rune) bool {
	return !(r == 0x9 || r == 0xA || r == 0xD || r >= 0x20 && r <= 0xD7FF || r >= 0xE000 && r <= 0xFFFD || r >= 0x10000 && r <= 0x10FFFF)
}

// rawBodyOK reports whether a request is valid UTF-8 with no escaped
// surrogate that is not part of a pair: what JSON decoding would turn into
// U+FFFD, hiding it from the character check.
func rawBodyOK(b []byte) bool {
	if !utf8.Valid(b) {
		return false
	}
	// The escapes, in order: a high surrogate must be followed at once by
	// a low one, and a low one never comes first.
	pendingHigh := false
	for i := 0; i < len(b); i++ {
		if b[i] != '\\' || i+1 >= len(b) {
			if pendingHigh {
				return false
			}
			continue
		}
		if b[i+1] != 'u' || i+6 > len(b) {
			if pendingHigh {
				return false
			}
			i++ // an escaped character
			continue
		}
		v, err := strconv.ParseUint(string(b[i+2:i+6]), 16, 32)
		i += 5
		switch {
		case err != nil:
			return false
		case v >= 0xD800 && v <= 0xDBFF:
			if pendingHigh {
				return false
			}
			pendingHigh = true
		case v >= 0xDC00 && v <= 0xDFFF:
			if !pendingHigh {
				return false
			}
			pendingHigh = false
		case pendingHigh:
			return false
		}
	}
	return !pendingHigh
}

type sent struct {
	ID               string `json:"Id,omitempty"`
	MessageID        string `json:"MessageId"`
	MD5OfMessageBody string `json:"MD5OfMessageBody"`
}

func (h *Handler) send(ctx context.Context, name string, e entry) (sent, error) {
	if err := checkEntry(e); err != nil {
		return sent{}, err
	}
	seq, at, err := h.opts.Queues.SendStored(ctx, name, []byte(*e.MessageBody))
	if err != nil {
		return sent{}, err
	}
	sum := md5.Sum([]byte(*e.MessageBody))
	return sent{ID: e.ID, MessageID: async.MessageID(name, seq, at), MD5OfMessageBody: hex.EncodeToString(sum[:])}, nil
}

type failed struct {
	ID          string `json:"Id"`
	SenderFault bool   `json:"SenderFault"`
	Code        string `json:"Code"`
	Message     string `json:"Message"`
}

func (h *Handler) sendBatch(ctx context.Context, name string, list capped[entry]) (any, error) {
	entries := list.items
	if list.n == 0 {
		return nil, &sqsError{"EmptyBatchRequest", "AWS.SimpleQueueService.EmptyBatchRequest", "There should be at least one SendMessageBatchRequestEntry in the request."}
	}
	if list.n > maxBatch {
		return nil, &sqsError{"TooManyEntriesInBatchRequest", "AWS.SimpleQueueService.TooManyEntriesInBatchRequest",
			fmt.Sprintf("Maximum number of entries per request are %d. You have sent %d.", maxBatch, list.n)}
	}
	total := 0
	seen := map[string]bool{}
	for _, e := range entries {
		if e.ID == "" || len(e.ID) > 80 || strings.ContainsFunc(e.ID, func(r rune) bool {
			return !(r == '-' || r == '_' || r >= '0' && r <= '9' || r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z')
		}) {
			return nil, &sqsError{"InvalidBatchEntryId", "AWS.SimpleQueueService.InvalidBatchEntryId",
				"A batch entry id can only contain alphanumeric characters, hyphens and underscores. It can be at most 80 letters long."}
		}
		if seen[e.ID] {
			return nil, &sqsError{"BatchEntryIdsNotDistinct", "AWS.SimpleQueueService.BatchEntryIdsNotDistinct", "Id " + e.ID + " repeated."}
		}
		seen[e.ID] = true
		if e.MessageBody != nil {
			total += len(*e.MessageBody)
		}
	}
	if total > maxBatchBytes {
		return nil, &sqsError{"BatchRequestTooLong", "AWS.SimpleQueueService.BatchRequestTooLong",
			fmt.Sprintf("Batch requests cannot be longer than %d bytes. You have sent %d bytes.", maxBatchBytes, total)}
	}
	if err := h.exists(ctx, name); err != nil {
		return nil, err
	}
	out := struct {
		Successful []sent   `json:"Successful"`
		Failed     []failed `json:"Failed"`
	}{Successful: []sent{}, Failed: []failed{}}
	for _, e := range entries {
		s, err := h.send(ctx, name, e)
		var se *sqsError
		switch {
		case err == nil:
			out.Successful = append(out.Successful, s)
		case errors.As(err, &se):
			out.Failed = append(out.Failed, failed{ID: e.ID, SenderFault: true, Code: se.typ, Message: se.msg})
		default:
			h.log.Warn("sqs api: a batch entry was not stored", "queue", name, "id", e.ID, "err", err)
			out.Failed = append(out.Failed, failed{ID: e.ID, Code: "InternalError", Message: "Kappa could not store the message"})
		}
	}
	return out, nil
}
