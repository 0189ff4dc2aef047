package sqsapi

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/kappa-run/kappa/internal/apierr"
	"github.com/kappa-run/kappa/internal/async"
)

// checkTags validates tags as SQS does.
func checkTags(tags map[string]string) error {
	if len(tags) > maxTags {
		return invalidParam("Too many tags: a queue has at most %d.", maxTags)
	}
	for k, v := range tags {
		if k == "" || utf8.RuneCountInString(k) > maxTagKey || utf8.RuneCountInString(v) > maxTagValue {
			return invalidParam("Tag keys must be 1 to %d characters and values at most %d.", maxTagKey, maxTagValue)
		}
		if strings.HasPrefix(strings.ToLower(k), "aws:") {
			return invalidParam("Tag keys starting with 'aws:' are reserved.")
		}
	}
	return nil
}

// checkAttributes validates attributes a request sets. FifoQueue=false is
// accepted (and not kept: every Kappa queue is a standard one).
func checkAttributes(attrs map[string]string) error {
	for _, k := range slices.Sorted(maps.Keys(attrs)) {
		ok, known := settable[k]
		switch {
		case k == "FifoQueue" && attrs[k] == "false":
		case k == "FifoQueue" || k == "ContentBasedDeduplication" || k == "DeduplicationScope" || k == "FifoThroughputLimit":
			return invalidParam("Kappa's queues are standard queues; %s does not apply.", k)
		case !known:
			return invalidAttr(k)
		case len(attrs[k]) > maxAttribute:
			return &sqsError{"InvalidAttributeValue", "InvalidAttributeValue", fmt.Sprintf("Value for %s is longer than Kappa's %d bytes.", k, maxAttribute)}
		case !ok(attrs[k]):
			if k == "DelaySeconds" {
				return &sqsError{"InvalidAttributeValue", "InvalidAttributeValue", "Kappa delivers messages at once: DelaySeconds must be 0."}
			}
			return &sqsError{"InvalidAttributeValue", "InvalidAttributeValue", "Invalid value for the parameter " + k + "."}
		}
	}
	return nil
}

// kept is what of attrs a record keeps.
func kept(attrs map[string]string) map[string]string {
	out := maps.Clone(attrs)
	delete(out, "FifoQueue")
	return out
}

func (h *Handler) createQueue(ctx context.Context, base string, in request) (any, error) {
	if in.QueueName == "" {
		return nil, missing("QueueName")
	}
	if strings.HasSuffix(in.QueueName, ".fifo") {
		return nil, invalidParam("Kappa's queues are standard queues: FIFO queues (.fifo) are not served.")
	}
	if !async.ValidQueueName(in.QueueName) {
		return nil, invalidParam("Can only include alphanumeric characters, hyphens, or underscores. 1 to 80 in length")
	}
	if err := checkAttributes(in.Attributes); err != nil {
		return nil, err
	}
	if err := checkTags(in.Tags); err != nil {
		return nil, err
	}
	attrs := kept(in.Attributes)
	h.creating.Lock()
	defer h.creating.Unlock()
	_, rec, _, err := h.load(ctx, in.QueueName)
	if err != nil && !errors.Is(err, apierr.NotFound) {
		return nil, err
	}
	if err == nil {
		// As SQS: creating an existing queue is fine with the same
		// attributes, refused with different ones.
		for k, v := range attrs {
			if current(rec, k) != v {
				return nil, &sqsError{"QueueNameExists", "QueueAlreadyExists",
					"A queue already exists with the same name and a different value for attribute " + k}
			}
		}
		return map[string]string{"QueueUrl": h.url(base, in.QueueName)}, nil
	}
	if h.deletedRecently(in.QueueName) {
		return nil, &sqsError{"QueueDeletedRecently", "AWS.SimpleQueueService.QueueDeletedRecently",
			"You must wait 60 seconds after deleting a queue before you can create another with the same name."}
	}
	if _, err := h.opts.Queues.Create(ctx, in.QueueName); err != nil {
		return nil, err
	}
	err = h.change(ctx, in.QueueName, func(rec *record) {
		rec.Attributes, rec.Tags = attrs, in.Tags
	})
	if err != nil {
		// No queue without its attributes: a retry starts afresh.
		if derr := h.opts.Queues.Delete(ctx, in.QueueName); derr != nil {
			h.log.Warn("sqs api: removing a queue whose attributes were not stored", "queue", in.QueueName, "err", derr)
		}
		return nil, err
	}
	return map[string]string{"QueueUrl": h.url(base, in.QueueName)}, nil
}

// current is an attribute's value: as set, or SQS's default.
func current(rec record, k string) string {
	if v, ok := rec.Attributes[k]; ok {
		return v
	}
	return defaults[k]
}

func (h *Handler) listQueues(ctx context.Context, base string, in request) (any, error) {
	max := maxListResults
	if in.MaxResults != nil {
		if *in.MaxResults < 1 || *in.MaxResults > maxListResults {
			return nil, invalidParam("Value %d for parameter MaxResults is invalid. Must be between 1 and %d.", *in.MaxResults, maxListResults)
		}
		max = *in.MaxResults
	}
	qs, err := h.opts.Queues.List(ctx)
	if err != nil {
		return nil, err
	}
	out := struct {
		QueueUrls []string `json:"QueueUrls"`
		NextToken string   `json:"NextToken,omitempty"`
	}{QueueUrls: []string{}}
	last := ""
	for _, q := range qs { // sorted by name; the token is the last name
		if !strings.HasPrefix(q.Name, in.QueueNamePrefix) || in.NextToken != "" && q.Name <= in.NextToken {
			continue
		}
		if len(out.QueueUrls) == max {
			if in.MaxResults != nil {
				out.NextToken = last
			}
			break
		}
		out.QueueUrls, last = append(out.QueueUrls, h.url(base, q.Name)), q.Name
	}
	return out, nil
}

func (h *Handler) getAttributes(ctx context.Context, name string, names []string) (any, error) {
	info, rec, _, err := h.load(ctx, name)
	if err != nil {
		return nil, err
	}
	all := map[string]string{
		"QueueArn":                              info.ARN,
		"ApproximateNumberOfMessages":           strconv.FormatUint(info.Messages, 10),
		"ApproximateNumberOfMessagesNotVisible": "0",
		"ApproximateNumberOfMessagesDelayed":    "0",
		"CreatedTimestamp":                      strconv.FormatInt(info.Created.Unix(), 10),
		"LastModifiedTimestamp":                 strconv.FormatInt(info.Created.Unix(), 10),
	}
	for k := range settable {
		if v := current(rec, k); v != "" {
			all[k] = v
		}
	}
	out := map[string]string{}
	for _, n := range names {
		if n == "All" {
			maps.Copy(out, all)
			continue
		}
		if v, ok := all[n]; ok {
			out[n] = v
		} else if _, known := settable[n]; !known && !strings.HasPrefix(n, "ApproximateNumberOf") &&
			n != "FifoQueue" && n != "ContentBasedDeduplication" {
			return nil, invalidAttr(n)
		}
	}
	if len(out) == 0 {
		return struct{}{}, nil
	}
	return map[string]any{"Attributes": out}, nil
}

func (h *Handler) setAttributes(ctx context.Context, name string, attrs map[string]string) error {
	if len(attrs) == 0 {
		return missing("Attributes")
	}
	if err := checkAttributes(attrs); err != nil {
		return err
	}
	return h.change(ctx, name, func(rec *record) {
		if rec.Attributes == nil {
			rec.Attributes = map[string]string{}
		}
		maps.Copy(rec.Attributes, kept(attrs))
	})
}

// retag changes queue name's tags with edit; a queue keeps at most
// maxTags.
func (h *Handler) retag(ctx context.Context, name string, edit func(map[string]string)) error {
	var tooMany bool
	err := h.change(ctx, name, func(rec *record) {
		tags := maps.Clone(rec.Tags)
		if tags == nil {
			tags = map[string]string{}
		}
		edit(tags)
		if tooMany = len(tags) > maxTags; !tooMany {
			rec.Tags = tags
		}
	})
	if err == nil && tooMany {
		return invalidParam("Too many tags: a queue has at most %d.", maxTags)
	}
	return err
}
