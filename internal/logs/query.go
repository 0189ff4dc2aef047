package logs

import (
	"bufio"
	"bytes"
	"container/heap"
	"context"
	"errors"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"sync/atomic"
	"time"
)

// mtimeSlack is how much earlier than its last line's stamp a segment's
// modification time may be.
const mtimeSlack = time.Second

// MaxLimit bounds Query.Limit through the API: the last lines are held in
// memory until the query ends (CloudWatch's GetLogEvents has the same cap).
const MaxLimit = 10_000

// Query selects stored lines of one function. The zero Query selects all.
type Query struct {
	// Since and Until bound the lines' times (inclusive); zero is unbounded.
	Since, Until time.Time
	// Filter keeps lines whose message contains it (case-sensitive).
	Filter string
	// RequestID keeps the lines attributed to one invocation.
	RequestID string
	// Stream keeps the lines of one log stream.
	Stream string
	// Limit keeps only the newest Limit lines of the history; 0 keeps all.
	Limit int
}

func (q Query) match(stream string, r record) bool {
	if !q.Since.IsZero() && r.nanos < q.Since.UnixNano() {
		return false
	}
	if !q.Until.IsZero() && r.nanos > q.Until.UnixNano() {
		return false
	}
	if q.Stream != "" && stream != q.Stream {
		return false
	}
	if q.RequestID != "" && r.request != q.RequestID {
		return false
	}
	return q.Filter == "" || bytes.Contains(r.msg, []byte(q.Filter))
}

// Event is one stored line as queries return it.
type Event struct {
	Time      time.Time `json:"time"`
	Stream    string    `json:"stream"`
	RequestID string    `json:"requestId,omitempty"`
	// Type is "function" for the function's output, "platform" for
	// START/END/REPORT and logsDropped records, "notice" for messages of
	// the log API itself (a follower that fell behind).
	Type    string `json:"type"`
	Message string `json:"message"`
	nanos   int64
}

func newEvent(stream string, r record) Event {
	typ := "function"
	if r.platform {
		typ = "platform"
	}
	return Event{
		Time: time.Unix(0, r.nanos).UTC(), Stream: stream, RequestID: r.request,
		Type: typ, Message: string(r.msg), nanos: r.nanos,
	}
}

// StreamInfo describes one stored stream.
type StreamInfo struct {
	Name string `json:"name"`
	// FirstWrite is the time of the stream's first stored line (of its
	// oldest segment retention has left), LastWrite of its last.
	FirstWrite time.Time `json:"firstEventTime"`
	LastWrite  time.Time `json:"lastEventTime"`
	Bytes      int64     `json:"storedBytes"`
	Open       bool      `json:"open"`
}

// Streams lists a function's stored streams, most recently written first.
func (s *Store) Streams(fn string) ([]StreamInfo, error) {
	if !ValidFunction(fn) {
		return nil, errors.New("invalid function name")
	}
	s.flushFunction(fn)
	segs, err := s.segments(fn)
	if err != nil {
		return nil, err
	}
	root := filepath.Join(s.opts.Dir, fn)
	by := map[string]*StreamInfo{}
	// A stream's oldest and newest segments (segments lists them in order).
	first, last := map[string]segment{}, map[string]segment{}
	for _, sg := range segs {
		rel, err := filepath.Rel(root, filepath.Dir(sg.path))
		if err != nil {
			continue
		}
		name := filepath.ToSlash(rel)
		si := by[name]
		if si == nil {
			si = &StreamInfo{Name: name}
			by[name] = si
			first[name] = sg
		}
		last[name] = sg
		si.Bytes += sg.size
		if sg.mod.After(si.LastWrite) {
			si.LastWrite = sg.mod
		}
		si.Open = si.Open || sg.active
	}
	out := make([]StreamInfo, 0, len(by))
	for name, si := range by {
		// The files' modification times stand in for the records' stamps
		// where those cannot be read; they can lag the stamps by a clock
		// tick.
		if n, ok := s.lastStamp(last[name]); ok {
			si.LastWrite = time.Unix(0, n)
		}
		si.FirstWrite = si.LastWrite
		if n, ok := s.firstStamp(first[name].path); ok {
			si.FirstWrite = time.Unix(0, n)
		}
		out = append(out, *si)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].LastWrite.After(out[j].LastWrite) })
	return out, nil
}

// firstStamp returns the time stamp (Unix nanoseconds) of the first
// record of the segment at path; false when it cannot be read.
func (s *Store) firstStamp(path string) (int64, bool) {
	s.mu.Lock()
	n, ok := s.firsts[path]
	s.mu.Unlock()
	if ok {
		return n, true
	}
	f, err := os.Open(path)
	if err != nil {
		return 0, false
	}
	defer f.Close()
	// A record starts with its stamp in decimal and a tab.
	var buf [24]byte
	m, _ := io.ReadFull(f, buf[:])
	stamp, _, found := bytes.Cut(buf[:m], []byte{'\t'})
	if !found {
		return 0, false
	}
	if n, err = strconv.ParseInt(string(stamp), 10, 64); err != nil || n <= 0 {
		return 0, false
	}
	s.mu.Lock()
	s.firsts[path] = n
	s.mu.Unlock()
	return n, true
}

// maxRecordBytes bounds how far back lastStamp looks for a record's start:
// a record holds a line of at most 256 KB and its header.
const maxRecordBytes = 512 << 10

// lastStamp returns the time stamp (Unix nanoseconds) of the last complete
// record of segment sg; false when it cannot be read. It is cached for the
// segment's size.
func (s *Store) lastStamp(sg segment) (int64, bool) {
	s.mu.Lock()
	c, ok := s.lasts[sg.path]
	s.mu.Unlock()
	if ok && c.size == sg.size {
		return c.nanos, true
	}
	f, err := os.Open(sg.path)
	if err != nil {
		return 0, false
	}
	defer f.Close()
	// Records end with a line break; one being written may lack it.
	// Find the last line break, then the one before it (or the file's
	// start): the record between them is the last complete one.
	ends, start := 0, int64(-1)
	var end int64 = -1
	buf := make([]byte, 4096)
	for off := sg.size; off > 0 && start < 0 && sg.size-off < maxRecordBytes; {
		n := min(off, int64(len(buf)))
		off -= n
		if _, err := f.ReadAt(buf[:n], off); err != nil {
			return 0, false
		}
		for i := n - 1; i >= 0; i-- {
			if buf[i] != '\n' {
				continue
			}
			if ends++; ends == 1 {
				end = off + i
			} else {
				start = off + i + 1
				break
			}
		}
		if off == 0 && end >= 0 && start < 0 {
			start = 0
		}
	}
	if start < 0 || end < start {
		return 0, false
	}
	hdr := make([]byte, min(24, end-start))
	if _, err := f.ReadAt(hdr, start); err != nil {
		return 0, false
	}
	stamp, _, found := bytes.Cut(hdr, []byte{'\t'})
	if !found {
		return 0, false
	}
	n, err := strconv.ParseInt(string(stamp), 10, 64)
	if err != nil || n <= 0 {
		return 0, false
	}
	s.mu.Lock()
	s.lasts[sg.path] = sizedStamp{sg.size, n}
	s.mu.Unlock()
	return n, true
}

// streamReader reads one stream's segments in order.
type streamReader struct {
	name  string
	paths []string
	f     *os.File
	sc    *bufio.Scanner
	cur   record
}

// next advances to the next well-formed record; false at the end.
func (r *streamReader) next() bool {
	for {
		if r.sc == nil {
			if len(r.paths) == 0 {
				return false
			}
			f, err := os.Open(r.paths[0])
			r.paths = r.paths[1:]
			if err != nil {
				continue // pruned meanwhile
			}
			r.f = f
			r.sc = bufio.NewScanner(f)
			r.sc.Buffer(make([]byte, 64<<10), maxLine+4096)
		}
		if r.sc.Scan() {
			rec, err := decodeRecord(r.sc.Bytes())
			if err != nil {
				continue
			}
			r.cur = rec
			return true
		}
		r.close()
	}
}

func (r *streamReader) close() {
	if r.f != nil {
		r.f.Close()
	}
	r.f, r.sc = nil, nil
}

// readers is a heap of stream readers ordered by their current record.
type readers []*streamReader

func (h readers) Len() int           { return len(h) }
func (h readers) Less(i, j int) bool { return h[i].cur.nanos < h[j].cur.nanos }
func (h readers) Swap(i, j int)      { h[i], h[j] = h[j], h[i] }
func (h *readers) Push(x any)        { *h = append(*h, x.(*streamReader)) }
func (h *readers) Pop() any {
	old := *h
	x := old[len(old)-1]
	*h = old[:len(old)-1]
	return x
}

// Query calls emit with the function's stored lines that q selects, oldest
// first, merging its streams by time. It stops at emit's first error and
// returns it.
func (s *Store) Query(ctx context.Context, fn string, q Query, emit func(Event) error) error {
	_, err := s.query(ctx, fn, q, emit)
	return err
}

// query is Query that also returns, per stream, the time of the last record
// read, for a follower to skip lines it already sent.
func (s *Store) query(ctx context.Context, fn string, q Query, emit func(Event) error) (map[string]int64, error) {
	if !ValidFunction(fn) {
		return nil, errors.New("invalid function name")
	}
	s.flushFunction(fn)
	root := filepath.Join(s.opts.Dir, fn)
	byStream := map[string][]string{}
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return nil
		}
		if _, ok := segmentNumber(d.Name()); !ok {
			return nil
		}
		if !q.Since.IsZero() {
			// A file's modification time comes from the kernel's coarse
			// clock (a tick, several milliseconds) and can be earlier than
			// the stamp of the last line written to it: only a segment
			// last written well before the window is skipped.
			if info, err := d.Info(); err != nil || info.ModTime().Before(q.Since.Add(-mtimeSlack)) {
				return nil // written to last before the window
			}
		}
		rel, err := filepath.Rel(root, filepath.Dir(path))
		if err != nil {
			return nil
		}
		name := filepath.ToSlash(rel)
		if q.Stream == "" || q.Stream == name {
			byStream[name] = append(byStream[name], path)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	var h readers
	for name, paths := range byStream {
		sort.Strings(paths)
		r := &streamReader{name: name, paths: paths}
		if r.next() {
			h = append(h, r)
		}
	}
	defer func() {
		for _, r := range h {
			r.close()
		}
	}()
	heap.Init(&h)
	seen := map[string]int64{}
	var ring []Event // the newest q.Limit events, when limited
	start := 0
	for n := 0; len(h) > 0; n++ {
		if n%1024 == 0 && ctx.Err() != nil {
			return seen, ctx.Err()
		}
		r := h[0]
		rec := r.cur
		seen[r.name] = rec.nanos
		if q.match(r.name, rec) {
			ev := newEvent(r.name, rec)
			switch {
			case q.Limit <= 0:
				if err := emit(ev); err != nil {
					return seen, err
				}
			case len(ring) < q.Limit:
				ring = append(ring, ev)
			default:
				ring[start] = ev
				start = (start + 1) % q.Limit
			}
		}
		if r.next() {
			heap.Fix(&h, 0)
		} else {
			r.close()
			heap.Pop(&h)
		}
	}
	for i := range ring {
		if err := emit(ring[(start+i)%len(ring)]); err != nil {
			return seen, err
		}
	}
	return seen, nil
}

// subscriber is one follower of a function's new lines.
type subscriber struct {
	ch   chan []Event
	lost atomic.Int64 // events not delivered because ch was full
}

func (s *Store) subscribe(fn string) *subscriber {
	sub := &subscriber{ch: make(chan []Event, 256)}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		close(sub.ch)
		return sub
	}
	if s.subs[fn] == nil {
		s.subs[fn] = map[*subscriber]struct{}{}
	}
	s.subs[fn][sub] = struct{}{}
	return sub
}

func (s *Store) unsubscribe(fn string, sub *subscriber) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if m := s.subs[fn]; m != nil {
		if _, ok := m[sub]; ok {
			delete(m, sub)
			close(sub.ch)
		}
		if len(m) == 0 {
			delete(s.subs, fn)
		}
	}
}

// publish hands records just written to the function's followers, never
// blocking: a follower that cannot keep up loses lines and is told so.
func (s *Store) publish(fn, stream string, batch []record) {
	s.mu.Lock()
	defer s.mu.Unlock()
	subs := s.subs[fn]
	if len(subs) == 0 {
		return
	}
	evs := make([]Event, len(batch))
	for i, r := range batch {
		evs[i] = newEvent(stream, r)
	}
	for sub := range subs {
		select {
		case sub.ch <- evs:
		default:
			sub.lost.Add(int64(len(evs)))
		}
	}
}

// CloseFollowers ends every Follow call, now and later; for server
// shutdown, so that open tails do not hold it up.
func (s *Store) CloseFollowers() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.closed = true
	for fn, m := range s.subs {
		for sub := range m {
			close(sub.ch)
		}
		delete(s.subs, fn)
	}
}

// Follow is Query followed by every new line that q selects (its Until
// and Limit apply to the history only), until ctx ends or the store's
// followers are closed; emit gets a batch at a time. A follower that falls
// behind gets a "notice" event counting the lines it missed.
func (s *Store) Follow(ctx context.Context, fn string, q Query, emit func([]Event) error) error {
	sub := s.subscribe(fn)
	defer s.unsubscribe(fn, sub)
	var hist []Event
	seen, err := s.query(ctx, fn, q, func(e Event) error {
		hist = append(hist, e)
		if len(hist) >= 512 {
			err := emit(hist)
			hist = hist[:0]
			return err
		}
		return nil
	})
	if err != nil {
		return err
	}
	if len(hist) > 0 {
		if err := emit(hist); err != nil {
			return err
		}
	}
	live := q
	live.Since, live.Until = time.Time{}, time.Time{}
	for {
		select {
		case <-ctx.Done():
			return nil
		case evs, ok := <-sub.ch:
			if !ok {
				return nil
			}
			var out []Event
			if n := sub.lost.Swap(0); n > 0 {
				out = append(out, Event{Time: time.Now().UTC(), Type: "notice",
					Message: "kappa: this follower fell behind and missed " + strconv.FormatInt(n, 10) + " lines"})
			}
			for _, e := range evs {
				if e.nanos <= seen[e.Stream] {
					continue // already sent from the history
				}
				if live.match(e.Stream, record{nanos: e.nanos, request: e.RequestID, msg: []byte(e.Message)}) {
					out = append(out, e)
				}
			}
			if len(out) > 0 {
				if err := emit(out); err != nil {
					return err
				}
			}
		}
	}
}
