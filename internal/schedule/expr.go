package schedule

import (
	"fmt"
	"strconv"
	"strings"
	"time"
)

// MaxExpressionLength is the longest ScheduleExpression EventBridge accepts.
const MaxExpressionLength = 256

// Expression is a parsed schedule expression. The zero value is not valid;
// use Parse. Safe for concurrent use (immutable).
type Expression struct {
	src  string
	kind kind
	// rate: the fixed period.
	period time.Duration
	// cron: the parsed fields.
	cron *cronExpr
	// at: the wall-clock time, interpreted in the schedule's zone.
	at wallClock
}

type kind int

const (
	kindRate kind = iota + 1
	kindCron
	kindAt
)

type wallClock struct {
	year                      int
	month                     time.Month
	day, hour, minute, second int
}

// String returns the expression as parsed.
func (e *Expression) String() string { return e.src }

// IsRate reports whether e is a rate expression (fires relative to an anchor).
func (e *Expression) IsRate() bool { return e.kind == kindRate }

// Period is the period of a rate expression, 0 for others.
func (e *Expression) Period() time.Duration { return e.period }

// Parse parses rate(…), cron(…) or at(…). Errors are user-facing sentences.
func Parse(s string) (*Expression, error) {
	if len(s) > MaxExpressionLength {
		return nil, fmt.Errorf("schedule expression is longer than %d characters", MaxExpressionLength)
	}
	open := strings.IndexByte(s, '(')
	if open < 0 || !strings.HasSuffix(s, ")") {
		return nil, fmt.Errorf("invalid schedule expression %q: want rate(…), cron(…) or at(…)", s)
	}
	body := s[open+1 : len(s)-1]
	e := &Expression{src: s}
	var err error
	switch s[:open] {
	case "rate":
		e.kind = kindRate
		e.period, err = parseRate(body)
	case "cron":
		e.kind = kindCron
		e.cron, err = parseCron(body)
	case "at":
		e.kind = kindAt
		e.at, err = parseAt(body)
	default:
		return nil, fmt.Errorf("invalid schedule expression %q: want rate(…), cron(…) or at(…)", s)
	}
	if err != nil {
		return nil, fmt.Errorf("invalid schedule expression %q: %w", s, err)
	}
	return e, nil
}

func parseRate(body string) (time.Duration, error) {
	f := strings.Fields(body)
	if len(f) != 2 {
		return 0, fmt.Errorf("rate takes a value and a unit, as in rate(5 minutes)")
	}
	n, err := strconv.Atoi(f[0])
	if err != nil || n < 1 || n > 1_000_000 || f[0][0] == '+' {
		return 0, fmt.Errorf("rate value %q is not a positive integer", f[0])
	}
	var unit time.Duration
	var singular string
	switch f[1] {
	case "minute", "minutes":
		unit, singular = time.Minute, "minute"
	case "hour", "hours":
		unit, singular = time.Hour, "hour"
	case "day", "days":
		unit, singular = 24*time.Hour, "day"
	default:
		return 0, fmt.Errorf("rate unit %q is not minute(s), hour(s) or day(s)", f[1])
	}
	if (n == 1) != (f[1] == singular) {
		if n == 1 {
			return 0, fmt.Errorf("a rate of 1 takes the singular unit %q", singular)
		}
		return 0, fmt.Errorf("a rate above 1 takes the plural unit %q", singular+"s")
	}
	if time.Duration(n) > maxRate/unit {
		return 0, fmt.Errorf("rate %s is longer than 100 years", body)
	}
	return time.Duration(n) * unit, nil
}

// maxRate bounds rate periods so that they never overflow a Duration.
const maxRate = 100 * 365 * 24 * time.Hour

func parseAt(body string) (wallClock, error) {
	t, err := time.Parse("2006-01-02T15:04:05", body)
	if err != nil {
		return wallClock{}, fmt.Errorf("at takes yyyy-mm-ddThh:mm:ss")
	}
	return wallClock{t.Year(), t.Month(), t.Day(), t.Hour(), t.Minute(), t.Second()}, nil
}

// Next returns the first fire time strictly after after, and false when
// there is none. loc is the schedule's time zone (cron and at); anchor is
// the time rate periods count from.
func (e *Expression) Next(after time.Time, loc *time.Location, anchor time.Time) (time.Time, bool) {
	switch e.kind {
	case kindRate:
		if after.Before(anchor) {
			return anchor, true
		}
		k := after.Sub(anchor)/e.period + 1
		return anchor.Add(k * e.period), true
	case kindCron:
		return e.cron.next(after, loc)
	case kindAt:
		w := e.at
		t, ok := localTime(w.year, w.month, w.day, w.hour, w.minute, loc)
		t = t.Add(time.Duration(w.second) * time.Second)
		if !ok || !t.After(after) {
			return time.Time{}, false
		}
		return t, true
	}
	return time.Time{}, false
}

// localTime returns the earliest instant whose wall clock in loc reads
// y-m-d h:min:00, and false when that wall-clock time does not exist (it
// falls in a daylight-saving gap).
func localTime(y int, m time.Month, d, h, min int, loc *time.Location) (time.Time, bool) {
	t := time.Date(y, m, d, h, min, 0, 0, loc)
	if t.Hour() != h || t.Minute() != min || t.Day() != d {
		return time.Time{}, false
	}
	// In a fall-back overlap the same wall clock happens twice; take the
	// first. Offsets change by at most a few hours.
	for _, back := range []time.Duration{30 * time.Minute, time.Hour, 2 * time.Hour} {
		e := t.Add(-back)
		if e.Hour() == h && e.Minute() == min && e.Day() == d {
			t = e
		}
	}
	return t, true
}
