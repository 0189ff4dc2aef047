package schedule

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"regexp"
	"strings"
	"time"

	"github.com/kappa-run/kappa/internal/apierr"
	"github.com/kappa-run/kappa/internal/function"
)

// States of a schedule.
const (
	Enabled  = "ENABLED"
	Disabled = "DISABLED"
	// DefaultGroup is the only schedule group Kappa has.
	DefaultGroup = "default"
)

// Target is what a schedule invokes: a function, asynchronously.
type Target struct {
	Arn     string `json:"Arn"`
	RoleArn string `json:"RoleArn,omitempty"`
	// Input, when set, is the payload; otherwise the function gets a
	// Scheduled Event.
	Input       *string      `json:"Input,omitempty"`
	RetryPolicy *RetryPolicy `json:"RetryPolicy,omitempty"`
}

// RetryPolicy is accepted and echoed; delivery follows the function's
// event-invoke configuration.
type RetryPolicy struct {
	MaximumEventAgeInSeconds *int `json:"MaximumEventAgeInSeconds,omitempty"`
	MaximumRetryAttempts     *int `json:"MaximumRetryAttempts,omitempty"`
}

// FlexibleTimeWindow is accepted and echoed; Kappa fires on time (OFF).
type FlexibleTimeWindow struct {
	Mode                   string `json:"Mode"`
	MaximumWindowInMinutes *int   `json:"MaximumWindowInMinutes,omitempty"`
}

// Input is the body of Create/UpdateSchedule.
type Input struct {
	Description                string
	ScheduleExpression         string
	ScheduleExpressionTimezone string
	StartDate, EndDate         *time.Time
	State                      string
	Target                     *Target
	FlexibleTimeWindow         *FlexibleTimeWindow
	GroupName                  string
}

// Schedule is a stored schedule.
type Schedule struct {
	Name                       string             `json:"name"`
	Description                string             `json:"description,omitempty"`
	ScheduleExpression         string             `json:"scheduleExpression"`
	ScheduleExpressionTimezone string             `json:"scheduleExpressionTimezone"`
	StartDate                  *time.Time         `json:"startDate,omitempty"`
	EndDate                    *time.Time         `json:"endDate,omitempty"`
	State                      string             `json:"state"`
	Target                     Target             `json:"target"`
	FlexibleTimeWindow         FlexibleTimeWindow `json:"flexibleTimeWindow"`
	CreationDate               time.Time          `json:"creationDate"`
	LastModificationDate       time.Time          `json:"lastModificationDate"`
	// LastFired is the last tick fired; ticks up to it are never fired
	// (at creation, and when the timing changes, it is set to that time).
	LastFired time.Time `json:"lastFired"`
	// Generation changes with every update, so that tick ids do too.
	Generation int `json:"generation"`
}

// ARN is the schedule's ARN (EventBridge Scheduler's form).
func (s *Schedule) ARN(region, account string) string {
	return fmt.Sprintf("arn:aws:scheduler:%s:%s:schedule/%s/%s", region, account, DefaultGroup, s.Name)
}

var (
	nameRE     = regexp.MustCompile(`^[0-9a-zA-Z-_.]{1,64}$`)
	functionRE = regexp.MustCompile(`^arn:aws[a-zA-Z-]*:lambda:([a-z0-9-]+):(\d{12}):function:(.+)$`)
)

const (
	maxDescription = 512
	maxInput       = 8192
)

// ValidName reports whether name is a schedule name.
func ValidName(name string) bool { return nameRE.MatchString(name) }

func validationError(format string, args ...any) error {
	return apierr.New(apierr.Validation, format, args...)
}

// parsed is a validated schedule's timing.
type parsed struct {
	expr *Expression
	loc  *time.Location
}

// validate checks in and returns its parsed timing.
func (in *Input) validate(region, account string) (parsed, error) {
	var p parsed
	if in.GroupName != "" && in.GroupName != DefaultGroup {
		return p, apierr.New(apierr.NotFound, "Schedule group %s does not exist.", in.GroupName)
	}
	if len(in.Description) > maxDescription {
		return p, validationError("Description is longer than %d characters.", maxDescription)
	}
	if in.ScheduleExpression == "" {
		return p, validationError("ScheduleExpression is required.")
	}
	var err error
	if p.expr, err = Parse(in.ScheduleExpression); err != nil {
		return p, validationError("Invalid Schedule Expression %s: %v", in.ScheduleExpression, err)
	}
	if in.ScheduleExpressionTimezone == "" {
		in.ScheduleExpressionTimezone = "UTC"
	}
	if p.loc, err = time.LoadLocation(in.ScheduleExpressionTimezone); err != nil || strings.HasPrefix(in.ScheduleExpressionTimezone, "/") {
		return p, validationError("Invalid time zone: %s.", in.ScheduleExpressionTimezone)
	}
	switch in.State {
	case "":
		in.State = Enabled
	case Enabled, Disabled:
	default:
		return p, validationError("State must be ENABLED or DISABLED, not %s.", in.State)
	}
	if in.StartDate != nil && in.EndDate != nil && !in.EndDate.After(*in.StartDate) {
		return p, validationError("The EndDate must be after the StartDate.")
	}
	if in.FlexibleTimeWindow == nil {
		in.FlexibleTimeWindow = &FlexibleTimeWindow{Mode: "OFF"}
	}
	switch in.FlexibleTimeWindow.Mode {
	case "OFF", "FLEXIBLE":
	default:
		return p, validationError("FlexibleTimeWindow.Mode must be OFF or FLEXIBLE.")
	}
	if in.Target == nil || in.Target.Arn == "" {
		return p, validationError("Target.Arn is required.")
	}
	m := functionRE.FindStringSubmatch(in.Target.Arn)
	if m == nil {
		return p, validationError("Kappa schedules invoke functions: Target.Arn must be a function ARN, not %s.", in.Target.Arn)
	}
	if m[1] != region || m[2] != account {
		return p, validationError("Target.Arn %s is outside region %s and account %s.", in.Target.Arn, region, account)
	}
	if _, err := function.ParseRef(m[3], "", ""); err != nil {
		return p, validationError("Target.Arn %s does not name a function.", in.Target.Arn)
	}
	if in.Target.Input != nil {
		if len(*in.Target.Input) > maxInput {
			return p, validationError("Target.Input is longer than %d characters.", maxInput)
		}
		if !json.Valid([]byte(*in.Target.Input)) {
			return p, validationError("Target.Input must be JSON: it is the function's payload.")
		}
	}
	return p, nil
}

// anchor is when a rate schedule's periods start: its StartDate, else its
// creation rounded up to a whole minute.
func (s *Schedule) anchor() time.Time {
	if s.StartDate != nil {
		return *s.StartDate
	}
	return s.CreationDate.Add(time.Minute - time.Nanosecond).Truncate(time.Minute)
}

// next returns the schedule's first tick strictly after after, within its
// start and end dates.
func (s *Schedule) next(p parsed, after time.Time) (time.Time, bool) {
	if s.StartDate != nil && after.Before(*s.StartDate) && !p.expr.IsRate() {
		after = s.StartDate.Add(-time.Nanosecond)
	}
	t, ok := p.expr.Next(after, p.loc, s.anchor())
	if !ok || s.EndDate != nil && t.After(*s.EndDate) {
		return time.Time{}, false
	}
	return t, true
}

// tickID derives the request id of one tick: the same schedule, version
// and tick always give the same id, so that a repeated fire is recognised
// by the queue.
func tickID(s *Schedule, tick time.Time) string {
	sum := sha256.Sum256([]byte(fmt.Sprintf("%s/%d/%d/%d", s.Name, s.CreationDate.UnixNano(), s.Generation, tick.UnixNano())))
	b := sum[:16]
	b[6] = b[6]&0x0f | 0x50 // version 5 (name-based)
	b[8] = b[8]&0x3f | 0x80 // RFC 4122 variant
	h := hex.EncodeToString(b)
	return h[0:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:32]
}

// ScheduledEvent is the payload a schedule without Input delivers.
type ScheduledEvent struct {
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

// payload is what tick delivers to the target.
func (s *Schedule) payload(id string, tick time.Time, region, account string) []byte {
	if s.Target.Input != nil {
		return []byte(*s.Target.Input)
	}
	b, _ := json.Marshal(ScheduledEvent{
		Version: "0", ID: id, DetailType: "Scheduled Event", Source: "aws.events",
		Account: account, Time: tick.UTC().Format(time.RFC3339), Region: region,
		Resources: []string{s.ARN(region, account)}, Detail: json.RawMessage("{}"),
	})
	return b
}
