package rie

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/kappa-run/kappa/internal/runtimeapi"
)

// Invoke API paths.
const (
	invokePathPrefix = "/2015-03-31/functions/"
	invokePathSuffix = "/invocations"
	streamPathPrefix = "/2021-11-15/functions/"
	streamPathSuffix = "/response-streaming-invocations"
)

// finishingWait is how long an invocation waits for an environment that
// is finishing its previous invocation (its extensions) before it starts a
// new one, so that a sequential client keeps one warm environment.
var finishingWait = 100 * time.Millisecond // a variable for tests

var (
	errTooMany = errors.New("concurrent invocation limit reached")
	errClosed  = errors.New("emulator closed")
)

// Emulator serves the invoke endpoints in front of a pool of environments.
// Create it with New; all methods are safe for concurrent use.
type Emulator struct {
	cfg Config
	log *slog.Logger
	out *lockedWriter
	mux *http.ServeMux

	pool   pool
	queued atomic.Int64
	bg     context.Context
	stop   context.CancelFunc
	wg     sync.WaitGroup
}

// New validates cfg and returns an Emulator; no environment exists yet.
func New(cfg Config) (*Emulator, error) {
	if err := cfg.setDefaults(); err != nil {
		return nil, err
	}
	em := &Emulator{cfg: cfg, log: cfg.Logger, out: &lockedWriter{w: cfg.Stdout}, mux: http.NewServeMux()}
	em.bg, em.stop = context.WithCancel(context.Background())
	em.pool.init(cfg.MaxConcurrency)
	for _, name := range []string{"function", cfg.FunctionName} {
		em.mux.HandleFunc(invokePathPrefix+name+invokePathSuffix, em.handleInvoke)
		em.mux.HandleFunc(streamPathPrefix+name+streamPathSuffix, em.handleStream)
		if name == "function" && cfg.FunctionName == "function" {
			break
		}
	}
	return em, nil
}

// Handler returns the HTTP handler of the invoke endpoints.
func (em *Emulator) Handler() http.Handler { return em.mux }

// Start creates the first environment at once when Config.InitCaching is
// set; otherwise environments start at their first invocation, as with
// aws-lambda-rie. An init failure is logged, not returned: the next
// invocation tries again.
func (em *Emulator) Start(ctx context.Context) error {
	if !em.cfg.InitCaching {
		return nil
	}
	s, err := em.pool.acquire(ctx, true)
	if err != nil {
		return err
	}
	e, fe, err := em.coldStart(ctx, s.idx)
	if err != nil {
		em.pool.release(s, nil)
		return err
	}
	if fe != nil {
		em.log.Warn("init failed", "errorType", fe.Type, "message", fe.Message)
	}
	em.release(s, e)
	return nil
}

// Close refuses new invocations, waits for the Event invocations in
// flight, and shuts every environment down (SHUTDOWN reason spindown).
func (em *Emulator) Close(ctx context.Context) error {
	envs := em.pool.close()
	em.stop()
	done := make(chan struct{})
	go func() { em.wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-ctx.Done():
	}
	var wg sync.WaitGroup
	for _, e := range envs {
		wg.Go(func() { e.shutdown(runtimeapi.ShutdownSpindown) })
	}
	wg.Wait()
	for _, e := range em.pool.drain() {
		e.shutdown(runtimeapi.ShutdownSpindown)
	}
	return nil
}

// release returns a slot with its environment (nil when it is gone); after
// Close the environment is shut down instead.
func (em *Emulator) release(s *slot, e *env) {
	if e != nil && !em.pool.release(s, e) {
		e.shutdown(runtimeapi.ShutdownSpindown)
	}
	if e == nil {
		em.pool.release(s, nil)
	}
}

// slot is one place for an environment in the pool.
type slot struct {
	idx       int
	env       *env
	busy      bool
	finishing bool // busy, but the runtime already answered
}

// pool holds up to MaxConcurrency environments.
type pool struct {
	mu      sync.Mutex
	slots   []*slot
	changed chan struct{} // closed and replaced when a slot is released
	closed  bool
}

func (p *pool) init(n int) {
	p.changed = make(chan struct{})
	for i := range n {
		p.slots = append(p.slots, &slot{idx: i})
	}
}

// acquire takes a slot: an idle warm environment first, then (after
// waiting up to finishingWait for one that is finishing) a free slot for a
// cold start. With wait it blocks until a slot is free; without, it fails
// with errTooMany.
func (p *pool) acquire(ctx context.Context, wait bool) (*slot, error) {
	patience := time.NewTimer(finishingWait)
	defer patience.Stop()
	patient := true
	for {
		p.mu.Lock()
		if p.closed {
			p.mu.Unlock()
			return nil, errClosed
		}
		for _, s := range p.slots {
			if !s.busy && s.env != nil {
				s.busy = true
				p.mu.Unlock()
				return s, nil
			}
		}
		finishing := false
		for _, s := range p.slots {
			finishing = finishing || s.busy && s.finishing
		}
		if !finishing || !patient {
			for _, s := range p.slots {
				if !s.busy {
					s.busy = true
					p.mu.Unlock()
					return s, nil
				}
			}
		}
		if !wait && !finishing {
			p.mu.Unlock()
			return nil, errTooMany
		}
		ch := p.changed
		p.mu.Unlock()
		select {
		case <-ch:
		case <-patience.C:
			patient = false
			if !wait {
				// One last look, then give up.
				p.mu.Lock()
				for _, s := range p.slots {
					if !s.busy {
						s.busy = true
						p.mu.Unlock()
						return s, nil
					}
				}
				p.mu.Unlock()
				return nil, errTooMany
			}
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
}

// finish marks a slot whose runtime answered.
func (p *pool) finish(s *slot) {
	p.mu.Lock()
	s.finishing = true
	p.mu.Unlock()
}

// release frees s holding e (nil: no environment). It reports false when
// the pool is closed and e must be shut down by the caller.
func (p *pool) release(s *slot, e *env) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	s.busy, s.finishing = false, false
	kept := true
	if p.closed {
		s.env, kept = nil, e == nil
	} else {
		s.env = e
	}
	close(p.changed)
	p.changed = make(chan struct{})
	return kept
}

// close refuses new acquisitions and returns the idle environments.
func (p *pool) close() []*env {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.closed = true
	var envs []*env
	for _, s := range p.slots {
		if !s.busy && s.env != nil {
			envs = append(envs, s.env)
			s.env = nil
		}
	}
	return envs
}

// drain returns the environments still in slots (after Close).
func (p *pool) drain() []*env {
	p.mu.Lock()
	defer p.mu.Unlock()
	var envs []*env
	for _, s := range p.slots {
		if s.env != nil {
			envs = append(envs, s.env)
			s.env = nil
		}
	}
	return envs
}
