package logs

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestCaptureTailAndStream(t *testing.T) {
	st, err := NewStore(t.TempDir(), nil)
	if err != nil {
		t.Fatal(err)
	}
	stream, err := st.Stream("fn", "2026/01/02/[$LATEST]abc")
	if err != nil {
		t.Fatal(err)
	}
	c := NewCapture(stream, nil)
	out, errw := c.Writer(), c.Writer()
	out.Write([]byte("init line\n"))
	c.Begin()
	out.Write([]byte("part"))
	errw.Write([]byte("stderr line\n"))
	out.Write([]byte("ial\n"))
	tail := string(c.End())
	if tail != "stderr line\npartial\n" {
		t.Errorf("tail = %q", tail)
	}
	c.Begin()
	big := strings.Repeat("x", 300) + "\n"
	for range 100 {
		out.Write([]byte(big))
	}
	if tail := c.End(); len(tail) != TailBytes {
		t.Errorf("tail of a long invocation is %d bytes, want %d", len(tail), TailBytes)
	}
	if err := stream.Close(); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(filepath.Join(st.dir, "fn", "2026-01-02-LATEST-abc.log"))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(string(b), "init line\nstderr line\npartial\n") || strings.Count(string(b), "\n") != 103 {
		t.Errorf("stream file has %d lines: %.80q", strings.Count(string(b), "\n"), b)
	}
}

func TestLongLineIsSplit(t *testing.T) {
	c := NewCapture(nil, nil)
	c.Begin()
	c.Writer().Write([]byte(strings.Repeat("y", maxLine+10)))
	if tail := c.End(); len(tail) == 0 {
		t.Errorf("an over-long line without newline was not emitted")
	}
}
