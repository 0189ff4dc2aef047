package e2e

import (
	"encoding/json"
	"fmt"
	"os/exec"
	"strings"
	"testing"
	"time"
)

// scheduledEvent is the payload a schedule delivers.
type scheduledEvent struct {
	Version    string          `json:"version"`
	ID         string          `json:"id"`
	DetailType string          `json:"detail-type"`
	Source     string          `json:"source"`
	Account    string          `json:"account"`
	Time       string          `json:"time"`
	Region     string          `json:"region"`
	Resources  []string        `json:"resources"`
	Detail     json.RawMessage `json:"detail"`
}

// ticksOf returns the scheduled events of schedule name among records.
func ticksOf(t *testing.T, recs []destRecord, name string) []scheduledEvent {
	t.Helper()
	var out []scheduledEvent
	for _, r := range recs {
		var ev scheduledEvent
		if err := json.Unmarshal(r.RequestPayload, &ev); err != nil {
			t.Fatalf("record payload %s: %v", r.RequestPayload, err)
		}
		if len(ev.Resources) == 1 && strings.HasSuffix(ev.Resources[0], "/"+name) {
			out = append(out, ev)
		}
	}
	return out
}

// TestSchedules creates schedules with the CLI and the HTTP API, checks
// the Scheduled Event a tick delivers, and that a tick missed while the
// server was killed fires once after the restart, and not again after a
// second one. Rate schedules count from their StartDate, which lets the
// test place a tick a few seconds ahead instead of waiting for a minute.
func TestSchedules(t *testing.T) {
	s := newServer(t)
	img := s.pushProbe(t, "probe:sched")
	s.createFunction(t, "tick", img)
	s.putEventConfig(t, "tick", nil, queueARN("ticks"), "")
	q := s.queue("ticks")
	kappa := func(args ...string) string {
		t.Helper()
		out, err := exec.Command(kappaBin, append(args, "--endpoint", "http://"+s.addr)...).CombinedOutput()
		if err != nil {
			t.Fatalf("kappa %s: %v\n%s", strings.Join(args, " "), err, out)
		}
		return string(out)
	}

	// First tick 6 s from now: StartDate one period before it.
	tick := time.Now().Add(6 * time.Second).Truncate(time.Second)
	kappa("schedule", "create", "every", "--expression", "rate(1 minute)", "--function", "tick",
		"--start", tick.Add(-time.Minute).UTC().Format(time.RFC3339))
	t.Run("fires a Scheduled Event", func(t *testing.T) {
		recs := q.records(t, 1, 30*time.Second)
		evs := ticksOf(t, recs, "every")
		if len(evs) != 1 {
			t.Fatalf("%d ticks of every, want 1", len(evs))
		}
		ev := evs[0]
		want := scheduledEvent{Version: "0", ID: recs[0].RequestContext.RequestID, DetailType: "Scheduled Event", Source: "aws.events",
			Account: "000000000000", Time: tick.UTC().Format(time.RFC3339), Region: "us-east-1",
			Resources: []string{"arn:aws:scheduler:us-east-1:000000000000:schedule/default/every"}, Detail: json.RawMessage("{}")}
		if fmt.Sprint(ev) != fmt.Sprint(want) {
			t.Errorf("tick = %+v\nwant %+v", ev, want)
		}
		if recs[0].RequestContext.Condition != "Success" || recs[0].RequestContext.FunctionArn != fnARN("tick")+":$LATEST" {
			t.Errorf("record = %+v", recs[0].RequestContext)
		}
		if out := kappa("schedule", "list"); !strings.Contains(out, "every") || !strings.Contains(out, "rate(1 minute)") || !strings.Contains(out, fnARN("tick")) {
			t.Errorf("kappa schedule list:\n%s", out)
		}
		var got struct{ LastFireTime, NextFireTime float64 }
		json.Unmarshal([]byte(kappa("schedule", "get", "every")), &got)
		if int64(got.LastFireTime) != tick.Unix() || int64(got.NextFireTime) != tick.Add(time.Minute).Unix() {
			t.Errorf("LastFireTime %v NextFireTime %v, want %d and %d", got.LastFireTime, got.NextFireTime, tick.Unix(), tick.Add(time.Minute).Unix())
		}
	})

	t.Run("a tick missed during a crash fires once", func(t *testing.T) {
		missed := time.Now().Add(3 * time.Second).Truncate(time.Second)
		body := fmt.Sprintf(`{"ScheduleExpression":"rate(1 minute)","FlexibleTimeWindow":{"Mode":"OFF"},"StartDate":%d,`+
			`"Target":{"Arn":"%s","RoleArn":"arn:aws:iam::000000000000:role/scheduler"}}`, missed.Add(-time.Minute).Unix(), fnARN("tick"))
		if r := s.do(t, "POST", "/schedules/missed", []byte(body), nil); r.status != 200 || !strings.Contains(string(r.body), `"ScheduleArn":"arn:aws:scheduler:us-east-1:000000000000:schedule/default/missed"`) {
			t.Fatalf("CreateSchedule = %d %s", r.status, r.body)
		}
		s.kill9()
		time.Sleep(time.Until(missed.Add(2 * time.Second)))
		s.start(s.addr)
		deadline := time.Now().Add(30 * time.Second)
		for len(ticksOf(t, q.records(t, len(q.all), 0), "missed")) == 0 && time.Now().Before(deadline) {
			q.poll(t, time.Second)
		}
		if evs := ticksOf(t, q.records(t, len(q.all), 0), "missed"); len(evs) != 1 || evs[0].Time != missed.UTC().Format(time.RFC3339) {
			t.Fatalf("missed ticks after the restart: %+v, want one at %s", evs, missed.UTC().Format(time.RFC3339))
		}
		// Once more: nothing is fired again.
		s.restart()
		time.Sleep(2 * time.Second)
		q.poll(t, time.Second)
		if evs := ticksOf(t, q.records(t, len(q.all), 0), "missed"); len(evs) != 1 {
			t.Errorf("after a second restart: %d ticks of missed, want still 1", len(evs))
		}
	})

	t.Run("delete", func(t *testing.T) {
		kappa("schedule", "delete", "every")
		kappa("schedule", "delete", "missed")
		if out := kappa("schedule", "list"); strings.Contains(out, "every") || strings.Contains(out, "missed") {
			t.Errorf("after delete:\n%s", out)
		}
		if r := s.do(t, "GET", "/schedules/every", nil, nil); r.status != 404 || r.header.Get("X-Amzn-ErrorType") != "ResourceNotFoundException" {
			t.Errorf("GetSchedule after delete = %d %s", r.status, r.body)
		}
	})
}
