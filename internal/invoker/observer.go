package invoker

import "time"

// Observer is told the outcome of every invocation, for metrics and
// tracing. Implementations must be fast and safe for concurrent use; they
// run on the invocation's goroutine.
type Observer interface {
	// Invoked reports an invocation that ran (successfully or not).
	Invoked(Record)
	// Throttled reports an invocation refused with a 429 and its Reason.
	Throttled(function, reason string)
}

// Record describes one invocation that ran.
type Record struct {
	Function  string
	Version   string
	RequestID string
	TraceID   string
	// Start is when the invoker accepted the invocation; QueueWait the time
	// until an environment was ready to take it (includes Init on cold).
	Start     time.Time
	QueueWait time.Duration
	// Duration is the invoke phase; Billed is it rounded up to 1 ms, plus
	// Init on a cold start (container-image functions are billed for init).
	Duration     time.Duration
	Billed       time.Duration
	InitDuration time.Duration
	Cold         bool
	// Status is success, error (function error), timeout or failure
	// (crash, OOM, platform error).
	Status         string
	ErrorType      string
	MemoryMB       int
	MaxMemoryBytes uint64
	// Provisioned is true when a provisioned environment served it.
	Provisioned bool
}

// nopObserver is the default Observer.
type nopObserver struct{}

func (nopObserver) Invoked(Record)           {}
func (nopObserver) Throttled(string, string) {}
