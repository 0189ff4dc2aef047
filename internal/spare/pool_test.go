package spare

import (
	"context"
	"errors"
	"fmt"
	"os"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// TestMain fails the package when goroutines of the pool outlive the tests.
func TestMain(m *testing.M) {
	code := m.Run()
	if code == 0 {
		deadline := time.Now().Add(5 * time.Second)
		for {
			buf := make([]byte, 1<<20)
			stacks := string(buf[:runtime.Stack(buf, true)])
			if !strings.Contains(stacks, "internal/spare.(*Pool") {
				break
			}
			if time.Now().After(deadline) {
				fmt.Fprintf(os.Stderr, "goroutines of the pool leaked:\n%s", stacks)
				code = 1
				break
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	os.Exit(code)
}

// clock is a settable test clock.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time      { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) Add(d time.Duration) { c.mu.Lock(); c.t = c.t.Add(d); c.mu.Unlock() }

// item is a spare that remembers the key its build was registered for.
type item struct {
	key string
	n   int64
}

// recorder counts discarded items.
type recorder struct {
	mu        sync.Mutex
	discarded []item
}

func (r *recorder) discard(it item) {
	r.mu.Lock()
	r.discarded = append(r.discarded, it)
	r.mu.Unlock()
}

func (r *recorder) count() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.discarded)
}

var seq atomic.Int64

func builder(key string) Build[item] {
	return func(context.Context) (item, error) { return item{key: key, n: seq.Add(1)}, nil }
}

func newPool(t *testing.T, opts Options) (*Pool[item], *recorder, *clock) {
	t.Helper()
	rec := &recorder{}
	clk := &clock{t: time.Unix(1_700_000_000, 0)}
	if opts.Now == nil {
		opts.Now = clk.Now
	}
	p := New(opts, rec.discard)
	t.Cleanup(p.Close)
	return p, rec, clk
}

// eventually polls cond until it holds (a correctness wait, not a timing
// assertion: the deadline only bounds a hung test).
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); !cond(); time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("never: %s", what)
		}
	}
}

// TestTakeOnlyOwnKey hammers many keys concurrently: every spare taken
// must have been built for the key asked for, and none is handed out twice.
func TestTakeOnlyOwnKey(t *testing.T) {
	p, _, _ := newPool(t, Options{Max: 8, PerKey: 2, Builders: 4})
	keys := []string{"fn-a/$LATEST/d1/r1", "fn-a/1/d1/r1", "fn-a/$LATEST/d1/r2", "fn-b/$LATEST/d1/r1", "fn-a/$LATEST/d2/r1"}
	var mu sync.Mutex
	handed := map[int64]string{}
	var wg sync.WaitGroup
	var taken atomic.Int64
	for w := range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 500 {
				key := keys[(w+i)%len(keys)]
				p.Want(key, builder(key))
				it, ok := p.Take(key)
				if !ok {
					continue
				}
				taken.Add(1)
				if it.key != key {
					t.Errorf("Take(%q) handed out a spare built for %q", key, it.key)
				}
				mu.Lock()
				if prev, dup := handed[it.n]; dup {
					t.Errorf("spare %d handed out twice (%s, %s)", it.n, prev, key)
				}
				handed[it.n] = key
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	if taken.Load() == 0 {
		t.Fatal("no spare was ever taken")
	}
}

func TestTakeUnknownKey(t *testing.T) {
	p, _, _ := newPool(t, Options{})
	p.Want("a", builder("a"))
	eventually(t, "a spare for a", func() bool { return p.Len() == 1 })
	for _, key := range []string{"b", "", "a/", "A"} {
		if it, ok := p.Take(key); ok {
			t.Errorf("Take(%q) = %+v, want none", key, it)
		}
	}
	if it, ok := p.Take("a"); !ok || it.key != "a" {
		t.Errorf("Take(a) = %+v, %v", it, ok)
	}
	if _, ok := p.Take("a"); ok {
		t.Error("the one spare of a was handed out twice")
	}
}

// TestDropDuringBuild checks that a spare whose key is dropped while it is
// being made is discarded, not kept for a key that is gone.
func TestDropDuringBuild(t *testing.T) {
	p, rec, _ := newPool(t, Options{})
	started, release := make(chan struct{}), make(chan struct{})
	p.Want("fn/1", func(context.Context) (item, error) {
		close(started)
		<-release
		return item{key: "fn/1"}, nil
	})
	<-started
	p.Drop(func(key string) bool { return strings.HasPrefix(key, "fn/") })
	close(release)
	eventually(t, "the spare discarded", func() bool { return rec.count() == 1 })
	if _, ok := p.Take("fn/1"); ok {
		t.Error("a spare of a dropped key was handed out")
	}
	// Wanted again, the key gets a new spare.
	p.Want("fn/1", builder("fn/1"))
	eventually(t, "a new spare", func() bool { return p.Len() == 1 })
}

func TestDropOnlyMatching(t *testing.T) {
	p, rec, _ := newPool(t, Options{Builders: 2})
	for _, k := range []string{"a/1", "a/2", "b/1"} {
		p.Want(k, builder(k))
	}
	eventually(t, "three spares", func() bool { return p.Len() == 3 })
	p.Drop(func(key string) bool { return strings.HasPrefix(key, "a/") })
	if rec.count() != 2 || p.Len() != 1 {
		t.Errorf("after Drop(a/*): %d discarded, %d kept; want 2, 1", rec.count(), p.Len())
	}
	if _, ok := p.Take("b/1"); !ok {
		t.Error("b/1 lost its spare")
	}
}

func TestMaxEvictsLeastRecentlyWanted(t *testing.T) {
	p, rec, clk := newPool(t, Options{Max: 2})
	for _, k := range []string{"a", "b"} {
		clk.Add(time.Second)
		p.Want(k, builder(k))
		eventually(t, "spare of "+k, func() bool { return p.Len() == 1 || (k == "b" && p.Len() == 2) })
	}
	eventually(t, "two spares", func() bool { return p.Len() == 2 })
	clk.Add(time.Second)
	p.Want("c", builder("c"))
	eventually(t, "c's spare replacing a's", func() bool {
		_, hasC := p.peek("c")
		return hasC && rec.count() == 1
	})
	if _, ok := p.Take("a"); ok {
		t.Error("the least recently wanted key kept its spare")
	}
	if _, ok := p.Take("b"); !ok {
		t.Error("b lost its spare")
	}
	if n := p.Len(); n > 2 {
		t.Errorf("%d spares kept, Max is 2", n)
	}
}

func TestReapIdle(t *testing.T) {
	p, rec, clk := newPool(t, Options{IdleTimeout: time.Minute})
	p.Want("a", builder("a"))
	eventually(t, "a spare", func() bool { return p.Len() == 1 })
	clk.Add(59 * time.Second)
	p.Reap()
	if p.Len() != 1 {
		t.Fatal("reaped before the idle timeout")
	}
	clk.Add(time.Second)
	p.Reap()
	if p.Len() != 0 || rec.count() != 1 {
		t.Errorf("after the idle timeout: %d kept, %d discarded", p.Len(), rec.count())
	}
}

func TestNoRoom(t *testing.T) {
	var room atomic.Bool
	room.Store(true)
	p, rec, _ := newPool(t, Options{Room: room.Load})
	p.Want("a", builder("a"))
	eventually(t, "a spare", func() bool { return p.Len() == 1 })
	room.Store(false)
	p.Reap()
	if p.Len() != 0 || rec.count() != 1 {
		t.Errorf("without room: %d kept, %d discarded", p.Len(), rec.count())
	}
	var built atomic.Int64
	p.Want("b", func(context.Context) (item, error) { built.Add(1); return item{key: "b"}, nil })
	if built.Load() != 0 || p.Len() != 0 {
		t.Error("a spare was made without room")
	}
}

func TestBuildFailureBacksOff(t *testing.T) {
	p, _, clk := newPool(t, Options{})
	var calls atomic.Int64
	fail := func(context.Context) (item, error) { calls.Add(1); return item{}, errors.New("no") }
	p.Want("a", fail)
	eventually(t, "one build", func() bool { return calls.Load() == 1 })
	p.Want("a", fail)
	p.Want("a", fail)
	if n := calls.Load(); n != 1 {
		t.Errorf("%d builds right after a failure, want 1", n)
	}
	clk.Add(2 * time.Second)
	p.Want("a", builder("a"))
	eventually(t, "a spare after the back-off", func() bool { return p.Len() == 1 })
}

func TestCloseDiscardsAll(t *testing.T) {
	rec := &recorder{}
	p := New(Options{Builders: 2}, rec.discard)
	block := make(chan struct{})
	p.Want("a", builder("a"))
	p.Want("b", func(ctx context.Context) (item, error) {
		select {
		case <-block:
		case <-ctx.Done():
		}
		return item{key: "b"}, nil
	})
	eventually(t, "a's spare", func() bool { _, ok := p.peek("a"); return ok })
	p.Close()
	if rec.count() != 2 {
		t.Errorf("Close discarded %d spares, want 2 (one ready, one being made)", rec.count())
	}
	p.Want("c", builder("c"))
	if p.Len() != 0 {
		t.Error("a closed pool made a spare")
	}
}

// peek reports whether key has a spare ready, without taking it.
func (p *Pool[T]) peek(key string) (int, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	e := p.keys[key]
	if e == nil {
		return 0, false
	}
	return len(e.ready), len(e.ready) > 0
}

// TestWantSince checks that a key wanted on behalf of an earlier use keeps
// that use's age: a spare is made only within IdleTimeout of it, and Drop
// reports it.
func TestWantSince(t *testing.T) {
	p, _, clk := newPool(t, Options{IdleTimeout: time.Minute})
	p.WantSince("old", builder("old"), clk.Now().Add(-2*time.Minute))
	p.WantSince("recent", builder("recent"), clk.Now().Add(-30*time.Second))
	eventually(t, "recent's spare", func() bool { _, ok := p.peek("recent"); return ok })
	if _, ok := p.peek("old"); ok {
		t.Error("a spare was made for a key last in use beyond the idle timeout")
	}
	clk.Add(30 * time.Second)
	p.Reap()
	if _, ok := p.peek("recent"); ok {
		t.Error("the spare outlived the idle timeout counted from the use it was made for")
	}
	p.WantSince("x", builder("x"), clk.Now().Add(-10*time.Second))
	if got, want := p.Drop(func(k string) bool { return k == "x" }), clk.Now().Add(-10*time.Second); !got.Equal(want) {
		t.Errorf("Drop = %v, want %v", got, want)
	}
}
