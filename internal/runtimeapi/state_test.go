package runtimeapi

import "testing"

var (
	allStates = []State{StateStarted, StateInitError, StateReady, StateRunning, StateResponseSent, StateIdle, StateClosed}
	allEvents = []event{evNext, evDeliver, evUndeliver, evAbandon, evResponse, evError, evInitError, evInvoke, evClose}
)

// TestTransitions checks every (state, event) pair: where it leads, or that
// it is refused (0).
func TestTransitions(t *testing.T) {
	const no State = 0
	//                 next        deliver       undeliver  abandon    response           error              init/error      invoke             close
	table := []struct {
		state State
		want  [9]State
	}{
		{StateStarted, [9]State{StateReady, no, no, no, no, no, StateInitError, StateStarted, StateClosed}},
		{StateInitError, [9]State{no, no, no, no, no, no, no, no, StateClosed}},
		{StateReady, [9]State{no, StateRunning, no, StateIdle, no, no, no, StateReady, StateClosed}},
		{StateRunning, [9]State{no, no, StateIdle, no, StateResponseSent, StateResponseSent, no, no, StateClosed}},
		{StateResponseSent, [9]State{StateReady, no, no, no, no, no, no, StateResponseSent, StateClosed}},
		{StateIdle, [9]State{StateReady, no, no, no, no, no, no, StateIdle, StateClosed}},
		{StateClosed, [9]State{no, no, no, no, no, no, no, no, StateClosed}},
	}
	if len(table) != len(allStates) {
		t.Fatalf("table has %d states, want %d", len(table), len(allStates))
	}
	for _, row := range table {
		for i, ev := range allEvents {
			want := row.want[i]
			t.Run(row.state.String()+"/"+ev.String(), func(t *testing.T) {
				got, ok := transition(row.state, ev)
				switch {
				case want == no && ok:
					t.Errorf("allowed, to %s; want refused", got)
				case want != no && !ok:
					t.Errorf("refused; want %s", want)
				case got != want:
					t.Errorf("to %s, want %s", got, want)
				}
			})
		}
	}
}

// TestTransitionsClosedWorld checks that the table mentions only known
// states and events, so TestTransitions covers all of it.
func TestTransitionsClosedWorld(t *testing.T) {
	known := map[State]bool{}
	for _, s := range allStates {
		known[s] = true
	}
	knownEv := map[event]bool{}
	for _, e := range allEvents {
		knownEv[e] = true
	}
	for from, row := range transitions {
		if !known[from] {
			t.Errorf("unknown state %s in table", from)
		}
		for ev, to := range row {
			if !knownEv[ev] || !known[to] {
				t.Errorf("%s --%s--> %s: unknown event or state", from, ev, to)
			}
		}
	}
	if _, ok := transition(State(0), evClose); ok {
		t.Error("zero State allowed close")
	}
}

func TestStateString(t *testing.T) {
	tests := []struct {
		name string
		s    State
		want string
	}{
		{name: "known", s: StateResponseSent, want: "ResponseSent"},
		{name: "zero", s: 0, want: "State(0)"},
		{name: "out of range", s: 200, want: "State(200)"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.s.String(); got != tt.want {
				t.Errorf("String() = %q, want %q", got, tt.want)
			}
		})
	}
	if got := event(99).String(); got != "event(99)" {
		t.Errorf("event(99).String() = %q", got)
	}
}
