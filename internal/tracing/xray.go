package tracing

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"strings"
	"time"
)

// TraceID is a 128-bit trace id (OpenTelemetry's, and X-Ray's Root without
// its dashes).
type TraceID [16]byte

// SpanID is a 64-bit span id (X-Ray's Parent or segment id).
type SpanID [8]byte

func (t TraceID) String() string { return hex.EncodeToString(t[:]) }
func (s SpanID) String() string  { return hex.EncodeToString(s[:]) }

// IsZero reports whether the id is unset.
func (t TraceID) IsZero() bool { return t == TraceID{} }

// IsZero reports whether the id is unset.
func (s SpanID) IsZero() bool { return s == SpanID{} }

// NewSpanID returns a random span id.
func NewSpanID() SpanID {
	var s SpanID
	for s.IsZero() {
		rand.Read(s[:])
	}
	return s
}

// NewTraceID returns a random trace id whose first four bytes are the
// epoch seconds of now, as X-Ray requires of a Root.
func NewTraceID(now time.Time) TraceID {
	var t TraceID
	rand.Read(t[4:])
	sec := uint32(now.Unix())
	t[0], t[1], t[2], t[3] = byte(sec>>24), byte(sec>>16), byte(sec>>8), byte(sec)
	return t
}

// XRay is a parsed X-Amzn-Trace-Id header:
// "Root=1-<8 hex>-<24 hex>;Parent=<16 hex>;Sampled=<0|1|?>", fields in any
// order, others kept as they are.
type XRay struct {
	Trace  TraceID
	Parent SpanID // zero when absent
	// Sampled is "1", "0", "?" or "" (absent).
	Sampled string
	// extra holds other fields (Lineage, Self…) in order.
	extra []string
}

// ParseXRay reads an X-Amzn-Trace-Id value; ok is false when it has no
// well-formed Root.
func ParseXRay(h string) (x XRay, ok bool) {
	for _, field := range strings.Split(h, ";") {
		k, v, _ := strings.Cut(strings.TrimSpace(field), "=")
		switch k {
		case "Root":
			parts := strings.Split(v, "-")
			if len(parts) != 3 || parts[0] != "1" || len(parts[1]) != 8 || len(parts[2]) != 24 {
				return XRay{}, false
			}
			b, err := hex.DecodeString(parts[1] + parts[2])
			if err != nil {
				return XRay{}, false
			}
			copy(x.Trace[:], b)
			ok = true
		case "Parent":
			b, err := hex.DecodeString(v)
			if err != nil || len(b) != 8 {
				return XRay{}, false
			}
			copy(x.Parent[:], b)
		case "Sampled":
			x.Sampled = v
		case "":
		default:
			x.extra = append(x.extra, strings.TrimSpace(field))
		}
	}
	return x, ok && !x.Trace.IsZero()
}

// String renders the header value.
func (x XRay) String() string {
	t := x.Trace.String()
	s := fmt.Sprintf("Root=1-%s-%s", t[:8], t[8:])
	if !x.Parent.IsZero() {
		s += ";Parent=" + x.Parent.String()
	}
	if x.Sampled != "" {
		s += ";Sampled=" + x.Sampled
	}
	for _, e := range x.extra {
		s += ";" + e
	}
	return s
}
