package schedule

import (
	"fmt"
	"math/bits"
	"strconv"
	"strings"
	"time"
)

// Year bounds of EventBridge cron expressions.
const (
	minYear = 1970
	maxYear = 2199
)

// cronExpr is a parsed cron(…) expression. Bit i of a set means value i.
type cronExpr struct {
	minutes uint64 // 0–59
	hours   uint64 // 0–23
	months  uint64 // 1–12
	years   [4]uint64
	dom     domSpec
	dow     dowSpec
}

// domSpec is the day-of-month field; exactly one of dom and dow is '?'.
type domSpec struct {
	any         bool   // '?'
	days        uint64 // 1–31, from values, ranges, lists and steps
	last        bool   // L
	lastWeekday bool   // LW
	nearWeekday int    // nW (0: unset)
}

// dowSpec is the day-of-week field, 1 = Sunday … 7 = Saturday.
type dowSpec struct {
	any      bool  // '?'
	days     uint8 // bits 1–7
	lastOf   int   // dL: the last such weekday of the month (0: unset)
	nth      int   // d#n: the nth such weekday (0: unset)
	nthIndex int
}

type field struct {
	name     string
	min, max int
	names    []string // names[i] is value min+i
}

var (
	fMinutes = field{name: "minutes", min: 0, max: 59}
	fHours   = field{name: "hours", min: 0, max: 23}
	fDOM     = field{name: "day-of-month", min: 1, max: 31}
	fMonths  = field{name: "month", min: 1, max: 12,
		names: []string{"JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC"}}
	fDOW = field{name: "day-of-week", min: 1, max: 7,
		names: []string{"SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"}}
	fYears = field{name: "year", min: minYear, max: maxYear}
)

func parseCron(body string) (*cronExpr, error) {
	f := strings.Fields(body)
	if len(f) != 6 {
		return nil, fmt.Errorf("cron takes 6 fields (minutes hours day-of-month month day-of-week year), got %d", len(f))
	}
	c := &cronExpr{}
	var err error
	if c.minutes, err = fMinutes.parseSet(f[0]); err != nil {
		return nil, err
	}
	if c.hours, err = fHours.parseSet(f[1]); err != nil {
		return nil, err
	}
	if c.dom, err = parseDOM(f[2]); err != nil {
		return nil, err
	}
	if c.months, err = fMonths.parseSet(f[3]); err != nil {
		return nil, err
	}
	if c.dow, err = parseDOW(f[4]); err != nil {
		return nil, err
	}
	if c.dom.any == c.dow.any {
		return nil, fmt.Errorf("exactly one of day-of-month and day-of-week must be '?'")
	}
	if err := parseYears(f[5], &c.years); err != nil {
		return nil, err
	}
	return c, nil
}

// value parses a number or (for months and weekdays) a name.
func (fl field) value(s string) (int, error) {
	for i, n := range fl.names {
		if strings.EqualFold(s, n) {
			return fl.min + i, nil
		}
	}
	n, err := strconv.Atoi(s)
	if err != nil || s == "" || s[0] == '+' || s[0] == '-' {
		return 0, fmt.Errorf("%s: %q is not a value", fl.name, s)
	}
	if n < fl.min || n > fl.max {
		return 0, fmt.Errorf("%s: %d is outside %d–%d", fl.name, n, fl.min, fl.max)
	}
	return n, nil
}

// items parses a comma-separated list of *, a, a-b, */s, a/s and a-b/s
// and calls add for every value.
func (fl field) items(s string, add func(v int)) error {
	if s == "" {
		return fmt.Errorf("%s: empty field", fl.name)
	}
	for _, item := range strings.Split(s, ",") {
		rng, stepText, hasStep := strings.Cut(item, "/")
		step := 1
		if hasStep {
			n, err := strconv.Atoi(stepText)
			if err != nil || n < 1 || n > fl.max-fl.min+1 || stepText[0] == '+' {
				return fmt.Errorf("%s: step %q is not between 1 and %d", fl.name, stepText, fl.max-fl.min+1)
			}
			step = n
		}
		lo, hi := fl.min, fl.max
		switch {
		case rng == "*":
		case strings.Contains(rng, "-"):
			a, b, _ := strings.Cut(rng, "-")
			var err error
			if lo, err = fl.value(a); err != nil {
				return err
			}
			if hi, err = fl.value(b); err != nil {
				return err
			}
			if lo > hi {
				return fmt.Errorf("%s: range %s runs backwards", fl.name, rng)
			}
		default:
			v, err := fl.value(rng)
			if err != nil {
				return err
			}
			lo = v
			if !hasStep {
				hi = v
			}
		}
		for v := lo; v <= hi; v += step {
			add(v)
		}
	}
	return nil
}

func (fl field) parseSet(s string) (uint64, error) {
	var set uint64
	err := fl.items(s, func(v int) { set |= 1 << v })
	return set, err
}

func parseYears(s string, set *[4]uint64) error {
	return fYears.items(s, func(v int) {
		i := v - minYear
		set[i/64] |= 1 << (i % 64)
	})
}

func (c *cronExpr) year(y int) bool {
	if y < minYear || y > maxYear {
		return false
	}
	i := y - minYear
	return c.years[i/64]&(1<<(i%64)) != 0
}

func parseDOM(s string) (domSpec, error) {
	var d domSpec
	switch {
	case s == "?":
		d.any = true
	case s == "L":
		d.last = true
	case s == "LW":
		d.lastWeekday = true
	case strings.HasSuffix(s, "W"):
		n, err := fDOM.value(strings.TrimSuffix(s, "W"))
		if err != nil {
			return d, err
		}
		d.nearWeekday = n
	default:
		var err error
		d.days, err = fDOM.parseSet(s)
		if err != nil {
			return d, err
		}
	}
	return d, nil
}

func parseDOW(s string) (dowSpec, error) {
	var d dowSpec
	switch {
	case s == "?":
		d.any = true
	case s == "L":
		d.days = 1 << 7 // the last day of the week: Saturday
	case strings.Contains(s, "#"):
		a, b, _ := strings.Cut(s, "#")
		day, err := fDOW.value(a)
		if err != nil {
			return d, err
		}
		n, err := strconv.Atoi(b)
		if err != nil || n < 1 || n > 5 || b[0] == '+' {
			return d, fmt.Errorf("day-of-week: %q: the number after # is 1–5", s)
		}
		d.nth, d.nthIndex = day, n
	case len(s) > 1 && strings.HasSuffix(s, "L"):
		day, err := fDOW.value(strings.TrimSuffix(s, "L"))
		if err != nil {
			return d, err
		}
		d.lastOf = day
	default:
		err := fDOW.items(s, func(v int) { d.days |= 1 << v })
		if err != nil {
			return d, err
		}
	}
	return d, nil
}

func daysIn(y int, m time.Month) int {
	return time.Date(y, m+1, 0, 0, 0, 0, 0, time.UTC).Day()
}

// weekday returns 1 (Sunday) … 7 (Saturday) for a date.
func weekday(y int, m time.Month, d int) int {
	return int(time.Date(y, m, d, 0, 0, 0, 0, time.UTC).Weekday()) + 1
}

// days returns the set of days of y-m that match the day fields.
func (c *cronExpr) days(y int, m time.Month) uint64 {
	n := daysIn(y, m)
	all := uint64(1)<<(n+1) - 2 // bits 1..n
	if !c.dom.any {
		d := c.dom
		switch {
		case d.last:
			return 1 << n
		case d.lastWeekday:
			day := n
			for wd := weekday(y, m, day); wd == 1 || wd == 7; wd = weekday(y, m, day) {
				day--
			}
			return 1 << day
		case d.nearWeekday > 0:
			day := d.nearWeekday
			if day > n {
				return 0
			}
			switch weekday(y, m, day) {
			case 7: // Saturday: the Friday before, or Monday when that leaves the month
				if day == 1 {
					day = 3
				} else {
					day--
				}
			case 1: // Sunday: the Monday after, or Friday when that leaves the month
				if day == n {
					day -= 2
				} else {
					day++
				}
			}
			return 1 << day
		default:
			return d.days & all
		}
	}
	first := weekday(y, m, 1)
	d := c.dow
	var set uint64
	switch {
	case d.nth > 0:
		day := 1 + (d.nth-first+7)%7 + 7*(d.nthIndex-1)
		if day <= n {
			set = 1 << day
		}
	case d.lastOf > 0:
		day := 1 + (d.lastOf-first+7)%7
		for day+7 <= n {
			day += 7
		}
		set = 1 << day
	default:
		for day := 1; day <= n; day++ {
			if d.days&(1<<((first-1+day-1)%7+1)) != 0 {
				set |= 1 << day
			}
		}
	}
	return set
}

// next returns the first matching minute strictly after after, in loc.
func (c *cronExpr) next(after time.Time, loc *time.Location) (time.Time, bool) {
	t := after.In(loc).Truncate(time.Minute)
	if t.Second() != 0 || t.Nanosecond() != 0 {
		// Truncate works on absolute time; zones with odd offsets
		// (historic LMT) are rounded by wall clock instead.
		t = time.Date(t.Year(), t.Month(), t.Day(), t.Hour(), t.Minute(), 0, 0, loc)
	}
	start := t.Add(time.Minute)
	sy, sm, sd := start.Date()
	sh, smin := start.Hour(), start.Minute()
	for y := max(sy, minYear); y <= maxYear; y++ {
		if !c.year(y) {
			continue
		}
		for m := time.January; m <= time.December; m++ {
			if y == sy && m < sm || c.months&(1<<m) == 0 {
				continue
			}
			days := c.days(y, m)
			for days != 0 {
				d := bits.TrailingZeros64(days)
				days &^= 1 << d
				sameDay := y == sy && m == sm && d == sd
				if y == sy && m == sm && d < sd {
					continue
				}
				for h := 0; h < 24; h++ {
					if sameDay && h < sh || c.hours&(1<<h) == 0 {
						continue
					}
					for min := 0; min < 60; min++ {
						if sameDay && h == sh && min < smin || c.minutes&(1<<min) == 0 {
							continue
						}
						at, ok := localTime(y, m, d, h, min, loc)
						if ok && at.After(after) {
							return at, true
						}
					}
				}
			}
		}
	}
	return time.Time{}, false
}

// matches reports whether the wall clock of t (in its location) is a minute
// c selects. The tests use it as an independent check of next.
func (c *cronExpr) matches(t time.Time) bool {
	y, m, d := t.Date()
	return c.year(y) && c.months&(1<<m) != 0 && c.days(y, m)&(1<<d) != 0 &&
		c.hours&(1<<t.Hour()) != 0 && c.minutes&(1<<t.Minute()) != 0
}
