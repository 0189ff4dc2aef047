package rie

import (
	"context"
	"errors"
	"testing"
	"time"
)

// TestPoolWaitsForFinishing: an invocation that finds no idle warm
// environment but one whose runtime already answered (its extensions
// still at work) waits for it rather than cold-starting in a free slot;
// past finishingWait it cold-starts after all.
func TestPoolWaitsForFinishing(t *testing.T) {
	defer func(d time.Duration) { finishingWait = d }(finishingWait)
	setup := func() (*pool, *slot, *env) {
		var p pool
		p.init(2)
		warm := &env{}
		p.slots[0].env, p.slots[0].busy = warm, true
		p.finish(p.slots[0])
		return &p, p.slots[0], warm
	}

	// Patient enough for any machine: the warm environment comes back
	// first, whether acquire is already waiting or not yet looking.
	finishingWait = time.Minute
	p, s0, warm := setup()
	got := make(chan *slot, 1)
	go func() {
		s, err := p.acquire(context.Background(), false)
		if err != nil {
			t.Error(err)
		}
		got <- s
	}()
	p.release(s0, warm)
	if s := <-got; s != s0 {
		t.Errorf("acquire took slot %d, want the finishing warm slot 0", s.idx)
	}

	// Out of patience: the free slot, for a cold start.
	finishingWait = time.Millisecond
	p, _, _ = setup()
	s, err := p.acquire(context.Background(), false)
	if err != nil || s.idx != 1 || s.env != nil {
		t.Fatalf("acquire past finishingWait = %+v, %v; want the free slot 1", s, err)
	}

	// Nothing free and nothing finishing: throttled at once without wait.
	p, _, _ = setup()
	p.slots[1].busy = true
	p.slots[0].finishing = false
	if _, err := p.acquire(context.Background(), false); !errors.Is(err, errTooMany) {
		t.Errorf("acquire with every slot running = %v, want errTooMany", err)
	}
}
