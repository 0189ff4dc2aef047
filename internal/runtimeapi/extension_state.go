package runtimeapi

import "strconv"

// ExtensionState is an extension's state as the Extensions API sees it.
// Every registered extension has its own; a pair of (state, event) that the
// table below does not list is refused with 403
// Extension.InvalidExtensionState.
type ExtensionState uint8

// The extension states. Registration creates an extension in
// ExtRegistered.
const (
	// ExtRegistered: registered, still initialising: it has not called
	// /event/next yet.
	ExtRegistered ExtensionState = iota + 1
	// ExtReady: parked in /event/next, waiting for an event.
	ExtReady
	// ExtIdle: done with its last event but no /event/next is parked (the
	// one it made went away, or the event could not be written to it).
	ExtIdle
	// ExtRunning: an INVOKE event was written; it owes a /event/next.
	ExtRunning
	// ExtShuttingDown: the SHUTDOWN event was written; it should clean up
	// and exit, or call /event/next once more.
	ExtShuttingDown
	// ExtExited: it called /event/next after SHUTDOWN; no event follows.
	ExtExited
	// ExtInitError: it posted /extension/init/error.
	ExtInitError
	// ExtExitError: it posted /extension/exit/error.
	ExtExitError
)

var extStateNames = [...]string{
	ExtRegistered:   "Registered",
	ExtReady:        "Ready",
	ExtIdle:         "Idle",
	ExtRunning:      "Running",
	ExtShuttingDown: "ShuttingDown",
	ExtExited:       "Exited",
	ExtInitError:    "InitError",
	ExtExitError:    "ExitError",
}

func (s ExtensionState) String() string {
	if int(s) < len(extStateNames) && extStateNames[s] != "" {
		return extStateNames[s]
	}
	return "ExtensionState(" + strconv.Itoa(int(s)) + ")"
}

// done reports whether an extension in state s has finished its part of the
// current phase: init (it called /event/next) or an invocation (it called
// /event/next again).
func (s ExtensionState) done() bool {
	return s == ExtReady || s == ExtIdle || s == ExtExited
}

// xevent is something that moves an extension's state machine.
type xevent uint8

const (
	xevNext            xevent = iota + 1 // extension: GET /extension/event/next
	xevDeliverInvoke                     // server: an INVOKE event was written to the parked next
	xevDeliverShutdown                   // server: the SHUTDOWN event was written to the parked next
	xevUndeliver                         // server: writing the event failed; it is pending again
	xevAbandon                           // extension: the parked next went away without an event
	xevInitError                         // extension: POST /extension/init/error
	xevExitError                         // extension: POST /extension/exit/error
)

var xeventNames = [...]string{
	xevNext:            "next",
	xevDeliverInvoke:   "deliver INVOKE",
	xevDeliverShutdown: "deliver SHUTDOWN",
	xevUndeliver:       "undeliver",
	xevAbandon:         "abandon",
	xevInitError:       "init/error",
	xevExitError:       "exit/error",
}

func (e xevent) String() string {
	if int(e) < len(xeventNames) && xeventNames[e] != "" {
		return xeventNames[e]
	}
	return "xevent(" + strconv.Itoa(int(e)) + ")"
}

// extTransitions is the whole extension state machine: a pair not listed is
// refused. InitError, ExitError and Exited are final.
var extTransitions = map[ExtensionState]map[xevent]ExtensionState{
	ExtRegistered: {
		xevNext:      ExtReady,
		xevInitError: ExtInitError,
		xevExitError: ExtExitError,
	},
	ExtReady: {
		xevDeliverInvoke:   ExtRunning,
		xevDeliverShutdown: ExtShuttingDown,
		xevAbandon:         ExtIdle,
		xevExitError:       ExtExitError,
	},
	ExtIdle: {
		xevNext:      ExtReady,
		xevExitError: ExtExitError,
	},
	ExtRunning: {
		xevNext:      ExtReady,
		xevUndeliver: ExtIdle,
		xevExitError: ExtExitError,
	},
	ExtShuttingDown: {
		xevNext:      ExtExited,
		xevUndeliver: ExtIdle,
		xevExitError: ExtExitError,
	},
	ExtExited:    {},
	ExtInitError: {},
	ExtExitError: {},
}

// extTransition returns the state that ev leads to from s, and false when
// the table does not list the pair.
func extTransition(s ExtensionState, ev xevent) (ExtensionState, bool) {
	to, ok := extTransitions[s][ev]
	return to, ok
}
