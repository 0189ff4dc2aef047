package runtimeapi

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"time"

	"github.com/google/uuid"
)

// Headers of the Extensions API.
const (
	hdrExtName          = "Lambda-Extension-Name"
	hdrExtIdentifier    = "Lambda-Extension-Identifier"
	hdrExtAcceptFeature = "Lambda-Extension-Accept-Feature"
	hdrExtErrorType     = "Lambda-Extension-Function-Error-Type"
	hdrExtEventID       = "Lambda-Extension-Event-Identifier"
)

// MaxExtensions is how many extensions may register with one environment.
const MaxExtensions = 10

// Shutdown grace periods, by what registered (see ShutdownGrace).
const (
	GraceNoExtensions = 0
	GraceInternal     = 500 * time.Millisecond
	GraceExternal     = 2000 * time.Millisecond
)

// Shutdown reasons, as Lambda writes them in the SHUTDOWN event's
// shutdownReason (lower case on the wire; Lambda's documentation spells them
// SPINDOWN, TIMEOUT and FAILURE).
const (
	ShutdownSpindown = "spindown"
	ShutdownTimeout  = "timeout"
	ShutdownFailure  = "failure"
)

// Extension event types.
const (
	EventInvoke   = "INVOKE"
	EventShutdown = "SHUTDOWN"
)

// ExtensionError is the error WaitInit, WaitInvokeDone and Shutdown return
// when an extension reported a failure with /extension/init/error or
// /extension/exit/error. Type is the platform error type
// (Extension.InitError or Extension.ExitError); Reported is the extension's
// Lambda-Extension-Function-Error-Type.
type ExtensionError struct {
	Name     string
	Type     ErrorType
	Reported string
}

func (e *ExtensionError) Error() string {
	return fmt.Sprintf("extension %s: %s (%s)", e.Name, e.Type, e.Reported)
}

// ExtensionInfo describes a registered extension, for logs and tests.
type ExtensionInfo struct {
	Name     string
	ID       string
	External bool
	Events   []string
	State    ExtensionState
}

// extension is one registered extension.
type extension struct {
	id       string
	name     string
	external bool
	invoke   bool // subscribed to INVOKE
	shutdown bool // subscribed to SHUTDOWN
	state    ExtensionState
	pending  *extEvent // queued, not yet written to a /event/next
	current  *extEvent // written, the extension owes a /event/next
	// wake, when non-nil, is closed to tell the parked /event/next to look
	// again.
	wake chan struct{}
}

func (x *extension) events() []string {
	ev := []string{}
	if x.invoke {
		ev = append(ev, EventInvoke)
	}
	if x.shutdown {
		ev = append(ev, EventShutdown)
	}
	return ev
}

func (x *extension) wakeParked() {
	if x.wake != nil {
		close(x.wake)
		x.wake = nil
	}
}

// extEvent is one event for one extension.
type extEvent struct {
	shutdown bool
	call     *call // the invocation of an INVOKE event
	body     []byte
}

type extInvokeEvent struct {
	EventType          string     `json:"eventType"`
	DeadlineMs         int64      `json:"deadlineMs"`
	RequestID          string     `json:"requestId"`
	InvokedFunctionARN string     `json:"invokedFunctionArn"`
	Tracing            extTracing `json:"tracing"`
}

type extTracing struct {
	Type  string `json:"type"`
	Value string `json:"value"`
}

type extShutdownEvent struct {
	EventType      string `json:"eventType"`
	ShutdownReason string `json:"shutdownReason"`
	DeadlineMs     int64  `json:"deadlineMs"`
}

// ExpectExtensions declares the external extensions of the environment (the
// file names of the executables in /opt/extensions) before they are
// started. An extension registering under one of these names is external:
// it may subscribe to SHUTDOWN, its registration stays open until init ends,
// and init does not end before it registered and called /event/next. Any
// other name registering is an internal extension (one the runtime process
// starts), accepted only until the runtime's first /next. Call it before
// starting the extension processes; later calls add names.
func (s *Server) ExpectExtensions(names ...string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, n := range names {
		s.expected[n] = true
	}
}

// WaitExtensionsRegistered blocks until every extension named to
// ExpectExtensions has registered, as Lambda does before it starts the
// runtime. It returns the *ExtensionError of an extension that failed
// first, ErrClosed, or ctx.Err().
func (s *Server) WaitExtensionsRegistered(ctx context.Context) error {
	for {
		s.mu.Lock()
		if s.state == StateClosed {
			s.mu.Unlock()
			return ErrClosed
		}
		if s.extFailure != nil {
			err := s.extFailure
			s.mu.Unlock()
			return err
		}
		missing := 0
		for n := range s.expected {
			if s.extByName[n] == nil {
				missing++
			}
		}
		if missing == 0 {
			s.mu.Unlock()
			return nil
		}
		ch := s.regChanged
		s.mu.Unlock()
		select {
		case <-ch:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// Extensions lists the registered extensions in registration order.
func (s *Server) Extensions() []ExtensionInfo {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]ExtensionInfo, 0, len(s.exts))
	for _, x := range s.exts {
		out = append(out, ExtensionInfo{Name: x.name, ID: x.id, External: x.external, Events: x.events(), State: x.state})
	}
	return out
}

// ShutdownGrace is how long Lambda gives an environment to shut down, by
// what registered: GraceNoExtensions (0) without extensions, GraceInternal
// (500 ms) with internal ones only, GraceExternal (2 s) with an external
// one. The invoker passes it to Shutdown (as the deadline) and to the
// sandbox's Shutdown.
func (s *Server) ShutdownGrace() time.Duration {
	s.mu.Lock()
	defer s.mu.Unlock()
	grace := time.Duration(GraceNoExtensions)
	for _, x := range s.exts {
		if x.external {
			return GraceExternal
		}
		grace = GraceInternal
	}
	return grace
}

// notifyRegistration wakes WaitExtensionsRegistered; s.mu must be held.
func (s *Server) notifyRegistration() {
	close(s.regChanged)
	s.regChanged = make(chan struct{})
}

// extensionFor finds the extension named by the request's
// Lambda-Extension-Identifier.
func (s *Server) extensionFor(r *http.Request) (*extension, *apiError) {
	v := r.Header.Get(hdrExtIdentifier)
	if v == "" {
		return nil, &apiError{http.StatusForbidden, errExtMissingIdentifier, "Missing Lambda-Extension-Identifier header"}
	}
	id, err := uuid.Parse(v)
	if err != nil {
		return nil, &apiError{http.StatusForbidden, errExtInvalidIdentifier, "Invalid Lambda-Extension-Identifier"}
	}
	s.mu.Lock()
	x := s.extByID[id.String()]
	s.mu.Unlock()
	if x == nil {
		return nil, &apiError{http.StatusForbidden, errExtUnknownIdentifier, "Unknown extension " + id.String()}
	}
	return x, nil
}

func apiErrExtRefused(x *extension, from ExtensionState, ev xevent) *apiError {
	return &apiError{http.StatusForbidden, errExtInvalidState,
		"State transition from " + from.String() + " on " + ev.String() + " failed for extension " + x.id}
}

// fireExt applies ev to x's state machine; s.mu must be held.
func (s *Server) fireExt(x *extension, ev xevent) (ExtensionState, bool) {
	from := x.state
	to, ok := extTransition(from, ev)
	if !ok {
		s.log.Warn("extensions api: transition refused", "extension", x.name, "state", from, "event", ev)
		return from, false
	}
	if to != from {
		s.log.Debug("extensions api: transition", "extension", x.name, "from", from, "event", ev, "to", to)
	}
	x.state = to
	return from, true
}

// queueInvokeEvents hands c's INVOKE event to every extension subscribed to
// it, once; s.mu must be held.
func (s *Server) queueInvokeEvents(c *call) {
	if c.extQueued {
		return
	}
	c.extQueued = true
	var body []byte
	for _, x := range s.exts {
		if !x.invoke || x.state == ExtInitError || x.state == ExtExitError || x.state == ExtExited || x.state == ExtShuttingDown {
			continue
		}
		if body == nil {
			body, _ = json.Marshal(extInvokeEvent{
				EventType:          EventInvoke,
				DeadlineMs:         c.inv.Deadline.UnixMilli(),
				RequestID:          c.inv.RequestID,
				InvokedFunctionARN: c.inv.InvokedFunctionARN,
				Tracing:            extTracing{Type: "X-Amzn-Trace-Id", Value: c.header.Get(hdrTraceID)},
			})
		}
		s.dropPending(x)
		x.pending = &extEvent{call: c, body: body}
		c.extWait++
		x.wakeParked()
	}
}

// dropPending withdraws x's queued event, releasing the invocation or
// shutdown waiting for it; s.mu must be held.
func (s *Server) dropPending(x *extension) {
	if x.pending == nil {
		return
	}
	s.release(x, x.pending)
	x.pending = nil
}

// release records that x is done with ev (it called /event/next after it,
// failed, or ev was withdrawn); s.mu must be held.
func (s *Server) release(_ *extension, ev *extEvent) {
	if ev.shutdown {
		s.shutdownWait--
		if s.shutdownWait == 0 && s.shutdownDone != nil {
			select {
			case <-s.shutdownDone:
			default:
				close(s.shutdownDone)
			}
		}
		return
	}
	if c := ev.call; c != nil {
		c.extWait--
		s.maybeComplete(c)
	}
}

// extFailed records that x reported a failure; s.mu must be held.
func (s *Server) extFailed(x *extension, typ ErrorType, reported string, payload []byte) {
	ee := &ExtensionError{Name: x.name, Type: typ, Reported: reported}
	if s.extFailure == nil {
		s.extFailure = ee
	}
	if c := s.inflight; c != nil {
		s.failCall(c, ee)
	}
	if x.pending != nil {
		s.dropPending(x)
	}
	if x.current != nil {
		s.release(x, x.current)
		x.current = nil
	}
	x.wakeParked()
	if !s.initResolved {
		ie := &InitError{Type: string(typ), Payload: payload}
		s.resolveInit(ie)
		if s.pending != nil {
			s.pending.finish(Result{}, ie)
			s.pending = nil
		}
		s.wakeParked()
	}
	s.notifyRegistration()
}

// extensionRecord is the platform.extension record of x, emitted once x
// finished its init.
func extensionRecord(x *extension) PlatformExtension {
	return PlatformExtension{Name: x.name, State: "Ready", Events: x.events()}
}

// acceptsAccountID reports whether the register request asked for the
// accountId feature.
func acceptsAccountID(h http.Header) bool {
	for _, v := range h.Values(hdrExtAcceptFeature) {
		for _, f := range splitComma(v) {
			if f == "accountId" {
				return true
			}
		}
	}
	return false
}

func splitComma(v string) []string {
	var out []string
	start := 0
	for i := 0; i <= len(v); i++ {
		if i == len(v) || v[i] == ',' {
			f := v[start:i]
			for len(f) > 0 && (f[0] == ' ' || f[0] == '\t') {
				f = f[1:]
			}
			for len(f) > 0 && (f[len(f)-1] == ' ' || f[len(f)-1] == '\t') {
				f = f[:len(f)-1]
			}
			if f != "" {
				out = append(out, f)
			}
			start = i + 1
		}
	}
	return out
}

// writeExtEvent writes an event body to an /event/next response.
func writeExtEvent(w http.ResponseWriter, body []byte) error {
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("Content-Length", strconv.Itoa(len(body)))
	h.Set(hdrExtEventID, uuid.NewString())
	w.WriteHeader(http.StatusOK)
	_, err := w.Write(body)
	if err == nil {
		if ferr := http.NewResponseController(w).Flush(); ferr != nil && !errors.Is(ferr, http.ErrNotSupported) {
			err = ferr
		}
	}
	return err
}
