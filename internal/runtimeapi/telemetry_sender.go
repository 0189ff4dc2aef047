package runtimeapi

import (
	"bytes"
	"context"
	"io"
	"net"
	"net/http"
	"strconv"
	"sync"
	"time"
)

// Delivery settings of the telemetry sender.
const (
	sendAttempts    = 3
	sendBackoff     = 100 * time.Millisecond
	sendTimeout     = 10 * time.Second
	logsDroppedText = "Some logs were dropped because the downstream consumer is slower than the logs production rate"
)

// subscription is one subscriber's buffer and the goroutine that delivers
// it. Events wait in queue until a batch is due: maxItems events, maxBytes
// bytes, timeoutMs since the oldest, or a flush. While a batch is being
// delivered the queue keeps filling up to the same limits; past them events
// are dropped and counted for platform.logsDropped.
type subscription struct {
	t      *Telemetry
	name   string
	cfg    subscriptionConfig
	client *http.Client
	tr     *http.Transport
	conn   net.Conn // TCP destinations; used by the sender goroutine only

	ctx    context.Context
	cancel context.CancelFunc
	kick   chan struct{} // capacity 1: something changed
	done   chan struct{} // closed when the sender returned

	mu           sync.Mutex
	queue        [][]byte
	qbytes       int
	firstAt      time.Time // when the oldest queued event arrived
	inflight     bool
	flushing     bool
	waiters      []chan struct{}
	dropped      int
	droppedBytes int
}

func newSubscription(t *Telemetry, name string, cfg subscriptionConfig) *subscription {
	ctx, cancel := context.WithCancel(context.Background())
	sub := &subscription{t: t, name: name, cfg: cfg, ctx: ctx, cancel: cancel,
		kick: make(chan struct{}, 1), done: make(chan struct{})}
	if !cfg.tcp {
		addr := net.JoinHostPort(sandboxHost, strconv.Itoa(cfg.port))
		sub.tr = &http.Transport{
			DialContext: func(ctx context.Context, network, _ string) (net.Conn, error) {
				return t.dial(ctx, network, addr)
			},
			MaxIdleConnsPerHost: 1,
			DisableCompression:  true,
		}
		sub.client = &http.Client{Transport: sub.tr, Timeout: sendTimeout}
	}
	return sub
}

func (sub *subscription) start() { go sub.run() }

// stop ends the sender and waits for it; queued events are dropped.
func (sub *subscription) stop() {
	sub.cancel()
	<-sub.done
}

func (sub *subscription) signal() {
	select {
	case sub.kick <- struct{}{}:
	default:
	}
}

// enqueue adds one encoded event, or counts it as dropped when the buffer
// is full.
func (sub *subscription) enqueue(ev []byte) {
	sub.mu.Lock()
	defer sub.mu.Unlock()
	if len(sub.queue) > 0 && (len(sub.queue) >= sub.cfg.maxItems || sub.qbytes+len(ev) > sub.cfg.maxBytes) {
		sub.dropped++
		sub.droppedBytes += len(ev)
		return
	}
	if len(sub.queue) == 0 {
		sub.firstAt = time.Now()
	}
	sub.queue = append(sub.queue, ev)
	sub.qbytes += len(ev)
	sub.signal()
}

// flush asks for everything queued to be sent now; the channel is closed
// once the queue is empty and nothing is in flight.
func (sub *subscription) flush() chan struct{} {
	ch := make(chan struct{})
	sub.mu.Lock()
	defer sub.mu.Unlock()
	if len(sub.queue) == 0 && !sub.inflight {
		close(ch)
		return ch
	}
	sub.flushing = true
	sub.waiters = append(sub.waiters, ch)
	sub.signal()
	return ch
}

func (sub *subscription) run() {
	defer close(sub.done)
	defer func() {
		if sub.conn != nil {
			sub.conn.Close()
		}
		if sub.tr != nil {
			sub.tr.CloseIdleConnections()
		}
		sub.mu.Lock()
		for _, w := range sub.waiters {
			close(w)
		}
		sub.waiters = nil
		sub.mu.Unlock()
	}()
	for {
		batch, ok := sub.next()
		if !ok {
			return
		}
		if !sub.send(batch) {
			sub.mu.Lock()
			sub.dropped += len(batch)
			for _, ev := range batch {
				sub.droppedBytes += len(ev)
			}
			sub.mu.Unlock()
		}
		sub.mu.Lock()
		sub.inflight = false
		if sub.dropped > 0 && sub.cfg.platform && sub.ctx.Err() == nil {
			rec := PlatformLogsDropped{Reason: logsDroppedText, DroppedRecords: sub.dropped, DroppedBytes: sub.droppedBytes}
			ev := encodeEvent(sub.t.now().UTC().Format(timeFormat), rec.platformType(), rec)
			sub.queue = append([][]byte{ev}, sub.queue...)
			sub.qbytes += len(ev)
			if len(sub.queue) == 1 {
				sub.firstAt = time.Now()
			}
			sub.dropped, sub.droppedBytes = 0, 0
		}
		sub.mu.Unlock()
	}
}

// next waits until a batch is due and takes it, or returns false when the
// subscription stops.
func (sub *subscription) next() ([][]byte, bool) {
	sub.mu.Lock()
	defer sub.mu.Unlock()
	for {
		if sub.ctx.Err() != nil {
			return nil, false
		}
		n := len(sub.queue)
		if n == 0 {
			sub.flushing = false
			for _, w := range sub.waiters {
				close(w)
			}
			sub.waiters = nil
		}
		var timer *time.Timer
		var wait <-chan time.Time
		if n > 0 {
			due := sub.firstAt.Add(sub.cfg.timeout)
			if sub.flushing || n >= sub.cfg.maxItems || sub.qbytes >= sub.cfg.maxBytes || !time.Now().Before(due) {
				break
			}
			timer = time.NewTimer(time.Until(due))
			wait = timer.C
		}
		sub.mu.Unlock()
		select {
		case <-sub.kick:
		case <-wait:
		case <-sub.ctx.Done():
		}
		if timer != nil {
			timer.Stop()
		}
		sub.mu.Lock()
	}
	// Take up to maxItems events and maxBytes bytes (at least one).
	k, size := 0, 0
	for k < len(sub.queue) && k < sub.cfg.maxItems && (k == 0 || size+len(sub.queue[k]) <= sub.cfg.maxBytes) {
		size += len(sub.queue[k])
		k++
	}
	batch := sub.queue[:k:k]
	sub.queue = append([][]byte(nil), sub.queue[k:]...)
	sub.qbytes -= size
	if len(sub.queue) > 0 {
		sub.firstAt = time.Now()
	}
	sub.inflight = true
	return batch, true
}

// send delivers one batch, retrying a few times; it reports whether the
// subscriber took it.
func (sub *subscription) send(batch [][]byte) bool {
	for attempt := range sendAttempts {
		if attempt > 0 {
			select {
			case <-time.After(sendBackoff << (attempt - 1)):
			case <-sub.ctx.Done():
				return false
			}
		}
		var err error
		if sub.cfg.tcp {
			err = sub.sendTCP(batch)
		} else {
			err = sub.sendHTTP(batch)
		}
		if err == nil {
			return true
		}
		if sub.ctx.Err() != nil {
			return false
		}
		sub.t.log.Debug("telemetry: delivery failed", "subscriber", sub.name, "attempt", attempt+1, "err", err)
	}
	sub.t.log.Warn("telemetry: batch dropped", "subscriber", sub.name, "events", len(batch))
	return false
}

func (sub *subscription) sendHTTP(batch [][]byte) error {
	var b bytes.Buffer
	b.WriteByte('[')
	for i, ev := range batch {
		if i > 0 {
			b.WriteByte(',')
		}
		b.Write(ev)
	}
	b.WriteByte(']')
	req, err := http.NewRequestWithContext(sub.ctx, http.MethodPost, sub.cfg.uri, &b)
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := sub.client.Do(req)
	if err != nil {
		return err
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	resp.Body.Close()
	if resp.StatusCode >= 300 {
		return &httpStatusError{resp.StatusCode}
	}
	return nil
}

type httpStatusError struct{ code int }

func (e *httpStatusError) Error() string { return "subscriber answered " + strconv.Itoa(e.code) }

func (sub *subscription) sendTCP(batch [][]byte) error {
	var b bytes.Buffer
	for _, ev := range batch {
		b.Write(ev)
		b.WriteByte('\n')
	}
	if sub.conn == nil {
		ctx, cancel := context.WithTimeout(sub.ctx, sendTimeout)
		conn, err := sub.t.dial(ctx, "tcp", net.JoinHostPort(sandboxHost, strconv.Itoa(sub.cfg.port)))
		cancel()
		if err != nil {
			return err
		}
		sub.conn = conn
	}
	_ = sub.conn.SetWriteDeadline(time.Now().Add(sendTimeout))
	if _, err := sub.conn.Write(b.Bytes()); err != nil {
		sub.conn.Close()
		sub.conn = nil
		return err
	}
	return nil
}
