package async

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/kappa-run/kappa/internal/apierr"
)

func TestQueues(t *testing.T) {
	h := newHarness(t)
	q := h.svc.Queues()
	ctx := context.Background()
	if _, err := q.Read(ctx, "none", 0, 10, 0); !isKind(err, apierr.NotFound) {
		t.Errorf("Read of a missing queue: %v", err)
	}
	for i := 1; i <= 5; i++ {
		seq, err := q.Send(ctx, "tail", []byte(fmt.Sprintf(`{"i":%d}`, i)))
		if err != nil || seq != uint64(i) {
			t.Fatalf("Send %d = %d, %v", i, seq, err)
		}
	}
	msgs, err := q.Read(ctx, "tail", 2, 2, 0)
	if err != nil || len(msgs) != 2 || msgs[0].Seq != 3 || string(msgs[1].Body) != `{"i":4}` {
		t.Fatalf("Read(after 2, max 2) = %v, %v", msgs, err)
	}
	start := time.Now()
	go func() {
		time.Sleep(150 * time.Millisecond)
		q.Send(ctx, "tail", []byte(`{"i":6}`))
	}()
	msgs, err = q.Read(ctx, "tail", 5, 10, 5*time.Second)
	if err != nil || len(msgs) != 1 || msgs[0].Seq != 6 || time.Since(start) > 3*time.Second {
		t.Fatalf("long poll = %v, %v after %v", msgs, err, time.Since(start))
	}
	list, err := q.List(ctx)
	if err != nil || len(list) != 1 || list[0].Name != "tail" || list[0].Messages != 6 || list[0].ARN != "arn:aws:sqs:us-east-1:000000000000:tail" {
		t.Fatalf("List = %+v, %v", list, err)
	}
	if err := q.Delete(ctx, "tail"); err != nil {
		t.Fatal(err)
	}
	if _, err := q.Get(ctx, "tail"); !isKind(err, apierr.NotFound) {
		t.Errorf("Get after Delete: %v", err)
	}
	if _, err := q.Create(ctx, "bad name"); !isKind(err, apierr.Validation) {
		t.Errorf("Create with a bad name: %v", err)
	}
}

// TestQueueReadByteBudget: one Read stops adding messages once their
// bodies pass maxReadBytes; the rest come with the next Read, from the
// last sequence returned.
func TestQueueReadByteBudget(t *testing.T) {
	old := maxReadBytes
	maxReadBytes = 2500
	defer func() { maxReadBytes = old }()
	h := newHarness(t)
	q := h.svc.Queues()
	ctx := context.Background()
	body := []byte(`"` + strings.Repeat("b", 998) + `"`) // 1,000 bytes
	for range 5 {
		if _, err := q.Send(ctx, "big", body); err != nil {
			t.Fatal(err)
		}
	}
	msgs, err := q.Read(ctx, "big", 0, 100, 0)
	if err != nil || len(msgs) != 3 {
		t.Fatalf("first Read = %d messages, %v; want 3 (the third passes the 2,500-byte budget)", len(msgs), err)
	}
	rest, err := q.Read(ctx, "big", msgs[2].Seq, 100, 0)
	if err != nil || len(rest) != 2 || rest[0].Seq != 4 {
		t.Fatalf("second Read = %d messages from %v, %v; want 4 and 5", len(rest), rest, err)
	}
}
