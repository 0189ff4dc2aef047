package async

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/google/uuid"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/kappa-run/kappa/internal/apierr"
)

// QueueRetention is how long a Kappa queue keeps a message (SQS's default
// retention period).
const QueueRetention = 4 * 24 * time.Hour

const (
	queueStreamPrefix  = "KQ_"
	queueSubjectPrefix = "kappa.queue."
)

// QueueStream and QueueSubject name the JetStream stream of a queue and
// the subject its messages are published on (for readers such as event
// source mappings).
func QueueStream(name string) string  { return queueStreamPrefix + name }
func QueueSubject(name string) string { return queueSubjectPrefix + name }

var queueNameRE = regexp.MustCompile(`^[a-zA-Z0-9_-]{1,80}$`)

// ValidQueueName reports whether name is a queue name (SQS standard queue
// names: 1–80 of [a-zA-Z0-9_-]).
func ValidQueueName(name string) bool { return queueNameRE.MatchString(name) }

// QueueInfo describes a queue.
type QueueInfo struct {
	Name     string
	ARN      string
	Messages uint64
	// FirstSeq and LastSeq bound the sequence numbers it holds.
	FirstSeq, LastSeq uint64
	Created           time.Time
}

// QueueMessage is one message of a queue.
type QueueMessage struct {
	Seq  uint64
	Time time.Time
	Body []byte
}

// Queues are Kappa's durable queues: one JetStream stream each, read by
// sequence number without consuming. Safe for concurrent use.
type Queues struct {
	js              jetstream.JetStream
	region, account string
	stop            chan struct{} // closed by StopWaiting
	once            sync.Once
}

// NewQueues returns the queues of js.
func NewQueues(js jetstream.JetStream, region, account string) *Queues {
	return &Queues{js: js, region: region, account: account, stop: make(chan struct{})}
}

// StopWaiting ends every Read waiting for messages, and the waits of later
// ones (the server is shutting down).
func (q *Queues) StopWaiting() { q.once.Do(func() { close(q.stop) }) }

// ARN is a queue's ARN.
func (q *Queues) ARN(name string) string {
	return fmt.Sprintf("arn:aws:sqs:%s:%s:%s", q.region, q.account, name)
}

func (q *Queues) checkName(name string) error {
	if !ValidQueueName(name) {
		return apierr.New(apierr.Validation,
			"1 validation error detected: Value '%s' at 'queueName' failed to satisfy constraint: Member must satisfy regular expression pattern: [a-zA-Z0-9_-]{1,80}", name)
	}
	return nil
}

func (q *Queues) notFound(name string) error {
	return apierr.New(apierr.NotFound, "Queue not found: %s", q.ARN(name))
}

// Create makes the queue if it does not exist; it is idempotent.
func (q *Queues) Create(ctx context.Context, name string) (QueueInfo, error) {
	if err := q.checkName(name); err != nil {
		return QueueInfo{}, err
	}
	s, err := q.js.CreateOrUpdateStream(ctx, jetstream.StreamConfig{
		Name:        queueStreamPrefix + name,
		Description: "Kappa queue " + name,
		Subjects:    []string{queueSubjectPrefix + name},
		Storage:     jetstream.FileStorage,
		Retention:   jetstream.LimitsPolicy,
		MaxAge:      QueueRetention,
		Discard:     jetstream.DiscardOld,
	})
	if err != nil {
		return QueueInfo{}, apierr.Wrap(apierr.Internal, err, "create queue")
	}
	return q.info(s.CachedInfo(), name), nil
}

func (q *Queues) info(si *jetstream.StreamInfo, name string) QueueInfo {
	return QueueInfo{Name: name, ARN: q.ARN(name), Messages: si.State.Msgs,
		FirstSeq: si.State.FirstSeq, LastSeq: si.State.LastSeq, Created: si.Created}
}

func (q *Queues) stream(ctx context.Context, name string) (jetstream.Stream, error) {
	if err := q.checkName(name); err != nil {
		return nil, err
	}
	s, err := q.js.Stream(ctx, queueStreamPrefix+name)
	if errors.Is(err, jetstream.ErrStreamNotFound) {
		return nil, q.notFound(name)
	}
	if err != nil {
		return nil, apierr.Wrap(apierr.Internal, err, "open queue")
	}
	return s, nil
}

// Get describes a queue.
func (q *Queues) Get(ctx context.Context, name string) (QueueInfo, error) {
	s, err := q.stream(ctx, name)
	if err != nil {
		return QueueInfo{}, err
	}
	si, err := s.Info(ctx)
	if err != nil {
		return QueueInfo{}, apierr.Wrap(apierr.Internal, err, "describe queue")
	}
	return q.info(si, name), nil
}

// Delete removes a queue and its messages.
func (q *Queues) Delete(ctx context.Context, name string) error {
	if err := q.checkName(name); err != nil {
		return err
	}
	err := q.js.DeleteStream(ctx, queueStreamPrefix+name)
	if errors.Is(err, jetstream.ErrStreamNotFound) {
		return q.notFound(name)
	}
	if err != nil {
		return apierr.Wrap(apierr.Internal, err, "delete queue")
	}
	return nil
}

// Purge removes every message of a queue; the queue stays.
func (q *Queues) Purge(ctx context.Context, name string) error {
	s, err := q.stream(ctx, name)
	if err != nil {
		return err
	}
	if err := s.Purge(ctx); err != nil {
		return apierr.Wrap(apierr.Internal, err, "purge queue")
	}
	return nil
}

// List returns every queue, sorted by name.
func (q *Queues) List(ctx context.Context) ([]QueueInfo, error) {
	l := q.js.ListStreams(ctx, jetstream.WithStreamListSubject(queueSubjectPrefix+"*"))
	var out []QueueInfo
	for si := range l.Info() {
		if name, ok := strings.CutPrefix(si.Config.Name, queueStreamPrefix); ok {
			out = append(out, q.info(si, name))
		}
	}
	if err := l.Err(); err != nil && !errors.Is(err, jetstream.ErrEndOfData) {
		return nil, apierr.Wrap(apierr.Internal, err, "list queues")
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, nil
}

// Send appends body to a queue, creating the queue when it does not exist,
// and returns its sequence number once the message is stored.
func (q *Queues) Send(ctx context.Context, name string, body []byte) (uint64, error) {
	if err := q.checkName(name); err != nil {
		return 0, err
	}
	ack, err := q.js.Publish(ctx, queueSubjectPrefix+name, body)
	if errors.Is(err, jetstream.ErrNoStreamResponse) || errors.Is(err, jetstream.ErrStreamNotFound) || isNoResponders(err) {
		if _, err := q.Create(ctx, name); err != nil {
			return 0, err
		}
		ack, err = q.js.Publish(ctx, queueSubjectPrefix+name, body)
	}
	if err != nil {
		return 0, apierr.Wrap(apierr.Internal, err, "send to queue "+name)
	}
	return ack.Sequence, nil
}

// SendStored appends body to an existing queue (it never creates one, so a
// send racing the queue's deletion cannot bring it back) and returns its
// sequence number and the time it was stored, which identify it
// (MessageID).
func (q *Queues) SendStored(ctx context.Context, name string, body []byte) (uint64, time.Time, error) {
	s, err := q.stream(ctx, name)
	if err != nil {
		return 0, time.Time{}, err
	}
	ack, err := q.js.Publish(ctx, queueSubjectPrefix+name, body, jetstream.WithExpectStream(queueStreamPrefix+name))
	if errors.Is(err, jetstream.ErrNoStreamResponse) || errors.Is(err, jetstream.ErrStreamNotFound) || isNoResponders(err) {
		return 0, time.Time{}, q.notFound(name)
	}
	if err != nil {
		return 0, time.Time{}, apierr.Wrap(apierr.Internal, err, "send to queue "+name)
	}
	m, err := s.GetMsg(ctx, ack.Sequence)
	if err != nil {
		return 0, time.Time{}, apierr.Wrap(apierr.Internal, err, "read back the message sent to queue "+name)
	}
	return ack.Sequence, m.Time, nil
}

// messageIDSpace derives stable message ids (one per queue message).
var messageIDSpace = uuid.MustParse("9d3f6e2a-4c1b-4f0e-9a57-6b2f8c1d0e43")

// MessageID is the SQS message id of a queue's message: the same for
// SendMessage's answer and every delivery by an event source mapping. The
// time the message was stored tells apart the messages of a queue deleted
// and made again.
func MessageID(queue string, seq uint64, stored time.Time) string {
	return uuid.NewSHA1(messageIDSpace, []byte(queue+"/"+strconv.FormatUint(seq, 10)+"/"+strconv.FormatInt(stored.UnixNano(), 10))).String()
}

func isNoResponders(err error) bool {
	return err != nil && strings.Contains(err.Error(), "no responders")
}

// Read returns up to max messages with a sequence number above after (and
// stops adding them past maxReadBytes of bodies), waiting up to wait for
// the first one. Messages are not consumed.
func (q *Queues) Read(ctx context.Context, name string, after uint64, max int, wait time.Duration) ([]QueueMessage, error) {
	s, err := q.stream(ctx, name)
	if err != nil {
		return nil, err
	}
	if max <= 0 {
		max = 100
	}
	deadline := time.Now().Add(wait)
	for {
		out, err := q.read(ctx, s, name, after, max)
		if err != nil || len(out) > 0 || !time.Now().Before(deadline) {
			return out, err
		}
		select {
		case <-ctx.Done():
			return nil, nil
		case <-q.stop:
			return nil, nil
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// maxReadBytes bounds the message bodies one Read returns (a client asking
// for 1,000 messages of 1 MiB each gets the first few MiB, and the
// sequence to read on from): what the HTTP API then encodes stays small.
var maxReadBytes = 8 << 20 // a variable for tests

func (q *Queues) read(ctx context.Context, s jetstream.Stream, name string, after uint64, max int) ([]QueueMessage, error) {
	var out []QueueMessage
	seq := after + 1
	size := 0
	for len(out) < max && size < maxReadBytes {
		m, err := s.GetMsg(ctx, seq, jetstream.WithGetMsgSubject(queueSubjectPrefix+name))
		if errors.Is(err, jetstream.ErrMsgNotFound) {
			break
		}
		if err != nil {
			return nil, apierr.Wrap(apierr.Internal, err, "read queue")
		}
		out = append(out, QueueMessage{Seq: m.Sequence, Time: m.Time, Body: m.Data})
		size += len(m.Data)
		seq = m.Sequence + 1
	}
	return out, nil
}
