package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"net/url"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awsmw "github.com/aws/aws-sdk-go-v2/aws/middleware"
	"github.com/aws/aws-sdk-go-v2/service/lambda"
	"github.com/aws/aws-sdk-go-v2/service/lambda/types"
	"github.com/aws/smithy-go/middleware"
	smithyhttp "github.com/aws/smithy-go/transport/http"
)

// TestEventSourceMappings drives SQS event source mappings from Kappa
// queues end to end: the mapping API through the SDK (create, get, update,
// delete, list and their errors), batched delivery to the probe function,
// partial batch failures and whole-batch errors retried after the retry
// delay, disabling and enabling, and mappings going away with their
// function.
func TestEventSourceMappings(t *testing.T) {
	s := newServer(t, "--esm-retry-delay", "1s")
	ctx := context.Background()
	img := s.pushProbe(t, "probe:esm")
	for _, fn := range []string{"esm-deliver", "esm-toggle", "esm-error", "esm-list", "esm-list2", "esm-bad", "esm-del", "esm-gone", "esm-cli", "esm-slow"} {
		s.createFunction(t, fn, img)
	}

	// A new mapping reads the queue from its first message; a succeeded
	// record is never delivered again, a reported failure comes again
	// (once the retry delay passed) with its receive count incremented.
	t.Run("create and deliver", func(t *testing.T) {
		q := "esm-deliver-q"
		s.createQueue(t, q)
		s.sendMessages(t, q, "m1", "m2", "m3")
		before := time.Now()
		out, err := s.Lambda.CreateEventSourceMapping(ctx, &lambda.CreateEventSourceMappingInput{
			FunctionName: aws.String("esm-deliver"), EventSourceArn: aws.String(queueARN(q)),
			BatchSize: aws.Int32(5), MaximumBatchingWindowInSeconds: aws.Int32(1),
			FunctionResponseTypes: []types.FunctionResponseType{types.FunctionResponseTypeReportBatchItemFailures},
		})
		if err != nil {
			t.Fatalf("CreateEventSourceMapping: %v", err)
		}
		if st := esmStatus(out.ResultMetadata); st != 202 {
			t.Errorf("CreateEventSourceMapping answered HTTP %d, want 202", st)
		}
		m := lambda.GetEventSourceMappingOutput(*out)
		id := aws.ToString(m.UUID)
		if !esmUUIDRE.MatchString(id) || aws.ToString(m.State) != "Creating" ||
			aws.ToString(m.FunctionArn) != fnARN("esm-deliver") || aws.ToString(m.EventSourceArn) != queueARN(q) ||
			aws.ToInt32(m.BatchSize) != 5 || aws.ToInt32(m.MaximumBatchingWindowInSeconds) != 1 ||
			!slices.Equal(m.FunctionResponseTypes, []types.FunctionResponseType{types.FunctionResponseTypeReportBatchItemFailures}) ||
			m.LastModified == nil || m.LastModified.Before(before.Add(-time.Minute)) || time.Since(*m.LastModified) > time.Minute ||
			aws.ToString(m.EventSourceMappingArn) != esmARN(id) || m.LastProcessingResult == nil ||
			aws.ToString(m.StateTransitionReason) != "USER_INITIATED" {
			t.Errorf("CreateEventSourceMapping = %s", esmString(m))
		}
		got := s.waitESM(t, id, "Enabled")
		if aws.ToString(got.UUID) != id || aws.ToString(got.FunctionArn) != fnARN("esm-deliver") ||
			aws.ToString(got.EventSourceArn) != queueARN(q) || aws.ToInt32(got.BatchSize) != 5 ||
			aws.ToInt32(got.MaximumBatchingWindowInSeconds) != 1 || len(got.FunctionResponseTypes) != 1 ||
			aws.ToString(got.EventSourceMappingArn) != esmARN(id) {
			t.Errorf("GetEventSourceMapping = %s", esmString(*got))
		}

		s.sendMessages(t, q, "m4", "m5", "fail-1")
		lines := s.waitSQS(t, "esm-deliver", "m1…m5 once and fail-1 a second time, every batch complete", func(ls []sqsLine) bool {
			for _, b := range []string{"m1", "m2", "m3", "m4", "m5"} {
				if len(bodyCounts(ls, b)) == 0 {
					return false
				}
			}
			return slices.Contains(bodyCounts(ls, "fail-1"), 2) && batchesComplete(ls)
		})
		for _, b := range []string{"m1", "m2", "m3", "m4", "m5"} {
			if c := bodyCounts(lines, b); !slices.Equal(c, []int{1}) {
				t.Errorf("%s delivered with receive counts %v, want once with 1", b, c)
			}
		}
		if c := bodyCounts(lines, "fail-1"); len(c) < 2 || c[0] != 1 || c[1] != 2 {
			t.Errorf("fail-1 delivered with receive counts %v, want 1 then 2", c)
		}
		multi := false
		for _, l := range lines {
			if l.source != queueARN(q) {
				t.Errorf("line %q: source %q, want %s", l.raw, l.source, queueARN(q))
			}
			if l.batch < 1 || l.batch > 5 {
				t.Errorf("line %q: batch of %d, want 1 to BatchSize 5", l.raw, l.batch)
			}
			multi = multi || l.batch > 1
		}
		if !multi {
			t.Errorf("every batch held a single record; m1…m3 waited together in the queue:\n%s", sqsLinesString(lines))
		}
		// /metrics counts them: m1…m5 done, fail-1 (which the probe always
		// reports failed) retried.
		fams := s.scrape(t)
		done, _ := sample(fams, "kappa_esm_messages_total", map[string]string{"function": "esm-deliver", "result": "succeeded"})
		retried, _ := sample(fams, "kappa_esm_messages_total", map[string]string{"function": "esm-deliver", "result": "retried"})
		if done != 5 || retried < 1 {
			t.Errorf("kappa_esm_messages_total: %v succeeded, %v retried; want 5 and ≥ 1", done, retried)
		}
		s.deleteESM(t, id)
	})

	// While a mapping is Disabled nothing is delivered; once Enabled the
	// messages sent meanwhile arrive. Update answers Enabling, Disabling or
	// Updating and settles on Enabled or Disabled.
	t.Run("disable and enable", func(t *testing.T) {
		q := "esm-toggle-q"
		s.createQueue(t, q)
		out, err := s.Lambda.CreateEventSourceMapping(ctx, &lambda.CreateEventSourceMappingInput{
			FunctionName: aws.String("esm-toggle"), EventSourceArn: aws.String(queueARN(q)), Enabled: aws.Bool(false),
		})
		if err != nil {
			t.Fatalf("CreateEventSourceMapping: %v", err)
		}
		id := aws.ToString(out.UUID)
		if aws.ToString(out.State) != "Creating" || aws.ToInt32(out.BatchSize) != 10 ||
			aws.ToInt32(out.MaximumBatchingWindowInSeconds) != 0 || len(out.FunctionResponseTypes) != 0 {
			t.Errorf("CreateEventSourceMapping with defaults = %s; want Creating, BatchSize 10, no window, no response types",
				esmString(lambda.GetEventSourceMappingOutput(*out)))
		}
		s.waitESM(t, id, "Disabled")
		s.sendMessages(t, q, "d1")
		s.expectQuiet(t, "esm-toggle", 0, "while created Disabled")

		s.updateESM(t, "enable", &lambda.UpdateEventSourceMappingInput{UUID: aws.String(id), Enabled: aws.Bool(true)}, "Enabling")
		s.waitESM(t, id, "Enabled")
		s.waitSQS(t, "esm-toggle", "d1", func(ls []sqsLine) bool { return len(bodyCounts(ls, "d1")) > 0 })

		s.updateESM(t, "disable", &lambda.UpdateEventSourceMappingInput{UUID: aws.String(id), Enabled: aws.Bool(false)}, "Disabling")
		s.waitESM(t, id, "Disabled")
		s.sendMessages(t, q, "d2")
		// Changing something else leaves it Disabled.
		upd := s.updateESM(t, "BatchSize 3", &lambda.UpdateEventSourceMappingInput{UUID: aws.String(id), BatchSize: aws.Int32(3)}, "Updating")
		if aws.ToInt32(upd.BatchSize) != 3 {
			t.Errorf("UpdateEventSourceMapping BatchSize 3 = %s", esmString(*upd))
		}
		if got := s.waitESM(t, id, "Disabled"); aws.ToInt32(got.BatchSize) != 3 {
			t.Errorf("GetEventSourceMapping after the update = %s, want BatchSize 3", esmString(*got))
		}
		s.expectQuiet(t, "esm-toggle", 1, "while Disabled again")

		s.updateESM(t, "enable again", &lambda.UpdateEventSourceMappingInput{UUID: aws.String(id), Enabled: aws.Bool(true)}, "Enabling")
		s.waitESM(t, id, "Enabled")
		lines := s.waitSQS(t, "esm-toggle", "d2", func(ls []sqsLine) bool { return len(bodyCounts(ls, "d2")) > 0 })
		for _, b := range []string{"d1", "d2"} {
			if c := bodyCounts(lines, b); !slices.Equal(c, []int{1}) {
				t.Errorf("%s delivered with receive counts %v, want once with 1", b, c)
			}
		}
	})

	// A mapping disabled while its batch runs stays Disabling until the
	// batch ends and, as in Lambda, refuses updates and deletion meanwhile
	// with ResourceInUseException.
	t.Run("changes wait for the batch in flight", func(t *testing.T) {
		q := "esm-slow-q"
		s.createQueue(t, q)
		out, err := s.Lambda.CreateEventSourceMapping(ctx, &lambda.CreateEventSourceMappingInput{
			FunctionName: aws.String("esm-slow"), EventSourceArn: aws.String(queueARN(q)),
		})
		if err != nil {
			t.Fatalf("CreateEventSourceMapping: %v", err)
		}
		id := aws.ToString(out.UUID)
		s.waitESM(t, id, "Enabled")
		s.sendMessages(t, q, "slow") // the probe sleeps 5 s on it
		s.waitSQS(t, "esm-slow", "the slow batch", func(ls []sqsLine) bool { return len(bodyCounts(ls, "slow")) > 0 })
		s.updateESM(t, "disable", &lambda.UpdateEventSourceMappingInput{UUID: aws.String(id), Enabled: aws.Bool(false)}, "Disabling")
		_, err = s.Lambda.UpdateEventSourceMapping(ctx, &lambda.UpdateEventSourceMappingInput{UUID: aws.String(id), BatchSize: aws.Int32(2)})
		asWireError(t, err).check(t, "UpdateEventSourceMapping while Disabling", 400, "ResourceInUseException")
		_, err = s.Lambda.DeleteEventSourceMapping(ctx, &lambda.DeleteEventSourceMappingInput{UUID: aws.String(id)})
		asWireError(t, err).check(t, "DeleteEventSourceMapping while Disabling", 400, "ResourceInUseException")
		if got, err := s.Lambda.GetEventSourceMapping(ctx, &lambda.GetEventSourceMappingInput{UUID: aws.String(id)}); err != nil || aws.ToString(got.State) != "Disabling" {
			t.Errorf("GetEventSourceMapping while the batch runs: %v, want Disabling", err)
			if err == nil {
				t.Logf("got %s", esmString(*got))
			}
		}
		if got := s.waitESM(t, id, "Disabled"); aws.ToInt32(got.BatchSize) != 10 {
			t.Errorf("mapping after the refused update = %s, want BatchSize 10", esmString(*got))
		}
		s.deleteESM(t, id)
		s.waitESMGone(t, id)
	})

	// A function error fails the whole batch, reported failures or not:
	// every record of it comes again. Deleting the mapping stops it.
	t.Run("whole batch error is retried", func(t *testing.T) {
		q := "esm-error-q"
		s.createQueue(t, q)
		// Both wait in the queue, so the first batch holds them, in order.
		// The probe stops printing at "error": a batch that comes again in
		// the other order shows only that line (with batch=2 all the same).
		s.sendMessages(t, q, "e-before", "error")
		out, err := s.Lambda.CreateEventSourceMapping(ctx, &lambda.CreateEventSourceMappingInput{
			FunctionName: aws.String("esm-error"), EventSourceArn: aws.String(queueARN(q)),
			FunctionResponseTypes: []types.FunctionResponseType{types.FunctionResponseTypeReportBatchItemFailures},
		})
		if err != nil {
			t.Fatalf("CreateEventSourceMapping: %v", err)
		}
		id := aws.ToString(out.UUID)
		again := func(c []int) bool { return slices.ContainsFunc(c, func(n int) bool { return n >= 2 }) }
		lines := s.waitSQS(t, "esm-error", "e-before and error delivered again", func(ls []sqsLine) bool {
			return again(bodyCounts(ls, "e-before")) && again(bodyCounts(ls, "error"))
		})
		if c := bodyCounts(lines, "error"); len(c) < 2 || c[0] != 1 || c[1] != 2 {
			t.Errorf("error delivered with receive counts %v, want 1 then 2", c)
		}
		if c := bodyCounts(lines, "e-before"); c[0] != 1 || !slices.IsSorted(c) {
			t.Errorf("e-before delivered with receive counts %v, want 1 then more", c)
		}
		for _, l := range lines {
			if l.batch != 2 {
				t.Errorf("line %q: batch of %d, want the failed batch of 2 again", l.raw, l.batch)
			}
		}

		s.deleteESM(t, id)
		s.waitESMGone(t, id)
		// A batch already running when the mapping went away may still
		// write its lines; after that, nothing more.
		time.Sleep(time.Second)
		n := len(s.sqsLines(t, "esm-error"))
		s.expectQuiet(t, "esm-error", n, "after the mapping was deleted")
	})

	// ListEventSourceMappings filters by function and by event source and
	// pages with MaxItems and Marker.
	t.Run("list", func(t *testing.T) {
		qa, qb := "esm-list-a", "esm-list-b"
		s.createQueue(t, qa)
		s.createQueue(t, qb)
		a := s.createESM(t, "esm-list", qa)
		b := s.createESM(t, "esm-list", qb)
		v := aws.ToString(publish(t, s, "esm-list2").Version)
		c := s.createESM(t, "esm-list2:"+v, qa)
		if aws.ToString(a.FunctionArn) != fnARN("esm-list") {
			t.Errorf("FunctionArn of an unqualified mapping = %s, want %s", aws.ToString(a.FunctionArn), fnARN("esm-list"))
		}
		if want := fnARN("esm-list2") + ":" + v; aws.ToString(c.FunctionArn) != want {
			t.Errorf("FunctionArn of a mapping to version %s = %s, want %s", v, aws.ToString(c.FunctionArn), want)
		}
		ida, idb, idc := aws.ToString(a.UUID), aws.ToString(b.UUID), aws.ToString(c.UUID)

		for _, tc := range []struct {
			name string
			in   lambda.ListEventSourceMappingsInput
			want []string
		}{
			{"by function", lambda.ListEventSourceMappingsInput{FunctionName: aws.String("esm-list")}, []string{ida, idb}},
			{"by event source", lambda.ListEventSourceMappingsInput{EventSourceArn: aws.String(queueARN(qa))}, []string{ida, idc}},
			{"by both", lambda.ListEventSourceMappingsInput{FunctionName: aws.String("esm-list"), EventSourceArn: aws.String(queueARN(qa))}, []string{ida}},
		} {
			out, err := s.Lambda.ListEventSourceMappings(ctx, &tc.in)
			if err != nil {
				t.Errorf("ListEventSourceMappings %s: %v", tc.name, err)
				continue
			}
			var got []string
			for _, m := range out.EventSourceMappings {
				got = append(got, aws.ToString(m.UUID))
				if id := aws.ToString(m.UUID); id == ida && (aws.ToString(m.FunctionArn) != fnARN("esm-list") ||
					aws.ToString(m.EventSourceArn) != queueARN(qa) || aws.ToString(m.EventSourceMappingArn) != esmARN(ida)) {
					t.Errorf("ListEventSourceMappings %s: mapping %s = %+v", tc.name, id, m)
				}
			}
			slices.Sort(got)
			slices.Sort(tc.want)
			if !slices.Equal(got, tc.want) || aws.ToString(out.NextMarker) != "" {
				t.Errorf("ListEventSourceMappings %s = %v (NextMarker %q), want %v and no marker", tc.name, got, aws.ToString(out.NextMarker), tc.want)
			}
		}

		p := lambda.NewListEventSourceMappingsPaginator(s.Lambda, &lambda.ListEventSourceMappingsInput{
			FunctionName: aws.String("esm-list"), MaxItems: aws.Int32(1),
		})
		var got []string
		pages := 0
		for p.HasMorePages() && pages < 10 {
			page, err := p.NextPage(ctx)
			if err != nil {
				t.Fatalf("ListEventSourceMappings page %d: %v", pages+1, err)
			}
			pages++
			if len(page.EventSourceMappings) > 1 {
				t.Errorf("page %d holds %d mappings, want at most MaxItems 1", pages, len(page.EventSourceMappings))
			}
			for _, m := range page.EventSourceMappings {
				got = append(got, aws.ToString(m.UUID))
			}
		}
		slices.Sort(got)
		want := []string{ida, idb}
		slices.Sort(want)
		if !slices.Equal(got, want) || pages < 2 {
			t.Errorf("paging with MaxItems 1: %v in %d pages, want %v in two", got, pages, want)
		}
	})

	t.Run("errors", func(t *testing.T) {
		q := "esm-bad-q"
		s.createQueue(t, q)
		create := func(fname, source string, mutate ...func(*lambda.CreateEventSourceMappingInput)) error {
			in := &lambda.CreateEventSourceMappingInput{FunctionName: aws.String(fname), EventSourceArn: aws.String(source)}
			for _, m := range mutate {
				m(in)
			}
			_, err := s.Lambda.CreateEventSourceMapping(ctx, in)
			return err
		}
		s.createESM(t, "esm-bad", q)
		asWireError(t, create("esm-bad", queueARN(q))).check(t, "a second mapping of the queue to the function", 409, "ResourceConflictException")
		asWireError(t, create("esm-bad", "arn:aws:kinesis:us-east-1:000000000000:stream/s")).check(t, "a Kinesis stream", 400, "InvalidParameterValueException")
		asWireError(t, create("esm-bad", queueARN("esm-no-such-queue"))).check(t, "a queue that does not exist", 400, "InvalidParameterValueException")
		asWireError(t, create("esm-no-such-function", queueARN(q))).check(t, "a function that does not exist", 404, "ResourceNotFoundException")

		q2 := "esm-bad-q2"
		s.createQueue(t, q2)
		big := func(in *lambda.CreateEventSourceMappingInput) { in.BatchSize = aws.Int32(11) }
		asWireError(t, create("esm-bad", queueARN(q2), big)).check(t, "BatchSize 11 without a batching window", 400, "InvalidParameterValueException")
		// With a batching window it is fine.
		// ScalingConfig.MaximumConcurrency is 2–1,000, and kept.
		asWireError(t, create("esm-bad", queueARN(q2), func(in *lambda.CreateEventSourceMappingInput) {
			in.ScalingConfig = &types.ScalingConfig{MaximumConcurrency: aws.Int32(1)}
		})).check(t, "MaximumConcurrency 1", 400, "ValidationException")
		out, err := s.Lambda.CreateEventSourceMapping(ctx, &lambda.CreateEventSourceMappingInput{FunctionName: aws.String("esm-bad"),
			EventSourceArn: aws.String(queueARN(q2)), BatchSize: aws.Int32(11), MaximumBatchingWindowInSeconds: aws.Int32(1),
			ScalingConfig: &types.ScalingConfig{MaximumConcurrency: aws.Int32(4)}})
		if err != nil || aws.ToInt32(out.BatchSize) != 11 || aws.ToInt32(out.MaximumBatchingWindowInSeconds) != 1 ||
			out.ScalingConfig == nil || aws.ToInt32(out.ScalingConfig.MaximumConcurrency) != 4 {
			t.Errorf("BatchSize 11 with a 1 s batching window and MaximumConcurrency 4: %+v, %v", out, err)
		} else {
			s.deleteESM(t, aws.ToString(out.UUID))
		}

		unknown := aws.String(randomUUID())
		_, err = s.Lambda.GetEventSourceMapping(ctx, &lambda.GetEventSourceMappingInput{UUID: unknown})
		asWireError(t, err).check(t, "Get of an unknown UUID", 404, "ResourceNotFoundException")
		_, err = s.Lambda.UpdateEventSourceMapping(ctx, &lambda.UpdateEventSourceMappingInput{UUID: unknown, Enabled: aws.Bool(false)})
		asWireError(t, err).check(t, "Update of an unknown UUID", 404, "ResourceNotFoundException")
		_, err = s.Lambda.DeleteEventSourceMapping(ctx, &lambda.DeleteEventSourceMappingInput{UUID: unknown})
		asWireError(t, err).check(t, "Delete of an unknown UUID", 404, "ResourceNotFoundException")
	})

	// kappa esm drives the same API: create from a queue name, list, get,
	// disable, delete; a message sent with kappa queue send is delivered.
	t.Run("kappa esm", func(t *testing.T) {
		run := func(stdin string, args ...string) string {
			t.Helper()
			out, errOut, code := s.kappa(t, stdin, args...)
			if code != 0 {
				t.Fatalf("kappa %s: exit %d\n%s%s", strings.Join(args, " "), code, out, errOut)
			}
			return out
		}
		run("", "queue", "create", "esm-cli-q")
		var created struct {
			UUID, State, EventSourceArn string
			BatchSize                   int
			ScalingConfig               struct{ MaximumConcurrency int }
		}
		out := run("", "esm", "create", "--function", "esm-cli", "--queue", "esm-cli-q", "--batch-size", "4", "--max-concurrency", "2")
		if err := json.Unmarshal([]byte(out), &created); err != nil || created.State != "Creating" || created.BatchSize != 4 ||
			created.EventSourceArn != queueARN("esm-cli-q") || created.ScalingConfig.MaximumConcurrency != 2 {
			t.Fatalf("kappa esm create: %v\n%s", err, out)
		}
		s.waitESM(t, created.UUID, "Enabled")
		if out := run("", "esm", "list", "--function", "esm-cli"); !strings.Contains(out, created.UUID) || !strings.Contains(out, "Enabled") {
			t.Errorf("kappa esm list:\n%s", out)
		}
		run("", "queue", "send", "esm-cli-q", "from-the-cli")
		s.waitSQS(t, "esm-cli", "the message sent with kappa queue send", func(ls []sqsLine) bool { return len(bodyCounts(ls, "from-the-cli")) > 0 })
		run("", "esm", "update", created.UUID, "--disable")
		s.waitESM(t, created.UUID, "Disabled")
		if out := run("", "esm", "get", created.UUID); !strings.Contains(out, `"LastProcessingResult": "OK"`) {
			t.Errorf("kappa esm get:\n%s", out)
		}
		run("", "esm", "delete", created.UUID)
		s.waitESMGone(t, created.UUID)
		if _, errOut, code := s.kappa(t, "", "esm", "create", "--function", "esm-cli", "--queue", "esm-no-such-q"); code == 0 || !strings.Contains(errOut, "not found") {
			t.Errorf("kappa esm create on a missing queue: exit %d, %s", code, errOut)
		}
	})

	// Delete answers Deleting; then the mapping is gone from Get and List.
	t.Run("delete", func(t *testing.T) {
		q := "esm-del-q"
		s.createQueue(t, q)
		id := aws.ToString(s.createESM(t, "esm-del", q).UUID)
		s.waitESM(t, id, "Enabled")
		out, err := s.Lambda.DeleteEventSourceMapping(ctx, &lambda.DeleteEventSourceMappingInput{UUID: aws.String(id)})
		if err != nil {
			t.Fatalf("DeleteEventSourceMapping: %v", err)
		}
		if st := esmStatus(out.ResultMetadata); st != 202 || aws.ToString(out.State) != "Deleting" || aws.ToString(out.UUID) != id ||
			aws.ToString(out.FunctionArn) != fnARN("esm-del") || aws.ToString(out.EventSourceArn) != queueARN(q) {
			t.Errorf("DeleteEventSourceMapping = HTTP %d %s; want 202 and Deleting", st, esmString(lambda.GetEventSourceMappingOutput(*out)))
		}
		s.waitESMGone(t, id)
		list, err := s.Lambda.ListEventSourceMappings(ctx, &lambda.ListEventSourceMappingsInput{FunctionName: aws.String("esm-del")})
		if err != nil || len(list.EventSourceMappings) != 0 {
			t.Errorf("ListEventSourceMappings after the delete = %+v, %v; want none", list, err)
		}
		_, err = s.Lambda.DeleteEventSourceMapping(ctx, &lambda.DeleteEventSourceMappingInput{UUID: aws.String(id)})
		asWireError(t, err).check(t, "a second Delete", 404, "ResourceNotFoundException")
	})

	// Deleting a function deletes its mappings; a new function of the same
	// name has none.
	t.Run("function deleted", func(t *testing.T) {
		q := "esm-gone-q"
		s.createQueue(t, q)
		id := aws.ToString(s.createESM(t, "esm-gone", q).UUID)
		s.waitESM(t, id, "Enabled")
		if _, err := s.Lambda.DeleteFunction(ctx, &lambda.DeleteFunctionInput{FunctionName: aws.String("esm-gone")}); err != nil {
			t.Fatalf("DeleteFunction: %v", err)
		}
		listed := func() bool {
			out, err := s.Lambda.ListEventSourceMappings(ctx, &lambda.ListEventSourceMappingsInput{})
			if err != nil {
				t.Fatalf("ListEventSourceMappings: %v", err)
			}
			return slices.ContainsFunc(out.EventSourceMappings, func(m types.EventSourceMappingConfiguration) bool { return aws.ToString(m.UUID) == id })
		}
		if !eventually(10*time.Second, func() bool { return !listed() }) {
			t.Fatalf("mapping %s still listed 10 s after its function was deleted", id)
		}
		s.waitESMGone(t, id)
		s.createFunction(t, "esm-gone", img)
		out, err := s.Lambda.ListEventSourceMappings(ctx, &lambda.ListEventSourceMappingsInput{FunctionName: aws.String("esm-gone")})
		if err != nil || len(out.EventSourceMappings) != 0 {
			t.Errorf("ListEventSourceMappings of the new esm-gone = %+v, %v; want none", out, err)
		}
	})
}

// esmUUIDRE matches a mapping's UUID.
var esmUUIDRE = regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$`)

func esmARN(id string) string {
	return "arn:aws:lambda:us-east-1:000000000000:event-source-mapping:" + id
}

// randomUUID returns a well-formed version 4 UUID.
func randomUUID() string {
	h := randHex(16)
	return h[:8] + "-" + h[8:12] + "-4" + h[13:16] + "-8" + h[17:20] + "-" + h[20:]
}

// esmStatus returns the HTTP status of a successful SDK call.
func esmStatus(md middleware.Metadata) int {
	if r, ok := awsmw.GetRawResponse(md).(*smithyhttp.Response); ok {
		return r.StatusCode
	}
	return 0
}

// esmString shows the fields of a mapping the tests look at.
func esmString(m lambda.GetEventSourceMappingOutput) string {
	lm := "<nil>"
	if m.LastModified != nil {
		lm = m.LastModified.Format(time.RFC3339)
	}
	lpr := "<nil>"
	if m.LastProcessingResult != nil {
		lpr = strconv.Quote(*m.LastProcessingResult)
	}
	return fmt.Sprintf("{UUID %s State %s FunctionArn %s EventSourceArn %s BatchSize %d MaximumBatchingWindowInSeconds %d "+
		"FunctionResponseTypes %v LastModified %s EventSourceMappingArn %s LastProcessingResult %s StateTransitionReason %s}",
		aws.ToString(m.UUID), aws.ToString(m.State), aws.ToString(m.FunctionArn), aws.ToString(m.EventSourceArn),
		aws.ToInt32(m.BatchSize), aws.ToInt32(m.MaximumBatchingWindowInSeconds), m.FunctionResponseTypes, lm,
		aws.ToString(m.EventSourceMappingArn), lpr, aws.ToString(m.StateTransitionReason))
}

// createQueue creates a Kappa queue.
func (s *server) createQueue(t *testing.T, name string) {
	t.Helper()
	if r := s.do(t, "PUT", "/kappa/queues/"+url.PathEscape(name), nil, nil); r.status != 200 {
		t.Fatalf("create queue %s: HTTP %d %s", name, r.status, r.body)
	}
}

// sendMessages sends each body as one message of a Kappa queue, in order.
func (s *server) sendMessages(t *testing.T, name string, bodies ...string) {
	t.Helper()
	for _, b := range bodies {
		if r := s.do(t, "POST", "/kappa/queues/"+url.PathEscape(name)+"/messages", []byte(b), nil); r.status != 200 {
			t.Fatalf("send %q to queue %s: HTTP %d %s", b, name, r.status, r.body)
		}
	}
}

// createESM maps a queue to a function with the defaults.
func (s *server) createESM(t *testing.T, fname, queue string) *lambda.CreateEventSourceMappingOutput {
	t.Helper()
	out, err := s.Lambda.CreateEventSourceMapping(context.Background(), &lambda.CreateEventSourceMappingInput{
		FunctionName: aws.String(fname), EventSourceArn: aws.String(queueARN(queue)),
	})
	if err != nil {
		t.Fatalf("CreateEventSourceMapping %s → %s: %v", queue, fname, err)
	}
	return out
}

// updateESM sends an update and requires 202 with the transition state
// want.
func (s *server) updateESM(t *testing.T, what string, in *lambda.UpdateEventSourceMappingInput, want string) *lambda.GetEventSourceMappingOutput {
	t.Helper()
	out, err := s.Lambda.UpdateEventSourceMapping(context.Background(), in)
	if err != nil {
		t.Fatalf("UpdateEventSourceMapping (%s): %v", what, err)
	}
	m := lambda.GetEventSourceMappingOutput(*out)
	if st := esmStatus(out.ResultMetadata); st != 202 || aws.ToString(m.State) != want || aws.ToString(m.UUID) != aws.ToString(in.UUID) {
		t.Errorf("UpdateEventSourceMapping (%s) = HTTP %d %s; want 202 and %s", what, st, esmString(m), want)
	}
	return &m
}

// deleteESM deletes a mapping.
func (s *server) deleteESM(t *testing.T, id string) {
	t.Helper()
	if _, err := s.Lambda.DeleteEventSourceMapping(context.Background(), &lambda.DeleteEventSourceMappingInput{UUID: aws.String(id)}); err != nil {
		t.Fatalf("DeleteEventSourceMapping %s: %v", id, err)
	}
}

// waitESM polls GetEventSourceMapping until the mapping is in state want.
func (s *server) waitESM(t *testing.T, id, want string) *lambda.GetEventSourceMappingOutput {
	t.Helper()
	var last *lambda.GetEventSourceMappingOutput
	var err error
	if !eventually(10*time.Second, func() bool {
		last, err = s.Lambda.GetEventSourceMapping(context.Background(), &lambda.GetEventSourceMappingInput{UUID: aws.String(id)})
		return err == nil && aws.ToString(last.State) == want
	}) {
		if err != nil {
			t.Fatalf("mapping %s not %s after 10 s: %v", id, want, err)
		}
		t.Fatalf("mapping %s not %s after 10 s: %s", id, want, esmString(*last))
	}
	return last
}

// waitESMGone polls GetEventSourceMapping until it answers 404
// ResourceNotFoundException.
func (s *server) waitESMGone(t *testing.T, id string) {
	t.Helper()
	var err error
	eventually(10*time.Second, func() bool {
		_, err = s.Lambda.GetEventSourceMapping(context.Background(), &lambda.GetEventSourceMappingInput{UUID: aws.String(id)})
		return err != nil
	})
	asWireError(t, err).check(t, "GetEventSourceMapping of a deleted mapping", 404, "ResourceNotFoundException")
}

// sqsLine is one line the probe prints per record of an SQS batch:
// "sqs-record body=<body> count=<ApproximateReceiveCount>
// source=<eventSourceARN> batch=<records in the batch> id=<messageId>".
type sqsLine struct {
	raw       string
	requestID string
	body      string
	count     int
	source    string
	batch     int
	id        string
}

var sqsLineRE = regexp.MustCompile(`^sqs-record body=(.*) count=(\d+) source=(\S*) batch=(\d+) id=(\S*)$`)

// sqsLines returns the probe's sqs-record lines in fname's log, oldest
// first.
func (s *server) sqsLines(t *testing.T, fname string) []sqsLine {
	t.Helper()
	var out []sqsLine
	for _, e := range s.logs(t, fname, url.Values{"filter": {"sqs-record "}}) {
		msg := strings.TrimRight(e.Message, "\r\n")
		m := sqsLineRE.FindStringSubmatch(msg)
		if m == nil {
			t.Errorf("malformed probe line %q", msg)
			continue
		}
		count, _ := strconv.Atoi(m[2])
		batch, _ := strconv.Atoi(m[4])
		out = append(out, sqsLine{raw: msg, requestID: e.RequestID, body: m[1], count: count, source: m[3], batch: batch, id: m[5]})
	}
	return out
}

func sqsLinesString(ls []sqsLine) string {
	var b strings.Builder
	for _, l := range ls {
		b.WriteString(l.requestID + " " + l.raw + "\n")
	}
	return b.String()
}

// waitSQS polls fname's sqs-record lines until cond holds, for up to 20 s
// (retries come after the 1 s retry delay, batches after their window).
func (s *server) waitSQS(t *testing.T, fname, what string, cond func([]sqsLine) bool) []sqsLine {
	t.Helper()
	var ls []sqsLine
	if !eventually(20*time.Second, func() bool {
		ls = s.sqsLines(t, fname)
		return cond(ls)
	}) {
		t.Fatalf("%s never got %s; its lines:\n%s", fname, what, sqsLinesString(ls))
	}
	return ls
}

// expectQuiet checks that fname's sqs-record lines stay at n for 3 s.
func (s *server) expectQuiet(t *testing.T, fname string, n int, when string) {
	t.Helper()
	time.Sleep(3 * time.Second)
	if ls := s.sqsLines(t, fname); len(ls) != n {
		t.Errorf("%s: %d records delivered %s, want %d:\n%s", fname, len(ls)-n, when, 0, sqsLinesString(ls))
	}
}

// bodyCounts returns the receive counts with which the record of body was
// delivered, in order.
func bodyCounts(ls []sqsLine, body string) []int {
	var out []int
	for _, l := range ls {
		if l.body == body {
			out = append(out, l.count)
		}
	}
	return out
}

// batchesComplete tells whether every invocation wrote as many lines as
// its batch held records, all naming the same batch size.
func batchesComplete(ls []sqsLine) bool {
	lines := map[string]int{}
	size := map[string]int{}
	for _, l := range ls {
		if l.requestID == "" || size[l.requestID] != 0 && size[l.requestID] != l.batch {
			return false
		}
		lines[l.requestID]++
		size[l.requestID] = l.batch
	}
	for id, n := range lines {
		if n != size[id] {
			return false
		}
	}
	return true
}
