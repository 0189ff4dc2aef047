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
// http://<the address the request came to>/<account>/<queue>.
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

import (
	"context"
	"crypto/md5"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"net/http"
	"sort"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/kappa-run/kappa/internal/apierr"
	"github.com/kappa-run/kappa/internal/async"
	"github.com/kappa-run/kappa/internal/store"
)

// TargetPrefix marks an SQS request (the X-Amz-Target header).
const TargetPrefix = "AmazonSQS."

// Limits, as SQS has them.
const (
	// maxBody bounds a request: a batch's 1 MiB of message bodies is up
	// to 3 MiB once JSON-escaped (\uXXXX for every non-ASCII character).
	maxBody        = 4 << 20
	maxMessage     = 1 << 20 // MaximumMessageSize's largest value
	maxBatch       = 10
	maxBatchBytes  = 1 << 20
	maxListResults = 1000
	maxTags        = 50
	maxTagKey      = 128
	maxTagValue    = 256
	// maxAttribute bounds one attribute's value (policies are the long
	// ones; SQS takes up to 20 KB of policy).
	maxAttribute = 64 << 10
)

// defaults are the attributes of a queue nobody set, as SQS reports them.
var defaults = map[string]string{
	"DelaySeconds":                  "0",
	"MaximumMessageSize":            "1048576",
	"MessageRetentionPeriod":        "345600",
	"ReceiveMessageWaitTimeSeconds": "0",
	"VisibilityTimeout":             "30",
	"SqsManagedSseEnabled":          "false",
}

// settable are the attributes CreateQueue and SetQueueAttributes take,
// with the check of their value.
var settable = map[string]func(string) bool{
	"DelaySeconds":                  intIn(0, 0), // Kappa delivers at once
	"MaximumMessageSize":            intIn(1024, maxMessage),
	"MessageRetentionPeriod":        intIn(60, 1209600),
	"ReceiveMessageWaitTimeSeconds": intIn(0, 20),
	"VisibilityTimeout":             intIn(0, 43200),
	"Policy":                        isJSONOrEmpty,
	"RedrivePolicy":                 isJSONOrEmpty,
	"RedriveAllowPolicy":            isJSONOrEmpty,
	"SqsManagedSseEnabled":          isBool,
	"KmsMasterKeyId":                func(v string) bool { return v == "" },
	"KmsDataKeyReusePeriodSeconds":  intIn(60, 86400),
}

func intIn(lo, hi int) func(string) bool {
	return func(v string) bool {
		n, err := strconv.Atoi(v)
		return err == nil && n >= lo && n <= hi && strconv.Itoa(n) == v
	}
}

func isJSONOrEmpty(v string) bool { return v == "" || json.Valid([]byte(v)) }
func isBool(v string) bool        { return v == "true" || v == "false" }

// Options configure a Handler.
type Options struct {
	Queues *async.Queues
	// Bucket keeps queues' attributes and tags.
	Bucket  store.Bucket
	Region  string
	Account string
	Logger  *slog.Logger
}

// Handler serves the SQS operations.
type Handler struct {
	opts Options
	log  *slog.Logger
}

// New returns a Handler.
func New(opts Options) *Handler {
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Handler{opts: opts, log: log}
}

// Owns reports whether r is an SQS request.
func Owns(r *http.Request) bool {
	return r.Method == http.MethodPost && strings.HasPrefix(r.Header.Get("X-Amz-Target"), TargetPrefix)
}

// sqsError is an SQS error: its type (without the com.amazonaws.sqs#
// namespace), the legacy query code the SDKs also read, and the message.
type sqsError struct {
	typ, query, msg string
}

func (e *sqsError) Error() string { return e.typ + ": " + e.msg }

func invalidParam(format string, args ...any) error {
	return &sqsError{"InvalidParameterValue", "InvalidParameterValue", fmt.Sprintf(format, args...)}
}

func invalidAttr(name string) error {
	return &sqsError{"InvalidAttributeName", "InvalidAttributeName", "Unknown Attribute " + name + "."}
}

func noQueue() error {
	return &sqsError{"QueueDoesNotExist", "AWS.SimpleQueueService.NonExistentQueue", "The specified queue does not exist."}
}

func missing(param string) error {
	return &sqsError{"MissingParameter", "MissingParameter", "The request must contain the parameter " + param + "."}
}

// record is what the bucket keeps of a queue. Created is the queue's
// stream's creation time: a record of an earlier queue of the same name
// (deleted through Kappa's own API, not this one) does not apply.
type record struct {
	Created    int64             `json:"created"`
	Attributes map[string]string `json:"attributes,omitempty"`
	Tags       map[string]string `json:"tags,omitempty"`
}

func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	op := strings.TrimPrefix(r.Header.Get("X-Amz-Target"), TargetPrefix)
	body, err := io.ReadAll(io.LimitReader(r.Body, maxBody+1))
	var out any
	switch {
	case err != nil:
		err = &sqsError{"InvalidParameterValue", "InvalidParameterValue", "could not read the request body"}
	case len(body) > maxBody:
		err = invalidParam("The request body is larger than %d bytes.", maxBody)
	default:
		out, err = h.do(r.Context(), op, "http://"+r.Host, body)
	}
	w.Header().Set("Content-Type", "application/x-amz-json-1.0")
	if err != nil {
		var se *sqsError
		var ae *apierr.Error
		switch {
		case errors.As(err, &se):
		case errors.As(err, &ae) && ae.Kind == apierr.NotFound:
			se = noQueue().(*sqsError)
		case errors.As(err, &ae) && ae.Kind == apierr.Validation:
			se = invalidParam("%s", ae.Message).(*sqsError)
		default:
			h.log.Error("sqs api", "operation", op, "err", err)
			w.Header().Set("X-Amzn-Query-Error", "InternalError;Receiver")
			w.WriteHeader(http.StatusInternalServerError)
			json.NewEncoder(w).Encode(map[string]string{"__type": "com.amazonaws.sqs#InternalError", "message": "Kappa could not serve the request"})
			return
		}
		w.Header().Set("X-Amzn-Query-Error", se.query+";Sender")
		w.WriteHeader(http.StatusBadRequest)
		json.NewEncoder(w).Encode(map[string]string{"__type": "com.amazonaws.sqs#" + se.typ, "message": se.msg})
		return
	}
	json.NewEncoder(w).Encode(out)
}

// do runs operation op; base is the URL queue URLs start with.
func (h *Handler) do(ctx context.Context, op, base string, body []byte) (any, error) {
	if len(strings.TrimSpace(string(body))) == 0 {
		body = []byte("{}")
	}
	if !rawBodyOK(body) {
		return nil, &sqsError{"InvalidMessageContents", "InvalidMessageContents",
			"Invalid characters found: the request is not valid UTF-8, or holds an unpaired surrogate"}
	}
	var in request
	if err := json.Unmarshal(body, &in); err != nil {
		return nil, &sqsError{"InvalidParameterValue", "InvalidParameterValue", "the request body is not valid JSON for " + op}
	}
	switch op {
	case "CreateQueue":
		return h.createQueue(ctx, base, in)
	case "GetQueueUrl":
		if err := h.exists(ctx, in.QueueName); err != nil {
			return nil, err
		}
		return map[string]string{"QueueUrl": h.url(base, in.QueueName)}, nil
	case "ListQueues":
		return h.listQueues(ctx, base, in)
	case "ReceiveMessage", "DeleteMessage", "DeleteMessageBatch", "ChangeMessageVisibility", "ChangeMessageVisibilityBatch":
		return nil, &sqsError{"UnsupportedOperation", "AWS.SimpleQueueService.UnsupportedOperation",
			"Kappa's queues are consumed by event source mappings (CreateEventSourceMapping); " + op + " is not served"}
	case "DeleteQueue", "PurgeQueue", "GetQueueAttributes", "SetQueueAttributes", "SendMessage", "SendMessageBatch",
		"TagQueue", "UntagQueue", "ListQueueTags":
	default:
		return nil, &sqsError{"UnsupportedOperation", "AWS.SimpleQueueService.UnsupportedOperation", "Kappa does not serve the SQS operation " + op}
	}
	name, err := h.queueOf(in.QueueURL)
	if err != nil {
		return nil, err
	}
	switch op {
	case "DeleteQueue":
		if err := h.opts.Queues.Delete(ctx, name); err != nil {
			return nil, err
		}
		return struct{}{}, h.opts.Bucket.Delete(ctx, name)
	case "PurgeQueue":
		if err := h.opts.Queues.Purge(ctx, name); err != nil {
			return nil, err
		}
		return struct{}{}, nil
	case "GetQueueAttributes":
		return h.getAttributes(ctx, name, in.AttributeNames)
	case "SetQueueAttributes":
		return struct{}{}, h.setAttributes(ctx, name, in.Attributes)
	case "SendMessage":
		if err := h.exists(ctx, name); err != nil {
			return nil, err
		}
		return h.send(ctx, name, entry{message: in.message})
	case "SendMessageBatch":
		return h.sendBatch(ctx, name, in.Entries)
	case "TagQueue":
		if len(in.Tags) == 0 {
			return nil, missing("Tags")
		}
		if err := checkTags(in.Tags); err != nil {
			return nil, err
		}
		return struct{}{}, h.retag(ctx, name, func(t map[string]string) { maps.Copy(t, in.Tags) })
	case "UntagQueue":
		if len(in.TagKeys) == 0 {
			return nil, missing("TagKeys")
		}
		return struct{}{}, h.retag(ctx, name, func(t map[string]string) {
			for _, k := range in.TagKeys {
				delete(t, k)
			}
		})
	default: // ListQueueTags
		_, rec, _, err := h.load(ctx, name)
		if err != nil {
			return nil, err
		}
		return map[string]any{"Tags": rec.Tags}, nil
	}
}

// request holds the members of every operation served.
type request struct {
	QueueName       string            `json:"QueueName"`
	QueueURL        string            `json:"QueueUrl"`
	QueueNamePrefix string            `json:"QueueNamePrefix"`
	MaxResults      *int              `json:"MaxResults"`
	NextToken       string            `json:"NextToken"`
	Attributes      map[string]string `json:"Attributes"`
	AttributeNames  []string          `json:"AttributeNames"`
	Tags            map[string]string `json:"tags"`
	TagKeys         []string          `json:"TagKeys"`
	Entries         []entry           `json:"Entries"`
	// SendMessage's members.
	message
}

// UnmarshalJSON takes TagQueue's "Tags" as well as CreateQueue's "tags".
func (r *request) UnmarshalJSON(b []byte) error {
	type plain request
	var p struct {
		plain
		TagsUpper map[string]string `json:"Tags"`
	}
	if err := json.Unmarshal(b, &p); err != nil {
		return err
	}
	*r = request(p.plain)
	if r.Tags == nil {
		r.Tags = p.TagsUpper
	}
	return nil
}

// message is what SendMessage and each SendMessageBatch entry send.
type message struct {
	MessageBody             *string         `json:"MessageBody"`
	DelaySeconds            *int            `json:"DelaySeconds"`
	MessageAttributes       json.RawMessage `json:"MessageAttributes"`
	MessageSystemAttributes json.RawMessage `json:"MessageSystemAttributes"`
	MessageGroupID          *string         `json:"MessageGroupId"`
	MessageDeduplicationID  *string         `json:"MessageDeduplicationId"`
}

type entry struct {
	ID string `json:"Id"`
	message
}

func (h *Handler) url(base, name string) string { return base + "/" + h.opts.Account + "/" + name }

// queueOf returns the queue a QueueUrl names: its last path element,
// under this account.
func (h *Handler) queueOf(url string) (string, error) {
	if url == "" {
		return "", missing("QueueUrl")
	}
	rest := url
	if i := strings.Index(rest, "://"); i >= 0 {
		rest = rest[i+3:]
	}
	parts := strings.Split(rest, "/")
	if len(parts) != 3 || parts[1] != h.opts.Account || !async.ValidQueueName(parts[2]) {
		return "", noQueue()
	}
	return parts[2], nil
}

func (h *Handler) exists(ctx context.Context, name string) error {
	if name == "" {
		return missing("QueueName")
	}
	if !async.ValidQueueName(name) {
		return noQueue()
	}
	_, err := h.opts.Queues.Get(ctx, name)
	return err
}

func (h *Handler) record(ctx context.Context, name string) (record, error) {
	_, rec, _, err := h.load(ctx, name)
	return rec, err
}

// load returns queue name, its record (empty when it has none, or only a
// stale one of an earlier queue of that name) and the record's revision
// (0: none stored).
func (h *Handler) load(ctx context.Context, name string) (async.QueueInfo, record, uint64, error) {
	info, err := h.opts.Queues.Get(ctx, name)
	if err != nil {
		return info, record{}, 0, err
	}
	e, err := h.opts.Bucket.Get(ctx, name)
	if errors.Is(err, store.ErrNotFound) {
		return info, record{}, 0, nil
	}
	if err != nil {
		return info, record{}, 0, err
	}
	var rec record
	if err := json.Unmarshal(e.Value, &rec); err != nil || rec.Created != info.Created.UnixNano() {
		rec = record{}
	}
	return info, rec, e.Revision, nil
}

// change applies edit to queue name's record and stores it, again when
// another change was stored in between (Terraform sets a queue's policies
// and tags in parallel).
func (h *Handler) change(ctx context.Context, name string, edit func(*record)) error {
	for range 100 {
		info, rec, rev, err := h.load(ctx, name)
		if err != nil {
			return err
		}
		edit(&rec)
		rec.Created = info.Created.UnixNano()
		b, _ := json.Marshal(rec)
		if rev == 0 {
			_, err = h.opts.Bucket.Create(ctx, name, b)
		} else {
			_, err = h.opts.Bucket.Update(ctx, name, b, rev)
		}
		if errors.Is(err, store.ErrExists) || errors.Is(err, store.ErrRevision) {
			continue
		}
		return err
	}
	return fmt.Errorf("queue %s: its record kept changing under this change", name)
}

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
	for _, k := range sortedKeys(attrs) {
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
	if _, err := h.opts.Queues.Get(ctx, in.QueueName); err == nil {
		// As SQS: creating an existing queue is fine with the same
		// attributes, refused with different ones.
		rec, err := h.record(ctx, in.QueueName)
		if err != nil {
			return nil, err
		}
		for k, v := range attrs {
			if current(rec, k) != v {
				return nil, &sqsError{"QueueNameExists", "QueueAlreadyExists",
					"A queue already exists with the same name and a different value for attribute " + k}
			}
		}
		return map[string]string{"QueueUrl": h.url(base, in.QueueName)}, nil
	}
	if _, err := h.opts.Queues.Create(ctx, in.QueueName); err != nil {
		return nil, err
	}
	err := h.change(ctx, in.QueueName, func(rec *record) {
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
	for _, q := range qs { // sorted by name; the token is the last name
		if !strings.HasPrefix(q.Name, in.QueueNamePrefix) || in.NextToken != "" && q.Name <= in.NextToken {
			continue
		}
		if len(out.QueueUrls) == max {
			if in.MaxResults != nil {
				out.NextToken = qs0(out.QueueUrls)
			}
			break
		}
		out.QueueUrls = append(out.QueueUrls, h.url(base, q.Name))
	}
	return out, nil
}

// qs0 is the name in the last URL of urls.
func qs0(urls []string) string {
	last := urls[len(urls)-1]
	return last[strings.LastIndex(last, "/")+1:]
}

func (h *Handler) getAttributes(ctx context.Context, name string, names []string) (any, error) {
	rec, err := h.record(ctx, name)
	if err != nil {
		return nil, err
	}
	info, err := h.opts.Queues.Get(ctx, name)
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

func (h *Handler) sendBatch(ctx context.Context, name string, entries []entry) (any, error) {
	if len(entries) == 0 {
		return nil, &sqsError{"EmptyBatchRequest", "AWS.SimpleQueueService.EmptyBatchRequest", "There should be at least one SendMessageBatchRequestEntry in the request."}
	}
	if len(entries) > maxBatch {
		return nil, &sqsError{"TooManyEntriesInBatchRequest", "AWS.SimpleQueueService.TooManyEntriesInBatchRequest",
			fmt.Sprintf("Maximum number of entries per request are %d. You have sent %d.", maxBatch, len(entries))}
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

func sortedKeys(m map[string]string) []string {
	ks := make([]string, 0, len(m))
	for k := range m {
		ks = append(ks, k)
	}
	sort.Strings(ks)
	return ks
}
