package spare

import (
	"context"
	"log/slog"
	"sync"
	"time"
)

// Options configure a Pool. Zero values take the documented defaults.
type Options struct {
	// Max bounds the spares kept and being made, across all keys
	// (default 16). At the bound, a spare of the least recently wanted
	// other key is discarded to make room.
	Max int
	// PerKey bounds the spares of one key (default 1).
	PerKey int
	// IdleTimeout is how long a key's spares are kept after the key was
	// last wanted (default 5 minutes).
	IdleTimeout time.Duration
	// Builders bounds the builds running at once (default 1), so that
	// making spares never takes more than that many CPUs from the work
	// they are for.
	Builders int
	// Room reports whether the host has room for spares; while it does
	// not, none are made and Reap discards those kept. nil: always.
	Room func() bool
	// Now is the clock (default time.Now).
	Now    func() time.Time
	Logger *slog.Logger
}

// Build makes one spare for the key it was registered with. It runs in the
// background under a context that ends when the Pool closes.
type Build[T any] func(ctx context.Context) (T, error)

// Pool keeps spares of type T by key. A spare is filed under the key of
// the Want that asked for it, by the Build given with that key, and Take
// hands it out only for that key, once. Safe for concurrent use.
type Pool[T any] struct {
	opts    Options
	log     *slog.Logger
	discard func(T)

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup

	mu       sync.Mutex
	keys     map[string]*entry[T]
	total    int // spares kept and being made
	building int
	closed   bool
	stop     chan struct{}
}

// entry is the state of one key. A build files its spare only into the
// entry it started from: an entry dropped meanwhile (Drop, Reap, Close) is
// no longer in keys, and the spare is discarded instead.
type entry[T any] struct {
	key      string
	build    Build[T]
	ready    []T
	building int
	wanted   time.Time
	// retryAt holds back builds after a failure.
	retryAt  time.Time
	failures int
}

// New returns a Pool whose spares are destroyed with discard, and starts
// its reaper.
func New[T any](opts Options, discard func(T)) *Pool[T] {
	if opts.Max <= 0 {
		opts.Max = 16
	}
	if opts.PerKey <= 0 {
		opts.PerKey = 1
	}
	if opts.IdleTimeout <= 0 {
		opts.IdleTimeout = 5 * time.Minute
	}
	if opts.Builders <= 0 {
		opts.Builders = 1
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	ctx, cancel := context.WithCancel(context.Background())
	p := &Pool[T]{
		opts: opts, log: opts.Logger, discard: discard,
		ctx: ctx, cancel: cancel,
		keys: map[string]*entry[T]{}, stop: make(chan struct{}),
	}
	p.wg.Add(1)
	go p.reaper()
	return p
}

// Want records that key is in use and, when it has fewer than PerKey
// spares kept or being made, starts making one with build in the
// background. build replaces the key's earlier one.
func (p *Pool[T]) Want(key string, build Build[T]) {
	p.WantSince(key, build, p.opts.Now())
}

// WantSince is Want for a key last in use at since rather than now (a new
// configuration of a function last invoked then): its spares are kept
// until IdleTimeout after since, and none is made once that has passed.
func (p *Pool[T]) WantSince(key string, build Build[T], since time.Time) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return
	}
	e := p.keys[key]
	if e == nil {
		e = &entry[T]{key: key}
		p.keys[key] = e
	}
	e.build = build
	if since.After(e.wanted) {
		e.wanted = since
	}
	if len(e.ready)+e.building < p.opts.PerKey {
		p.kickLocked()
	}
}

// Take hands out a spare of key, which the pool forgets; ok is false when
// it holds none.
func (p *Pool[T]) Take(key string) (spare T, ok bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	e := p.keys[key]
	if e == nil || len(e.ready) == 0 {
		return spare, false
	}
	spare = e.ready[0]
	e.ready = e.ready[1:]
	p.total--
	e.wanted = p.opts.Now()
	return spare, true
}

// Drop discards the spares of every key for which match is true and
// forgets those keys; spares still being made for them are discarded when
// done. It returns when the most recently wanted of those keys was last
// wanted (zero when none matched).
func (p *Pool[T]) Drop(match func(key string) bool) (lastWanted time.Time) {
	p.mu.Lock()
	var victims []T
	for key, e := range p.keys {
		if match(key) {
			victims = append(victims, p.forgetLocked(e)...)
			if e.wanted.After(lastWanted) {
				lastWanted = e.wanted
			}
		}
	}
	p.mu.Unlock()
	p.discardAll(victims)
	return lastWanted
}

// Len returns the number of spares ready.
func (p *Pool[T]) Len() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	n := 0
	for _, e := range p.keys {
		n += len(e.ready)
	}
	return n
}

// Reap discards the spares of keys not wanted for IdleTimeout, and every
// spare while Room reports no room. The Pool's reaper calls it
// periodically.
func (p *Pool[T]) Reap() {
	room := p.opts.Room == nil || p.opts.Room()
	now := p.opts.Now()
	p.mu.Lock()
	var victims []T
	for _, e := range p.keys {
		if !room || now.Sub(e.wanted) >= p.opts.IdleTimeout {
			victims = append(victims, p.forgetLocked(e)...)
		}
	}
	if len(victims) > 0 {
		p.log.Debug("discarding spares", "count", len(victims), "room", room)
	}
	p.mu.Unlock()
	p.discardAll(victims)
}

// Close discards every spare, ends the builds and waits for them.
func (p *Pool[T]) Close() {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return
	}
	p.closed = true
	close(p.stop)
	var victims []T
	for _, e := range p.keys {
		victims = append(victims, p.forgetLocked(e)...)
	}
	p.mu.Unlock()
	p.cancel()
	p.discardAll(victims)
	p.wg.Wait()
}

// forgetLocked removes e from the pool and returns its ready spares.
func (p *Pool[T]) forgetLocked(e *entry[T]) []T {
	delete(p.keys, e.key)
	ready := e.ready
	e.ready = nil
	p.total -= len(ready)
	return ready
}

func (p *Pool[T]) discardAll(victims []T) {
	for _, v := range victims {
		p.discard(v)
	}
}

// kickLocked starts builds, most recently wanted key first, while there
// are free builders and keys short of spares.
func (p *Pool[T]) kickLocked() {
	now := p.opts.Now()
	roomChecked := false
	for p.building < p.opts.Builders {
		var next *entry[T]
		for _, e := range p.keys {
			if e.build == nil || len(e.ready)+e.building >= p.opts.PerKey || now.Before(e.retryAt) ||
				now.Sub(e.wanted) >= p.opts.IdleTimeout {
				continue
			}
			if next == nil || e.wanted.After(next.wanted) {
				next = e
			}
		}
		if next == nil {
			return
		}
		if !roomChecked && p.opts.Room != nil && !p.opts.Room() {
			return
		}
		roomChecked = true
		if p.total >= p.opts.Max && !p.evictLocked(next) {
			return
		}
		next.building++
		p.building++
		p.total++
		p.wg.Add(1)
		go p.run(next, next.build)
	}
}

// evictLocked discards one ready spare of the least recently wanted key
// other than for (in the background) to make room for a spare of for. It
// reports false when no key was wanted less recently than for.
func (p *Pool[T]) evictLocked(for_ *entry[T]) bool {
	var victim *entry[T]
	for _, e := range p.keys {
		if e == for_ || len(e.ready) == 0 || !e.wanted.Before(for_.wanted) {
			continue
		}
		if victim == nil || e.wanted.Before(victim.wanted) {
			victim = e
		}
	}
	if victim == nil {
		return false
	}
	v := victim.ready[0]
	victim.ready = victim.ready[1:]
	p.total--
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		p.discard(v)
	}()
	return true
}

// run makes one spare for e and files it, unless e was dropped meanwhile.
func (p *Pool[T]) run(e *entry[T], build Build[T]) {
	defer p.wg.Done()
	spare, err := build(p.ctx)
	p.mu.Lock()
	e.building--
	p.building--
	p.total--
	if err != nil {
		e.failures++
		e.retryAt = p.opts.Now().Add(min(time.Second<<min(e.failures-1, 6), time.Minute))
		p.log.Warn("make spare", "key", e.key, "err", err)
		if !p.closed {
			p.kickLocked()
		}
		p.mu.Unlock()
		return
	}
	e.failures = 0
	keep := !p.closed && p.keys[e.key] == e && len(e.ready) < p.opts.PerKey
	if keep {
		e.ready = append(e.ready, spare)
		p.total++
	}
	if !p.closed {
		p.kickLocked()
	}
	p.mu.Unlock()
	if !keep {
		p.discard(spare)
	}
}

func (p *Pool[T]) reaper() {
	defer p.wg.Done()
	t := time.NewTicker(min(max(p.opts.IdleTimeout/10, time.Second), 10*time.Second))
	defer t.Stop()
	for {
		select {
		case <-p.stop:
			return
		case <-t.C:
			p.Reap()
			p.mu.Lock()
			if !p.closed {
				p.kickLocked() // builds held back by a failure
			}
			p.mu.Unlock()
		}
	}
}
