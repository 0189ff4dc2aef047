package runtimeapi

import (
	"net/http"
	"testing"
)

func TestPing(t *testing.T) {
	for _, st := range allStates {
		t.Run(st.String(), func(t *testing.T) {
			s, ts := newTestServer(t, Options{})
			forceState(s, st)
			r := do(t, ts, http.MethodGet, "/2018-06-01/ping", nil)
			if st == StateClosed {
				wantAPIError(t, r, http.StatusInternalServerError, errInternalServerError)
				return
			}
			if r.status != http.StatusOK || string(r.body) != "pong" {
				t.Errorf("got %d %q, want 200 pong", r.status, r.body)
			}
			if got := s.State(); got != st {
				t.Errorf("ping moved the state to %s", got)
			}
		})
	}
}
