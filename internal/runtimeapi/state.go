package runtimeapi

import "strconv"

// State is the runtime's state as the Runtime API sees it.
type State uint8

// The states. A new Server starts in StateStarted.
const (
	// StateStarted: the runtime process runs its init and has not yet
	// called /next.
	StateStarted State = iota + 1
	// StateInitError: the runtime posted /init/error; it must exit.
	StateInitError
	// StateReady: the runtime is parked in /next, waiting for an event.
	StateReady
	// StateRunning: an event was written to /next; the runtime owes a
	// /response or /error for it.
	StateRunning
	// StateResponseSent: the runtime answered; it has not called /next again.
	StateResponseSent
	// StateIdle: initialised, no /next parked and no event in flight, because
	// the parked /next went away or the event could not be written to it.
	StateIdle
	// StateClosed: Close was called; every request fails.
	StateClosed
)

var stateNames = [...]string{
	StateStarted:      "Started",
	StateInitError:    "InitError",
	StateReady:        "Ready",
	StateRunning:      "Running",
	StateResponseSent: "ResponseSent",
	StateIdle:         "Idle",
	StateClosed:       "Closed",
}

func (s State) String() string {
	if int(s) < len(stateNames) && stateNames[s] != "" {
		return stateNames[s]
	}
	return "State(" + strconv.Itoa(int(s)) + ")"
}

// event is something that moves the state machine.
type event uint8

const (
	evNext      event = iota + 1 // runtime: GET /invocation/next
	evDeliver                    // server: an event was handed to the parked /next
	evUndeliver                  // server: writing that event failed; it is pending again
	evAbandon                    // runtime: the parked /next went away without an event
	evResponse                   // runtime: POST /invocation/{id}/response
	evError                      // runtime: POST /invocation/{id}/error
	evInitError                  // runtime: POST /init/error
	evInvoke                     // invoker: Invoke queues an event
	evClose                      // invoker: Close
	// Not in transitions: the restore endpoints check the state
	// themselves (see restore.go); these name them in refusals.
	evRestoreNext  // runtime: GET /restore/next
	evRestoreError // runtime: POST /restore/error
)

var eventNames = [...]string{
	evNext:      "next",
	evDeliver:   "deliver",
	evUndeliver: "undeliver",
	evAbandon:   "abandon",
	evResponse:  "response",
	evError:     "error",
	evInitError: "init/error",
	evInvoke:    "invoke",
	evClose:     "close",

	evRestoreNext:  "restore/next",
	evRestoreError: "restore/error",
}

func (e event) String() string {
	if int(e) < len(eventNames) && eventNames[e] != "" {
		return eventNames[e]
	}
	return "event(" + strconv.Itoa(int(e)) + ")"
}

// transitions is the whole state machine: a pair not listed is refused.
// evInvoke only checks that the runtime can take an event in that state;
// that at most one event is queued is the Server's busy flag, not a state.
var transitions = map[State]map[event]State{
	StateStarted: {
		evNext:      StateReady,
		evInitError: StateInitError,
		evInvoke:    StateStarted, // queued until the first /next
		evClose:     StateClosed,
	},
	StateInitError: {
		evClose: StateClosed,
	},
	StateReady: {
		evDeliver: StateRunning,
		evAbandon: StateIdle,
		evInvoke:  StateReady,
		evClose:   StateClosed,
	},
	StateRunning: {
		evResponse:  StateResponseSent,
		evError:     StateResponseSent,
		evUndeliver: StateIdle,
		evClose:     StateClosed,
	},
	StateResponseSent: {
		evNext:   StateReady,
		evInvoke: StateResponseSent,
		evClose:  StateClosed,
	},
	StateIdle: {
		evNext:   StateReady,
		evInvoke: StateIdle,
		evClose:  StateClosed,
	},
	StateClosed: {
		evClose: StateClosed,
	},
}

// transition returns the state that ev leads to from s, and false when the
// table does not list the pair.
func transition(s State, ev event) (State, bool) {
	to, ok := transitions[s][ev]
	return to, ok
}
