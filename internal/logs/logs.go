package logs

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"
)

// TailBytes is how much of an invocation's log X-Amz-Log-Result carries.
const TailBytes = 4096

// maxLine caps one stored line; longer lines are split.
const maxLine = 256 * 1024

// Store appends log lines to files under a directory, one file per log
// stream: <dir>/<function>/<stream>.log. Safe for concurrent use.
type Store struct {
	dir string
	log *slog.Logger
}

// NewStore returns a Store writing under dir.
func NewStore(dir string, logger *slog.Logger) (*Store, error) {
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return nil, fmt.Errorf("log dir: %w", err)
	}
	return &Store{dir: dir, log: logger}, nil
}

// Stream opens the named stream of a function for appending. The stream
// name follows Lambda's "YYYY/MM/DD/[$LATEST]<hex>"; slashes and brackets
// are flattened in the file name.
func (s *Store) Stream(function, stream string) (*Stream, error) {
	dir := filepath.Join(s.dir, function)
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return nil, err
	}
	name := strings.NewReplacer("/", "-", "[", "", "]", "-", "$", "").Replace(stream) + ".log"
	f, err := os.OpenFile(filepath.Join(dir, name), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o640)
	if err != nil {
		return nil, err
	}
	return &Stream{f: f, w: bufio.NewWriterSize(f, 32<<10)}, nil
}

// flushDelay bounds how long a written line may sit in a stream's buffer.
const flushDelay = 200 * time.Millisecond

// Stream is one open log stream. Lines are buffered and reach the file
// within flushDelay, or when the stream is closed.
type Stream struct {
	mu      sync.Mutex
	f       *os.File
	w       *bufio.Writer
	pending *time.Timer
}

// WriteLine appends one line (a newline is added).
func (s *Stream) WriteLine(line []byte) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.f == nil {
		return
	}
	s.w.Write(line)
	s.w.WriteByte('\n')
	if s.pending == nil {
		s.pending = time.AfterFunc(flushDelay, s.flush)
	}
}

func (s *Stream) flush() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.pending = nil
	if s.f != nil {
		s.w.Flush()
	}
}

// Close flushes and closes the stream file.
func (s *Stream) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.f == nil {
		return nil
	}
	if s.pending != nil {
		s.pending.Stop()
		s.pending = nil
	}
	ferr := s.w.Flush()
	err := s.f.Close()
	s.f = nil
	if err == nil {
		err = ferr
	}
	return err
}

// Capture is the io.Writer an environment's stdout and stderr write to. It
// splits the output into lines, appends them to the stream and to the
// current invocation's tail. Safe for concurrent use.
type Capture struct {
	mu     sync.Mutex
	stream *Stream
	tail   *bytes.Buffer // nil when no invocation runs
	last   time.Time
	now    func() time.Time
}

// NewCapture returns a Capture appending to stream (which may be nil).
func NewCapture(stream *Stream, now func() time.Time) *Capture {
	if now == nil {
		now = time.Now
	}
	return &Capture{stream: stream, now: now}
}

// Writer returns a writer for one output (stdout or stderr); lines of the
// two are kept apart until complete.
func (c *Capture) Writer() io.Writer { return &lineWriter{c: c} }

type lineWriter struct {
	c   *Capture
	buf []byte
}

func (w *lineWriter) Write(p []byte) (int, error) {
	n := len(p)
	w.buf = append(w.buf, p...)
	for {
		i := bytes.IndexByte(w.buf, '\n')
		if i < 0 {
			if len(w.buf) >= maxLine {
				w.c.Line(w.buf[:maxLine])
				w.buf = append(w.buf[:0], w.buf[maxLine:]...)
				continue
			}
			break
		}
		w.c.Line(w.buf[:i])
		w.buf = w.buf[i+1:]
	}
	if len(w.buf) == 0 {
		w.buf = nil
	}
	return n, nil
}

// Line records one complete line (without its newline).
func (c *Capture) Line(line []byte) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.last = c.now()
	if c.tail != nil {
		c.tail.Write(line)
		c.tail.WriteByte('\n')
		if c.tail.Len() > 4*TailBytes {
			b := c.tail.Bytes()
			keep := append([]byte(nil), b[len(b)-TailBytes:]...)
			c.tail.Reset()
			c.tail.Write(keep)
		}
	}
	if c.stream != nil {
		c.stream.WriteLine(line)
	}
}

// Begin starts collecting a tail for a new invocation.
func (c *Capture) Begin() {
	c.mu.Lock()
	c.tail = &bytes.Buffer{}
	c.mu.Unlock()
}

// End stops collecting and returns the last TailBytes of the invocation's
// lines.
func (c *Capture) End() []byte {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.tail == nil {
		return nil
	}
	b := c.tail.Bytes()
	c.tail = nil
	if len(b) > TailBytes {
		b = b[len(b)-TailBytes:]
	}
	return b
}

// LastWrite is when the last line arrived.
func (c *Capture) LastWrite() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.last
}
