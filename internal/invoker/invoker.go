package invoker

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"sync"
	"time"

	"golang.org/x/time/rate"

	"github.com/kappa-run/kappa/internal/apierr"
	"github.com/kappa-run/kappa/internal/function"
	"github.com/kappa-run/kappa/internal/logs"
	"github.com/kappa-run/kappa/internal/runtimeapi"
	"github.com/kappa-run/kappa/internal/sandbox"
)

// RootFSProvider returns the read-only root filesystem of an image digest;
// *image.Store implements it.
type RootFSProvider interface {
	RootFS(ctx context.Context, digest string) (string, error)
	// Release drops the reference RootFS took.
	Release(digest string) error
}

// Options configure an Invoker.
type Options struct {
	Runtime sandbox.Runtime
	Images  RootFSProvider
	Logs    *logs.Store // nil: lines are not stored
	Region  string
	Account string
	// MaxEnvironments caps live environments across all functions.
	MaxEnvironments int
	// IdleTimeout is how long an idle environment is kept warm.
	IdleTimeout time.Duration
	// InitTimeout caps the init phase (Lambda: 10 s).
	InitTimeout time.Duration
	// FreezeIdle freezes idle environments (cgroup freezer) so they use no
	// CPU between invocations; they are thawed on the next one.
	FreezeIdle bool
	// FreezeAfter is how long an environment stays idle before it is
	// frozen (0: at once, as Lambda does). A short delay spares an
	// environment that is invoked again at once the freeze and the thaw,
	// which cost more than the invocation itself; background work of the
	// function may run that much longer after its response.
	FreezeAfter time.Duration
	// ShutdownGrace is how long a reaped environment's runtime has between
	// SIGTERM and SIGKILL.
	ShutdownGrace time.Duration
	// MemAvailable reports the host's available memory in bytes; when it
	// falls below MinMemAvailable, least recently used idle environments
	// are reaped. nil disables the policy.
	MemAvailable    func() (uint64, error)
	MinMemAvailable uint64
	// ScaleBurst and ScaleRate bound how fast a function adds environments:
	// a bucket of ScaleBurst cold starts refilled at ScaleRate per second
	// (Lambda: 1,000 per 10 s, refilled continuously).
	ScaleBurst int
	ScaleRate  float64
	Logger     *slog.Logger
	Now        func() time.Time
	// Observer is told every invocation's outcome; nil ignores them.
	Observer Observer
	// InitBinary is a static kappa executable mounted into environments
	// whose image has external extensions, to run them (package envinit);
	// "" disables external extensions.
	InitBinary string
	// Spares keeps created-but-not-started environments for recently used
	// configurations (see SpareOptions); the zero value keeps none.
	Spares SpareOptions
	// SnapshotDir keeps the snapshots of SnapStart versions (see
	// Snapshot); "" takes none. The Runtime must implement
	// sandbox.Snapshotter, and InitBinary be set.
	SnapshotDir string
	// SnapshotWanted reports whether version c (same RevisionID) still
	// exists. A snapshot is stored only if it does, so that one taken
	// while its version is deleted is not left behind: the caller deletes
	// a version before it calls DropSnapshots. nil: always.
	SnapshotWanted func(ctx context.Context, c function.Config) bool
}

// Request is one synchronous invocation.
type Request struct {
	Config     function.Config
	RequestID  string
	Payload    []byte
	InvokedARN string
	// TraceID is the X-Amzn-Trace-Id; generated when empty.
	TraceID       string
	ClientContext string
	TenantID      string
	// Tail asks for the last 4 KB of the invocation's log.
	Tail bool
	// Reserved is the function's reserved concurrency (nil: none); it caps
	// the function's concurrent invocations, 0 throttling all.
	Reserved *int
	// Unreserved is the account concurrency left for functions without a
	// reservation, shared by all of them.
	Unreserved int
	// Stream asks for the response as the runtime produces it
	// (InvokeWithResponseStream): see Response.Stream.
	Stream bool
}

// Response is the outcome of an invocation that ran (successfully or with a
// function error). Platform refusals are returned as errors instead.
type Response struct {
	Payload     []byte
	ContentType string
	// FunctionError is "Unhandled" when the invocation failed, else "".
	FunctionError   string
	ExecutedVersion string
	LogTail         []byte
	// ColdStart is true when a new environment was started for it.
	ColdStart bool
	Duration  time.Duration
	// Stream, when set (Request.Stream and the runtime streamed), is the
	// response body as the function produces it; Payload is then nil. The
	// caller reads it and then calls Finish.
	Stream io.ReadCloser

	end    func() (healthy bool, se StreamEnd)
	finish func() StreamEnd
	// ReportLater is set when the invocation's record (Observer.Invoked)
	// comes after Invoke returned: a stream, or an environment whose
	// INVOKE extensions are still at work.
	ReportLater bool
	// after, when set, completes the invocation after the caller has the
	// response (an environment whose extensions are still at work).
	after func()
}

// Invoker owns every execution environment of the server. Safe for
// concurrent use.
type Invoker struct {
	opts Options
	log  *slog.Logger

	mu     sync.Mutex
	idle   map[string][]*env // by config key, most recently used last
	live   int               // environments existing or being created
	all    map[*env]struct{}
	closed bool

	// inflight counts running invocations per function; unreservedInflight
	// those of functions without a reservation.
	inflight           map[string]int
	unreservedInflight int
	scaling            map[string]*rate.Limiter
	// initFailures backs off cold starts of configurations whose init
	// keeps failing.
	initFailures map[string]*initFailure
	// provisions are the provisioned-concurrency targets by owner.
	provisions map[string]*provision
	// provisioning counts the environments being made for each owner, so
	// that concurrent fills (a Provision while one runs) never make more
	// than wanted.
	provisioning map[string]int
	// spares are created sandboxes for cold starts (nil: none kept).
	spares *spares
	// snapTaking has a channel, closed when done, per snapshot being
	// taken (by directory); snapSlots bounds the takes at once.
	snapMu     sync.Mutex
	snapTaking map[string]chan struct{}
	snapSlots  chan struct{}
	// snapFailures counts a snapshot's failed restores and retakes in a
	// row, by directory (see maxSnapshotFailures).
	snapFailures map[string]int
	// snapDrops counts DropSnapshots calls (see storeSnapshot).
	snapDrops uint64

	stop chan struct{}
	wg   sync.WaitGroup
	// teardowns are the environments and spares being destroyed in the
	// background; Close waits for them.
	teardowns teardowns
}

// New returns an Invoker and starts its idle reaper.
func New(opts Options) *Invoker {
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.Observer == nil {
		opts.Observer = nopObserver{}
	}
	if opts.MaxEnvironments <= 0 {
		opts.MaxEnvironments = 64
	}
	if opts.IdleTimeout <= 0 {
		opts.IdleTimeout = 10 * time.Minute
	}
	if opts.InitTimeout <= 0 {
		opts.InitTimeout = 10 * time.Second
	}
	if opts.ScaleBurst <= 0 {
		opts.ScaleBurst = 1000
	}
	if opts.ScaleRate <= 0 {
		opts.ScaleRate = 100
	}
	inv := &Invoker{
		opts: opts, log: opts.Logger,
		idle: map[string][]*env{}, all: map[*env]struct{}{},
		inflight: map[string]int{}, scaling: map[string]*rate.Limiter{},
		initFailures: map[string]*initFailure{}, provisions: map[string]*provision{}, provisioning: map[string]int{},
		snapTaking: map[string]chan struct{}{},
		snapSlots:  make(chan struct{}, maxSnapshotTakes), snapFailures: map[string]int{},
		stop: make(chan struct{}),
	}
	if opts.SnapshotDir != "" {
		sweepSnapshots(opts.SnapshotDir)
	}
	inv.spares = newSpares(opts)
	inv.wg.Add(1)
	go inv.reaper()
	return inv
}

// configKey identifies the configuration an environment was built for; an
// environment only ever serves invocations of the same key.
func configKey(c function.Config) string {
	return c.Name + "/" + c.Version + "/" + c.Code.Digest + "/" + c.RevisionID
}

// Invoke runs req in a warm environment, or a new one.
func (inv *Invoker) Invoke(ctx context.Context, req Request) (*Response, error) {
	if req.TraceID == "" {
		req.TraceID = runtimeapi.NewTraceID(inv.opts.Now())
	}
	if err := inv.admit(req); err != nil {
		if e := apierr.As(err); e != nil {
			inv.opts.Observer.Throttled(req.Config.Name, e.Reason)
		}
		return nil, err
	}
	start := inv.opts.Now()
	// A warm environment that turns out dead (its runtime exited after the
	// previous invocation) or cannot be thawed is discarded and the
	// invocation tried again; the last attempt always starts a new one.
	for attempt := 0; ; attempt++ {
		resp, retry, err := inv.attempt(ctx, req, start, attempt >= 2)
		if retry {
			continue
		}
		if resp != nil && resp.Stream != nil {
			// The invocation runs on while the caller reads the stream.
			resp.ReportLater = true
			finish := resp.finish
			var once sync.Once
			var se StreamEnd
			resp.finish = func() StreamEnd {
				once.Do(func() {
					se = finish()
					inv.done(req)
				})
				return se
			}
			return resp, nil
		}
		if resp != nil && resp.after != nil {
			after := resp.after
			resp.after = nil
			resp.ReportLater = true
			go func() {
				after()
				inv.done(req)
			}()
			return resp, nil
		}
		inv.done(req)
		return resp, err
	}
}

// attempt runs req once, in a warm environment unless forceCold. retry
// reports that the warm environment was unusable before it took the event.
func (inv *Invoker) attempt(ctx context.Context, req Request, start time.Time, forceCold bool) (_ *Response, retry bool, _ error) {
	var e *env
	var err error
	if forceCold {
		err = inv.reserve(req.Config)
	} else {
		e, err = inv.acquire(req.Config)
	}
	if err != nil {
		return nil, false, err
	}
	cold := e == nil
	if cold {
		e, err = inv.coldStartWithRetry(ctx, req)
		if err != nil {
			inv.release(nil, false)
			var fe *functionError
			if errors.As(err, &fe) {
				return inv.platformError(req, fe, start), false, nil
			}
			return nil, false, err
		}
	} else if err := e.wake(ctx); err != nil {
		inv.log.Warn("thaw failed; starting a new environment", "env", e.id, "err", err)
		inv.release(e, false)
		return nil, true, nil
	}
	resp, healthy, finish := inv.run(ctx, e, req, cold)
	if resp == nil {
		inv.release(e, false)
		return nil, true, nil
	}
	resp.Duration = inv.opts.Now().Sub(start)
	resp.ColdStart = cold
	if resp.Stream != nil {
		resp.finish = func() StreamEnd {
			healthy, se := resp.end()
			inv.release(e, healthy)
			inv.wantSpare(req.Config)
			return se
		}
		return resp, false, nil
	}
	done := func() {
		h := healthy
		if finish != nil && !finish() {
			h = false
		}
		inv.release(e, h)
		inv.wantSpare(req.Config)
	}
	if finish != nil && e.extensions {
		// As Lambda does, the caller has the runtime's answer at once;
		// the environment stays busy (and the invocation counts against
		// concurrency) until its INVOKE extensions are done, and REPORT
		// includes their time.
		resp.after = done
		return resp, false, nil
	}
	// Synchronous on purpose: a client's next request must find this
	// environment idle, or sequential invocations would cold-start.
	done()
	return resp, false, nil
}

func throttle(reason string) error {
	return &apierr.Error{Kind: apierr.TooManyRequests, Message: "Rate Exceeded.", Reason: reason, RetryAfterSeconds: 1}
}

// admit counts req against its function's reserved concurrency or the
// account's unreserved concurrency, or throttles it. Nothing queues behind
// a throttle.
func (inv *Invoker) admit(req Request) error {
	inv.mu.Lock()
	defer inv.mu.Unlock()
	fn := req.Config.Name
	if req.Reserved != nil {
		if inv.inflight[fn] >= *req.Reserved {
			return throttle("ReservedFunctionConcurrentInvocationLimitExceeded")
		}
	} else {
		if inv.unreservedInflight >= req.Unreserved {
			return throttle("ConcurrentInvocationLimitExceeded")
		}
		inv.unreservedInflight++
	}
	inv.inflight[fn]++
	return nil
}

func (inv *Invoker) done(req Request) {
	inv.mu.Lock()
	defer inv.mu.Unlock()
	fn := req.Config.Name
	if req.Reserved == nil {
		inv.unreservedInflight--
	}
	if inv.inflight[fn]--; inv.inflight[fn] <= 0 {
		delete(inv.inflight, fn)
	}
}

// Concurrency returns the number of running invocations of a function.
func (inv *Invoker) Concurrency(fn string) int {
	inv.mu.Lock()
	defer inv.mu.Unlock()
	return inv.inflight[fn]
}

// acquire takes an idle environment for c, or reserves room for a new one
// (returning nil).
func (inv *Invoker) acquire(c function.Config) (*env, error) {
	inv.mu.Lock()
	defer inv.mu.Unlock()
	if inv.closed {
		return nil, apierr.New(apierr.Internal, "the server is shutting down")
	}
	key := configKey(c)
	for list := inv.idle[key]; len(list) > 0; list = inv.idle[key] {
		e := list[len(list)-1]
		inv.idle[key] = list[:len(list)-1]
		if len(inv.idle[key]) == 0 {
			delete(inv.idle, key)
		}
		select {
		case <-e.sb.Done():
			// Its runtime exited while idle (e.g. after reporting a panic):
			// never hand it an invocation.
			inv.live--
			delete(inv.all, e)
			inv.teardowns.run(func() { e.destroy(context.Background()) })
			if owner := e.owner; owner != "" && inv.provisions[owner] != nil && !inv.closed {
				// A provisioned one is replaced, as release does.
				inv.wg.Add(1)
				go func() {
					defer inv.wg.Done()
					inv.fill(owner)
				}()
			}
			continue
		default:
		}
		return e, nil
	}
	return nil, inv.reserveLocked(c)
}

// reserve makes room for a new environment of c (see reserveLocked).
func (inv *Invoker) reserve(c function.Config) error {
	inv.mu.Lock()
	defer inv.mu.Unlock()
	if inv.closed {
		return apierr.New(apierr.Internal, "the server is shutting down")
	}
	return inv.reserveLocked(c)
}

// reserveLocked applies the scaling rate and the environment cap (evicting
// the least recently used idle environment if needed) and counts a new
// environment as live.
func (inv *Invoker) reserveLocked(c function.Config) error {
	lim := inv.scaling[c.Name]
	if lim == nil {
		lim = rate.NewLimiter(rate.Limit(inv.opts.ScaleRate), inv.opts.ScaleBurst)
		inv.scaling[c.Name] = lim
	}
	// Scaling-rate throttles carry Reason FunctionInvocationRateLimitExceeded:
	// Lambda documents a 429 for scaling faster than the rate, and this is
	// the per-function rate reason of its API model.
	if !lim.AllowN(inv.opts.Now(), 1) {
		return throttle("FunctionInvocationRateLimitExceeded")
	}
	if inv.live >= inv.opts.MaxEnvironments {
		// Make room by evicting the least recently used idle environment.
		if victim := inv.oldestIdleLocked(); victim != nil {
			inv.removeIdleLocked(victim)
			inv.live--
			delete(inv.all, victim)
			inv.teardowns.run(func() { victim.destroy(context.Background()) })
		} else {
			return throttle("ConcurrentInvocationLimitExceeded")
		}
	}
	inv.live++
	return nil
}

// oldestIdleLocked returns the least recently used idle on-demand
// environment; provisioned ones are never evicted.
func (inv *Invoker) oldestIdleLocked() *env {
	var oldest *env
	for _, list := range inv.idle {
		for _, e := range list {
			if e.owner == "" && (oldest == nil || e.lastUsed.Before(oldest.lastUsed)) {
				oldest = e
			}
		}
	}
	return oldest
}

func (inv *Invoker) removeIdleLocked(e *env) {
	list := inv.idle[e.key]
	for i, x := range list {
		if x == e {
			inv.idle[e.key] = append(list[:i:i], list[i+1:]...)
			break
		}
	}
	if len(inv.idle[e.key]) == 0 {
		delete(inv.idle, e.key)
	}
}

// release returns e to the idle pool when healthy, or destroys it. A nil e
// gives back a reservation made by acquire.
func (inv *Invoker) release(e *env, healthy bool) {
	if e != nil {
		e.idle()
	}
	inv.mu.Lock()
	if e == nil {
		inv.live--
		inv.mu.Unlock()
		return
	}
	stale := e.owner == "" && e.retired
	if healthy && !inv.closed && !stale {
		e.lastUsed = inv.opts.Now()
		inv.idle[e.key] = append(inv.idle[e.key], e)
		inv.mu.Unlock()
		if inv.opts.FreezeIdle {
			e.sleepAfter(inv.opts.FreezeAfter)
		}
		return
	}
	inv.live--
	delete(inv.all, e)
	owner := e.owner
	refill := owner != "" && inv.provisions[owner] != nil && !inv.closed
	if refill {
		inv.wg.Add(1)
	}
	inv.mu.Unlock()
	e.destroy(context.Background())
	if refill {
		go func() {
			defer inv.wg.Done()
			inv.fill(owner)
		}()
	}
}

// errorType extracts the error type of a failed invocation.
func errorType(resp *Response, fe *functionError) string {
	if fe != nil {
		return fe.Type
	}
	if resp.FunctionError == "" {
		return ""
	}
	var body struct {
		ErrorType string `json:"errorType"`
	}
	json.Unmarshal(resp.Payload, &body)
	return body.ErrorType
}

// exitSettle is how long an exited runtime's answer may still arrive.
const exitSettle = 20 * time.Millisecond

// functionError is a platform-detected failure reported to the caller as a
// function error (HTTP 200 + X-Amz-Function-Error: Unhandled).
type functionError struct {
	Type    string
	Message string
	// Payload, when set, is sent verbatim (a runtime's /init/error body).
	Payload []byte
	tail    []byte
	// initPhase marks failures of the init phase (init error, init
	// timeout, exit during init), which Lambda retries once.
	initPhase bool
}

func (e *functionError) Error() string { return e.Type + ": " + e.Message }

func (inv *Invoker) platformError(req Request, fe *functionError, start time.Time) *Response {
	payload := fe.Payload
	if payload == nil {
		payload, _ = json.Marshal(map[string]string{
			"errorType":    fe.Type,
			"errorMessage": fmt.Sprintf("RequestId: %s Error: %s", req.RequestID, fe.Message),
		})
	}
	dur := inv.opts.Now().Sub(start)
	resp := &Response{
		Payload: payload, ContentType: "application/json", FunctionError: "Unhandled",
		ExecutedVersion: req.Config.Version, ColdStart: true, Duration: dur,
	}
	if req.Tail {
		// Lambda logs START, END and REPORT even when the environment never
		// initialised; the init output comes first.
		var b []byte
		b = append(b, fe.tail...)
		b = fmt.Appendf(b, "START RequestId: %s Version: %s\n", req.RequestID, req.Config.Version)
		b = fmt.Appendf(b, "END RequestId: %s\n", req.RequestID)
		// The init that failed is the whole duration: billed once.
		b = append(b, reportLineBilled(req.RequestID, dur, dur, req.Config.MemorySize, 0, dur, true, false)...)
		b = append(b, '\n')
		if len(b) > logs.TailBytes {
			b = b[len(b)-logs.TailBytes:]
		}
		resp.LogTail = b
	}
	return resp
}

// coldStart creates, starts and initialises a new environment for req.
func (inv *Invoker) coldStart(ctx context.Context, c function.Config, initType string, initTimeout time.Duration) (*env, error) {
	start := inv.opts.Now()
	p, err := inv.prepare(ctx, c, initType)
	if err != nil {
		return nil, err
	}
	// Start it while its log and Runtime API are set up: output is held
	// until bound below, and the runtime's first connection waits in the
	// listener's backlog until served.
	started := make(chan error, 1)
	go func() { started <- p.sb.Start(ctx) }()
	e := &env{id: p.id, key: configKey(c), fn: c.Name, digest: c.Code.Digest, images: inv.opts.Images}
	if inv.opts.Logs != nil {
		if s, err := inv.opts.Logs.Stream(c.Name, p.stream); err == nil {
			e.stream = s
		} else {
			inv.log.Warn("open log stream", "function", c.Name, "err", err)
		}
	}
	lc := c.LoggingConfig
	e.capture = logs.NewCapture(e.stream, logs.ParseFormat(lc.LogFormat, lc.ApplicationLogLevel, lc.SystemLogLevel), inv.opts.Now)
	e.capture.Begin()
	p.stdout.bind(e.capture.Writer())
	p.stderr.bind(e.capture.Writer())
	args, cwd := command(c), workingDir(c)
	sb := p.sb
	e.sb = sb
	apiOpts := runtimeapi.Options{Logger: inv.log, Now: inv.opts.Now,
		Function: runtimeapi.FunctionInfo{Name: c.Name, Version: c.Version, Handler: handler(c), AccountID: inv.opts.Account}}
	if d, ok := sb.(sandbox.Dialer); ok {
		apiOpts.DialContext = d.DialContext // telemetry reaches subscribers inside the environment
	}
	switch {
	case p.restoreFrom != "":
		apiOpts.Snapshot = runtimeapi.SnapshotRestored
	case initType == initSnapStart:
		apiOpts.Snapshot = runtimeapi.SnapshotTaken
	}
	e.api = runtimeapi.New(apiOpts)
	if len(p.extensions) > 0 {
		e.extensions = true
		e.api.ExpectExtensions(p.extensions...)
		e.capture.OnFunctionLine(e.api.Telemetry().FunctionLog)
	}
	// Before serving: the process may already be running (see started).
	e.api.Telemetry().Platform(runtimeapi.PlatformInitStart{InitializationType: initType, Phase: "init",
		FunctionName: c.Name, FunctionVersion: c.Version})
	e.srv = runtimeapi.NewHTTPServer(e.api)
	go e.srv.Serve(sb.RuntimeAPIListener())

	inv.mu.Lock()
	inv.all[e] = struct{}{}
	inv.mu.Unlock()
	fail := func(fe *functionError) (*env, error) {
		inv.mu.Lock()
		delete(inv.all, e)
		inv.mu.Unlock()
		e.destroy(context.Background())
		fe.tail = e.capture.End()
		return nil, fe
	}

	if err := <-started; err != nil {
		switch {
		case errors.Is(err, sandbox.ErrInvalidEntrypoint):
			inv.log.Debug("invalid entrypoint", "function", c.Name, "err", err)
			return fail(&functionError{Type: "Runtime.InvalidEntrypoint",
				Message: fmt.Sprintf("fork/exec %s: no such file, or not an executable the function user may run", args[0])})
		case errors.Is(err, sandbox.ErrInvalidWorkingDir):
			inv.log.Debug("invalid working directory", "function", c.Name, "err", err)
			return fail(&functionError{Type: "Runtime.InvalidWorkingDir",
				Message: fmt.Sprintf("chdir %s: no such directory, or not one the function user may enter", cwd)})
		default:
			inv.mu.Lock()
			delete(inv.all, e)
			inv.mu.Unlock()
			e.destroy(context.Background())
			if p.restoreFrom != "" {
				// This one starts the ordinary way.
				inv.brokenSnapshot(c, p, err)
				return inv.coldStart(withoutRestore(ctx), c, initType, initTimeout)
			}
			return nil, apierr.Wrap(apierr.Internal, err, "start execution environment")
		}
	}
	waitInit := initTimeout
	if p.restoreFrom != "" {
		waitInit = min(waitInit, restoreConnectTimeout)
	}
	initCtx, cancel := context.WithTimeout(ctx, waitInit)
	defer cancel()
	// restoreUnreached and hooksTimedOut are what a restored environment's
	// wait ends with when its runtime did not reach its Runtime API, or
	// did but its after-restore hooks overran; decided once, here.
	restoreUnreached := errors.New("restored runtime did not reach its Runtime API")
	hooksTimedOut := errors.New("after-restore hooks timed out")
	initDone := make(chan error, 1)
	go func() {
		err := e.api.WaitInit(initCtx)
		if p.restoreFrom != "" && errors.Is(err, context.DeadlineExceeded) && ctx.Err() == nil {
			if !e.api.RestoreNextCalled() {
				err = restoreUnreached
			} else {
				// The restored runtime reached its Runtime API and runs
				// its after-restore hooks: they have what is left of
				// Lambda's restore phase.
				rest, cancel := context.WithTimeout(ctx, restoreHookTimeout-waitInit)
				err = e.api.WaitInit(rest)
				cancel()
				if errors.Is(err, context.DeadlineExceeded) && ctx.Err() == nil {
					err = hooksTimedOut
				}
			}
		}
		initDone <- err
	}()
	select {
	case err := <-initDone:
		var ie *runtimeapi.InitError
		switch {
		case errors.As(err, &ie) && ie.Restore:
			return inv.restoreHookFailed(c, ie, fail)
		case errors.Is(err, hooksTimedOut):
			inv.log.Info("after-restore hooks timed out", "function", c.Name, "version", c.Version, "after", restoreHookTimeout)
			fail(&functionError{Type: "Sandbox.Timedout", Message: "restore phase timed out", initPhase: true})
			return nil, apierr.New(apierr.SnapStartTimeout,
				"The runtime's afterRestore hooks did not finish within %s of the restore of %s:%s. See the function's logs.",
				restoreHookTimeout, c.Name, c.Version)
		case errors.Is(err, restoreUnreached):
			// A restored runtime asks for its event at once. This one
			// did not: start the ordinary way instead.
			desc := ""
			if d, ok := sandbox.As[sandbox.Describer](sb); ok {
				desc = d.Describe()
			}
			inv.log.Warn("restored environment did not reach its Runtime API; starting the ordinary way",
				"function", c.Name, "version", c.Version, "env", e.id, "after", waitInit, "processes", desc)
			inv.mu.Lock()
			delete(inv.all, e)
			inv.mu.Unlock()
			e.destroy(context.Background())
			inv.brokenSnapshot(c, p, errors.New("the restored environment did not reach its Runtime API"))
			return inv.coldStart(withoutRestore(ctx), c, initType, initTimeout)
		case errors.As(err, &ie):
			return fail(&functionError{Type: ie.Type, Payload: ie.Payload, Message: "init error", initPhase: true})
		case errors.Is(err, context.DeadlineExceeded) && ctx.Err() == nil:
			return fail(&functionError{Type: "Sandbox.Timedout", initPhase: true,
				Message: fmt.Sprintf("Init phase timed out after %.2f seconds", initTimeout.Seconds())})
		case err != nil:
			return fail(&functionError{Type: "Sandbox.Failure", Message: err.Error()})
		}
	case <-sb.Done():
		// A runtime that posts /init/error and exits at once: its report
		// wins over the exit.
		select {
		case err := <-initDone:
			var ie *runtimeapi.InitError
			if errors.As(err, &ie) && ie.Restore {
				return inv.restoreHookFailed(c, ie, fail)
			}
			if errors.As(err, &ie) {
				return fail(&functionError{Type: ie.Type, Payload: ie.Payload, Message: "init error", initPhase: true})
			}
		case <-time.After(exitSettle):
		}
		fe := exitError(sb.Exit())
		fe.initPhase = true
		return fail(fe)
	}
	e.initDuration = inv.opts.Now().Sub(start)
	e.restored = p.restoreFrom != ""
	if e.restored {
		inv.restoredSnapshot(p.restoreFrom)
	}
	tel := e.api.Telemetry()
	tel.Platform(runtimeapi.PlatformInitRuntimeDone{InitializationType: initType, Phase: "init", Status: runtimeapi.StatusSuccess})
	tel.Platform(runtimeapi.PlatformInitReport{InitializationType: initType, Phase: "init", Status: runtimeapi.StatusSuccess,
		Metrics: runtimeapi.InitReportMetrics{DurationMs: ms(e.initDuration)}})
	return e, nil
}

// restoreHookFailed ends a cold start whose restored runtime reported,
// on /restore/error, that its after-restore hooks failed: the environment
// goes (fail), and the caller gets SnapStartException, as Lambda answers.
// The snapshot stays: the hooks are the function's code, and they would
// fail the same way in an environment restored from a new one.
func (inv *Invoker) restoreHookFailed(c function.Config, ie *runtimeapi.InitError, fail func(*functionError) (*env, error)) (*env, error) {
	msg := ie.Type
	var body struct {
		ErrorMessage string `json:"errorMessage"`
	}
	if json.Unmarshal(ie.Payload, &body) == nil && body.ErrorMessage != "" {
		msg += ": " + body.ErrorMessage
	}
	inv.log.Info("after-restore hooks failed", "function", c.Name, "version", c.Version, "error", msg)
	fail(&functionError{Type: ie.Type, Payload: ie.Payload, Message: "restore error", initPhase: true})
	return nil, apierr.New(apierr.SnapStart,
		"The runtime's afterRestore hook failed after the snapshot of %s:%s was restored (%s). See the function's logs.",
		c.Name, c.Version, msg)
}

// ms is d in milliseconds, as telemetry records carry durations.
func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

func exitError(st sandbox.ExitStatus) *functionError {
	if st.OOMKilled {
		return &functionError{Type: "Runtime.OutOfMemory", Message: "Runtime exited with error: " + st.String()}
	}
	return &functionError{Type: "Runtime.ExitError", Message: "Runtime exited with error: " + st.String()}
}

// run sends one invocation to e and reports whether e may be reused.
//
// finish, when not nil, writes the END and REPORT lines; the caller runs it
// before e serves again.
func (inv *Invoker) run(ctx context.Context, e *env, req Request, cold bool) (_ *Response, healthy bool, finish func() bool) {
	c := req.Config
	if !cold {
		e.capture.Begin()
	} else {
		settleInitOutput(ctx, e)
	}
	e.capture.Line(fmt.Appendf(nil, "START RequestId: %s Version: %s", req.RequestID, c.Version))
	e.api.Telemetry().Platform(runtimeapi.PlatformStart{RequestID: req.RequestID, Version: c.Version})
	timeout := time.Duration(c.Timeout) * time.Second
	start := inv.opts.Now()
	// The deadline is wall-clock time: the runtime compares it with its own
	// clock (Lambda-Runtime-Deadline-Ms), whatever clock measures durations.
	deadline := time.Now().Add(timeout)
	if !e.timeoutFrom.IsZero() {
		// Its init was retried within this invocation: that took from
		// the same timeout.
		deadline = e.timeoutFrom.Add(timeout)
		e.timeoutFrom = time.Time{}
	}
	runCtx, cancel := context.WithDeadline(ctx, deadline)
	keep := false // a streamed response outlives run
	defer func() {
		if !keep {
			cancel()
		}
	}()

	// The call returns early when the runtime exits, once an answer
	// already on its way has had exitSettle to arrive.
	res, err := e.api.Invoke(runCtx, runtimeapi.Invocation{
		RequestID:          req.RequestID,
		Payload:            req.Payload,
		Deadline:           deadline,
		InvokedFunctionARN: req.InvokedARN,
		TraceID:            req.TraceID,
		ClientContext:      req.ClientContext,
		TenantID:           req.TenantID,
		Stream:             req.Stream,
		Exited:             e.sb.Done(),
		ExitSettle:         exitSettle,
	})

	resp := &Response{ExecutedVersion: c.Version, ContentType: "application/json"}
	healthy = true
	var fe *functionError
	status := "success"
	switch {
	case errors.Is(err, runtimeapi.ErrExited):
		if !cold && e.api.State() != runtimeapi.StateRunning {
			// The runtime died before it took this event (it exited after
			// its previous invocation): retry in a fresh environment.
			e.capture.End()
			return nil, false, nil
		}
		fe = exitError(e.sb.Exit())
		status = "failure"
	case err == nil && res.Body != nil:
		keep = true
		inv.stream(e, req, cold, start, resp, res.Body, runCtx, cancel, timeout)
		if res.ContentType != "" {
			resp.ContentType = res.ContentType // e.g. a function URL's http-integration-response
		}
		return resp, true, nil
	case err == nil:
		resp.Payload, resp.ContentType = res.Payload, res.ContentType
		if resp.ContentType == "" {
			resp.ContentType = "application/json"
		}
		if res.ErrorType != "" {
			resp.FunctionError = "Unhandled"
			status = "error"
		}
	case runCtx.Err() == context.DeadlineExceeded && ctx.Err() == nil:
		fe = &functionError{Type: "Sandbox.Timedout", Message: fmt.Sprintf("Task timed out after %.2f seconds", timeout.Seconds())}
		status = "timeout"
	default:
		fe = &functionError{Type: "Sandbox.Failure", Message: err.Error()}
		status = "failure"
	}
	if fe != nil {
		healthy = false
		payload, _ := json.Marshal(map[string]string{
			"errorType":    fe.Type,
			"errorMessage": fmt.Sprintf("RequestId: %s Error: %s", req.RequestID, fe.Message),
		})
		resp.Payload, resp.ContentType, resp.FunctionError = payload, "application/json", "Unhandled"
		if fe.Type == "Sandbox.Timedout" {
			e.capture.Line(fmt.Appendf(nil, "%s %s Task timed out after %.2f seconds",
				inv.opts.Now().UTC().Format("2006-01-02T15:04:05.000Z"), req.RequestID, timeout.Seconds()))
		}
	}
	dur := inv.opts.Now().Sub(start)
	// finish reports false when the environment must not serve again.
	finish = func() bool {
		ok := true
		if e.extensions && fe == nil {
			// The invocation ends when every INVOKE extension is back in
			// /event/next; its REPORT Duration includes their work.
			wctx, wcancel := context.WithDeadline(context.Background(), deadline)
			comp, err := e.api.WaitInvokeDone(wctx)
			wcancel()
			if err != nil {
				ok, status = false, "timeout"
			} else {
				dur = comp.Duration
			}
		}
		tail := inv.report(e, req, cold, start, dur, status, errorType(resp, fe))
		if req.Tail {
			resp.LogTail = tail
		}
		return ok
	}
	if req.Tail {
		inv.settleLogs(e)
		if !finish() {
			healthy = false
		}
		return resp, healthy, nil
	}
	return resp, healthy, finish
}

// report writes an invocation's END and REPORT lines, tells the Observer,
// and returns the invocation's log tail.
func (inv *Invoker) report(e *env, req Request, cold bool, start time.Time, dur time.Duration, status, errType string) []byte {
	c := req.Config
	stats := e.sb.Stats()
	e.capture.Line(fmt.Appendf(nil, "END RequestId: %s", req.RequestID))
	e.capture.Line([]byte(reportLine(req.RequestID, dur, c.MemorySize, stats.MaxMemoryBytes, e.initDuration, cold, e.restored)))
	e.initDurationReported = 0
	if cold {
		e.initDurationReported = e.initDuration
	}
	e.initDuration = 0
	e.invocations++
	tail := e.capture.End()
	billed := time.Duration(math.Ceil(float64(dur)/float64(time.Millisecond))) * time.Millisecond
	if cold {
		billed += e.initDurationReported
	}
	telStatus := status
	if telStatus != runtimeapi.StatusSuccess && telStatus != runtimeapi.StatusError && telStatus != runtimeapi.StatusTimeout {
		telStatus = runtimeapi.StatusFailure
	}
	tel := e.api.Telemetry()
	tel.Platform(runtimeapi.PlatformRuntimeDone{RequestID: req.RequestID, Status: telStatus, ErrorType: errType,
		Metrics: &runtimeapi.RuntimeDoneMetrics{DurationMs: ms(dur)}})
	rm := runtimeapi.ReportMetrics{DurationMs: ms(dur), BilledDurationMs: billed.Milliseconds(), MemorySizeMB: c.MemorySize,
		MaxMemoryUsedMB: int(math.Ceil(float64(stats.MaxMemoryBytes) / (1 << 20)))}
	if cold && e.initDurationReported > 0 {
		init := ms(e.initDurationReported)
		rm.InitDurationMs = &init
	}
	tel.Platform(runtimeapi.PlatformReport{RequestID: req.RequestID, Status: telStatus, ErrorType: errType, Metrics: rm})
	inv.opts.Observer.Invoked(Record{
		Function: c.Name, Version: c.Version, RequestID: req.RequestID, TraceID: req.TraceID,
		Start: start, Duration: dur, Billed: billed, InitDuration: e.initDurationReported, Cold: cold,
		Status: status, ErrorType: errType, MemoryMB: c.MemorySize,
		MaxMemoryBytes: stats.MaxMemoryBytes, Provisioned: e.owner != "",
	})
	inv.log.Debug("invoked", "function", c.Name, "request", req.RequestID, "status", status,
		"cold", cold, "duration", dur)
	return tail
}

// StreamEnd is how a streamed response ended.
type StreamEnd struct {
	// ErrorType and ErrorMessage describe a failure ("" on success): the
	// runtime's error trailers, Sandbox.Timedout, Runtime.ExitError, …
	ErrorType    string
	ErrorMessage string
	// LogTail is the last 4 KB of the log when Request.Tail was set.
	LogTail []byte
}

// Finish waits for a streamed invocation (Response.Stream set) to end —
// the caller reads Stream to its end or closes it first — and releases its
// environment. It must be called exactly once for a streamed response.
func (r *Response) Finish() StreamEnd { return r.finish() }

// stream completes resp for a streamed answer: Stream is the runtime's
// body; a watcher ends it at the deadline or when the runtime dies, and
// resp.end reports the outcome once the runtime's answer is complete.
func (inv *Invoker) stream(e *env, req Request, cold bool, start time.Time, resp *Response,
	body *runtimeapi.ResponseStream, runCtx context.Context, cancel context.CancelFunc, timeout time.Duration) {
	resp.Stream = body
	resp.ContentType = "application/octet-stream"
	type ended struct {
		err error
	}
	endc := make(chan ended, 1)
	go func() {
		waitCtx, stop := context.WithCancel(runCtx)
		defer stop()
		go func() {
			select {
			case <-e.sb.Done():
				stop()
			case <-waitCtx.Done():
			}
		}()
		_, err := e.api.WaitInvokeDone(waitCtx)
		if err != nil {
			body.Close() // a reader blocked on a dead or late runtime gets an error
		}
		endc <- ended{err}
	}()
	resp.end = func() (healthy bool, se StreamEnd) {
		st := <-endc
		cancel()
		status := "success"
		healthy = true
		var serr *runtimeapi.StreamError
		switch {
		case st.err == nil && errors.As(body.Err(), &serr):
			status, se.ErrorType = "error", serr.Type
			var doc struct {
				ErrorMessage string `json:"errorMessage"`
			}
			json.Unmarshal(serr.Payload, &doc)
			se.ErrorMessage = doc.ErrorMessage
		case st.err == nil:
		case runCtx.Err() == context.DeadlineExceeded:
			status, healthy = "timeout", false
			se.ErrorType = "Sandbox.Timedout"
			se.ErrorMessage = fmt.Sprintf("RequestId: %s Error: Task timed out after %.2f seconds", req.RequestID, timeout.Seconds())
			e.capture.Line(fmt.Appendf(nil, "%s %s Task timed out after %.2f seconds",
				inv.opts.Now().UTC().Format("2006-01-02T15:04:05.000Z"), req.RequestID, timeout.Seconds()))
		default:
			status, healthy = "failure", false
			fe := &functionError{Type: "Sandbox.Failure", Message: st.err.Error()}
			select {
			case <-e.sb.Done():
				fe = exitError(e.sb.Exit())
			default:
			}
			se.ErrorType, se.ErrorMessage = fe.Type, fmt.Sprintf("RequestId: %s Error: %s", req.RequestID, fe.Message)
		}
		if req.Tail {
			inv.settleLogs(e)
		}
		tail := inv.report(e, req, cold, start, inv.opts.Now().Sub(start), status, se.ErrorType)
		if req.Tail {
			se.LogTail = tail
		}
		return healthy, se
	}
}

// settleLogs waits briefly for output the runtime wrote just before
// answering to arrive through the pipe, so the tail includes it. Only
// invocations that asked for a tail pay this.
//
// The runtime writes its output before it answers, so those bytes are in
// the pipe by now but may not have reached the capture. Where the sandbox
// can wait for them (sandbox.OutputWaiter), wait, 200 ms at most (the
// reader may be slow to be scheduled on a loaded host); elsewhere give the
// reader a moment and wait for 2 ms of quiet, 20 ms at most.
func (inv *Invoker) settleLogs(e *env) {
	if waitOutput(context.Background(), e, 200*time.Millisecond) {
		return
	}
	start := time.Now()
	time.Sleep(2 * time.Millisecond)
	for time.Since(e.capture.LastWrite()) <= 2*time.Millisecond && time.Since(start) <= 20*time.Millisecond {
		time.Sleep(200 * time.Microsecond)
	}
}

// initOutputWait bounds how long a cold start waits for its init's output.
const initOutputWait = 5 * time.Millisecond

// settleInitOutput lets what the runtime wrote during its init (before its
// first /next) reach the log before the START line, so that it stays
// init's, unattributed, as in Lambda. The runtime wrote it before asking
// for the event, but the pipes' reader may not have taken it yet; it is
// usually there already, and nothing is waited for when the pipes are
// empty.
func settleInitOutput(ctx context.Context, e *env) {
	waitOutput(ctx, e, initOutputWait)
}

// waitOutput waits, up to max, until the output e's processes have
// written so far has reached its capture; false when the sandbox cannot
// tell (it is no sandbox.OutputWaiter).
func waitOutput(ctx context.Context, e *env, max time.Duration) bool {
	w, ok := sandbox.As[sandbox.OutputWaiter](e.sb)
	if !ok {
		return false
	}
	ctx, cancel := context.WithTimeout(ctx, max)
	defer cancel()
	w.WaitOutput(ctx)
	return true
}

// reportLine formats Lambda's REPORT line (tab separated, trailing tab).
// The init of an environment restored from a snapshot is its restore, which
// Lambda reports, and bills, as such.
func reportLine(reqID string, d time.Duration, memMB int, maxMem uint64, initDur time.Duration, cold, restored bool) string {
	billedInit := time.Duration(0)
	if cold && !restored {
		billedInit = initDur
	}
	return reportLineBilled(reqID, d, d+billedInit, memMB, maxMem, initDur, cold, restored)
}

// reportLineBilled is reportLine with the time billed given: an image
// function is billed for its init too (a restore apart, as Billed Restore
// Duration); Lambda's REPORT says Duration 1.54 ms, Billed Duration
// 166 ms, Init Duration 164.27 ms.
func reportLineBilled(reqID string, d, billedDur time.Duration, memMB int, maxMem uint64, initDur time.Duration, cold, restored bool) string {
	ms := float64(d) / float64(time.Millisecond)
	billed := int64(math.Ceil(float64(billedDur) / float64(time.Millisecond)))
	if billed < 1 {
		billed = 1
	}
	used := int64(math.Ceil(float64(maxMem) / (1 << 20)))
	line := fmt.Sprintf("REPORT RequestId: %s\tDuration: %.2f ms\tBilled Duration: %d ms\tMemory Size: %d MB\tMax Memory Used: %d MB\t",
		reqID, ms, billed, memMB, used)
	switch {
	case cold && initDur > 0 && restored:
		line += fmt.Sprintf("Restore Duration: %.2f ms\tBilled Restore Duration: %d ms\t",
			float64(initDur)/float64(time.Millisecond), int64(math.Ceil(float64(initDur)/float64(time.Millisecond))))
	case cold && initDur > 0:
		line += fmt.Sprintf("Init Duration: %.2f ms\t", float64(initDur)/float64(time.Millisecond))
	}
	return line
}

// Retire takes away the environments and spares of function name whose
// configuration is not among current (those of its $LATEST and published
// versions, as they are now; nil when the function is gone): idle ones at
// once, busy ones when they finish. The others serve on: an alias moved,
// a version published or a concurrency changed costs no cold start.
// Provisioned environments are not touched (see Provision).
func (inv *Invoker) Retire(name string, current []function.Config) {
	keep := map[string]bool{}
	for _, c := range current {
		keep[configKey(c)] = true
	}
	inv.dropSpares(name, keep)
	inv.mu.Lock()
	var victims []*env
	for key, list := range inv.idle {
		kept := list[:0]
		for _, e := range list {
			if e.fn == name && e.owner == "" && !keep[e.key] {
				victims = append(victims, e)
			} else {
				kept = append(kept, e)
			}
		}
		if len(kept) == 0 {
			delete(inv.idle, key)
		} else {
			inv.idle[key] = kept
		}
	}
	for _, e := range victims {
		inv.live--
		delete(inv.all, e)
	}
	for e := range inv.all { // the busy ones left
		if e.fn == name && e.owner == "" && !keep[e.key] {
			e.retired = true
		}
	}
	inv.mu.Unlock()
	for _, e := range victims {
		e.destroy(context.Background())
	}
}

func (inv *Invoker) reaper() {
	defer inv.wg.Done()
	t := time.NewTicker(min(max(inv.opts.IdleTimeout/10, time.Second), 10*time.Second))
	defer t.Stop()
	for {
		select {
		case <-inv.stop:
			return
		case <-t.C:
			inv.reapIdle()
		}
	}
}

func (inv *Invoker) reapIdle() {
	now := inv.opts.Now()
	inv.mu.Lock()
	var victims []*env
	for key, list := range inv.idle {
		keep := list[:0]
		for _, e := range list {
			if e.owner == "" && now.Sub(e.lastUsed) >= inv.opts.IdleTimeout {
				victims = append(victims, e)
				inv.live--
				delete(inv.all, e)
			} else {
				keep = append(keep, e)
			}
		}
		if len(keep) == 0 {
			delete(inv.idle, key)
		} else {
			inv.idle[key] = keep
		}
	}
	inv.mu.Unlock()
	victims = append(victims, inv.relieveMemory()...)
	for _, e := range victims {
		inv.log.Debug("reaping idle environment", "function", e.fn, "env", e.id)
		inv.shutdown(e)
	}
}

// shutdown stops an environment gracefully (SIGTERM, grace, SIGKILL) and
// destroys it.
func (inv *Invoker) shutdown(e *env) {
	grace := inv.opts.ShutdownGrace
	if e.extensions {
		// Thawed first: a frozen extension could neither receive its
		// SHUTDOWN nor take the telemetry flushed before it.
		if err := e.wake(context.Background()); err != nil {
			inv.log.Warn("thaw an environment to shut it down", "env", e.id, "err", err)
		}
		// SHUTDOWN to the extensions, with Lambda's grace for what is
		// registered (500 ms internal, 2 s external).
		grace = max(grace, e.api.ShutdownGrace())
		ctx, cancel := context.WithTimeout(context.Background(), grace)
		e.api.Shutdown(ctx, runtimeapi.ShutdownSpindown, time.Now().Add(grace))
		cancel()
	}
	e.sb.Shutdown(context.Background(), grace)
	e.destroy(context.Background())
}

// relieveMemory takes least recently used idle environments out of the
// pool while the host's available memory is below the threshold, and
// returns them for the caller to shut down.
func (inv *Invoker) relieveMemory() []*env {
	if inv.opts.MemAvailable == nil || inv.opts.MinMemAvailable == 0 {
		return nil
	}
	avail, err := inv.opts.MemAvailable()
	if err != nil || avail >= inv.opts.MinMemAvailable {
		return nil
	}
	inv.mu.Lock()
	defer inv.mu.Unlock()
	// Reap a quarter of the idle environments (at least one) per tick, oldest
	// first; the next tick re-reads available memory.
	n := 0
	for _, l := range inv.idle {
		n += len(l)
	}
	n = max(1, n/4)
	var victims []*env
	for range n {
		e := inv.oldestIdleLocked()
		if e == nil {
			break
		}
		inv.removeIdleLocked(e)
		inv.live--
		delete(inv.all, e)
		victims = append(victims, e)
	}
	if len(victims) > 0 {
		inv.log.Warn("memory pressure: reaping idle environments", "available", avail, "reaped", len(victims))
	}
	return victims
}

// Stats reports environment counts.
func (inv *Invoker) Stats() (live, idle int) {
	inv.mu.Lock()
	defer inv.mu.Unlock()
	for _, l := range inv.idle {
		idle += len(l)
	}
	return inv.live, idle
}

// Close destroys every environment, waiting for none of the running
// invocations (their environments are killed and they fail).
func (inv *Invoker) Close(ctx context.Context) {
	inv.mu.Lock()
	if inv.closed {
		inv.mu.Unlock()
		return
	}
	inv.closed = true
	var all []*env
	for e := range inv.all {
		all = append(all, e)
	}
	inv.idle = map[string][]*env{}
	inv.mu.Unlock()
	inv.spares.close()
	close(inv.stop)
	inv.wg.Wait()
	var wg sync.WaitGroup
	for _, e := range all {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if e.extensions {
				inv.shutdown(e) // SHUTDOWN to its extensions, with their grace
				return
			}
			e.sb.Shutdown(ctx, 0)
			e.destroy(ctx)
		}()
	}
	wg.Wait()
	inv.teardowns.wait(ctx)
}

// teardowns counts work running in the background that Close must wait
// for: environments and spares being destroyed. (A sync.WaitGroup would
// not do: its Add may not race with its Wait.)
type teardowns struct {
	mu   sync.Mutex
	n    int
	idle chan struct{} // made by wait, closed when n drops to 0
}

// run runs f in a goroutine of its own, counted until it returns.
func (t *teardowns) run(f func()) {
	t.mu.Lock()
	t.n++
	t.mu.Unlock()
	go func() {
		defer t.done()
		f()
	}()
}

func (t *teardowns) done() {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.n--
	if t.n == 0 && t.idle != nil {
		close(t.idle)
		t.idle = nil
	}
}

// wait returns once nothing counted is running, or ctx is done.
func (t *teardowns) wait(ctx context.Context) {
	t.mu.Lock()
	if t.n == 0 {
		t.mu.Unlock()
		return
	}
	if t.idle == nil {
		t.idle = make(chan struct{})
	}
	idle := t.idle
	t.mu.Unlock()
	select {
	case <-idle:
	case <-ctx.Done():
	}
}
