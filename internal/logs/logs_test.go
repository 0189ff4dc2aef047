package logs

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/kappa-run/kappa/internal/leakcheck"
)

// TestMain fails the package when goroutines outlive the tests.
func TestMain(m *testing.M) { os.Exit(leakcheck.Run(m)) }

func openStore(t *testing.T, opts Options) *Store {
	t.Helper()
	if opts.Dir == "" {
		opts.Dir = t.TempDir()
	}
	if opts.PruneInterval == 0 {
		opts.PruneInterval = -1
	}
	st, err := Open(opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return st
}

func openStream(t *testing.T, st *Store, fn, name string) *Stream {
	t.Helper()
	s, err := st.Stream(fn, name)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func all(t *testing.T, st *Store, fn string, q Query) []Event {
	t.Helper()
	var out []Event
	if err := st.Query(context.Background(), fn, q, func(e Event) error {
		out = append(out, e)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	return out
}

func messages(evs []Event) []string {
	var out []string
	for _, e := range evs {
		out = append(out, e.Message)
	}
	return out
}

// invocation writes the platform lines of one invocation around body.
func invocation(c *Capture, id string, body func()) []byte {
	c.Begin()
	c.Line([]byte("START RequestId: " + id + " Version: $LATEST"))
	body()
	c.Line([]byte("END RequestId: " + id))
	c.Line([]byte("REPORT RequestId: " + id + "\tDuration: 1.50 ms\tBilled Duration: 2 ms\tMemory Size: 128 MB\tMax Memory Used: 20 MB\t"))
	return c.End()
}

func TestCaptureTailStreamAndAttribution(t *testing.T) {
	st := openStore(t, Options{})
	stream := openStream(t, st, "fn", "2026/01/02/[$LATEST]abc")
	c := NewCapture(stream, Format{}, nil)
	out, errw := c.Writer(), c.Writer()
	out.Write([]byte("init line\n"))
	tail := string(invocation(c, "req-1", func() {
		out.Write([]byte("part"))
		errw.Write([]byte("stderr line\r\n"))
		out.Write([]byte("ial\n"))
	}))
	want := "START RequestId: req-1 Version: $LATEST\nstderr line\npartial\nEND RequestId: req-1\n"
	if !strings.HasPrefix(tail, want) || !strings.Contains(tail, "REPORT RequestId: req-1\t") {
		t.Errorf("tail = %q", tail)
	}
	big := strings.Repeat("x", 300) + "\n"
	tail2 := invocation(c, "req-2", func() {
		for range 100 {
			out.Write([]byte(big))
		}
	})
	if len(tail2) != TailBytes {
		t.Errorf("tail of a long invocation is %d bytes, want %d", len(tail2), TailBytes)
	}
	stream.Close()

	evs := all(t, st, "fn", Query{})
	if len(evs) != 1+5+103 {
		t.Fatalf("stored %d lines, want %d: %q", len(evs), 1+5+103, messages(evs)[:8])
	}
	if evs[0].Message != "init line" || evs[0].RequestID != "" || evs[0].Type != "function" {
		t.Errorf("init line = %+v, want unattributed function output", evs[0])
	}
	for _, e := range evs[1:6] {
		if e.RequestID != "req-1" || e.Stream != "2026/01/02/[$LATEST]abc" {
			t.Errorf("line %q attributed to %q in stream %q, want req-1", e.Message, e.RequestID, e.Stream)
		}
	}
	if evs[1].Type != "platform" || evs[2].Type != "function" {
		t.Errorf("types = %s, %s; want platform then function", evs[1].Type, evs[2].Type)
	}
	if got := all(t, st, "fn", Query{RequestID: "req-2"}); len(got) != 103 {
		t.Errorf("request filter found %d lines, want 103", len(got))
	}
	// Output after REPORT (late through the pipe) stays with the request
	// until the next START.
	c2 := NewCapture(openStream(t, st, "late", "s"), Format{}, nil)
	invocation(c2, "req-3", func() {})
	c2.Writer().Write([]byte("late line\n"))
	if got := all(t, st, "late", Query{RequestID: "req-3", Filter: "late line"}); len(got) != 1 {
		t.Errorf("a line after REPORT is not attributed to its request: %+v", all(t, st, "late", Query{}))
	}
	if _, err := os.Stat(filepath.Join(st.opts.Dir, "fn", "2026", "01", "02", "[$LATEST]abc", segmentName(1))); err != nil {
		t.Errorf("stream file not where the stream name says: %v", err)
	}
}

func TestLongLineIsSplit(t *testing.T) {
	c := NewCapture(nil, Format{}, nil)
	c.Begin()
	c.Writer().Write([]byte(strings.Repeat("y", maxLine+10)))
	if tail := c.End(); len(tail) == 0 {
		t.Errorf("an over-long line without newline was not emitted")
	}
	c.Begin()
	c.Writer().Write([]byte(strings.Repeat("z", 2*maxLine+10) + "\nnext\n"))
	tail := string(c.End())
	if !strings.HasSuffix(tail, "z\nnext\n") {
		t.Errorf("tail ends %q", tail[len(tail)-20:])
	}
}

func TestFormats(t *testing.T) {
	appJSON := func(level string) string {
		return `{"timestamp":"2026-01-02T00:00:00Z","level":"` + level + `","message":"m-` + level + `","requestId":"r"}`
	}
	tests := []struct {
		name   string
		format Format
		lines  []string // function output
		want   []string // prefixes of stored lines, in order (platform lines by type)
	}{
		{
			name:   "text keeps everything as written",
			format: ParseFormat("Text", "", ""),
			lines:  []string{"plain", appJSON("DEBUG")},
			want:   []string{"START RequestId: r1", "plain", appJSON("DEBUG"), "END RequestId: r1", "REPORT RequestId: r1"},
		},
		{
			name:   "json renders platform records and filters below INFO",
			format: ParseFormat("JSON", "", ""),
			lines:  []string{"plain", appJSON("DEBUG"), appJSON("info"), appJSON("ERROR")},
			want: []string{`platform.start`, "plain", appJSON("info"), appJSON("ERROR"),
				`platform.runtimeDone`, `platform.report`},
		},
		{
			name:   "json application WARN drops INFO, plain text and unknown levels",
			format: ParseFormat("JSON", "WARN", "INFO"),
			lines:  []string{"plain", appJSON("INFO"), appJSON("WARNING"), appJSON("bogus"), appJSON("FATAL"), `{"msg":"no level"}`},
			want:   []string{`platform.start`, appJSON("WARNING"), appJSON("FATAL"), `platform.runtimeDone`, `platform.report`},
		},
		{
			name:   "json application TRACE keeps all; system WARN drops START/END/REPORT",
			format: ParseFormat("JSON", "TRACE", "WARN"),
			lines:  []string{appJSON("TRACE"), "plain"},
			want:   []string{appJSON("TRACE"), "plain"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			st := openStore(t, Options{})
			stream := openStream(t, st, "fn", "s")
			c := NewCapture(stream, tt.format, nil)
			w := c.Writer()
			invocation(c, "r1", func() {
				for _, l := range tt.lines {
					w.Write([]byte(l + "\n"))
				}
			})
			stream.Close()
			got := messages(all(t, st, "fn", Query{}))
			if len(got) != len(tt.want) {
				t.Fatalf("stored %q\nwant %q", got, tt.want)
			}
			for i := range got {
				if !strings.Contains(got[i], tt.want[i]) {
					t.Errorf("line %d = %q, want it to contain %q", i, got[i], tt.want[i])
				}
				if tt.format.JSON && strings.HasPrefix(got[i], "{") && !json.Valid([]byte(got[i])) {
					t.Errorf("line %d is not JSON: %q", i, got[i])
				}
			}
		})
	}
}

func TestJSONPlatformRecords(t *testing.T) {
	st := openStore(t, Options{})
	stream := openStream(t, st, "fn", "s")
	c := NewCapture(stream, ParseFormat("JSON", "", ""), nil)
	c.Begin()
	c.Line([]byte("START RequestId: r1 Version: 7"))
	c.Line([]byte("2026-01-02T00:00:03.000Z r1 Task timed out after 3.00 seconds"))
	c.Line([]byte("END RequestId: r1"))
	c.Line([]byte("REPORT RequestId: r1\tDuration: 3000.12 ms\tBilled Duration: 3001 ms\tMemory Size: 256 MB\tMax Memory Used: 30 MB\tInit Duration: 120.50 ms\t"))
	c.End()
	stream.Close()
	evs := all(t, st, "fn", Query{})
	var recs []telemetry
	for _, e := range evs {
		var r struct {
			telemetry
			Record map[string]any `json:"record"`
		}
		if err := json.Unmarshal([]byte(e.Message), &r); err != nil {
			t.Fatalf("%q: %v", e.Message, err)
		}
		r.telemetry.Record = r.Record
		recs = append(recs, r.telemetry)
	}
	types := []string{"platform.start", "platform.timeout", "platform.runtimeDone", "platform.report"}
	if len(recs) != len(types) {
		t.Fatalf("records %+v", recs)
	}
	for i, typ := range types {
		if recs[i].Type != typ {
			t.Errorf("record %d type %q, want %q", i, recs[i].Type, typ)
		}
	}
	start := recs[0].Record.(map[string]any)
	if start["requestId"] != "r1" || start["version"] != "7" {
		t.Errorf("platform.start record = %v", start)
	}
	rep := recs[3].Record.(map[string]any)
	m := rep["metrics"].(map[string]any)
	if rep["status"] != "timeout" || m["durationMs"] != 3000.12 || m["billedDurationMs"] != 3001.0 ||
		m["memorySizeMB"] != 256.0 || m["maxMemoryUsedMB"] != 30.0 || m["initDurationMs"] != 120.5 {
		t.Errorf("platform.report record = %v", rep)
	}
}

func TestRateLimitDropsWithRecord(t *testing.T) {
	now := time.Unix(1_700_000_000, 0)
	var mu sync.Mutex
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	for _, f := range []Format{{}, ParseFormat("JSON", "", "")} {
		st := openStore(t, Options{RateLimit: 100 << 10, Burst: 300 << 10, Now: clock})
		stream := openStream(t, st, "chatty", "s")
		c := NewCapture(stream, f, clock)
		w := c.Writer()
		line := strings.Repeat("c", 1023) + "\n"
		invocation(c, "r1", func() {
			for range 10_000 { // 10 MB at one instant: far beyond the burst
				w.Write([]byte(line))
			}
		})
		stream.Close()
		evs := all(t, st, "chatty", Query{})
		kept := 0
		var dropped []Event
		for _, e := range evs {
			switch {
			case e.Type == "function":
				kept++
			case strings.Contains(e.Message, "logsDropped"):
				dropped = append(dropped, e)
			}
		}
		if kept < 250 || kept > 310 {
			t.Errorf("%+v: kept %d lines of 10,000; the burst holds about 290", f, kept)
		}
		if len(dropped) != 1 {
			t.Fatalf("%+v: %d logsDropped records, want 1 before END", f, len(dropped))
		}
		msg := dropped[0].Message
		if want := fmt.Sprint(10_000 - kept); !strings.Contains(msg, want) || dropped[0].RequestID != "r1" {
			t.Errorf("logsDropped record %q (request %q) does not count %s dropped lines of r1", msg, dropped[0].RequestID, want)
		}
		last := messages(evs[len(evs)-3:])
		if !strings.Contains(last[0], "logsDropped") {
			t.Errorf("logsDropped is not reported right before END: %q", last)
		}
	}
}

// TestBacklogIsBounded holds the writer back and checks that the queue
// stays within its bound, excess is dropped, and the drop is reported once
// the writer catches up.
func TestBacklogIsBounded(t *testing.T) {
	st := openStore(t, Options{QueueBytes: 64 << 10})
	// A stream whose writer is not running yet: the disk "stalls".
	s := &Stream{store: st, function: "fn", name: "s", dir: filepath.Join(st.opts.Dir, "fn", "s"),
		wake: make(chan struct{}, 1), stopped: make(chan struct{})}
	os.MkdirAll(s.dir, 0o750)
	st.streams[s] = s.dir
	c := NewCapture(s, Format{}, nil)
	c.Begin()
	c.Line([]byte("START RequestId: r1 Version: $LATEST"))
	line := []byte(strings.Repeat("b", 999) + "\n")
	for range 1000 {
		c.Writer().Write(line)
	}
	if s.queued > st.opts.QueueBytes+platformSlack {
		t.Errorf("queue holds %d bytes, bound %d", s.queued, st.opts.QueueBytes+platformSlack)
	}
	if c.droppedRecords < 900 {
		t.Errorf("dropped %d lines, want most of 1000", c.droppedRecords)
	}
	go s.run()
	s.Flush()
	c.Line([]byte("END RequestId: r1"))
	c.End()
	s.Close()
	evs := all(t, st, "fn", Query{Filter: "logsDropped"})
	if len(evs) != 1 || !strings.Contains(evs[0].Message, "could be stored") {
		t.Errorf("logsDropped records %q", messages(evs))
	}
}

// TestTotalBacklogIsBounded checks the bound over all streams together.
func TestTotalBacklogIsBounded(t *testing.T) {
	st := openStore(t, Options{QueueBytes: 1 << 20, TotalQueueBytes: 256 << 10})
	var streams []*Stream
	for i := range 4 {
		s := &Stream{store: st, function: "fn", name: fmt.Sprint(i), dir: filepath.Join(st.opts.Dir, "fn", fmt.Sprint(i)),
			wake: make(chan struct{}, 1), stopped: make(chan struct{})}
		os.MkdirAll(s.dir, 0o750)
		st.streams[s] = s.dir
		streams = append(streams, s)
		c := NewCapture(s, Format{}, nil)
		for range 200 {
			c.Writer().Write([]byte(strings.Repeat("q", 999) + "\n"))
		}
	}
	if q := st.queued.Load(); q > st.opts.TotalQueueBytes+platformSlack {
		t.Errorf("streams together queue %d bytes, bound %d", q, st.opts.TotalQueueBytes)
	}
	for _, s := range streams {
		go s.run()
		s.Close()
	}
	if q := st.queued.Load(); q != 0 {
		t.Errorf("%d bytes still counted as queued after every stream closed", q)
	}
}

// TestChattyNeighbourDoesNotBlock writes 10 MB as fast as possible into one
// stream while another environment logs: the quiet one's writes never wait
// for the chatty one.
func TestChattyNeighbourDoesNotBlock(t *testing.T) {
	st := openStore(t, Options{RateLimit: 1 << 20})
	chatty := NewCapture(openStream(t, st, "chatty", "s"), Format{}, nil)
	quiet := NewCapture(openStream(t, st, "quiet", "s"), Format{}, nil)
	done := make(chan struct{})
	go func() {
		defer close(done)
		w := chatty.Writer()
		line := []byte(strings.Repeat("c", 4095) + "\n")
		for range 2560 {
			w.Write(line)
		}
	}()
	var worst time.Duration
	for i := 0; i < 200; i++ {
		t0 := time.Now()
		quiet.Line([]byte(fmt.Sprintf("START RequestId: q%d Version: $LATEST", i)))
		worst = max(worst, time.Since(t0))
	}
	<-done
	// Line never waits for the chatty stream; if it did, it would wait
	// out the 1 MB/s limit over the chatty 10 MB: seconds, not the
	// scheduling hiccups of a loaded machine this bound allows.
	if worst > time.Second {
		t.Errorf("a quiet environment's line took %v next to a chatty one", worst)
	}
}

func TestInvalidNames(t *testing.T) {
	st := openStore(t, Options{})
	for _, tt := range []struct{ fn, stream string }{
		{"../x", "s"}, {"fn", "../../etc"}, {"fn", ""}, {"fn", "a//b"}, {"", "s"}, {"f/n", "s"},
	} {
		if s, err := st.Stream(tt.fn, tt.stream); err == nil {
			s.Close()
			t.Errorf("Stream(%q, %q) accepted", tt.fn, tt.stream)
		}
	}
}

func TestParseTime(t *testing.T) {
	now := time.Date(2026, 1, 2, 12, 0, 0, 0, time.UTC)
	tests := []struct {
		name, in string
		want     time.Time
		err      bool
	}{
		{"empty", "", time.Time{}, false},
		{"duration", "10m", now.Add(-10 * time.Minute), false},
		{"days", "2d", now.Add(-48 * time.Hour), false},
		{"rfc3339", "2026-01-01T00:00:00Z", time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC), false},
		{"millis", "1767225600000", time.UnixMilli(1767225600000), false},
		{"garbage", "yesterday", time.Time{}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseTime(tt.in, now)
			if (err != nil) != tt.err || !got.Equal(tt.want) {
				t.Errorf("ParseTime(%q) = %v, %v", tt.in, got, err)
			}
		})
	}
}

func FuzzCaptureWriter(f *testing.F) {
	f.Add([]byte("a\nb\r\n{\"level\":\"debug\"}\n"), true)
	f.Add([]byte(strings.Repeat("x", 1000)), false)
	f.Fuzz(func(t *testing.T, data []byte, json bool) {
		st := openStore(t, Options{})
		s := openStream(t, st, "fn", "s")
		format := Format{}
		if json {
			format = ParseFormat("JSON", "DEBUG", "")
		}
		c := NewCapture(s, format, nil)
		c.Begin()
		c.Writer().Write(data)
		c.Writer().Write([]byte("\n"))
		c.End()
		s.Close()
		for _, e := range all(t, st, "fn", Query{}) {
			if strings.Contains(e.Message, "\n") {
				t.Fatalf("stored message holds a newline: %q", e.Message)
			}
		}
	})
}

func FuzzDecodeRecord(f *testing.F) {
	f.Add([]byte("1700000000000000000\tf\treq\tmessage"))
	f.Add([]byte("1\tp\t-\t"))
	f.Fuzz(func(t *testing.T, line []byte) {
		r, err := decodeRecord(line)
		if err != nil {
			return
		}
		if r.request == "-" {
			t.Fatalf("request id - not mapped to none")
		}
	})
}

// TestSinceTheLastLine: a query from the exact stamp of a segment's last
// line finds it, although the file's modification time (the kernel's
// coarse clock) may be earlier than that stamp.
func TestSinceTheLastLine(t *testing.T) {
	st := openStore(t, Options{})
	s := openStream(t, st, "f", "2026/11/27/[$LATEST]0123")
	for _, l := range []string{"first", "last"} {
		s.WriteLine([]byte(l))
	}
	evs := all(t, st, "f", Query{})
	if len(evs) != 2 {
		t.Fatalf("%d lines, want 2", len(evs))
	}
	if got := messages(all(t, st, "f", Query{Since: evs[1].Time})); len(got) != 1 || got[0] != "last" {
		t.Errorf("since the last line's stamp: %v, want [last]", got)
	}
}
