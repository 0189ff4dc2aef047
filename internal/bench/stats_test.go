package bench

import (
	"bytes"
	"strings"
	"testing"
	"time"
)

func TestDurations(t *testing.T) {
	tests := []struct {
		name     string
		in       []time.Duration
		p50, p99 time.Duration
	}{
		{"empty", nil, 0, 0},
		{"one", []time.Duration{5}, 5, 5},
		{"unsorted", []time.Duration{9, 1, 5, 3, 7}, 5, 9},
		{"hundred", func() []time.Duration {
			var d []time.Duration
			for i := 100; i >= 1; i-- {
				d = append(d, time.Duration(i))
			}
			return d
		}(), 50, 99},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := durations(tt.in)
			if time.Duration(s.P50) != tt.p50 || time.Duration(s.P99) != tt.p99 || s.N != len(tt.in) {
				t.Errorf("durations = %+v, want p50 %d p99 %d n %d", s, tt.p50, tt.p99, len(tt.in))
			}
		})
	}
	in := []time.Duration{3, 1, 2}
	durations(in)
	if in[0] != 3 {
		t.Error("durations sorted its argument")
	}
}

func TestFormat(t *testing.T) {
	tests := []struct {
		name string
		unit Unit
		v    float64
		want string
	}{
		{"µs", Duration, float64(250 * time.Microsecond), "250µs"},
		{"ms", Duration, float64(7890 * time.Microsecond), "7.89ms"},
		{"s", Duration, float64(12 * time.Second), "12.00s"},
		{"rate", PerSecond, 10234.4, "10234/s"},
		{"bytes", Bytes, 512, "512B"},
		{"KB", Bytes, 20 << 10, "20.0KB"},
		{"MB", Bytes, 3 << 20, "3.00MB"},
		{"negative KB", Bytes, -(68 << 10), "-68.0KB"},
		{"percent", Percent, 0.4, "0.40%"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := format(tt.unit, tt.v); got != tt.want {
				t.Errorf("format = %q, want %q", got, tt.want)
			}
		})
	}
}

func TestWriteTable(t *testing.T) {
	rep := &Report{Rows: []Row{
		{Scenario: "cold start", Unit: Duration, Kappa: Stat{P50: 8e6, P99: 12e6, N: 50}, Baseline: "crun run",
			Base: Stat{P50: 16e6, P99: 30e6, N: 50}, Target: "≤10ms", Note: "a note"},
		{Scenario: "idle CPU", Unit: Percent, Kappa: Stat{P50: 0.1, P99: 0.1, N: 1}, Baseline: "-"},
	}}
	var out bytes.Buffer
	if err := rep.WriteTable(&out); err != nil {
		t.Fatal(err)
	}
	got := out.String()
	for _, want := range []string{"scenario", "ratio", "8.00ms", "16.00ms", "0.50", "cold start: a note", "0.10%"} {
		if !strings.Contains(got, want) {
			t.Errorf("table lacks %q:\n%s", want, got)
		}
	}
	if r := rep.Rows[1].Ratio(); r != 0 {
		t.Errorf("ratio without a baseline = %v, want 0", r)
	}
}
