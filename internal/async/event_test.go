package async

import (
	"testing"
	"time"
)

func FuzzDecodeEvent(f *testing.F) {
	ev := &Event{RequestID: "r", Function: "f", Qualifier: "q", Accepted: time.UnixMilli(5), Invokes: 2, Errors: 1,
		NotBefore: time.UnixMilli(9), Last: Outcome{StatusCode: 200, FunctionError: "Unhandled"}}
	h := ev.header()
	f.Add(h.Get(hRequestID), h.Get(hAccepted), h.Get(hInvokes), h.Get(hNotBefore), h.Get(hLastStatus))
	f.Fuzz(func(t *testing.T, id, accepted, invokes, notBefore, status string) {
		h := ev.header()
		h.Set(hRequestID, id)
		h.Set(hAccepted, accepted)
		h.Set(hInvokes, invokes)
		h.Set(hNotBefore, notBefore)
		h.Set(hLastStatus, status)
		got, err := decodeEvent(h, []byte("{}"))
		if err != nil {
			return
		}
		again, err := decodeEvent(got.header(), got.Payload)
		if err != nil || again.RequestID != got.RequestID || again.Invokes != got.Invokes || !again.Accepted.Equal(got.Accepted) {
			t.Fatalf("round trip: %+v → %+v, %v", got, again, err)
		}
	})
}
