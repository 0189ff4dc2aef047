package schedule

import (
	"strings"
	"testing"
	"time"
)

func mustLoc(t testing.TB, name string) *time.Location {
	t.Helper()
	loc, err := time.LoadLocation(name)
	if err != nil {
		t.Fatal(err)
	}
	return loc
}

func utc(s string) time.Time {
	t, err := time.Parse(time.RFC3339, s)
	if err != nil {
		panic(err)
	}
	return t
}

// TestNextKnownTimes checks fire times worked out by hand from a calendar
// (2024-01-01 is a Monday; US DST 2024: Mar 10 and Nov 3).
func TestNextKnownTimes(t *testing.T) {
	tests := []struct {
		name   string
		expr   string
		zone   string
		anchor string
		after  string
		want   string // "" = never
	}{
		{name: "daily noon before", expr: "cron(0 12 * * ? *)", after: "2024-01-01T11:00:00Z", want: "2024-01-01T12:00:00Z"},
		{name: "strictly after", expr: "cron(0 12 * * ? *)", after: "2024-01-01T12:00:00Z", want: "2024-01-02T12:00:00Z"},
		{name: "seconds are ignored", expr: "cron(0 12 * * ? *)", after: "2024-01-01T11:59:59Z", want: "2024-01-01T12:00:00Z"},
		{name: "step from zero", expr: "cron(0/15 * * * ? *)", after: "2024-01-01T00:07:30Z", want: "2024-01-01T00:15:00Z"},
		{name: "step from five", expr: "cron(5/20 * * * ? *)", after: "2024-01-01T00:26:00Z", want: "2024-01-01T00:45:00Z"},
		{name: "star step", expr: "cron(*/10 * * * ? *)", after: "2024-01-01T23:55:00Z", want: "2024-01-02T00:00:00Z"},
		{name: "weekdays skip weekend", expr: "cron(0 9 ? * MON-FRI *)", after: "2024-01-05T10:00:00Z", want: "2024-01-08T09:00:00Z"},
		{name: "numeric weekday", expr: "cron(15,45 8-10 ? * 1 *)", after: "2024-01-07T10:45:00Z", want: "2024-01-14T08:15:00Z"},
		{name: "last day leap february", expr: "cron(0 0 L * ? *)", after: "2024-02-01T00:00:00Z", want: "2024-02-29T00:00:00Z"},
		{name: "last day february", expr: "cron(0 0 L * ? *)", after: "2023-02-01T00:00:00Z", want: "2023-02-28T00:00:00Z"},
		{name: "last weekday", expr: "cron(0 0 LW * ? *)", after: "2024-08-01T00:00:00Z", want: "2024-08-30T00:00:00Z"},
		{name: "nearest weekday saturday", expr: "cron(0 0 15W * ? *)", after: "2024-06-01T00:00:00Z", want: "2024-06-14T00:00:00Z"},
		{name: "nearest weekday stays in month", expr: "cron(0 0 1W * ? *)", after: "2024-05-31T00:00:00Z", want: "2024-06-03T00:00:00Z"},
		{name: "nearest weekday sunday at month end", expr: "cron(0 0 30W * ? *)", after: "2024-06-20T00:00:00Z", want: "2024-06-28T00:00:00Z"},
		{name: "third friday", expr: "cron(0 10 ? * 6#3 *)", after: "2024-01-01T00:00:00Z", want: "2024-01-19T10:00:00Z"},
		{name: "fifth sunday", expr: "cron(0 0 ? * 1#5 *)", after: "2024-01-01T00:00:00Z", want: "2024-03-31T00:00:00Z"},
		{name: "last monday", expr: "cron(0 10 ? * 2L *)", after: "2024-05-01T00:00:00Z", want: "2024-05-27T10:00:00Z"},
		{name: "last friday by name", expr: "cron(0 10 ? * FRIL *)", after: "2024-05-01T00:00:00Z", want: "2024-05-31T10:00:00Z"},
		{name: "L weekday is saturday", expr: "cron(0 0 ? * L *)", after: "2024-01-01T00:00:00Z", want: "2024-01-06T00:00:00Z"},
		{name: "month range step", expr: "cron(0 0 ? JAN-MAR/2 MON#1 *)", after: "2024-01-02T00:00:00Z", want: "2024-03-04T00:00:00Z"},
		{name: "31st skips short months", expr: "cron(0 0 31 * ? *)", after: "2024-04-01T00:00:00Z", want: "2024-05-31T00:00:00Z"},
		{name: "feb 29 waits for a leap year", expr: "cron(0 0 29 2 ? *)", after: "2024-03-01T00:00:00Z", want: "2028-02-29T00:00:00Z"},
		{name: "single year", expr: "cron(0 0 1 1 ? 2030)", after: "2024-06-01T00:00:00Z", want: "2030-01-01T00:00:00Z"},
		{name: "single year passed", expr: "cron(0 0 1 1 ? 2030)", after: "2030-01-01T00:00:00Z", want: ""},
		{name: "time zone", expr: "cron(0 8 * * ? *)", zone: "Europe/Berlin", after: "2024-06-30T07:00:00Z", want: "2024-07-01T06:00:00Z"},
		{name: "spring forward skips the gap", expr: "cron(30 2 * * ? *)", zone: "America/New_York", after: "2024-03-10T05:00:00Z", want: "2024-03-11T06:30:00Z"},
		{name: "fall back first occurrence", expr: "cron(30 1 * * ? *)", zone: "America/New_York", after: "2024-11-03T04:00:00Z", want: "2024-11-03T05:30:00Z"},
		{name: "fall back fires once", expr: "cron(30 1 * * ? *)", zone: "America/New_York", after: "2024-11-03T05:30:00Z", want: "2024-11-04T06:30:00Z"},
		{name: "every minute through fall back", expr: "cron(* * * * ? *)", zone: "America/New_York", after: "2024-11-03T05:59:00Z", want: "2024-11-03T07:00:00Z"},
		{name: "rate before anchor", expr: "rate(5 minutes)", anchor: "2024-01-01T00:00:00Z", after: "2023-12-31T00:00:00Z", want: "2024-01-01T00:00:00Z"},
		{name: "rate", expr: "rate(5 minutes)", anchor: "2024-01-01T00:00:00Z", after: "2024-01-01T00:07:00Z", want: "2024-01-01T00:10:00Z"},
		{name: "rate on a tick", expr: "rate(1 hour)", anchor: "2024-01-01T00:30:00Z", after: "2024-01-01T01:30:00Z", want: "2024-01-01T02:30:00Z"},
		{name: "rate days are 24 hours", expr: "rate(1 day)", zone: "America/New_York", anchor: "2024-03-09T12:00:00Z", after: "2024-03-09T12:00:00Z", want: "2024-03-10T12:00:00Z"},
		{name: "at", expr: "at(2024-05-01T10:00:00)", zone: "America/New_York", after: "2024-01-01T00:00:00Z", want: "2024-05-01T14:00:00Z"},
		{name: "at passed", expr: "at(2024-05-01T10:00:00)", zone: "America/New_York", after: "2024-05-01T14:00:00Z", want: ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e, err := Parse(tt.expr)
			if err != nil {
				t.Fatal(err)
			}
			loc := time.UTC
			if tt.zone != "" {
				loc = mustLoc(t, tt.zone)
			}
			var anchor time.Time
			if tt.anchor != "" {
				anchor = utc(tt.anchor)
			}
			got, ok := e.Next(utc(tt.after), loc, anchor)
			if tt.want == "" {
				if ok {
					t.Fatalf("Next = %v, want none", got.UTC())
				}
				return
			}
			if !ok || !got.Equal(utc(tt.want)) {
				t.Fatalf("Next(%s) = %v (ok %v), want %s", tt.after, got.UTC(), ok, tt.want)
			}
		})
	}
}

func TestParseErrors(t *testing.T) {
	tests := []struct {
		name, expr, want string
	}{
		{"empty", "", "want rate"},
		{"unknown", "every(5 minutes)", "want rate"},
		{"unclosed", "rate(5 minutes", "want rate"},
		{"plural for one", "rate(1 minutes)", "singular"},
		{"singular for many", "rate(2 minute)", "plural"},
		{"zero rate", "rate(0 minutes)", "positive"},
		{"negative rate", "rate(-5 minutes)", "positive"},
		{"seconds", "rate(5 seconds)", "unit"},
		{"huge rate", "rate(100000 days)", "100 years"},
		{"five fields", "cron(* * * * ?)", "6 fields"},
		{"both days", "cron(0 12 * * * *)", "exactly one"},
		{"neither day", "cron(0 12 ? * ? *)", "exactly one"},
		{"minute 60", "cron(60 * * * ? *)", "outside"},
		{"hour 24", "cron(0 24 * * ? *)", "outside"},
		{"day 32", "cron(0 0 32 * ? *)", "outside"},
		{"weekday 8", "cron(0 0 ? * 8 *)", "outside"},
		{"sixth week", "cron(0 0 ? * MON#6 *)", "1–5"},
		{"year 1969", "cron(0 0 * * ? 1969)", "outside"},
		{"backwards range", "cron(5-1 * * * ? *)", "backwards"},
		{"zero step", "cron(*/0 * * * ? *)", "step"},
		{"bad name", "cron(0 0 ? * MOO *)", "not a value"},
		{"bad at", "at(2024-13-01T00:00:00)", "yyyy"},
		{"too long", "cron(" + strings.Repeat("1,", 200) + "1 * * * ? *)", "longer"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse(tt.expr)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("Parse(%q) = %v, want an error containing %q", tt.expr, err, tt.want)
			}
		})
	}
}

// TestNextAgreesWithScan compares next with a minute-by-minute scan using
// matches, over a few months around DST changes.
func TestNextAgreesWithScan(t *testing.T) {
	exprs := []string{
		"cron(0 12 * * ? *)", "cron(*/7 3-5 ? * MON,WED *)", "cron(0 0 L * ? *)", "cron(30 2 LW * ? *)",
		"cron(0 9 10W * ? *)", "cron(0 0 ? * 3#2 *)", "cron(0 6 ? * 7L *)", "cron(30 1 * * ? *)", "cron(59 23 ? * SUN-TUE *)",
	}
	zones := []string{"UTC", "America/New_York", "Europe/Berlin", "Australia/Lord_Howe", "Asia/Kolkata"}
	for _, src := range exprs {
		e, err := Parse(src)
		if err != nil {
			t.Fatal(err)
		}
		for _, z := range zones {
			loc := mustLoc(t, z)
			from := utc("2024-02-25T00:00:00Z")
			end := utc("2024-04-15T00:00:00Z")
			if testing.Short() {
				end = utc("2024-03-15T00:00:00Z")
			}
			after := from
			scan := from.Truncate(time.Minute).Add(time.Minute)
			seen := map[string]bool{}
			for after.Before(end) {
				got, ok := e.Next(after, loc, time.Time{})
				if !ok {
					t.Fatalf("%s %s: no next after %v", src, z, after)
				}
				// The scan: the first instant after `after` whose wall
				// clock matches and was not seen before (a repeated
				// fall-back wall clock fires once).
				var want time.Time
				for ; ; scan = scan.Add(time.Minute) {
					w := scan.In(loc)
					key := w.Format("2006-01-02T15:04")
					if e.cron.matches(w) && !seen[key] {
						seen[key] = true
						want = scan
						scan = scan.Add(time.Minute)
						break
					}
					seen[key] = true
				}
				if !got.Equal(want) {
					t.Fatalf("%s %s: Next(%v) = %v, scan says %v", src, z, after.In(loc), got.In(loc), want.In(loc))
				}
				after = got
			}
		}
	}
}

func FuzzParseNext(f *testing.F) {
	for _, s := range []string{
		"cron(0 12 * * ? *)", "cron(0/15 * ? * MON-FRI 2024-2030)", "cron(0 0 LW * ? *)", "cron(0 0 ? * 6#3 *)",
		"cron(0 0 15W JAN,MAR ? *)", "rate(5 minutes)", "rate(1 day)", "at(2030-01-01T00:00:00)", "cron(* * ? * 2L *)",
	} {
		f.Add(s, int64(1717171717), "America/New_York")
	}
	f.Fuzz(func(t *testing.T, src string, unix int64, zone string) {
		e, err := Parse(src)
		if err != nil {
			return
		}
		loc, err := time.LoadLocation(zone)
		if err != nil {
			loc = time.UTC
		}
		after := time.Unix(unix%(200*365*86400), 0)
		anchor := after.Add(-90 * time.Minute)
		got, ok := e.Next(after, loc, anchor)
		if !ok {
			return
		}
		if !got.After(after) {
			t.Fatalf("%s: Next(%v) = %v, not after", src, after, got)
		}
		if e.cron != nil {
			w := got.In(loc)
			if w.Second() != 0 || !e.cron.matches(w) {
				t.Fatalf("%s: Next(%v) = %v does not match the expression", src, after, w)
			}
		}
	})
}
