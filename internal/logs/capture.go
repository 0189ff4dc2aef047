package logs

import (
	"bytes"
	"io"
	"sync"
	"time"
)

// TailBytes is how much of an invocation's log X-Amz-Log-Result carries.
const TailBytes = 4096

// maxLine caps one stored line; longer lines are split (CloudWatch Logs
// caps an event at 256 KB).
const maxLine = 256 * 1024

// Capture is one execution environment's log: the io.Writers its stdout
// and stderr write to, and Line for the platform's own lines. It splits
// output into lines, attributes each to the invocation running at the time
// (the request id of the last START line; output between invocations, such
// as lines that reach Kappa after the runtime answered, stays with the
// previous one; init output before the first START has none), applies the
// Format, keeps a per-invocation tail for X-Amz-Log-Result and hands the
// lines to the environment's Stream. It never blocks on storage: lines the
// Stream refuses are counted and reported by a logsDropped record. Safe for
// concurrent use.
type Capture struct {
	mu      sync.Mutex
	stream  *Stream
	format  Format
	now     func() time.Time
	tail    *bytes.Buffer // nil when no invocation runs
	last    time.Time
	request string // current invocation, "" between invocations
	status  string // "timeout" once the invocation timed out

	droppedRecords, droppedBytes int64
	dropReason                   DropReason

	// onFunction, when set, also receives every function line (the
	// Telemetry API's "function" stream).
	onFunction func(line []byte)
}

// OnFunctionLine makes f receive a copy of every line the function writes
// (after format filtering), e.g. for Telemetry API subscribers. Set it
// before the environment starts; f must not block.
func (c *Capture) OnFunctionLine(f func(line []byte)) {
	c.mu.Lock()
	c.onFunction = f
	c.mu.Unlock()
}

// NewCapture returns a Capture appending to stream (which may be nil: lines
// then only reach the tail) in format f.
func NewCapture(stream *Stream, f Format, now func() time.Time) *Capture {
	if now == nil {
		now = time.Now
	}
	return &Capture{stream: stream, format: f, now: now}
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
	// Complete lines are taken straight from p; only a partial last line
	// is kept (at most maxLine bytes).
	for len(p) > 0 {
		i := bytes.IndexByte(p, '\n')
		if i < 0 {
			w.buf = append(w.buf, p...)
			for len(w.buf) >= maxLine {
				w.c.functionLine(w.buf[:maxLine])
				w.buf = append(w.buf[:0], w.buf[maxLine:]...)
			}
			break
		}
		if len(w.buf) > 0 {
			w.buf = append(w.buf, p[:i]...)
			for len(w.buf) > maxLine {
				w.c.functionLine(w.buf[:maxLine])
				w.buf = append(w.buf[:0], w.buf[maxLine:]...)
			}
			w.c.functionLine(w.buf)
			w.buf = w.buf[:0]
		} else {
			line := p[:i]
			for len(line) > maxLine {
				w.c.functionLine(line[:maxLine])
				line = line[maxLine:]
			}
			w.c.functionLine(line)
		}
		p = p[i+1:]
	}
	if len(w.buf) == 0 && cap(w.buf) > 64<<10 {
		w.buf = nil
	}
	return n, nil
}

// functionLine records one complete line of the function's output.
func (c *Capture) functionLine(line []byte) {
	line = bytes.TrimSuffix(line, []byte{'\r'})
	if !c.format.keepFunctionLine(line) {
		c.mu.Lock()
		c.last = c.now()
		c.mu.Unlock()
		return
	}
	c.mu.Lock()
	now := c.now()
	c.last = now
	c.emit(now, line, false)
	hook := c.onFunction
	c.mu.Unlock()
	if hook != nil {
		hook(append([]byte(nil), line...))
	}
}

// Line records one line the platform writes, in Lambda's text form:
// "START RequestId: <id> Version: <v>", "END RequestId: <id>", "REPORT
// RequestId: <id>\t…", or "<time> <id> Task timed out after …". A START
// line attributes the lines that follow to its request id. In the JSON format these lines become Telemetry records
// (platform.start, platform.runtimeDone, platform.report) filtered by the
// system level; in the Text format they are kept as they are.
func (c *Capture) Line(line []byte) {
	c.mu.Lock()
	defer c.mu.Unlock()
	now := c.now()
	c.last = now
	p := parsePlatformLine(line)
	switch p.kind {
	case "start":
		c.request, c.status = p.requestID, ""
	case "timeout":
		c.status = "timeout"
	case "end", "report":
		// Drops of this invocation are reported before its END.
		c.reportDropsLocked(now)
	}
	out, level := line, LevelInfo
	if c.format.JSON {
		out, level = renderPlatformJSON(now, p, line, c.status)
	}
	if !c.format.JSON || level >= c.format.System {
		c.emit(now, out, true)
	}
	if p.kind == "report" {
		// The request id stays: output that reaches the pipe after the
		// runtime answered (the pipe and the Runtime API race) or that
		// the invocation left running belongs to it, not to no one.
		c.status = ""
	}
}

// emit appends a line to the tail and offers it to the stream; c.mu held.
// A function line the stream cannot take now is dropped and counted; the
// count is reported by a logsDropped record before the next line that is
// kept, or before the invocation's END.
func (c *Capture) emit(now time.Time, line []byte, platform bool) {
	if c.stream != nil {
		if !platform {
			if reason := c.stream.admit(now, len(line)); reason != 0 {
				c.drop(len(line), reason)
				return
			}
		}
		c.reportDropsLocked(now)
		if !c.stream.push(now, c.request, line, platform) {
			c.drop(len(line), DropBacklog)
			return
		}
	}
	c.appendTail(line)
}

func (c *Capture) drop(n int, reason DropReason) {
	c.droppedRecords++
	c.droppedBytes += int64(n)
	c.dropReason = reason
}

// reportDropsLocked writes the pending logsDropped record, if any; c.mu
// held.
func (c *Capture) reportDropsLocked(now time.Time) {
	if c.droppedRecords == 0 || c.stream == nil {
		return
	}
	rec := renderLogsDropped(c.format, now, c.droppedRecords, c.droppedBytes, c.dropReason)
	if !c.stream.push(now, c.request, rec, true) {
		return // still no room: keep counting
	}
	c.droppedRecords, c.droppedBytes = 0, 0
	c.appendTail(rec)
}

func (c *Capture) appendTail(line []byte) {
	if c.tail == nil {
		return
	}
	c.tail.Write(line)
	c.tail.WriteByte('\n')
	if c.tail.Len() > 4*TailBytes {
		b := c.tail.Bytes()
		keep := append([]byte(nil), b[len(b)-TailBytes:]...)
		c.tail.Reset()
		c.tail.Write(keep)
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
