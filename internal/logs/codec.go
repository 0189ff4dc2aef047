package logs

import (
	"bufio"
	"bytes"
	"errors"
	"strconv"
)

// A segment file holds one record a line:
//
//	<unix nanoseconds>\t<f|p>\t<request id or ->\t<message>\n
//
// f marks the function's output, p the platform's lines. Messages never
// hold a newline (output is split on them), so the format needs no
// escaping; the time is unique and increasing within a server run, and
// increasing within a stream.

func encodeRecord(w *bufio.Writer, r record) int {
	var hdr [64]byte
	b := strconv.AppendInt(hdr[:0], r.nanos, 10)
	b = append(b, '\t')
	if r.platform {
		b = append(b, 'p')
	} else {
		b = append(b, 'f')
	}
	b = append(b, '\t')
	w.Write(b)
	n := len(b)
	if r.request == "" {
		w.WriteByte('-')
		n++
	} else {
		w.WriteString(r.request)
		n += len(r.request)
	}
	w.WriteByte('\t')
	w.Write(r.msg)
	w.WriteByte('\n')
	return n + 2 + len(r.msg)
}

var errBadRecord = errors.New("malformed log record")

// decodeRecord parses one line of a segment (without its newline). The
// message aliases line.
func decodeRecord(line []byte) (record, error) {
	var r record
	f := bytes.SplitN(line, []byte{'\t'}, 4)
	if len(f) != 4 || len(f[1]) != 1 {
		return r, errBadRecord
	}
	n, err := strconv.ParseInt(string(f[0]), 10, 64)
	if err != nil {
		return r, errBadRecord
	}
	r.nanos = n
	switch f[1][0] {
	case 'p':
		r.platform = true
	case 'f':
	default:
		return r, errBadRecord
	}
	if string(f[2]) != "-" {
		r.request = string(f[2])
	}
	r.msg = f[3]
	return r, nil
}
