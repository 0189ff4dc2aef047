package async

import (
	"fmt"
	"strconv"
	"time"

	"github.com/nats-io/nats.go"
)

// MaxPayload is the largest Event payload Lambda accepts (1 MB).
const MaxPayload = 1 << 20

// Event is one asynchronous invocation and its delivery state.
type Event struct {
	RequestID string
	Function  string
	// Qualifier is the version or alias invoked; "" is $LATEST.
	Qualifier string
	Payload   []byte
	TraceID   string
	// Accepted is when the event was stored; Enqueue sets it.
	Accepted time.Time
	// Chain counts the invocations before this event in its chain: an
	// event a destination sends to a function is one further along than
	// the event whose record it carries (see function.MaxChain).
	Chain int

	// Delivery state, carried across retries.
	Invokes   int       // invocations so far (approximateInvokeCount)
	Errors    int       // function errors so far
	NotBefore time.Time // earliest next attempt (zero: now)
	Last      Outcome   // the last attempt's outcome
	// payloadObject names the object holding a payload too large for the
	// message itself.
	payloadObject string
	// doneKey marks this delivery attempt as handled (see Service.done).
	doneKey string
}

// Outcome is what one attempt returned, as a destination record shows it.
type Outcome struct {
	StatusCode      int
	ExecutedVersion string
	FunctionError   string
}

// Message headers.
const (
	hRequestID     = "Kappa-Request-Id"
	hFunction      = "Kappa-Function"
	hQualifier     = "Kappa-Qualifier"
	hTraceID       = "Kappa-Trace-Id"
	hAccepted      = "Kappa-Accepted"
	hInvokes       = "Kappa-Invokes"
	hErrors        = "Kappa-Errors"
	hNotBefore     = "Kappa-Not-Before"
	hLastStatus    = "Kappa-Last-Status"
	hLastVersion   = "Kappa-Last-Version"
	hLastError     = "Kappa-Last-Function-Error"
	hPayloadObject = "Kappa-Payload-Object"
	hChain         = "Kappa-Chain"
)

// header encodes ev's metadata (everything but the payload).
func (ev *Event) header() nats.Header {
	h := nats.Header{}
	h.Set(hRequestID, ev.RequestID)
	h.Set(hFunction, ev.Function)
	if ev.Qualifier != "" {
		h.Set(hQualifier, ev.Qualifier)
	}
	if ev.TraceID != "" {
		h.Set(hTraceID, ev.TraceID)
	}
	h.Set(hAccepted, strconv.FormatInt(ev.Accepted.UnixMilli(), 10))
	if ev.Invokes > 0 {
		h.Set(hInvokes, strconv.Itoa(ev.Invokes))
	}
	if ev.Errors > 0 {
		h.Set(hErrors, strconv.Itoa(ev.Errors))
	}
	if ev.Chain > 0 {
		h.Set(hChain, strconv.Itoa(ev.Chain))
	}
	if !ev.NotBefore.IsZero() {
		// Rounded up: an attempt never comes early.
		h.Set(hNotBefore, strconv.FormatInt((ev.NotBefore.UnixNano()+999_999)/1_000_000, 10))
	}
	if ev.Last.StatusCode != 0 {
		h.Set(hLastStatus, strconv.Itoa(ev.Last.StatusCode))
	}
	if ev.Last.ExecutedVersion != "" {
		h.Set(hLastVersion, ev.Last.ExecutedVersion)
	}
	if ev.Last.FunctionError != "" {
		h.Set(hLastError, ev.Last.FunctionError)
	}
	if ev.payloadObject != "" {
		h.Set(hPayloadObject, ev.payloadObject)
	}
	return h
}

// headerSize approximates the wire size of h.
func headerSize(h nats.Header) int {
	n := len("NATS/1.0\r\n\r\n")
	for k, vs := range h {
		for _, v := range vs {
			n += len(k) + len(v) + 4
		}
	}
	return n
}

// decodeEvent rebuilds an event from a message's headers and body.
func decodeEvent(h nats.Header, body []byte) (*Event, error) {
	ev := &Event{
		RequestID:     h.Get(hRequestID),
		Function:      h.Get(hFunction),
		Qualifier:     h.Get(hQualifier),
		TraceID:       h.Get(hTraceID),
		Payload:       body,
		payloadObject: h.Get(hPayloadObject),
	}
	if ev.RequestID == "" || ev.Function == "" {
		return nil, fmt.Errorf("event message lacks %s or %s", hRequestID, hFunction)
	}
	ms, err := strconv.ParseInt(h.Get(hAccepted), 10, 64)
	if err != nil {
		return nil, fmt.Errorf("event %s: bad %s: %w", ev.RequestID, hAccepted, err)
	}
	ev.Accepted = time.UnixMilli(ms)
	ints := []struct {
		key string
		dst *int
	}{{hInvokes, &ev.Invokes}, {hErrors, &ev.Errors}, {hLastStatus, &ev.Last.StatusCode}, {hChain, &ev.Chain}}
	for _, f := range ints {
		if v := h.Get(f.key); v != "" {
			n, err := strconv.Atoi(v)
			if err != nil || n < 0 {
				return nil, fmt.Errorf("event %s: bad %s %q", ev.RequestID, f.key, v)
			}
			*f.dst = n
		}
	}
	if v := h.Get(hNotBefore); v != "" {
		ms, err := strconv.ParseInt(v, 10, 64)
		if err != nil {
			return nil, fmt.Errorf("event %s: bad %s %q", ev.RequestID, hNotBefore, v)
		}
		ev.NotBefore = time.UnixMilli(ms)
	}
	ev.Last.ExecutedVersion = h.Get(hLastVersion)
	ev.Last.FunctionError = h.Get(hLastError)
	ev.doneKey = doneKey(ev.RequestID, ev.Invokes)
	return ev, nil
}

func natsMsg(subject string, h nats.Header, body []byte) *nats.Msg {
	return &nats.Msg{Subject: subject, Header: h, Data: body}
}

// doneKey names the done marker of the attempt that follows invokes
// invocations of a request; "" when the id cannot be a key.
func doneKey(requestID string, invokes int) string {
	for _, r := range requestID {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_') {
			return ""
		}
	}
	return requestID + "." + strconv.Itoa(invokes)
}
