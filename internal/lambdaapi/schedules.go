package lambdaapi

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"net/http"
	"strconv"
	"time"

	"github.com/kappa-run/kappa/internal/apierr"
	"github.com/kappa-run/kappa/internal/schedule"
)

// Schedules stores and fires schedules; *schedule.Scheduler implements
// it. The HTTP API is a subset of EventBridge Scheduler's (restJson1 on
// /schedules/{Name}, default group only).
type Schedules interface {
	Create(ctx context.Context, name string, in schedule.Input) (*schedule.Schedule, error)
	Get(ctx context.Context, name string) (*schedule.Schedule, error)
	Update(ctx context.Context, name string, in schedule.Input) (*schedule.Schedule, error)
	Delete(ctx context.Context, name string) error
	List(ctx context.Context, prefix, state string) []*schedule.Schedule
	NextFire(name string) time.Time
}

// epochTime is a restJson1 timestamp: epoch seconds (fractions allowed);
// RFC 3339 strings are accepted too.
type epochTime struct{ time.Time }

func (t *epochTime) UnmarshalJSON(b []byte) error {
	var f float64
	if err := json.Unmarshal(b, &f); err == nil {
		if math.IsNaN(f) || math.IsInf(f, 0) || math.Abs(f) > 1e11 {
			return fmt.Errorf("timestamp %s is out of range", b)
		}
		sec, frac := math.Modf(f)
		t.Time = time.Unix(int64(sec), int64(frac*1e9)).UTC()
		return nil
	}
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return fmt.Errorf("timestamp %s is neither epoch seconds nor RFC 3339", b)
	}
	v, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		return fmt.Errorf("timestamp %q is neither epoch seconds nor RFC 3339", s)
	}
	t.Time = v
	return nil
}

func epoch(t time.Time) float64 { return float64(t.UnixMilli()) / 1000 }

type scheduleRequest struct {
	Description                string                       `json:"Description"`
	ScheduleExpression         string                       `json:"ScheduleExpression"`
	ScheduleExpressionTimezone string                       `json:"ScheduleExpressionTimezone"`
	StartDate                  *epochTime                   `json:"StartDate"`
	EndDate                    *epochTime                   `json:"EndDate"`
	State                      string                       `json:"State"`
	Target                     *schedule.Target             `json:"Target"`
	FlexibleTimeWindow         *schedule.FlexibleTimeWindow `json:"FlexibleTimeWindow"`
	GroupName                  string                       `json:"GroupName"`
	ClientToken                string                       `json:"ClientToken"`
	ActionAfterCompletion      string                       `json:"ActionAfterCompletion"`
}

// parseScheduleRequest decodes a Create/UpdateSchedule body.
func parseScheduleRequest(body []byte) (schedule.Input, error) {
	var req scheduleRequest
	if err := decodeBytes(body, &req); err != nil {
		return schedule.Input{}, apierr.New(apierr.Validation, "%s", apierr.As(err).Message)
	}
	if req.ActionAfterCompletion != "" && req.ActionAfterCompletion != "NONE" {
		return schedule.Input{}, apierr.New(apierr.Validation, "Kappa supports ActionAfterCompletion NONE only.")
	}
	in := schedule.Input{Description: req.Description, ScheduleExpression: req.ScheduleExpression,
		ScheduleExpressionTimezone: req.ScheduleExpressionTimezone, State: req.State, Target: req.Target,
		FlexibleTimeWindow: req.FlexibleTimeWindow, GroupName: req.GroupName}
	if req.StartDate != nil {
		in.StartDate = &req.StartDate.Time
	}
	if req.EndDate != nil {
		in.EndDate = &req.EndDate.Time
	}
	return in, nil
}

type scheduleWire struct {
	Arn                        string                      `json:"Arn"`
	Name                       string                      `json:"Name"`
	GroupName                  string                      `json:"GroupName"`
	Description                string                      `json:"Description,omitempty"`
	ScheduleExpression         string                      `json:"ScheduleExpression"`
	ScheduleExpressionTimezone string                      `json:"ScheduleExpressionTimezone"`
	StartDate                  *float64                    `json:"StartDate,omitempty"`
	EndDate                    *float64                    `json:"EndDate,omitempty"`
	State                      string                      `json:"State"`
	Target                     schedule.Target             `json:"Target"`
	FlexibleTimeWindow         schedule.FlexibleTimeWindow `json:"FlexibleTimeWindow"`
	ActionAfterCompletion      string                      `json:"ActionAfterCompletion"`
	CreationDate               float64                     `json:"CreationDate"`
	LastModificationDate       float64                     `json:"LastModificationDate"`
	// Kappa's additions: the last tick fired and the next one.
	LastFireTime *float64 `json:"LastFireTime,omitempty"`
	NextFireTime *float64 `json:"NextFireTime,omitempty"`
}

func (a *API) scheduleWire(s *schedule.Schedule) scheduleWire {
	out := scheduleWire{
		Arn: s.ARN(a.opts.Region, a.opts.Account), Name: s.Name, GroupName: schedule.DefaultGroup,
		Description: s.Description, ScheduleExpression: s.ScheduleExpression,
		ScheduleExpressionTimezone: s.ScheduleExpressionTimezone, State: s.State, Target: s.Target,
		FlexibleTimeWindow: s.FlexibleTimeWindow, ActionAfterCompletion: "NONE",
		CreationDate: epoch(s.CreationDate), LastModificationDate: epoch(s.LastModificationDate),
	}
	at := func(t time.Time) *float64 { f := epoch(t); return &f }
	if s.StartDate != nil {
		out.StartDate = at(*s.StartDate)
	}
	if s.EndDate != nil {
		out.EndDate = at(*s.EndDate)
	}
	if s.LastFired.After(s.CreationDate) {
		out.LastFireTime = at(s.LastFired)
	}
	if next := a.opts.Schedules.NextFire(s.Name); !next.IsZero() {
		out.NextFireTime = at(next)
	}
	return out
}

func (a *API) noSchedules(w http.ResponseWriter) bool {
	if a.opts.Schedules == nil {
		writeError(w, a.log, apierr.New(apierr.NotImplemented, "schedules are not enabled on this server"))
		return true
	}
	return false
}

func (a *API) createSchedule(w http.ResponseWriter, r *http.Request) { a.writeSchedule(w, r, true) }
func (a *API) updateSchedule(w http.ResponseWriter, r *http.Request) { a.writeSchedule(w, r, false) }

func (a *API) writeSchedule(w http.ResponseWriter, r *http.Request, create bool) {
	if a.noSchedules(w) {
		return
	}
	body, err := readBody(r)
	var in schedule.Input
	if err == nil {
		in, err = parseScheduleRequest(body)
	}
	var s *schedule.Schedule
	if err == nil {
		if create {
			s, err = a.opts.Schedules.Create(r.Context(), r.PathValue("sched"), in)
		} else {
			s, err = a.opts.Schedules.Update(r.Context(), r.PathValue("sched"), in)
		}
	}
	if err != nil {
		writeError(w, a.log, err)
		return
	}
	a.writeJSON(w, http.StatusOK, map[string]string{"ScheduleArn": s.ARN(a.opts.Region, a.opts.Account)})
}

func (a *API) getSchedule(w http.ResponseWriter, r *http.Request) {
	if a.noSchedules(w) {
		return
	}
	s, err := a.opts.Schedules.Get(r.Context(), r.PathValue("sched"))
	if err != nil {
		writeError(w, a.log, err)
		return
	}
	a.writeJSON(w, http.StatusOK, a.scheduleWire(s))
}

func (a *API) deleteSchedule(w http.ResponseWriter, r *http.Request) {
	if a.noSchedules(w) {
		return
	}
	if err := a.opts.Schedules.Delete(r.Context(), r.PathValue("sched")); err != nil {
		writeError(w, a.log, err)
		return
	}
	a.writeJSON(w, http.StatusOK, struct{}{})
}

func (a *API) listSchedules(w http.ResponseWriter, r *http.Request) {
	if a.noSchedules(w) {
		return
	}
	q := r.URL.Query()
	state := q.Get("State")
	if state != "" && state != schedule.Enabled && state != schedule.Disabled {
		writeError(w, a.log, apierr.New(apierr.Validation, "1 validation error detected: Value '%s' at 'state' failed to satisfy constraint: Member must satisfy enum value set: [ENABLED, DISABLED]", state))
		return
	}
	max := 100
	if v := q.Get("MaxResults"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > 100 {
			writeError(w, a.log, apierr.New(apierr.Validation, "1 validation error detected: Value '%s' at 'maxResults' failed to satisfy constraint: Member must have value between 1 and 100", v))
			return
		}
		max = n
	}
	all := a.opts.Schedules.List(r.Context(), q.Get("NamePrefix"), state)
	names := make([]string, len(all))
	for i, s := range all {
		names[i] = s.Name
	}
	start, end, next := page(names, q.Get("NextToken"), max)
	type summary struct {
		Arn                  string  `json:"Arn"`
		Name                 string  `json:"Name"`
		GroupName            string  `json:"GroupName"`
		State                string  `json:"State"`
		CreationDate         float64 `json:"CreationDate"`
		LastModificationDate float64 `json:"LastModificationDate"`
		Target               struct {
			Arn string `json:"Arn"`
		} `json:"Target"`
		// Kappa's addition.
		ScheduleExpression string `json:"ScheduleExpression"`
	}
	out := struct {
		Schedules []summary `json:"Schedules"`
		NextToken *string   `json:"NextToken,omitempty"`
	}{Schedules: []summary{}, NextToken: next}
	for _, s := range all[start:end] {
		sm := summary{Arn: s.ARN(a.opts.Region, a.opts.Account), Name: s.Name, GroupName: schedule.DefaultGroup, State: s.State,
			CreationDate: epoch(s.CreationDate), LastModificationDate: epoch(s.LastModificationDate), ScheduleExpression: s.ScheduleExpression}
		sm.Target.Arn = s.Target.Arn
		out.Schedules = append(out.Schedules, sm)
	}
	a.writeJSON(w, http.StatusOK, out)
}
