package eventsource

import (
	"context"
	"crypto/md5"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/google/uuid"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/kappa-run/kappa/internal/apierr"
	"github.com/kappa-run/kappa/internal/async"
	"github.com/kappa-run/kappa/internal/function"
	"github.com/kappa-run/kappa/internal/invoker"
)

const (
	// maxEventBytes keeps a batch event under the synchronous payload
	// limit (6 MB), with room for the records' other members.
	maxEventBytes = 6*1024*1024 - 64*1024
	// recordOverhead is what a record adds to its body, at most.
	recordOverhead = 1024
	// ackWait is how long a delivered message stays with the poller
	// without news; heartbeats extend it while the function runs, and
	// after a crash the message comes again once it passes.
	ackWait   = 30 * time.Second
	heartbeat = 10 * time.Second
	// maxPending bounds the messages a mapping has out (in batches or
	// waiting for their retry); past it the queue's newer messages wait.
	maxPending = 20000
	// fetchSlice bounds one wait for messages, so that a stopped poller
	// notices within it.
	fetchSlice = time.Second
)

// poller feeds one enabled mapping's queue to its function.
type poller struct {
	s      *Service
	m      Mapping
	ctx    context.Context
	cancel context.CancelFunc
	done   chan struct{}
	once   sync.Once
	// gen counts the times a worker lost the consumer; a batch gathered
	// under an older gen is neither acknowledged nor sent back (work).
	gen atomic.Uint64
}

func (s *Service) newPoller(m Mapping) *poller {
	ctx, cancel := context.WithCancel(s.ctx)
	return &poller{s: s, m: m, ctx: ctx, cancel: cancel, done: make(chan struct{})}
}

// stop asks the poller to end once its batch in flight is done.
func (p *poller) stop() { p.cancel() }

// finish marks the poller ended.
func (p *poller) finish() { p.once.Do(func() { close(p.done) }) }

// sleep waits d unless the poller stops first.
func (p *poller) sleep(d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
	case <-p.ctx.Done():
	}
}

func consumerName(id string) string { return "esm-" + id }

func (p *poller) consumer() (jetstream.Consumer, error) {
	// Not cut short by stop: a create request abandoned in flight could
	// reach the server after the delete of a deleted mapping's consumer
	// (which waits for this poller to end) and bring the consumer back.
	ctx, cancel := context.WithTimeout(context.WithoutCancel(p.ctx), consumerCreateTimeout)
	defer cancel()
	return p.s.opts.JetStream.CreateOrUpdateConsumer(ctx, async.QueueStream(p.m.Queue), jetstream.ConsumerConfig{
		Durable:     consumerName(p.m.UUID),
		Description: "Kappa event source mapping " + p.m.UUID,
		AckPolicy:   jetstream.AckExplicitPolicy,
		// A batch's messages are held while it is gathered (up to the
		// window) and then heartbeaten while the function runs.
		AckWait:       time.Duration(p.m.Window)*time.Second + ackWait,
		DeliverPolicy: jetstream.DeliverAllPolicy,
		FilterSubject: async.QueueSubject(p.m.Queue),
		// Messages waiting to be retried stay pending: room for many, so
		// that failing ones do not hold newer ones back.
		MaxAckPending: max(maxPending, 2*p.m.BatchSize*p.m.workers()),
		// One waiting pull request per worker (MaximumConcurrency ≤ 1000).
		MaxWaiting: 2 * MaxConcurrency,
	})
}

// consumerCreateTimeout bounds a consumer's creation.
const consumerCreateTimeout = 10 * time.Second

// deleteConsumer removes a deleted mapping's consumer; a queue or
// consumer already gone is fine.
func (s *Service) deleteConsumer(queue, id string) error {
	err := s.opts.JetStream.DeleteConsumer(s.ctx, async.QueueStream(queue), consumerName(id))
	if err == nil || errors.Is(err, jetstream.ErrConsumerNotFound) || errors.Is(err, jetstream.ErrStreamNotFound) {
		return nil
	}
	return err
}

// run polls until stopped, with one worker per batch the mapping may run
// at once (they share the consumer, which hands each message to one).
func (p *poller) run() {
	defer p.finish()
	var wg sync.WaitGroup
	for range p.m.workers() {
		wg.Add(1)
		go func() {
			defer wg.Done()
			p.work()
		}()
	}
	wg.Wait()
}

// work gathers and processes batches until the poller stops.
func (p *poller) work() {
	var cons jetstream.Consumer
	var carry []jetstream.Msg
	carryGen := p.gen.Load()
	defer func() {
		if p.gen.Load() != carryGen {
			return
		}
		for _, m := range carry {
			m.Nak() // not processed: at once to the next poller
		}
	}()
	warned := false
	for p.ctx.Err() == nil {
		if cons == nil {
			c, err := p.consumer()
			if err != nil {
				if p.ctx.Err() != nil {
					return
				}
				if !warned {
					p.s.log.Warn("event source mapping cannot read its queue; trying again", "uuid", p.m.UUID, "queue", p.m.Queue, "err", err)
					warned = true
				}
				p.s.setResult(p.m.UUID, "PROBLEM: the queue cannot be read")
				p.sleep(min(p.s.opts.RetryDelay, 5*time.Second))
				continue
			}
			cons, warned = c, false
		}
		gen := p.gen.Load()
		if gen != carryGen {
			carry = nil
		}
		msgs, over, err := p.gather(cons, carry)
		carry, carryGen = over, gen
		if err != nil && p.ctx.Err() == nil {
			p.s.log.Warn("event source mapping: fetching messages", "uuid", p.m.UUID, "err", err)
			cons = nil // the queue may have been deleted and made again
			// A queue made again numbers its messages from 1 again, and
			// so does the consumer made for it: an Ack or Nak of what the
			// old one handed out could settle a new message. Every
			// worker forgets what it holds (a message still live comes
			// again after its AckWait).
			p.gen.Add(1)
			p.sleep(time.Second)
		}
		if len(msgs) == 0 || p.gen.Load() != gen {
			continue
		}
		if p.ctx.Err() != nil {
			carry = append(msgs, carry...)
			return
		}
		p.process(msgs, carry, gen)
	}
}

// gather collects one batch: up to BatchSize messages, waiting up to the
// batching window (without one: what is there, else the first message to
// come and what came with it), cut at maxEventBytes. carry holds messages
// the previous batch had no room for; what this one has no room for is
// returned as the next carry (held, not sent back: a message is only sent
// back for the function's sake, so its receive count stays true).
func (p *poller) gather(cons jetstream.Consumer, carry []jetstream.Msg) (msgs, over []jetstream.Msg, err error) {
	size := 0
	seen := map[uint64]bool{}
	take := func(m jetstream.Msg) {
		if md, err := m.Metadata(); err == nil {
			if seen[md.Sequence.Stream] {
				return // delivered again while held: one copy is enough
			}
			seen[md.Sequence.Stream] = true
		}
		n := len(m.Data()) + recordOverhead
		if len(over) > 0 || len(msgs) >= p.m.BatchSize || len(msgs) > 0 && size+n > maxEventBytes {
			over = append(over, m)
			return
		}
		msgs = append(msgs, m)
		size += n
	}
	for _, m := range carry {
		take(m)
	}
	add := func(b jetstream.MessageBatch) error {
		for m := range b.Messages() {
			take(m)
		}
		if err := b.Error(); err != nil && !errors.Is(err, context.DeadlineExceeded) && !errors.Is(err, jetstream.ErrNoMessages) {
			return err
		}
		return nil
	}
	full := func() bool { return len(msgs) >= p.m.BatchSize || len(over) > 0 }
	window := time.Duration(p.m.Window) * time.Second
	if window == 0 {
		// What is there now; else the first message to come, and what
		// is there with it.
		for !full() && p.ctx.Err() == nil {
			b, err := cons.FetchNoWait(p.m.BatchSize - len(msgs))
			if err == nil {
				err = add(b)
			}
			if err != nil || len(msgs) > 0 {
				return msgs, over, err
			}
			b, err = cons.Fetch(1, jetstream.FetchMaxWait(fetchSlice))
			if err == nil {
				err = add(b)
			}
			if err != nil {
				return msgs, over, err
			}
		}
		return msgs, over, nil
	}
	deadline := time.Now().Add(window)
	for !full() && p.ctx.Err() == nil {
		wait := min(time.Until(deadline), fetchSlice)
		if wait <= 0 {
			break
		}
		b, err := cons.Fetch(p.m.BatchSize-len(msgs), jetstream.FetchMaxWait(wait))
		if err == nil {
			err = add(b)
		}
		if err != nil {
			return msgs, over, err
		}
	}
	return msgs, over, nil
}

// sqsRecord is one message of an SQS event.
type sqsRecord struct {
	MessageID         string            `json:"messageId"`
	ReceiptHandle     string            `json:"receiptHandle"`
	Body              string            `json:"body"`
	Attributes        map[string]string `json:"attributes"`
	MessageAttributes map[string]any    `json:"messageAttributes"`
	MD5OfBody         string            `json:"md5OfBody"`
	EventSource       string            `json:"eventSource"`
	EventSourceARN    string            `json:"eventSourceARN"`
	AWSRegion         string            `json:"awsRegion"`
}

// record turns a queue message into an SQS record.
func (p *poller) record(m jetstream.Msg, now time.Time) sqsRecord {
	var seq, count uint64 = 0, 1
	sent := now
	if md, err := m.Metadata(); err == nil {
		seq, count, sent = md.Sequence.Stream, md.NumDelivered, md.Timestamp
	}
	sum := md5.Sum(m.Data())
	return sqsRecord{
		// Stable across deliveries; the time the message was stored tells
		// apart the messages of a queue deleted and made again.
		MessageID:     async.MessageID(p.m.Queue, seq, sent),
		ReceiptHandle: base64.StdEncoding.EncodeToString([]byte(fmt.Sprintf("%s/%d/%d", p.m.UUID, seq, count))),
		Body:          string(m.Data()),
		Attributes: map[string]string{
			"ApproximateReceiveCount":          strconv.FormatUint(count, 10),
			"SentTimestamp":                    strconv.FormatInt(sent.UnixMilli(), 10),
			"SenderId":                         p.s.opts.Account,
			"ApproximateFirstReceiveTimestamp": strconv.FormatInt(now.UnixMilli(), 10),
		},
		MessageAttributes: map[string]any{},
		MD5OfBody:         hex.EncodeToString(sum[:]),
		EventSource:       "aws:sqs",
		EventSourceARN:    fmt.Sprintf("arn:aws:sqs:%s:%s:%s", p.s.opts.Region, p.s.opts.Account, p.m.Queue),
		AWSRegion:         p.s.opts.Region,
	}
}

// process invokes the function with one batch and settles its messages;
// held are messages kept for the next batch, heartbeaten meanwhile too.
// gen is the consumer generation they came from: once it is gone they are
// left alone.
func (p *poller) process(msgs, held []jetstream.Msg, gen uint64) {
	s := p.s
	stale := func() bool { return p.gen.Load() != gen }
	now := s.opts.Now()
	recs := make([]sqsRecord, len(msgs))
	ids := make(map[string]int, len(msgs))
	for i, m := range msgs {
		recs[i] = p.record(m, now)
		ids[recs[i].MessageID] = i
	}
	payload, _ := json.Marshal(struct {
		Records []sqsRecord `json:"Records"`
	}{recs})
	count := func(result string, n int) {
		if s.opts.Metrics != nil && n > 0 {
			s.opts.Metrics.ESMMessages(p.m.Function, result, n)
		}
	}
	retry := func(which []jetstream.Msg, result string) {
		if stale() {
			return
		}
		for _, m := range which {
			m.NakWithDelay(s.opts.RetryDelay)
		}
		count("retried", len(which))
		s.setResult(p.m.UUID, result)
	}

	target, err := s.opts.Functions.Resolve(s.ctx, function.Ref{Name: p.m.Function, Qualifier: p.m.Qualifier})
	if err != nil {
		s.log.Warn("event source mapping: resolve the function", "uuid", p.m.UUID, "function", p.m.Function, "err", err)
		retry(msgs, "PROBLEM: Function call failed")
		return
	}
	// The messages stay ours while the function runs, however long.
	beat, beaten := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(beaten)
		t := time.NewTicker(heartbeat)
		defer t.Stop()
		for {
			select {
			case <-t.C:
				if stale() {
					continue
				}
				for _, m := range msgs {
					m.InProgress()
				}
				for _, m := range held {
					m.InProgress()
				}
			case <-beat:
				return
			}
		}
	}()
	resp, err := s.opts.Invoker.Invoke(s.ctx, invoker.Request{
		Config:     target.Config,
		Reserved:   target.Reserved,
		Unreserved: s.opts.Functions.UnreservedCached(),
		RequestID:  uuid.NewString(),
		Payload:    payload,
		InvokedARN: s.opts.Functions.ARN(p.m.Function, p.m.Qualifier),
	})
	close(beat)
	<-beaten // no heartbeat after the Ack or Nak below
	if s.ctx.Err() != nil && (err != nil || resp.FunctionError != "") {
		// The server stopped under it: not the function's failure. The
		// messages come again after the restart.
		return
	}
	switch {
	case err != nil:
		result := "PROBLEM: Function call failed"
		if errors.Is(err, apierr.TooManyRequests) {
			result = "PROBLEM: Function call throttled"
		}
		s.log.Info("event source mapping: invocation failed; the batch comes again", "uuid", p.m.UUID, "err", err)
		retry(msgs, result)
	case resp.FunctionError != "":
		retry(msgs, "PROBLEM: Function call failed")
	case p.m.ReportFailures:
		failed, ok := parseBatchItemFailures(resp.Payload, ids)
		if !ok {
			s.log.Info("event source mapping: invalid batch item failures; the batch comes again", "uuid", p.m.UUID)
			retry(msgs, "PROBLEM: Function response was not a valid batch item failures response")
			return
		}
		if stale() {
			return
		}
		var back []jetstream.Msg
		for i, m := range msgs {
			if failed[i] {
				back = append(back, m)
			} else {
				m.Ack()
			}
		}
		count("succeeded", len(msgs)-len(back))
		if len(back) > 0 {
			retry(back, "OK")
			return
		}
		s.setResult(p.m.UUID, "OK")
	default:
		if stale() {
			return
		}
		for _, m := range msgs {
			m.Ack()
		}
		count("succeeded", len(msgs))
		s.setResult(p.m.UUID, "OK")
	}
}

// parseBatchItemFailures reads a ReportBatchItemFailures answer and
// returns the indexes (by ids, message id → index) of the messages to send
// back. As in Lambda: no answer, null, {} or an empty or null list is a
// complete success; an answer that is not a JSON object, an item without
// an itemIdentifier (null, empty, misspelt) or naming no message of the
// batch is a complete failure (ok false).
func parseBatchItemFailures(payload []byte, ids map[string]int) (failed map[int]bool, ok bool) {
	failed = map[int]bool{}
	if len(payload) == 0 || string(payload) == "null" {
		return failed, true
	}
	var resp struct {
		BatchItemFailures []map[string]json.RawMessage `json:"batchItemFailures"`
	}
	if err := json.Unmarshal(payload, &resp); err != nil {
		return nil, false
	}
	for _, item := range resp.BatchItemFailures {
		var id string
		if raw, ok := item["itemIdentifier"]; !ok || json.Unmarshal(raw, &id) != nil || id == "" {
			return nil, false
		}
		i, ok := ids[id]
		if !ok {
			return nil, false
		}
		failed[i] = true
	}
	return failed, true
}

// setResult records a mapping's LastProcessingResult (in memory; stored
// with the mapping's next write).
func (s *Service) setResult(id, result string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if m := s.mappings[id]; m != nil && m.LastResult != result {
		c := *m
		c.LastResult = result
		s.mappings[id] = &c
	}
}
