package invoker

import (
	"context"
	"slices"
	"time"

	"github.com/kappa-run/kappa/internal/function"
)

// AWS_LAMBDA_INITIALIZATION_TYPE values.
const (
	initOnDemand    = "on-demand"
	initProvisioned = "provisioned-concurrency"
)

// provision is one provisioned-concurrency target.
type provision struct {
	cfg    function.Config
	want   int
	failed string // last init failure, "" when none
}

// Provision keeps n initialised environments of cfg for owner (a
// function:qualifier string). Environments are created in the background;
// ProvisionStatus reports progress. Calling it again with another cfg (an
// alias moved) hands the old environments back to the on-demand pool.
func (inv *Invoker) Provision(owner string, cfg function.Config, n int) {
	inv.mu.Lock()
	old := inv.provisions[owner]
	inv.provisions[owner] = &provision{cfg: cfg, want: n}
	if old != nil && configKey(old.cfg) != configKey(cfg) {
		inv.disownLocked(owner)
	} else if old != nil {
		inv.trimLocked(owner, n)
	}
	inv.mu.Unlock()
	inv.wg.Add(1)
	go func() {
		defer inv.wg.Done()
		inv.fill(owner)
	}()
}

// Unprovision stops keeping environments for owner; they become ordinary
// idle environments, reaped when idle long enough.
func (inv *Invoker) Unprovision(owner string) {
	inv.mu.Lock()
	defer inv.mu.Unlock()
	delete(inv.provisions, owner)
	inv.disownLocked(owner)
}

// Provisioned lists the owners with provisioned environments.
func (inv *Invoker) Provisioned() []string {
	inv.mu.Lock()
	defer inv.mu.Unlock()
	var out []string
	for o := range inv.provisions {
		out = append(out, o)
	}
	return out
}

// trimLocked hands owner's environments beyond n back to the on-demand
// pool (a provisioned concurrency lowered), idle ones first; the reaper
// takes them once idle long enough.
func (inv *Invoker) trimLocked(owner string, n int) {
	var mine []*env
	for e := range inv.all {
		if e.owner == owner {
			mine = append(mine, e)
		}
	}
	extra := len(mine) - n
	if extra <= 0 {
		return
	}
	idle := map[*env]bool{}
	for _, e := range inv.idle[configKey(inv.provisions[owner].cfg)] {
		idle[e] = true
	}
	slices.SortStableFunc(mine, func(a, b *env) int {
		switch {
		case idle[a] == idle[b]:
			return 0
		case idle[a]:
			return -1
		default:
			return 1
		}
	})
	now := inv.opts.Now()
	for _, e := range mine[:extra] {
		e.owner = ""
		e.lastUsed = now
	}
}

func (inv *Invoker) disownLocked(owner string) {
	now := inv.opts.Now()
	for e := range inv.all {
		if e.owner == owner {
			e.owner = ""
			e.lastUsed = now
		}
	}
}

// ProvisionStatus returns how many of owner's environments are ready, how
// many are wanted, and the last init failure.
func (inv *Invoker) ProvisionStatus(owner string) (ready, want int, failure string) {
	inv.mu.Lock()
	defer inv.mu.Unlock()
	p := inv.provisions[owner]
	if p == nil {
		return 0, 0, ""
	}
	for e := range inv.all {
		if e.owner == owner {
			ready++
		}
	}
	return ready, p.want, p.failed
}

// fill creates owner's missing environments one at a time.
func (inv *Invoker) fill(owner string) {
	for attempt := 0; ; attempt++ {
		inv.mu.Lock()
		p := inv.provisions[owner]
		if p == nil || inv.closed {
			inv.mu.Unlock()
			return
		}
		have := 0
		for e := range inv.all {
			if e.owner == owner {
				have++
			}
		}
		if have+inv.provisioning[owner] >= p.want || inv.live >= inv.opts.MaxEnvironments {
			inv.mu.Unlock()
			return
		}
		cfg := p.cfg
		inv.live++
		inv.provisioning[owner]++
		inv.mu.Unlock()

		e, err := inv.coldStart(context.Background(), cfg, initProvisioned, inv.opts.InitTimeout)
		inv.mu.Lock()
		if inv.provisioning[owner]--; inv.provisioning[owner] == 0 {
			delete(inv.provisioning, owner)
		}
		cur := inv.provisions[owner]
		if err != nil {
			inv.live--
			if cur != nil {
				cur.failed = err.Error()
			}
			inv.mu.Unlock()
			inv.log.Warn("provisioned environment failed to initialise", "owner", owner, "err", err)
			select {
			case <-inv.stop:
				return
			case <-time.After(min(backoffBase<<min(attempt, 7), backoffMax)):
			}
			continue
		}
		if inv.closed {
			// Close listed the environments before this one: it goes here.
			inv.live--
			delete(inv.all, e)
			inv.mu.Unlock()
			e.destroy(context.Background())
			return
		}
		if cur == nil || configKey(cur.cfg) != e.key {
			// Unprovisioned or moved meanwhile: keep it as on-demand.
			e.lastUsed = inv.opts.Now()
			inv.idle[e.key] = append(inv.idle[e.key], e)
			inv.mu.Unlock()
			continue
		}
		cur.failed = ""
		e.owner = owner
		e.lastUsed = inv.opts.Now()
		e.initDuration = 0 // provisioned invocations report no Init Duration
		inv.idle[e.key] = append(inv.idle[e.key], e)
		inv.mu.Unlock()
		if inv.opts.FreezeIdle {
			e.sleepAfter(0)
		}
	}
}
