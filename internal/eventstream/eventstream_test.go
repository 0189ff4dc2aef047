package eventstream

import (
	"bytes"
	"errors"
	"io"
	"strings"
	"testing"

	sdk "github.com/aws/aws-sdk-go-v2/aws/protocol/eventstream"
)

func TestRoundTrip(t *testing.T) {
	tests := []struct {
		name string
		m    Message
	}{
		{name: "payload chunk", m: PayloadChunk([]byte("hello, world"))},
		{name: "empty chunk", m: PayloadChunk(nil)},
		{name: "invoke complete", m: InvokeComplete{ErrorCode: "Unhandled", ErrorDetails: "boom", LogResult: "U1RBUlQ="}.Message()},
		{name: "invoke complete, no error", m: InvokeComplete{}.Message()},
		{name: "no headers", m: Message{Payload: []byte{0, 1, 2}}},
		{name: "big", m: PayloadChunk(bytes.Repeat([]byte("x"), 1<<20))},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b, err := tt.m.Append(nil)
			if err != nil {
				t.Fatal(err)
			}
			got, err := Decode(bytes.NewReader(b))
			if err != nil {
				t.Fatal(err)
			}
			checkEqual(t, got, tt.m)

			// The AWS SDK's decoder reads the same bytes.
			dm, err := sdk.NewDecoder().Decode(bytes.NewReader(b), nil)
			if err != nil {
				t.Fatalf("sdk decode: %v", err)
			}
			if !bytes.Equal(dm.Payload, tt.m.Payload) {
				t.Errorf("sdk payload %q, want %q", dm.Payload, tt.m.Payload)
			}
			if len(dm.Headers) != len(tt.m.Headers) {
				t.Fatalf("sdk headers %v, want %v", dm.Headers, tt.m.Headers)
			}
			for _, h := range tt.m.Headers {
				if v := dm.Headers.Get(h.Name); v == nil || v.String() != h.Value {
					t.Errorf("sdk header %s = %v, want %q", h.Name, v, h.Value)
				}
			}
		})
	}
}

func TestInvokeCompletePayload(t *testing.T) {
	m := InvokeComplete{ErrorCode: "Sandbox.Timedout", ErrorDetails: "Task timed out after 1.00 seconds"}.Message()
	if got, want := string(m.Payload), `{"ErrorCode":"Sandbox.Timedout","ErrorDetails":"Task timed out after 1.00 seconds"}`; got != want {
		t.Errorf("payload %s, want %s", got, want)
	}
	if m.Get(":event-type") != "InvokeComplete" || m.Get(":message-type") != "event" {
		t.Errorf("headers %v", m.Headers)
	}
}

func TestStream(t *testing.T) {
	var buf bytes.Buffer
	for _, p := range []string{"a", "bb", "ccc"} {
		if err := Write(&buf, PayloadChunk([]byte(p))); err != nil {
			t.Fatal(err)
		}
	}
	if err := Write(&buf, InvokeComplete{}.Message()); err != nil {
		t.Fatal(err)
	}
	var got []string
	for {
		m, err := Decode(&buf)
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, m.Get(":event-type")+":"+string(m.Payload))
	}
	if want := "PayloadChunk:a PayloadChunk:bb PayloadChunk:ccc InvokeComplete:{}"; strings.Join(got, " ") != want {
		t.Errorf("got %v, want %s", got, want)
	}
}

func TestEncodeErrors(t *testing.T) {
	tests := []struct {
		name string
		m    Message
	}{
		{name: "empty header name", m: Message{Headers: []Header{{"", "v"}}}},
		{name: "long header name", m: Message{Headers: []Header{{strings.Repeat("n", 256), "v"}}}},
		{name: "long header value", m: Message{Headers: []Header{{"n", strings.Repeat("v", 1<<15)}}}},
		{name: "payload too large", m: Message{Payload: make([]byte, MaxPayloadBytes+1)}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := tt.m.Append(nil); err == nil {
				t.Error("Append succeeded")
			}
		})
	}
}

func TestDecodeErrors(t *testing.T) {
	good, _ := PayloadChunk([]byte("data")).Append(nil)
	flip := func(i int) []byte {
		b := bytes.Clone(good)
		b[i] ^= 1
		return b
	}
	tests := []struct {
		name string
		in   []byte
		want error
	}{
		{name: "empty", in: nil, want: io.EOF},
		{name: "short prelude", in: good[:5], want: io.ErrUnexpectedEOF},
		{name: "prelude crc", in: flip(9), want: ErrChecksum},
		{name: "message crc", in: flip(len(good) - 6), want: ErrChecksum},
		{name: "truncated", in: good[:len(good)-1], want: io.ErrUnexpectedEOF},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := Decode(bytes.NewReader(tt.in)); !errors.Is(err, tt.want) {
				t.Errorf("Decode = %v, want %v", err, tt.want)
			}
		})
	}
}

func checkEqual(t *testing.T, got, want Message) {
	t.Helper()
	if !bytes.Equal(got.Payload, want.Payload) {
		t.Errorf("payload %q, want %q", got.Payload, want.Payload)
	}
	if len(got.Headers) != len(want.Headers) {
		t.Fatalf("headers %v, want %v", got.Headers, want.Headers)
	}
	for i := range want.Headers {
		if got.Headers[i] != want.Headers[i] {
			t.Errorf("header %d = %v, want %v", i, got.Headers[i], want.Headers[i])
		}
	}
}

// FuzzRoundTrip encodes arbitrary messages and decodes them back, with our
// decoder and the AWS SDK's; and feeds arbitrary bytes to Decode.
func FuzzRoundTrip(f *testing.F) {
	f.Add(":event-type", "PayloadChunk", []byte("hello"), []byte(nil))
	f.Add("x", "", []byte{}, []byte{0, 0, 0, 16, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0})
	good, _ := InvokeComplete{ErrorCode: "E"}.Message().Append(nil)
	f.Add("n", "v", []byte(nil), good)
	f.Fuzz(func(t *testing.T, name, value string, payload, raw []byte) {
		m := Message{Headers: []Header{{name, value}, {":message-type", "event"}}, Payload: payload}
		b, err := m.Append(nil)
		if err == nil {
			got, err := Decode(bytes.NewReader(b))
			if err != nil {
				t.Fatalf("Decode of Append: %v", err)
			}
			checkEqual(t, got, m)
			dm, err := sdk.NewDecoder().Decode(bytes.NewReader(b), nil)
			if err != nil {
				t.Fatalf("sdk Decode of Append: %v", err)
			}
			if !bytes.Equal(dm.Payload, payload) {
				t.Fatalf("sdk payload differs")
			}
		} else if name != "" && len(name) <= 255 && len(value) < 1<<15 {
			t.Fatalf("Append(%q, %d bytes): %v", name, len(value), err)
		}
		// Arbitrary input must not panic; a decoded message re-encodes to
		// the same bytes.
		if got, err := Decode(bytes.NewReader(raw)); err == nil {
			again, err := got.Append(nil)
			if err != nil {
				t.Fatalf("re-encode: %v", err)
			}
			if !bytes.Equal(again, raw[:len(again)]) {
				t.Fatalf("re-encoding differs")
			}
		}
	})
}
