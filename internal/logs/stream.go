package logs

import (
	"bufio"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"time"

	"golang.org/x/time/rate"
)

// record is one stored line.
type record struct {
	nanos    int64 // unique and increasing within the Store
	request  string
	platform bool
	msg      []byte
}

// recordOverhead approximates a record's bookkeeping beyond its message,
// counted against the queue bound.
const recordOverhead = 64

// platformSlack is queue room kept for platform lines (START, END, REPORT,
// logsDropped) beyond the bound function lines are held to, so that those
// lines survive a chatty function.
const platformSlack = 64 << 10

// Stream is one open log stream: the lines of one execution environment.
// Lines are queued in memory (bounded by Options.QueueBytes) and written to
// segment files under <dir>/<function>/<stream>/ by the stream's own
// goroutine, so a slow disk or a chatty function delays no one else. Safe
// for concurrent use.
type Stream struct {
	store    *Store
	function string
	name     string
	dir      string
	limiter  *rate.Limiter // nil: no rate limit

	mu      sync.Mutex
	queue   []record
	queued  int
	pushed  uint64 // records queued so far
	written uint64 // records written so far
	// progress, made by a waiter in waitWritten, is closed (and dropped)
	// when the writer has written its next batch.
	progress chan struct{}
	closed   bool
	wake     chan struct{}
	stopped  chan struct{}
	// delay kicks the writer Options.WriteDelay after the first line
	// queued since it last woke (armed says it is set); nil when lines
	// are written at once.
	delay *time.Timer
	armed bool

	// Owned by the writer goroutine.
	prepared bool // the directory exists and seg continues its segments
	seg      int
	f        *os.File
	w        *bufio.Writer
	segSize  int64
}

// Name is the stream's name ("2026/01/02/[$LATEST]<hex>").
func (s *Stream) Name() string { return s.name }

// admit decides whether a function line of n bytes may be queued now: it
// spends n tokens of the rate limit and checks the queue bound.
func (s *Stream) admit(now time.Time, n int) DropReason {
	if s.limiter != nil && !s.limiter.AllowN(now, n+1) {
		return DropRate
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.queued+n+recordOverhead > s.store.opts.QueueBytes ||
		s.store.queued.Load()+int64(n+recordOverhead) > s.store.opts.TotalQueueBytes {
		return DropBacklog
	}
	return 0
}

// push queues a copy of line; false when the stream is closed or even the
// platform's slack is used up.
func (s *Stream) push(now time.Time, request string, line []byte, platform bool) bool {
	n := len(line) + recordOverhead
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed || s.queued+n > s.store.opts.QueueBytes+platformSlack ||
		s.store.queued.Load()+int64(n) > s.store.opts.TotalQueueBytes+platformSlack {
		return false
	}
	s.queue = append(s.queue, record{
		nanos: s.store.stamp(now), request: request, platform: platform,
		msg: append([]byte(nil), line...),
	})
	s.queued += n
	s.store.queued.Add(int64(n))
	s.pushed++
	switch {
	case s.delay == nil || s.queued > s.store.opts.QueueBytes/4:
		s.kick()
	case !s.armed:
		s.armed = true
		s.delay.Reset(s.store.opts.WriteDelay)
	}
	return true
}

// kick wakes the writer now, if it is not awake already.
func (s *Stream) kick() {
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

// WriteLine appends a line written by the function, bypassing Capture
// (attributed to no invocation). It is subject to the same bounds.
func (s *Stream) WriteLine(line []byte) {
	now := s.store.opts.Now()
	if s.admit(now, len(line)) == 0 {
		s.push(now, "", line, false)
	}
}

// run writes queued records until the stream is closed and drained.
func (s *Stream) run() {
	defer close(s.stopped)
	var batch []record
	for {
		<-s.wake
		s.mu.Lock()
		batch, s.queue = s.queue, batch[:0]
		closed := s.closed
		if s.armed {
			s.armed = false
			s.delay.Stop()
		}
		s.mu.Unlock()
		if len(batch) > 0 {
			s.write(batch)
			s.store.publish(s.function, s.name, batch)
			n := 0
			for _, r := range batch {
				n += len(r.msg) + recordOverhead
			}
			s.mu.Lock()
			s.queued -= n
			s.store.queued.Add(-int64(n))
			s.written += uint64(len(batch))
			if s.progress != nil {
				close(s.progress)
				s.progress = nil
			}
			s.mu.Unlock()
			clear(batch)
		}
		if closed {
			s.mu.Lock()
			empty := len(s.queue) == 0
			s.mu.Unlock()
			if empty {
				s.closeFile()
				return
			}
			s.kick()
		}
	}
}

// write appends records to the current segment, rotating it when full.
func (s *Stream) write(batch []record) {
	for _, r := range batch {
		if s.f == nil || s.segSize >= s.store.opts.SegmentBytes {
			if !s.rotate() {
				return
			}
		}
		n := encodeRecord(s.w, r)
		s.segSize += int64(n)
	}
	if s.w != nil {
		if err := s.w.Flush(); err != nil {
			s.store.log.Warn("write log stream", "function", s.function, "stream", s.name, "err", err)
		}
	}
}

// rotate closes the current segment and opens the next one.
func (s *Stream) rotate() bool {
	if !s.prepared && !s.prepare() {
		return false
	}
	rotated := s.f != nil
	s.closeFile()
	s.seg++
	path := filepath.Join(s.dir, segmentName(s.seg))
	s.store.setActive(path, true)
	f, err := os.OpenFile(path, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o640)
	if err != nil {
		s.store.setActive(path, false)
		s.store.log.Warn("open log segment", "function", s.function, "stream", s.name, "err", err)
		return false
	}
	s.f, s.w, s.segSize = f, bufio.NewWriterSize(f, 64<<10), 0
	if rotated {
		// A full segment: this function's size limit may be exceeded now.
		s.store.enforceSize(s.function)
	}
	return true
}

// prepare makes the stream's directory and continues the numbering of
// the segments already there (a stream reopened by name).
func (s *Stream) prepare() bool {
	if err := os.MkdirAll(s.dir, 0o750); err != nil {
		s.store.log.Warn("create log stream", "function", s.function, "stream", s.name, "err", err)
		return false
	}
	if ents, err := os.ReadDir(s.dir); err == nil {
		for _, e := range ents {
			if n, ok := segmentNumber(e.Name()); ok && n > s.seg {
				s.seg = n
			}
		}
	}
	s.prepared = true
	return true
}

func (s *Stream) closeFile() {
	if s.f == nil {
		return
	}
	s.w.Flush()
	s.f.Close()
	s.store.setActive(s.f.Name(), false)
	s.f, s.w = nil, nil
}

func segmentName(n int) string { return fmt.Sprintf("%08d.log", n) }

func segmentNumber(name string) (int, bool) {
	if len(name) != len("00000000.log") || filepath.Ext(name) != ".log" {
		return 0, false
	}
	n, err := strconv.Atoi(name[:8])
	return n, err == nil
}

// Close writes what is queued, closes the segment and stops the stream's
// goroutine. Lines pushed afterwards are dropped. Safe to call twice.
func (s *Stream) Close() error {
	s.mu.Lock()
	if !s.closed {
		s.closed = true
		s.kick()
	}
	s.mu.Unlock()
	<-s.stopped
	s.store.forget(s)
	return nil
}

// Flush waits until every line queued before the call is written.
func (s *Stream) Flush() {
	target := s.target() // before the kick: the batch it wakes holds all of it
	s.kick()
	s.waitWritten(target, time.Time{})
}

// target is the count of records written once everything queued now is.
func (s *Stream) target() uint64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.pushed
}

// waitWritten waits until target records are written, the stream has
// stopped, or deadline (zero: never) has passed.
func (s *Stream) waitWritten(target uint64, deadline time.Time) {
	var expired <-chan time.Time
	if !deadline.IsZero() {
		t := time.NewTimer(time.Until(deadline))
		defer t.Stop()
		expired = t.C
	}
	for {
		s.mu.Lock()
		if s.written >= target {
			s.mu.Unlock()
			return
		}
		if s.progress == nil {
			s.progress = make(chan struct{})
		}
		progress := s.progress
		s.mu.Unlock()
		select {
		case <-progress:
		case <-s.stopped:
			return
		case <-expired:
			return
		}
	}
}
