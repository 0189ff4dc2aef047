package eventstream

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
)

// Limits of the format.
const (
	preludeLen     = 12
	crcLen         = 4
	maxHeaderName  = 255
	maxHeaderValue = 1<<15 - 1
	// MaxHeadersBytes caps the encoded headers of one message.
	MaxHeadersBytes = 128 << 10
	// MaxPayloadBytes caps the payload of one message; split larger
	// payloads into several PayloadChunk events.
	MaxPayloadBytes = 16 << 20
)

const headerTypeString = 7

// Header is one string-valued message header.
type Header struct {
	Name  string
	Value string
}

// Message is one event-stream message.
type Message struct {
	Headers []Header
	Payload []byte
}

// Errors of Decode.
var (
	ErrChecksum  = errors.New("eventstream: checksum mismatch")
	ErrMalformed = errors.New("eventstream: malformed message")
)

// Append encodes m and appends it to dst. It fails when a header name is
// empty or longer than 255 bytes, a value longer than 32767 bytes, or the
// headers or payload exceed their limits.
func (m Message) Append(dst []byte) ([]byte, error) {
	hlen := 0
	for _, h := range m.Headers {
		if len(h.Name) == 0 || len(h.Name) > maxHeaderName {
			return dst, fmt.Errorf("eventstream: header name %.32q: must be 1 to %d bytes", h.Name, maxHeaderName)
		}
		if len(h.Value) > maxHeaderValue {
			return dst, fmt.Errorf("eventstream: header %s: value over %d bytes", h.Name, maxHeaderValue)
		}
		hlen += 1 + len(h.Name) + 1 + 2 + len(h.Value)
	}
	if hlen > MaxHeadersBytes {
		return dst, fmt.Errorf("eventstream: headers of %d bytes, over %d", hlen, MaxHeadersBytes)
	}
	if len(m.Payload) > MaxPayloadBytes {
		return dst, fmt.Errorf("eventstream: payload of %d bytes, over %d", len(m.Payload), MaxPayloadBytes)
	}
	total := preludeLen + hlen + len(m.Payload) + crcLen
	start := len(dst)
	dst = binary.BigEndian.AppendUint32(dst, uint32(total))
	dst = binary.BigEndian.AppendUint32(dst, uint32(hlen))
	dst = binary.BigEndian.AppendUint32(dst, crc32.ChecksumIEEE(dst[start:start+8]))
	for _, h := range m.Headers {
		dst = append(dst, byte(len(h.Name)))
		dst = append(dst, h.Name...)
		dst = append(dst, headerTypeString)
		dst = binary.BigEndian.AppendUint16(dst, uint16(len(h.Value)))
		dst = append(dst, h.Value...)
	}
	dst = append(dst, m.Payload...)
	return binary.BigEndian.AppendUint32(dst, crc32.ChecksumIEEE(dst[start:])), nil
}

// Write encodes m to w in one Write call.
func Write(w io.Writer, m Message) error {
	b, err := m.Append(nil)
	if err != nil {
		return err
	}
	_, err = w.Write(b)
	return err
}

// Decode reads one message from r. It returns io.EOF at a clean end of r,
// ErrChecksum when a CRC does not match, and an error wrapping ErrMalformed
// (or io.ErrUnexpectedEOF) for anything else. Only string headers are
// understood.
func Decode(r io.Reader) (Message, error) {
	var prelude [preludeLen]byte
	if _, err := io.ReadFull(r, prelude[:]); err != nil {
		return Message{}, err
	}
	total := binary.BigEndian.Uint32(prelude[0:4])
	hlen := binary.BigEndian.Uint32(prelude[4:8])
	if crc32.ChecksumIEEE(prelude[:8]) != binary.BigEndian.Uint32(prelude[8:12]) {
		return Message{}, ErrChecksum
	}
	if total < preludeLen+crcLen || uint64(hlen) > uint64(total)-preludeLen-crcLen ||
		hlen > MaxHeadersBytes || total-preludeLen-crcLen-hlen > MaxPayloadBytes {
		return Message{}, fmt.Errorf("%w: lengths %d/%d", ErrMalformed, total, hlen)
	}
	rest := make([]byte, total-preludeLen)
	if _, err := io.ReadFull(r, rest); err != nil {
		if err == io.EOF {
			err = io.ErrUnexpectedEOF
		}
		return Message{}, err
	}
	body := rest[:len(rest)-crcLen]
	sum := crc32.Update(crc32.ChecksumIEEE(prelude[:]), crc32.IEEETable, body)
	if sum != binary.BigEndian.Uint32(rest[len(rest)-crcLen:]) {
		return Message{}, ErrChecksum
	}
	var m Message
	hb := body[:hlen]
	for len(hb) > 0 {
		nl := int(hb[0])
		if nl == 0 || len(hb) < 1+nl+1+2 {
			return Message{}, fmt.Errorf("%w: header", ErrMalformed)
		}
		name := string(hb[1 : 1+nl])
		if hb[1+nl] != headerTypeString {
			return Message{}, fmt.Errorf("%w: header %s of type %d", ErrMalformed, name, hb[1+nl])
		}
		vl := int(binary.BigEndian.Uint16(hb[2+nl:]))
		hb = hb[4+nl:]
		if len(hb) < vl {
			return Message{}, fmt.Errorf("%w: header %s", ErrMalformed, name)
		}
		m.Headers = append(m.Headers, Header{Name: name, Value: string(hb[:vl])})
		hb = hb[vl:]
	}
	m.Payload = body[hlen:]
	return m, nil
}

// Get returns the value of the header name, or "".
func (m Message) Get(name string) string {
	for _, h := range m.Headers {
		if h.Name == name {
			return h.Value
		}
	}
	return ""
}

// PayloadChunk returns Lambda's PayloadChunk event carrying p.
func PayloadChunk(p []byte) Message {
	return Message{Headers: []Header{
		{":event-type", "PayloadChunk"},
		{":content-type", "application/octet-stream"},
		{":message-type", "event"},
	}, Payload: p}
}

// InvokeComplete is the last event of a response stream. Empty fields are
// left out.
type InvokeComplete struct {
	ErrorCode    string `json:"ErrorCode,omitempty"`
	ErrorDetails string `json:"ErrorDetails,omitempty"`
	// LogResult is the base64 of the last 4 KB of the log, when the caller
	// asked for X-Amz-Log-Type: Tail.
	LogResult string `json:"LogResult,omitempty"`
}

// Message returns the InvokeComplete event.
func (c InvokeComplete) Message() Message {
	b, _ := json.Marshal(c) // three strings: cannot fail
	return Message{Headers: []Header{
		{":event-type", "InvokeComplete"},
		{":content-type", "application/json"},
		{":message-type", "event"},
	}, Payload: b}
}
