package runtimeapi

import "testing"

var (
	allExtStates = []ExtensionState{ExtRegistered, ExtReady, ExtIdle, ExtRunning, ExtShuttingDown, ExtExited, ExtInitError, ExtExitError}
	allXEvents   = []xevent{xevNext, xevDeliverInvoke, xevDeliverShutdown, xevUndeliver, xevAbandon, xevInitError, xevExitError}
)

// TestExtTransitions checks every (state, event) pair of the extension
// state machine: where it leads, or that it is refused (0).
func TestExtTransitions(t *testing.T) {
	const no ExtensionState = 0
	//                        next          deliver INVOKE  deliver SHUTDOWN  undeliver  abandon  init/error    exit/error
	table := []struct {
		state ExtensionState
		want  [7]ExtensionState
	}{
		{ExtRegistered, [7]ExtensionState{ExtReady, no, no, no, no, ExtInitError, ExtExitError}},
		{ExtReady, [7]ExtensionState{no, ExtRunning, ExtShuttingDown, no, ExtIdle, no, ExtExitError}},
		{ExtIdle, [7]ExtensionState{ExtReady, no, no, no, no, no, ExtExitError}},
		{ExtRunning, [7]ExtensionState{ExtReady, no, no, ExtIdle, no, no, ExtExitError}},
		{ExtShuttingDown, [7]ExtensionState{ExtExited, no, no, ExtIdle, no, no, ExtExitError}},
		{ExtExited, [7]ExtensionState{no, no, no, no, no, no, no}},
		{ExtInitError, [7]ExtensionState{no, no, no, no, no, no, no}},
		{ExtExitError, [7]ExtensionState{no, no, no, no, no, no, no}},
	}
	if len(table) != len(allExtStates) {
		t.Fatalf("table has %d states, want %d", len(table), len(allExtStates))
	}
	for _, row := range table {
		for i, ev := range allXEvents {
			want := row.want[i]
			t.Run(row.state.String()+"/"+ev.String(), func(t *testing.T) {
				got, ok := extTransition(row.state, ev)
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

// TestExtTransitionsClosedWorld checks that the table mentions only known
// states and events.
func TestExtTransitionsClosedWorld(t *testing.T) {
	known := map[ExtensionState]bool{}
	for _, s := range allExtStates {
		known[s] = true
	}
	knownEv := map[xevent]bool{}
	for _, e := range allXEvents {
		knownEv[e] = true
	}
	for from, row := range extTransitions {
		if !known[from] {
			t.Errorf("unknown state %s in table", from)
		}
		for ev, to := range row {
			if !knownEv[ev] || !known[to] {
				t.Errorf("%s --%s--> %s: unknown event or state", from, ev, to)
			}
		}
	}
	if _, ok := extTransition(ExtensionState(0), xevNext); ok {
		t.Error("zero state allowed next")
	}
	if got := ExtensionState(99).String(); got != "ExtensionState(99)" {
		t.Errorf("String() = %q", got)
	}
	if got := xevent(99).String(); got != "xevent(99)" {
		t.Errorf("String() = %q", got)
	}
}

// TestExtDone checks which states count as done with init or an event.
func TestExtDone(t *testing.T) {
	for _, s := range allExtStates {
		want := s == ExtReady || s == ExtIdle || s == ExtExited
		if got := s.done(); got != want {
			t.Errorf("%s.done() = %v, want %v", s, got, want)
		}
	}
}
