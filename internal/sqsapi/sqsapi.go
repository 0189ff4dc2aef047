package sqsapi

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"net/http"
	"reflect"
	"strconv"
	"strings"
	"sync"
	"time"

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
	// Now is the clock (default time.Now).
	Now func() time.Time
}

// Handler serves the SQS operations.
type Handler struct {
	opts Options
	log  *slog.Logger

	mu sync.Mutex
	// deleted holds when DeleteQueue deleted each queue, for
	// deletedRecently; in memory, so a restart forgets it.
	deleted map[string]time.Time

	// creating serialises CreateQueue, so that of two at once for one
	// name with different attributes the second sees the first's queue
	// and is refused, as in SQS, instead of both succeeding with the
	// last one's attributes. It is this server's: servers sharing one
	// store do not serialise each other's.
	creating sync.Mutex
}

// reuseWait is how long SQS refuses to create a queue of the name of one
// DeleteQueue deleted.
const reuseWait = 60 * time.Second

// New returns a Handler.
func New(opts Options) *Handler {
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	return &Handler{opts: opts, log: log, deleted: map[string]time.Time{}}
}

// queueDeleted notes that DeleteQueue deleted name now.
func (h *Handler) queueDeleted(name string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	now := h.opts.Now()
	for n, at := range h.deleted {
		if now.Sub(at) >= reuseWait {
			delete(h.deleted, n)
		}
	}
	h.deleted[name] = now
}

// deletedRecently reports whether DeleteQueue deleted name less than
// reuseWait ago: SQS refuses to create a queue of that name until then.
func (h *Handler) deletedRecently(name string) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	at, ok := h.deleted[name]
	return ok && h.opts.Now().Sub(at) < reuseWait
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
	if len(bytes.TrimSpace(body)) == 0 {
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
		h.queueDeleted(name)
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
		if in.TagKeys.n == 0 {
			return nil, missing("TagKeys")
		}
		if in.TagKeys.n > maxListItems {
			return nil, invalidParam("TagKeys holds %d keys; at most %d are taken.", in.TagKeys.n, maxListItems)
		}
		return struct{}{}, h.retag(ctx, name, func(t map[string]string) {
			for _, k := range in.TagKeys.items {
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
	TagKeys         capped[string]    `json:"TagKeys"`
	Entries         capped[entry]     `json:"Entries"`
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

// maxListItems is how many elements a request's list keeps (see capped):
// more than any operation takes (10 batch entries; a queue has at most 50
// tags to remove).
const maxListItems = 1000

// capped is a JSON array of which only the first maxListItems elements are
// decoded; n counts them all. A 4 MiB request can hold a million empty
// batch entries or tag keys, which decoded in full took hundreds of MB.
type capped[T any] struct {
	items []T
	n     int
}

func (c *capped[T]) UnmarshalJSON(b []byte) error {
	*c = capped[T]{}
	dec := json.NewDecoder(bytes.NewReader(b))
	tok, err := dec.Token()
	if err != nil {
		return err
	}
	if tok == nil {
		return nil // null
	}
	if tok != json.Delim('[') {
		return &json.UnmarshalTypeError{Value: "non-array", Type: reflect.TypeFor[[]T]()}
	}
	for ; dec.More(); c.n++ {
		if len(c.items) == maxListItems {
			// The rest is only counted: b is valid JSON (json.Unmarshal
			// checked it before calling), so each comma outside strings
			// and nested values starts one more element.
			c.n += topLevelCommas(b[dec.InputOffset():])
			return nil
		}
		var v T
		if err := dec.Decode(&v); err != nil {
			return err
		}
		c.items = append(c.items, v)
	}
	return nil
}

// topLevelCommas counts the commas of valid JSON text b that stand outside
// strings and outside the arrays and objects b opens.
func topLevelCommas(b []byte) int {
	n, depth, inString, escaped := 0, 0, false, false
	for _, c := range b {
		switch {
		case inString:
			switch {
			case escaped:
				escaped = false
			case c == '\\':
				escaped = true
			case c == '"':
				inString = false
			}
		case c == '"':
			inString = true
		case c == '[' || c == '{':
			depth++
		case c == ']' || c == '}':
			depth--
		case c == ',' && depth == 0:
			n++
		}
	}
	return n
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
