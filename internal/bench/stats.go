package bench

import (
	"fmt"
	"slices"
	"time"
)

// Unit says how a row's numbers read.
type Unit int

const (
	// Duration values are nanoseconds.
	Duration Unit = iota
	// PerSecond values are operations per second.
	PerSecond
	// Bytes values are bytes.
	Bytes
	// Percent values are percent of one CPU.
	Percent
)

// Stat is a median and a 99th percentile, in the row's unit.
type Stat struct {
	P50, P99 float64
	// N is the number of samples (0: not measured).
	N int
}

// durations summarises latency samples.
func durations(d []time.Duration) Stat {
	if len(d) == 0 {
		return Stat{}
	}
	s := slices.Clone(d)
	slices.Sort(s)
	return Stat{P50: float64(pick(s, 50)), P99: float64(pick(s, 99)), N: len(s)}
}

// values summarises samples of any unit.
func values(v []float64) Stat {
	if len(v) == 0 {
		return Stat{}
	}
	s := slices.Clone(v)
	slices.Sort(s)
	return Stat{P50: pick(s, 50), P99: pick(s, 99), N: len(s)}
}

// pick returns the p-th percentile of sorted s (nearest rank).
func pick[T any](s []T, p int) T {
	i := (len(s)*p + 99) / 100
	return s[max(0, min(len(s)-1, i-1))]
}

// format renders v in unit u.
func format(u Unit, v float64) string {
	switch u {
	case Duration:
		d := time.Duration(v)
		switch {
		case d < time.Millisecond:
			return fmt.Sprintf("%dµs", d.Microseconds())
		case d < 10*time.Second:
			return fmt.Sprintf("%.2fms", float64(d)/float64(time.Millisecond))
		}
		return fmt.Sprintf("%.2fs", d.Seconds())
	case PerSecond:
		return fmt.Sprintf("%.0f/s", v)
	case Bytes:
		switch {
		case v >= 1<<20 || v <= -(1<<20):
			return fmt.Sprintf("%.2fMB", v/(1<<20))
		case v >= 1<<10 || v <= -(1<<10):
			return fmt.Sprintf("%.1fKB", v/(1<<10))
		}
		return fmt.Sprintf("%.0fB", v)
	case Percent:
		return fmt.Sprintf("%.2f%%", v)
	}
	return fmt.Sprint(v)
}
