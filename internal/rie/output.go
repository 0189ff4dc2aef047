package rie

import (
	"bytes"
	"fmt"
	"io"
	"math"
	"sync"
	"time"
)

// tailBytes is how much of an invocation's log X-Amz-Log-Result carries.
const tailBytes = 4096

// maxLine caps one line given to the telemetry stream; longer ones are
// split.
const maxLine = 256 << 10

// lockedWriter serialises writes to the emulator's stdout.
type lockedWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

// line writes one platform line (START, END, REPORT).
func (l *lockedWriter) line(s string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	_, _ = io.WriteString(l.w, s+"\n")
}

// output is an environment's log: the raw bytes of every process go to
// the emulator's stdout as they come (as aws-lambda-rie passes them
// through), and each complete line to the telemetry stream and the
// current invocation's tail.
type output struct {
	out *lockedWriter

	mu   sync.Mutex
	tail *bytes.Buffer // nil when no invocation collects one
	last time.Time     // when a process last wrote
}

// settle waits a little for output a process wrote just before it
// answered to come through its pipe: at least quiet, then until nothing
// came for quiet, at most limit.
func (o *output) settle(quiet, limit time.Duration) {
	deadline := time.Now().Add(limit)
	time.Sleep(quiet)
	for time.Now().Before(deadline) {
		o.mu.Lock()
		last := o.last
		o.mu.Unlock()
		if time.Since(last) >= quiet {
			return
		}
		time.Sleep(quiet / 2)
	}
}

// writer returns the writer of one process's stdout or stderr; emit gets
// each complete line.
func (o *output) writer(emit func([]byte)) io.Writer {
	return &lineWriter{o: o, emit: emit}
}

// platformLine writes a START/END/REPORT line, which also goes to the tail.
func (o *output) platformLine(s string) {
	o.out.line(s)
	o.mu.Lock()
	if o.tail != nil {
		o.tail.WriteString(s + "\n")
	}
	o.mu.Unlock()
}

func (o *output) beginTail() {
	o.mu.Lock()
	o.tail = &bytes.Buffer{}
	o.mu.Unlock()
}

// endTail returns the last tailBytes of the invocation's log.
func (o *output) endTail() []byte {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.tail == nil {
		return nil
	}
	b := o.tail.Bytes()
	o.tail = nil
	if len(b) > tailBytes {
		b = b[len(b)-tailBytes:]
	}
	return b
}

type lineWriter struct {
	o    *output
	emit func([]byte)
	buf  []byte
}

func (w *lineWriter) Write(p []byte) (int, error) {
	_, _ = w.o.out.Write(p)
	w.o.mu.Lock()
	w.o.last = time.Now()
	if w.o.tail != nil {
		w.o.tail.Write(p)
		if w.o.tail.Len() > 4*tailBytes {
			keep := bytes.Clone(w.o.tail.Bytes()[w.o.tail.Len()-tailBytes:])
			w.o.tail.Reset()
			w.o.tail.Write(keep)
		}
	}
	w.o.mu.Unlock()
	w.buf = append(w.buf, p...)
	for {
		i := bytes.IndexByte(w.buf, '\n')
		if i < 0 {
			if len(w.buf) >= maxLine {
				w.emit(w.buf[:maxLine])
				w.buf = append(w.buf[:0], w.buf[maxLine:]...)
				continue
			}
			break
		}
		w.emit(bytes.TrimSuffix(w.buf[:i], []byte("\r")))
		w.buf = w.buf[i+1:]
	}
	if len(w.buf) == 0 {
		w.buf = nil
	}
	return len(p), nil
}

// billedMs is Lambda's billed duration: the duration rounded up to the
// millisecond, at least 1 ms.
func billedMs(d time.Duration) int64 {
	return max(int64(math.Ceil(float64(d)/float64(time.Millisecond))), 1)
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// mib is a byte count in whole MiB, rounded up, as Lambda reports memory.
func mib(b uint64) int { return int(math.Ceil(float64(b) / (1 << 20))) }

// reportLine formats the REPORT line as Lambda prints it (tab separated,
// trailing tab, Init Duration last and on cold starts only).
func reportLine(reqID string, d time.Duration, memMB, usedMB int, initDur time.Duration) string {
	line := fmt.Sprintf("REPORT RequestId: %s\tDuration: %.2f ms\tBilled Duration: %d ms\tMemory Size: %d MB\tMax Memory Used: %d MB\t",
		reqID, ms(d), billedMs(d), memMB, usedMB)
	if initDur > 0 {
		line += fmt.Sprintf("Init Duration: %.2f ms\t", ms(initDur))
	}
	return line
}
