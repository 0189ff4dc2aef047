package invoker

import (
	"context"
	"sync/atomic"
	"testing"
	"time"
)

// TestTeardownsWait: wait returns at once with nothing running, and only
// after everything run started before it has returned.
func TestTeardownsWait(t *testing.T) {
	var td teardowns
	td.wait(context.Background()) // nothing running
	release := make(chan struct{})
	var finished atomic.Int32
	for range 3 {
		td.run(func() {
			<-release
			finished.Add(1)
		})
	}
	waited := make(chan struct{})
	go func() {
		td.wait(context.Background())
		close(waited)
	}()
	select {
	case <-waited:
		t.Fatal("wait returned while teardowns ran")
	case <-time.After(20 * time.Millisecond):
	}
	close(release)
	<-waited
	if n := finished.Load(); n != 3 {
		t.Fatalf("wait returned after %d of 3 teardowns", n)
	}
	td.run(func() {}) // usable again after a wait
	td.wait(context.Background())
}

// TestTeardownsWaitContext: wait gives up when its context ends.
func TestTeardownsWaitContext(t *testing.T) {
	var td teardowns
	release := make(chan struct{})
	defer close(release)
	td.run(func() { <-release })
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	returned := make(chan struct{})
	go func() {
		td.wait(ctx) // returns although the teardown runs on
		close(returned)
	}()
	select {
	case <-returned:
	case <-time.After(10 * time.Second):
		t.Fatal("wait did not give up when its context ended")
	}
}
