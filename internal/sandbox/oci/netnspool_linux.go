package oci

import (
	"errors"
	"log/slog"
	"net"
	"sync"
)

// netnsPool keeps network namespaces created ahead, each with its Runtime
// API listener bound, so that Create does not pay for unshare and the
// loopback ioctls. A namespace from the
// pool is fresh: it is handed to exactly one environment and destroyed with
// it, never returned. Safe for concurrent use.
type netnsPool struct {
	size int
	log  *slog.Logger

	mu      sync.Mutex
	ready   []pooledNetNS
	filling bool
	stopped bool
	filled  sync.WaitGroup
}

// pooledNetNS is one namespace of the pool.
type pooledNetNS struct {
	ns netNS
	ln net.Listener
}

func newNetNSPool(size int, log *slog.Logger) *netnsPool {
	return &netnsPool{size: size, log: log}
}

// get takes a namespace from the pool, if it holds one, and starts a refill
// in the background.
func (p *netnsPool) get() (pooledNetNS, bool) {
	if p == nil || p.size <= 0 {
		return pooledNetNS{}, false
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	p.refillLocked()
	n := len(p.ready)
	if n == 0 {
		return pooledNetNS{}, false
	}
	ns := p.ready[n-1]
	p.ready = p.ready[:n-1]
	return ns, true
}

// refillLocked starts the filler unless it runs, the pool is full or
// stopped.
func (p *netnsPool) refillLocked() {
	if p.filling || p.stopped || len(p.ready) >= p.size {
		return
	}
	p.filling = true
	p.filled.Add(1)
	go p.fill()
}

// fill creates namespaces until the pool is full, one at a time so that it
// never competes with more than one CPU's worth of cold starts.
func (p *netnsPool) fill() {
	defer p.filled.Done()
	for {
		p.mu.Lock()
		if p.stopped || len(p.ready) >= p.size {
			p.filling = false
			p.mu.Unlock()
			return
		}
		p.mu.Unlock()
		ln, ns, err := newNetNS(runtimeAPIAddr)
		if err != nil {
			p.log.Warn("pre-create network namespace", "err", err)
			p.mu.Lock()
			p.filling = false
			p.mu.Unlock()
			return
		}
		p.mu.Lock()
		if p.stopped {
			p.mu.Unlock()
			closeNetNS(pooledNetNS{ns, ln})
			p.mu.Lock()
			p.filling = false
			p.mu.Unlock()
			return
		}
		p.ready = append(p.ready, pooledNetNS{ns, ln})
		p.mu.Unlock()
	}
}

// drain stops the filler and destroys the namespaces the pool holds; the
// next get starts over.
func (p *netnsPool) drain() error {
	if p == nil {
		return nil
	}
	p.mu.Lock()
	p.stopped = true
	p.mu.Unlock()
	p.filled.Wait()
	p.mu.Lock()
	ready := p.ready
	p.ready = nil
	p.stopped = false
	p.mu.Unlock()
	var errs []error
	for _, ns := range ready {
		errs = append(errs, closeNetNS(ns))
	}
	return errors.Join(errs...)
}

// closeNetNS closes a pooled namespace's listener and descriptor; the
// kernel frees the namespace when nothing refers to it any more.
func closeNetNS(ns pooledNetNS) error {
	err := ns.ln.Close()
	if errors.Is(err, net.ErrClosed) {
		err = nil
	}
	return errors.Join(err, ns.ns.close())
}
