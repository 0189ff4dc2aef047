package async

import (
	"context"
	"fmt"
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
