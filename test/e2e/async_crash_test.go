package e2e

import (
	"context"
	"encoding/json"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/lambda"
	"github.com/aws/aws-sdk-go-v2/service/lambda/types"
)

// acceptEvents sends n Event invocations of fname from workers goroutines
// and returns their request ids and the acceptance rate (events/s, each
// acknowledged only once durably stored).
func acceptEvents(t *testing.T, s *server, fname string, n, workers int, payload []byte) ([]string, float64) {
	t.Helper()
	ids := make([]string, n)
	var next atomic.Int64
	var failed atomic.Value
	var wg sync.WaitGroup
	start := time.Now()
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1)) - 1
				if i >= n {
					return
				}
				out, err := s.Lambda.Invoke(context.Background(), &lambda.InvokeInput{
					FunctionName: aws.String(fname), InvocationType: types.InvocationTypeEvent, Payload: payload,
				})
				if err != nil {
					failed.Store(err)
					return
				}
				ids[i] = requestIDOf(out.ResultMetadata)
			}
		}()
	}
	wg.Wait()
	if err, _ := failed.Load().(error); err != nil {
		t.Fatalf("Event invoke: %v", err)
	}
	return ids, float64(n) / time.Since(start).Seconds()
}

// TestAsyncCrashSafety accepts events, kills the server with SIGKILL while
// they are being delivered, restarts it on the same data directory and
// checks that every accepted event was delivered at least once (its
// OnSuccess record names its request id); duplicates are counted and
// reported. It also measures acceptance and delivery rates.
func TestAsyncCrashSafety(t *testing.T) {
	const n = 300
	s := newServer(t, append(asyncFlags, "--async-ack-wait", "3s")...)
	img := s.pushProbe(t, "probe:crash")
	s.createFunction(t, "rec", img)
	s.putEventConfig(t, "rec", nil, queueARN("seen"), queueARN("lost"))

	// Each event takes ~100 ms, so that the kill lands mid-delivery.
	payload, _ := json.Marshal(map[string]any{"op": "sleep", "ms": 100})
	ids, acceptRate := acceptEvents(t, s, "rec", n, 16, payload)
	q := s.queue("seen")
	for len(q.all) < n/3 {
		q.poll(t, time.Second)
	}
	before := len(q.all)
	s.kill9()
	s.start(s.addr)
	t.Logf("killed -9 after %d of %d events were delivered; restarted", before, n)

	q.records(t, n, 120*time.Second)
	// Let redeliveries of events that ran before the kill come in too.
	time.Sleep(4 * time.Second)
	q.poll(t, time.Second)
	seen := map[string]int{}
	for _, m := range q.all {
		var r destRecord
		json.Unmarshal(m.Body, &r)
		seen[r.RequestContext.RequestID]++
	}
	missing, dups := 0, 0
	for _, id := range ids {
		if seen[id] == 0 {
			missing++
		}
		if seen[id] > 1 {
			dups += seen[id] - 1
		}
	}
	if missing > 0 {
		t.Errorf("%d of %d accepted events were never delivered", missing, n)
	}
	if lost := s.readQueue(t, "lost", 0, 0); len(lost) > 0 {
		t.Errorf("%d events failed", len(lost))
	}
	// Redeliveries of events handled before the kill whose ack was lost:
	// the server acknowledges them without running them again.
	rescued := strings.Count(s.Log(), "already handled; acknowledging its redelivery")
	t.Logf("crash safety: %d events accepted, all delivered: %v, duplicate deliveries: %d (%.1f%%); redeliveries recognised as handled: %d",
		n, missing == 0, dups, 100*float64(dups)/n, rescued)

	// Throughput, with a function that returns at once: acceptance (each
	// 202 after the event is fsync'd), the rate OnSuccess records are
	// written while the queue drains (queue message timestamps), and end to
	// end (first accept to last record).
	const m = 600
	echo, _ := json.Marshal(map[string]any{"op": "echo"})
	s.putEventConfig(t, "rec", nil, queueARN("fast"), "")
	fast := s.queue("fast")
	start := time.Now()
	_, acceptEcho := acceptEvents(t, s, "rec", m, 16, echo)
	fast.records(t, m, 120*time.Second)
	first, _ := time.Parse(time.RFC3339Nano, fast.all[0].Time)
	last, _ := time.Parse(time.RFC3339Nano, fast.all[m-1].Time)
	deliverRate := float64(m-1) / last.Sub(first).Seconds()
	endToEnd := float64(m) / last.Sub(start).Seconds()
	t.Logf("throughput: accepted %.0f events/s durably (16 clients; %.0f/s for the sleeping events above); delivered %.0f events/s (OnSuccess records written); end to end %.0f events/s (%d events)",
		acceptEcho, acceptRate, deliverRate, endToEnd, m)
	if path := os.Getenv("KAPPA_E2E_REPORT"); path != "" {
		f, err := os.OpenFile(path, os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o644)
		if err == nil {
			json.NewEncoder(f).Encode(map[string]any{"test": t.Name(), "accepted": n, "missing": missing, "duplicates": dups, "rescued": rescued,
				"deliveredBeforeKill": before, "acceptPerSec": acceptRate, "acceptEchoPerSec": acceptEcho, "deliverPerSec": deliverRate, "endToEndPerSec": endToEnd})
			f.Close()
		}
	}
}
