package logs

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

func TestQueryMergeSinceLimitFilter(t *testing.T) {
	now := time.Unix(1_700_000_000, 0)
	var mu sync.Mutex
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	advance := func(d time.Duration) { mu.Lock(); now = now.Add(d); mu.Unlock() }
	st := openStore(t, Options{Now: clock})
	a := NewCapture(openStream(t, st, "fn", "2026/01/01/[$LATEST]a"), Format{}, clock)
	b := NewCapture(openStream(t, st, "fn", "2026/01/01/[1]b"), Format{}, clock)
	for i := range 10 {
		c := a
		if i%2 == 1 {
			c = b
		}
		c.Writer().Write(fmt.Appendf(nil, "line %d\n", i))
		advance(time.Minute)
	}
	evs := all(t, st, "fn", Query{})
	for i, e := range evs {
		if e.Message != fmt.Sprintf("line %d", i) {
			t.Fatalf("merged order: %q", messages(evs))
		}
	}
	tests := []struct {
		name string
		q    Query
		want []string
	}{
		{"since", Query{Since: clock().Add(-3 * time.Minute)}, []string{"line 7", "line 8", "line 9"}},
		{"until", Query{Until: time.Unix(1_700_000_000, 0).Add(time.Minute)}, []string{"line 0", "line 1"}},
		{"limit keeps the newest", Query{Limit: 2}, []string{"line 8", "line 9"}},
		{"filter", Query{Filter: "line 5"}, []string{"line 5"}},
		{"stream", Query{Stream: "2026/01/01/[1]b", Limit: 2}, []string{"line 7", "line 9"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := messages(all(t, st, "fn", tt.q))
			if strings.Join(got, ",") != strings.Join(tt.want, ",") {
				t.Errorf("got %q, want %q", got, tt.want)
			}
		})
	}
	infos, err := st.Streams("fn")
	if err != nil || len(infos) != 2 || infos[0].Bytes == 0 {
		t.Errorf("Streams = %+v, %v", infos, err)
	}
}

func TestFollow(t *testing.T) {
	st := openStore(t, Options{})
	stream := openStream(t, st, "fn", "s")
	c := NewCapture(stream, Format{}, nil)
	w := c.Writer()
	w.Write([]byte("old 1\nold 2\n"))
	ctx, cancel := context.WithCancel(context.Background())
	got := make(chan Event, 100)
	done := make(chan error, 1)
	go func() {
		done <- st.Follow(ctx, "fn", Query{Filter: "o"}, func(evs []Event) error {
			for _, e := range evs {
				got <- e
			}
			return nil
		})
	}()
	recv := func() string {
		select {
		case e := <-got:
			return e.Message
		case <-time.After(5 * time.Second):
			t.Fatal("follower got nothing in 5s")
			return ""
		}
	}
	if a, b := recv(), recv(); a != "old 1" || b != "old 2" {
		t.Errorf("history = %q, %q", a, b)
	}
	w.Write([]byte("new 1\nskipped\nnew 2 o\n"))
	if a := recv(); a != "new 2 o" {
		t.Errorf("live line = %q, want the one matching the filter", a)
	}
	select {
	case e := <-got:
		t.Errorf("unexpected extra line %q", e.Message)
	case <-time.After(50 * time.Millisecond):
	}
	cancel()
	if err := <-done; err != nil {
		t.Errorf("Follow returned %v", err)
	}
	// Closing followers ends a Follow promptly (server shutdown).
	done2 := make(chan error, 1)
	go func() { done2 <- st.Follow(context.Background(), "fn", Query{}, func([]Event) error { return nil }) }()
	time.Sleep(20 * time.Millisecond)
	st.CloseFollowers()
	select {
	case <-done2:
	case <-time.After(5 * time.Second):
		t.Fatal("Follow did not end when followers were closed")
	}
}

func TestRetention(t *testing.T) {
	now := time.Unix(1_700_000_000, 0)
	clock := func() time.Time { return now }
	st := openStore(t, Options{Now: clock, MaxAge: time.Hour, MaxBytes: 300 << 10, SegmentBytes: 64 << 10})
	write := func(fn, stream string, n int) {
		s := openStream(t, st, fn, stream)
		c := NewCapture(s, Format{}, clock)
		line := []byte(strings.Repeat("r", 1000) + "\n")
		for range n {
			c.Writer().Write(line)
		}
		s.Close()
	}
	write("old", "a", 10)
	write("big", "b", 1000) // ~1 MB in ~16 segments
	write("small", "c", 10)
	// Age "old"'s segments past MaxAge.
	filepath.WalkDir(filepath.Join(st.opts.Dir, "old"), func(p string, d os.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			os.Chtimes(p, now.Add(-2*time.Hour), now.Add(-2*time.Hour))
		}
		return nil
	})
	if err := st.Prune(); err != nil {
		t.Fatal(err)
	}
	if evs := all(t, st, "old", Query{}); len(evs) != 0 {
		t.Errorf("%d lines older than MaxAge survived", len(evs))
	}
	if _, err := os.Stat(filepath.Join(st.opts.Dir, "old")); !os.IsNotExist(err) {
		t.Errorf("empty directories of a pruned function remain: %v", err)
	}
	var size int64
	segs, _ := st.segments("big")
	for _, s := range segs {
		size += s.size
	}
	if size > 300<<10 || size < 200<<10 {
		t.Errorf("big function keeps %d bytes, limit %d", size, 300<<10)
	}
	evs := all(t, st, "big", Query{})
	if len(evs) == 0 || len(evs) >= 1000 {
		t.Errorf("big function kept %d of 1000 lines", len(evs))
	}
	if evs := all(t, st, "small", Query{}); len(evs) != 10 {
		t.Errorf("a chatty function's limit evicted another's lines: %d left of 10", len(evs))
	}
}

func TestSurvivesReopen(t *testing.T) {
	dir := t.TempDir()
	st := openStore(t, Options{Dir: dir})
	s := openStream(t, st, "fn", "2026/01/01/[$LATEST]x")
	c := NewCapture(s, Format{}, nil)
	invocation(c, "r1", func() { c.Writer().Write([]byte("before restart\n")) })
	s.Close()
	st.Close()

	st2 := openStore(t, Options{Dir: dir})
	evs := all(t, st2, "fn", Query{RequestID: "r1", Filter: "restart"})
	if len(evs) != 1 || evs[0].Stream != "2026/01/01/[$LATEST]x" {
		t.Fatalf("after reopening: %+v", evs)
	}
	// Reopening the same stream appends a new segment.
	s2 := openStream(t, st2, "fn", "2026/01/01/[$LATEST]x")
	s2.WriteLine([]byte("after"))
	s2.Close()
	if got := messages(all(t, st2, "fn", Query{})); got[len(got)-1] != "after" {
		t.Errorf("lines = %q", got)
	}
}

// TestWritesGathered checks that a stream's lines wait for WriteDelay
// before its writer writes them, and that queries, listings and a queue
// past a quarter of its bound do not wait.
func TestWritesGathered(t *testing.T) {
	st := openStore(t, Options{WriteDelay: time.Hour, QueueBytes: 64 << 10})
	s := openStream(t, st, "fn", "a")
	c := NewCapture(s, Format{}, nil)
	invocation(c, "r1", func() { c.Writer().Write([]byte("hello\n")) })
	s.mu.Lock()
	written, armed := s.written, s.armed
	s.mu.Unlock()
	if written != 0 || !armed {
		t.Fatalf("after one invocation: %d records written, delay armed %v; want 0 and true", written, armed)
	}

	// A query writes what is queued first; so does a listing.
	if got := messages(all(t, st, "fn", Query{})); len(got) != 4 || got[1] != "hello" {
		t.Errorf("query = %q, want the invocation's 4 lines", got)
	}
	b := openStream(t, st, "fn", "b")
	b.WriteLine([]byte("first line of b"))
	infos, err := st.Streams("fn")
	if err != nil {
		t.Fatal(err)
	}
	if len(infos) != 2 {
		t.Errorf("streams = %+v, want a and b", infos)
	}
	// The function list too: a function's directory is made by the
	// writer of its first stream.
	other := openStream(t, st, "other", "s")
	other.WriteLine([]byte("first line of other"))
	if fns, err := st.Functions(); err != nil || !slices.Contains(fns, "other") {
		t.Errorf("Functions() = %q, %v; want it to hold other", fns, err)
	}

	// A queue past a quarter of its bound does not wait for the delay.
	full := openStream(t, st, "fn", "full")
	line := []byte(strings.Repeat("x", 1000))
	for range 20 {
		full.WriteLine(line)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		full.mu.Lock()
		n := full.written
		full.mu.Unlock()
		if n > 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("a queue of 20 KB (bound 64 KiB) was not written within 10s")
		}
		time.Sleep(time.Millisecond)
	}
}

// TestStreamFirstWrite checks that Streams reports when a stream's first
// stored line was written, and that it follows retention: once the oldest
// segment is gone, the first line of the next one.
func TestStreamFirstWrite(t *testing.T) {
	clock := time.Date(2026, 11, 27, 10, 0, 0, 0, time.UTC)
	st := openStore(t, Options{SegmentBytes: 150, WriteDelay: -1, Now: func() time.Time { return clock }})
	s := openStream(t, st, "fn", "s")
	first := clock
	for i := range 6 {
		s.WriteLine([]byte(fmt.Sprintf("line %d %s", i, strings.Repeat("x", 60))))
		s.Flush()
		clock = clock.Add(time.Second)
	}
	infos, err := st.Streams("fn")
	if err != nil {
		t.Fatal(err)
	}
	last := clock.Add(-time.Second) // the sixth line's
	if len(infos) != 1 || !infos[0].FirstWrite.Equal(first) || !infos[0].LastWrite.Equal(last) {
		t.Fatalf("streams = %+v, want one first written at %v, last at %v (the lines' stamps, not the files')", infos, first, last)
	}
	segs, err := filepath.Glob(filepath.Join(st.opts.Dir, "fn", "s", "*.log"))
	if err != nil || len(segs) < 3 {
		t.Fatalf("segments %v (%v), want several", segs, err)
	}
	if err := os.Remove(segs[0]); err != nil {
		t.Fatal(err)
	}
	infos, err = st.Streams("fn")
	if err != nil {
		t.Fatal(err)
	}
	evs := all(t, st, "fn", Query{})
	if len(infos) != 1 || len(evs) == 0 || !infos[0].FirstWrite.Equal(evs[0].Time) || !infos[0].FirstWrite.After(first) {
		t.Errorf("after the oldest segment went: first write %v, want the first remaining line's %v", infos[0].FirstWrite, evs)
	}

	// A record being written (no line break yet) does not count.
	newest := segs[len(segs)-1]
	f, err := os.OpenFile(newest, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteString("99999999999999999\tf\t-\tpartial"); err != nil {
		t.Fatal(err)
	}
	f.Close()
	if infos, err = st.Streams("fn"); err != nil || len(infos) != 1 || !infos[0].LastWrite.Equal(last) {
		t.Errorf("with a partial record at the end: %+v, %v; want the last write at %v", infos, err, last)
	}
}
