package metrics

import (
	"math"
	"sort"
	"time"
)

// The console's history: per function, one bucket a minute for the last
// hour, enough for sparklines and charts without an external time-series
// database.
const (
	step    = time.Minute
	buckets = 60
)

// Duration percentiles come from a log-scale histogram: bin i holds
// durations in [base·g^(i-1), base·g^i) with g = √2, from 0.25 ms up to
// beyond 15 min.
const (
	nBins   = 48
	binBase = 250 * time.Microsecond
)

var binGrowth = math.Sqrt2

// Bucket is one minute of a function's activity.
type Bucket struct {
	// Time is the start of the minute.
	Time        time.Time `json:"time"`
	Invocations int64     `json:"invocations"`
	Errors      int64     `json:"errors"`
	Throttles   int64     `json:"throttles"`
	ColdStarts  int64     `json:"coldStarts"`
	// Concurrency is the most invocations running at once.
	Concurrency int     `json:"concurrency"`
	GBSeconds   float64 `json:"gbSeconds"`
	// Duration percentiles and mean in milliseconds (0 without
	// invocations).
	P50Ms  float64 `json:"p50Ms"`
	P90Ms  float64 `json:"p90Ms"`
	P99Ms  float64 `json:"p99Ms"`
	MeanMs float64 `json:"meanMs"`

	minute int64
	sumMs  float64
	bins   [nBins]uint32
}

func (b *Bucket) concurrency(n int) { b.Concurrency = max(b.Concurrency, n) }

func (b *Bucket) observe(d time.Duration) {
	b.sumMs += float64(d) / float64(time.Millisecond)
	b.bins[bin(d)]++
}

func bin(d time.Duration) int {
	if d < binBase {
		return 0
	}
	i := int(math.Log(float64(d)/float64(binBase))/math.Log(binGrowth)) + 1
	return min(i, nBins-1)
}

// binMid is a representative duration of bin i (its geometric middle).
func binMid(i int) float64 {
	lo := float64(binBase) / float64(time.Millisecond)
	if i == 0 {
		return lo / 2
	}
	return lo * math.Pow(binGrowth, float64(i)-0.5)
}

// finish fills in the percentiles of a copy handed out.
func (b Bucket) finish() Bucket {
	var n uint32
	for _, c := range b.bins {
		n += c
	}
	if n == 0 {
		return b
	}
	b.MeanMs = b.sumMs / float64(n)
	b.P50Ms, b.P90Ms, b.P99Ms = b.quantile(n, .5), b.quantile(n, .9), b.quantile(n, .99)
	return b
}

func (b *Bucket) quantile(n uint32, q float64) float64 {
	rank := uint32(math.Ceil(q * float64(n)))
	var seen uint32
	for i, c := range b.bins {
		seen += c
		if seen >= rank {
			return math.Round(binMid(i)*100) / 100
		}
	}
	return 0
}

// history is a ring of the last hour's buckets.
type history struct {
	ring [buckets]Bucket
}

// at returns the bucket of t's minute, recycling a stale slot.
func (h *history) at(t time.Time) *Bucket {
	min := t.Unix() / int64(step/time.Second)
	b := &h.ring[min%buckets]
	if b.minute != min {
		*b = Bucket{minute: min}
	}
	return b
}

// window returns the last hour's buckets ending with now's minute, oldest
// first, with empty minutes filled in.
func (h *history) window(now time.Time) []Bucket {
	cur := now.Unix() / int64(step/time.Second)
	out := make([]Bucket, buckets)
	for i := range out {
		min := cur - buckets + 1 + int64(i)
		b := h.ring[min%buckets]
		if b.minute != min {
			b = Bucket{minute: min}
		}
		b.Time = time.Unix(min*int64(step/time.Second), 0).UTC()
		out[i] = b.finish()
	}
	return out
}

func (m *Metrics) historyLocked(fn string) *history {
	h := m.history[fn]
	if h == nil {
		h = &history{}
		m.history[fn] = h
	}
	return h
}

// Series returns a function's last hour, one Bucket a minute, oldest
// first (all empty for a function never seen).
func (m *Metrics) Series(function string) []Bucket {
	m.mu.Lock()
	defer m.mu.Unlock()
	h := m.history[function]
	if h == nil {
		h = &history{}
	}
	return h.window(m.opts.Now())
}

// Summary is a function's last hour in brief, for lists.
type Summary struct {
	Function    string `json:"function"`
	Invocations int64  `json:"invocations"`
	Errors      int64  `json:"errors"`
	Throttles   int64  `json:"throttles"`
	ColdStarts  int64  `json:"coldStarts"`
	// Running is the number of invocations running now.
	Running int `json:"running"`
	// Spark is invocations per minute over the hour, oldest first.
	Spark      []int64 `json:"spark"`
	ErrorSpark []int64 `json:"errorSpark"`
}

// Summaries returns the last hour of every function seen, by name.
func (m *Metrics) Summaries() []Summary {
	m.mu.Lock()
	defer m.mu.Unlock()
	now := m.opts.Now()
	out := make([]Summary, 0, len(m.history))
	for fn, h := range m.history {
		s := Summary{Function: fn, Running: m.fnInflight[fn]}
		for _, b := range h.window(now) {
			s.Invocations += b.Invocations
			s.Errors += b.Errors
			s.Throttles += b.Throttles
			s.ColdStarts += b.ColdStarts
			s.Spark = append(s.Spark, b.Invocations)
			s.ErrorSpark = append(s.ErrorSpark, b.Errors)
		}
		out = append(out, s)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Function < out[j].Function })
	return out
}

// Running is the number of a function's invocations running now.
func (m *Metrics) Running(function string) int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.fnInflight[function]
}
