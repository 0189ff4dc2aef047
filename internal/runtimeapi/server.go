package runtimeapi

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Errors of WaitInit, Invoke and WaitInvokeDone, to be tested with errors.Is.
var (
	// ErrClosed: Close was called.
	ErrClosed = errors.New("runtime api closed")
	// ErrBusy: another invocation is in progress (its runtime answer or its
	// INVOKE extensions are not done yet; see WaitInvokeDone).
	ErrBusy = errors.New("another invoke is in progress")
	// ErrExited: the runtime's process exited without answering
	// (Invocation.Exited).
	ErrExited = errors.New("runtime exited")
	// ErrInvalidState: the runtime cannot take an event in its current state
	// (for instance it has not answered the previous one).
	ErrInvalidState = errors.New("invalid state transition")
	// ErrInvalidInvocation: the Invocation breaks a rule of its fields.
	ErrInvalidInvocation = errors.New("invalid invocation")
	// ErrNoInvocation: WaitInvokeDone was called before any Invoke.
	ErrNoInvocation = errors.New("no invocation")
)

// Server is the Runtime API of one execution environment, with its
// Extensions API and Telemetry API. Create it with New; the zero value is
// not usable. All methods are safe for concurrent use. Apart from one
// telemetry sender per subscription (see Telemetry), a Server starts no
// goroutines of its own: its work happens in the HTTP handlers and in the
// invoker's calls. Close ends everything.
type Server struct {
	log       *slog.Logger
	now       func() time.Time
	maxBytes  int64
	maxStream int64
	maxConns  int
	fn        FunctionInfo
	handler   http.Handler
	telemetry *Telemetry

	initDone chan struct{} // closed when init resolves; initErr is then set
	closedCh chan struct{} // closed by Close

	mu           sync.Mutex
	state        State
	runtimeReady bool // the runtime called its first /next (or /restore/next)
	snapshot     SnapshotRole
	// restoreNext is set once the runtime called /restore/next;
	// restoreGen numbers the ones parked (SnapshotTaken): only the latest
	// stays.
	restoreNext  bool
	restoreGen   int
	initResolved bool
	initErr      error // nil, *InitError or ErrClosed
	// ckpt, once Checkpoint was called, receives the outcome of the
	// checkpoint answer to the parked /next.
	ckpt     chan error
	pending  *call // queued by Invoke, not yet written to a /next
	current  *call // written to a /next, not yet answered
	inflight *call // the invocation not yet complete (runtime + extensions)
	last     *call // the invocation Invoke started last
	// wake, when non-nil, is closed to tell the parked /next that something
	// changed (an event is pending, init ended, or the server closed).
	wake chan struct{}
	// transfers are requests moving a body right now; Close puts their
	// deadlines in the past so no handler stays blocked on a stuck peer.
	transfers map[*http.ResponseController]transferDir

	// Extensions API.
	exts       []*extension // registration order
	extByID    map[string]*extension
	extByName  map[string]*extension
	expected   map[string]bool // external extensions (ExpectExtensions)
	regChanged chan struct{}   // closed and replaced on every registration change
	extFailure *ExtensionError // the first init/error or exit/error
	// shutdownWait counts SHUTDOWN events not yet followed by a /next;
	// shutdownDone is closed when it drops to zero.
	shutdownWait int
	shutdownDone chan struct{}
}

type transferDir uint8

const (
	transferRead  transferDir = iota + 1 // reading a POST body
	transferWrite                        // writing an event to /next
)

// call is one Invocation from Invoke to its completion.
type call struct {
	inv       Invocation
	header    http.Header // the /next response headers
	delivered time.Time   // by Server.now, when written to /next

	done      chan struct{} // closed by finish: the answer (or a stream's start) is there
	finished  bool
	abandoned bool // Invoke returned early; the answer is accepted and dropped
	// answering is set by the first /response or /error for the call:
	// a second one while its body is read is refused, so a runtime cannot
	// make the server hold many bodies or strand a second stream.
	answering bool
	res       Result
	err       error

	stream *io.PipeWriter // a streamed answer in progress

	// Completion: the runtime's answer ended and every extension given the
	// INVOKE event called /event/next again.
	extQueued   bool // INVOKE events queued for the extensions
	extWait     int  // extensions given this INVOKE and not done with it
	runtimeDone bool
	runtimeEnd  time.Time
	produced    int64
	errorType   string
	allDone     chan struct{} // closed when completed
	completed   bool
	comp        Completion
	compErr     error
}

func (c *call) finish(res Result, err error) {
	if c.finished {
		return
	}
	c.finished, c.res, c.err = true, res, err
	close(c.done)
}

// New returns a Server in state Started.
func New(opts Options) *Server {
	s := &Server{
		log:        opts.Logger,
		now:        opts.Now,
		maxBytes:   opts.MaxResponseBytes,
		maxStream:  opts.MaxStreamBytes,
		maxConns:   opts.MaxConns,
		fn:         opts.Function,
		initDone:   make(chan struct{}),
		closedCh:   make(chan struct{}),
		state:      StateStarted,
		snapshot:   opts.Snapshot,
		transfers:  make(map[*http.ResponseController]transferDir),
		extByID:    make(map[string]*extension),
		extByName:  make(map[string]*extension),
		expected:   make(map[string]bool),
		regChanged: make(chan struct{}),
	}
	if s.maxConns <= 0 {
		s.maxConns = DefaultMaxConns
	}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	if s.now == nil {
		s.now = time.Now
	}
	if s.maxBytes <= 0 {
		s.maxBytes = DefaultMaxResponseBytes
	}
	if s.maxStream <= 0 {
		s.maxStream = DefaultMaxStreamBytes
	}
	s.telemetry = newTelemetry(s.log, s.now, opts.DialContext)
	s.handler = s.newRouter()
	return s
}

// Handler returns the HTTP handler of the Runtime, Extensions and Telemetry
// APIs. Serve it on the environment's AWS_LAMBDA_RUNTIME_API listener only.
func (s *Server) Handler() http.Handler { return s.handler }

// Telemetry returns the environment's telemetry stream: the invoker emits
// platform events and log lines there, and the Telemetry API's subscribers
// receive them.
func (s *Server) Telemetry() *Telemetry { return s.telemetry }

// State returns the current state, for logs and metrics.
func (s *Server) State() State {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.state
}

// WaitInit blocks until init is complete and returns nil then, even if
// Close follows. Init is complete when the runtime called its first /next,
// every extension named to ExpectExtensions registered, and every
// registered extension called its first /extension/event/next. It returns
// an *InitError if the runtime posted /init/error or an extension posted
// /extension/init/error or /extension/exit/error first (Type
// Extension.InitError or Extension.ExitError), ErrClosed if Close came
// first, or ctx.Err().
func (s *Server) WaitInit(ctx context.Context) error {
	select {
	case <-s.initDone:
		s.mu.Lock()
		defer s.mu.Unlock()
		return s.initErr
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Invoke hands inv to the runtime's parked /next (or to its next one, also
// before init finishes: the event waits for init) and waits for the
// runtime's /response or /error for inv.RequestID; with inv.Stream, only
// for the start of the /response (see Result.Body). At the moment the event
// is written to the runtime, every extension subscribed to INVOKE gets its
// INVOKE event. Invoke returns as soon as the runtime answered, before the
// extensions are done: WaitInvokeDone tells when the invocation is
// complete, and the next Invoke fails with ErrBusy until then.
//
// When ctx ends first, Invoke returns ctx.Err(): an event not yet written is
// withdrawn; an answer to one already written is accepted from the runtime
// and dropped. Once Invoke has returned, ctx no longer matters: a stream in
// progress and the extensions are bounded by WaitInvokeDone's ctx or Close.
// Invoke returns ErrClosed when Close is called meanwhile, ErrExited when
// the runtime exits without answering (Invocation.Exited), ErrBusy while
// another invocation is not complete, the *InitError once init failed, the
// *ExtensionError once an extension failed, an error wrapping
// ErrInvalidState when the runtime still owes an answer, and one wrapping
// ErrInvalidInvocation when inv breaks a rule of its fields. A function
// error is a Result with ErrorType set and a nil error.
func (s *Server) Invoke(ctx context.Context, inv Invocation) (Result, error) {
	c, err := s.newCall(inv)
	if err != nil {
		return Result{}, err
	}

	s.mu.Lock()
	switch {
	case s.state == StateClosed:
		s.mu.Unlock()
		return Result{}, ErrClosed
	case s.inflight != nil:
		s.mu.Unlock()
		return Result{}, ErrBusy
	case s.state == StateInitError:
		err := s.initErr
		s.mu.Unlock()
		return Result{}, err
	case s.extFailure != nil:
		err := s.extFailure
		s.mu.Unlock()
		return Result{}, err
	}
	if from, ok := s.fire(evInvoke); !ok {
		s.mu.Unlock()
		return Result{}, fmt.Errorf("invoke %s in state %s: %w", inv.RequestID, from, ErrInvalidState)
	}
	s.inflight, s.last = c, c
	s.pending = c
	s.wakeParked()
	s.mu.Unlock()

	var gaveUp error
	select {
	case <-c.done:
	case <-ctx.Done():
		gaveUp = ctx.Err()
	case <-inv.Exited:
		t := time.NewTimer(inv.ExitSettle)
		select {
		case <-c.done:
		case <-t.C:
			gaveUp = ErrExited
		case <-ctx.Done():
			gaveUp = ctx.Err()
		}
		t.Stop()
	}

	s.mu.Lock()
	defer s.mu.Unlock()
	if c.finished {
		if c.err != nil {
			s.failCall(c, c.err)
		}
		return c.res, c.err
	}
	c.abandoned = true
	if s.pending == c {
		s.pending = nil
	}
	s.failCall(c, gaveUp)
	s.log.Debug("invoke abandoned", "requestId", inv.RequestID, "state", s.state, "err", gaveUp)
	return Result{}, gaveUp
}

// WaitInvokeDone blocks until the invocation that Invoke started last is
// complete: the runtime's answer fully received (a stream to its last
// byte) and every extension that got its INVOKE event back in
// /extension/event/next. It returns the invocation's Completion, or the
// error that ended it (the ctx error that made Invoke give up, ErrClosed,
// an *ExtensionError), or ctx.Err() when ctx ends first, or
// ErrNoInvocation. It may be called any number of times.
func (s *Server) WaitInvokeDone(ctx context.Context) (Completion, error) {
	s.mu.Lock()
	c := s.last
	s.mu.Unlock()
	if c == nil {
		return Completion{}, ErrNoInvocation
	}
	select {
	case <-c.allDone: // a done invocation wins over a done ctx
		s.mu.Lock()
		defer s.mu.Unlock()
		return c.comp, c.compErr
	default:
	}
	select {
	case <-c.allDone:
		s.mu.Lock()
		defer s.mu.Unlock()
		return c.comp, c.compErr
	case <-ctx.Done():
		return Completion{}, ctx.Err()
	}
}

// maybeComplete completes c once the runtime and its extensions are done;
// s.mu must be held.
func (s *Server) maybeComplete(c *call) {
	if c.completed || !c.runtimeDone || c.extWait > 0 {
		return
	}
	now := s.now()
	c.completed = true
	c.comp = Completion{
		RequestID:       c.inv.RequestID,
		RuntimeDuration: c.runtimeEnd.Sub(c.delivered),
		Duration:        now.Sub(c.delivered),
		ProducedBytes:   c.produced,
		ErrorType:       c.errorType,
	}
	close(c.allDone)
	if s.inflight == c {
		s.inflight = nil
	}
}

// failCall ends c's completion with err; s.mu must be held.
func (s *Server) failCall(c *call, err error) {
	if !c.completed {
		c.completed, c.compErr = true, err
		close(c.allDone)
	}
	if s.inflight == c {
		s.inflight = nil
	}
}

// checkInit resolves init once the runtime and every extension are done
// with it; s.mu must be held.
func (s *Server) checkInit() {
	if s.initResolved || !s.runtimeReady {
		return
	}
	for n := range s.expected {
		if s.extByName[n] == nil {
			return
		}
	}
	for _, x := range s.exts {
		if !x.state.done() {
			return
		}
	}
	s.resolveInit(nil)
	s.notifyRegistration()
	s.wakeParked()
}

// deliverable reports whether the runtime may get an event: init is
// complete and nothing failed; s.mu must be held.
func (s *Server) deliverable() bool {
	return s.initResolved && s.initErr == nil && s.extFailure == nil
}

// Close releases a parked /next and every parked /extension/event/next
// (they get 500 InternalServerError), fails a waiting Invoke, WaitInit,
// WaitInvokeDone and Shutdown with ErrClosed, interrupts bodies in transfer
// (a stream in progress ends with ErrClosed), stops the telemetry senders
// (events not yet sent are dropped) and makes every later request fail
// with 500. It is idempotent.
func (s *Server) Close() {
	s.mu.Lock()
	if s.state == StateClosed {
		s.mu.Unlock()
		return
	}
	s.fire(evClose)
	close(s.closedCh)
	s.wakeParked()
	for _, c := range []*call{s.pending, s.current, s.inflight, s.last} {
		if c == nil {
			continue
		}
		c.finish(Result{}, ErrClosed)
		if c.stream != nil {
			if c.res.Body != nil {
				c.res.Body.end(ErrClosed)
			}
			c.stream.CloseWithError(ErrClosed)
		}
		s.failCall(c, ErrClosed)
	}
	s.pending, s.current = nil, nil
	s.resolveInit(ErrClosed)
	for _, x := range s.exts {
		x.wakeParked()
	}
	if s.shutdownDone != nil {
		select {
		case <-s.shutdownDone:
		default:
			close(s.shutdownDone)
		}
	}
	for rc, dir := range s.transfers {
		expire(rc, dir)
	}
	s.mu.Unlock()
	s.telemetry.close()
}

// expire makes the blocked read or write of a transfer fail now. Writers
// without deadlines (tests' recorders) just keep going.
func expire(rc *http.ResponseController, dir transferDir) {
	past := time.Unix(1, 0)
	if dir == transferRead {
		_ = rc.SetReadDeadline(past)
	} else {
		_ = rc.SetWriteDeadline(past)
	}
}

// fire applies ev to the state machine; s.mu must be held. It returns the
// state before ev and whether the table allowed it.
func (s *Server) fire(ev event) (State, bool) {
	from := s.state
	to, ok := transition(from, ev)
	if !ok {
		s.log.Warn("runtime api: transition refused", "state", from, "event", ev)
		return from, false
	}
	if to != from {
		s.log.Debug("runtime api: transition", "from", from, "event", ev, "to", to)
	}
	s.state = to
	return from, true
}

// parkedWake returns the channel a parked /next (or /restore/next) waits
// on, which wakeParked closes; s.mu must be held.
func (s *Server) parkedWake() <-chan struct{} {
	if s.wake == nil {
		s.wake = make(chan struct{})
	}
	return s.wake
}

// park waits, with s.mu released, for wake to close or r's client to go
// away, and returns with s.mu held again, reporting which: the long polls'
// (/next, /restore/next, /extension/event/next) one way to wait.
func (s *Server) park(r *http.Request, wake <-chan struct{}) (gone bool) {
	s.mu.Unlock()
	select {
	case <-wake:
	case <-r.Context().Done():
		gone = true
	}
	s.mu.Lock()
	return gone
}

// wakeParked tells the parked /next, if any, to look again; s.mu must be held.
func (s *Server) wakeParked() {
	if s.wake != nil {
		close(s.wake)
		s.wake = nil
	}
}

// resolveInit records how init ended, once; s.mu must be held.
func (s *Server) resolveInit(err error) {
	if s.initResolved {
		return
	}
	s.initResolved, s.initErr = true, err
	close(s.initDone)
	s.telemetry.endBacklog()
}

// isClosed reports whether Close was called.
func (s *Server) isClosed() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.state == StateClosed
}

// track registers w as moving a body in direction dir until the returned
// function is called; if the server is already closed the deadline is set
// at once.
func (s *Server) track(w http.ResponseWriter, dir transferDir) (untrack func()) {
	rc := http.NewResponseController(w)
	s.mu.Lock()
	s.transfers[rc] = dir
	if s.state == StateClosed {
		expire(rc, dir)
	}
	s.mu.Unlock()
	return func() {
		s.mu.Lock()
		delete(s.transfers, rc)
		s.mu.Unlock()
	}
}

const maxRequestIDLen = 128

// newCall validates inv and prepares its /next headers.
func (s *Server) newCall(inv Invocation) (*call, error) {
	if !ValidRequestID(inv.RequestID) {
		return nil, fmt.Errorf("request id %.64q: must be 1 to %d characters of [A-Za-z0-9_-]: %w",
			inv.RequestID, maxRequestIDLen, ErrInvalidInvocation)
	}
	if inv.Deadline.IsZero() {
		return nil, fmt.Errorf("request %s: no deadline: %w", inv.RequestID, ErrInvalidInvocation)
	}
	if inv.ContentType == "" {
		inv.ContentType = "application/json"
	}
	if inv.TraceID == "" {
		inv.TraceID = NewTraceID(s.now())
	}
	h := make(http.Header, 9)
	set := func(name, value string, always bool) {
		if value != "" || always {
			h[name] = []string{value}
		}
	}
	set(hdrRequestID, inv.RequestID, true)
	set(hdrDeadlineMs, strconv.FormatInt(inv.Deadline.UnixMilli(), 10), true)
	set(hdrFunctionARN, inv.InvokedFunctionARN, true)
	set(hdrTraceID, inv.TraceID, true)
	// JSON values: the line breaks of pretty-printed JSON (a client
	// context is the caller's base64 of any JSON) are whitespace there and
	// travel as spaces, as Go's header writer would send them.
	set(hdrClientContext, jsonLineBreaksToSpaces(inv.ClientContext), false)
	set(hdrCognitoIdentity, jsonLineBreaksToSpaces(inv.CognitoIdentity), false)
	set(hdrTenantID, inv.TenantID, false)
	set("Content-Type", inv.ContentType, true)
	set("Content-Length", strconv.Itoa(len(inv.Payload)), true)
	for name, v := range h {
		if !validHeaderValue(v[0]) {
			return nil, fmt.Errorf("request %s: header %s holds a control character: %w",
				inv.RequestID, name, ErrInvalidInvocation)
		}
	}
	return &call{inv: inv, header: h, done: make(chan struct{}), allDone: make(chan struct{})}, nil
}

// jsonLineBreaksToSpaces replaces CR and LF with spaces: in JSON they can
// only be whitespace between tokens (inside strings they are escaped).
func jsonLineBreaksToSpaces(v string) string {
	if !strings.ContainsAny(v, "\r\n") {
		return v
	}
	return strings.NewReplacer("\r", " ", "\n", " ").Replace(v)
}

// ValidRequestID reports whether id can be a request id as the Runtime API
// requires: 1 to 128 characters of [A-Za-z0-9_-].
func ValidRequestID(id string) bool {
	if id == "" || len(id) > maxRequestIDLen {
		return false
	}
	for i := 0; i < len(id); i++ {
		switch c := id[i]; {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9', c == '-', c == '_':
		default:
			return false
		}
	}
	return true
}

// validHeaderValue reports whether v can be sent as a header value unchanged:
// no control characters but tab (RFC 9110 field-value).
func validHeaderValue(v string) bool {
	for i := 0; i < len(v); i++ {
		if c := v[i]; (c < 0x20 && c != '\t') || c == 0x7f {
			return false
		}
	}
	return true
}

// NewTraceID makes an unsampled X-Ray trace header for an invocation that
// came without one: Root=1-<epoch seconds hex>-<96 random bits>;Parent=<64
// random bits>;Sampled=0.
func NewTraceID(now time.Time) string {
	var b [20]byte
	_, _ = rand.Read(b[:]) // never fails (crypto/rand)
	return fmt.Sprintf("Root=1-%08x-%s;Parent=%s;Sampled=0",
		uint32(now.Unix()), hex.EncodeToString(b[:12]), hex.EncodeToString(b[12:]))
}
