package tracing

import "time"

// Invocation is what InvocationSpans needs to know of one invocation.
type Invocation struct {
	// Header is the trace context: the caller's X-Amzn-Trace-Id, or one
	// Kappa generated. Its Parent, when set, is the caller's span.
	Header XRay
	// RequestSpan and InvokeSpan are the ids of the request and invoke
	// spans; InvokeSpan is the Parent the runtime was told, so the
	// function's own spans nest under it.
	RequestSpan, InvokeSpan  SpanID
	Function, Version, Alias string
	RequestID, ARN           string
	// Start and End bound the whole request.
	Start, End time.Time
	// Ran is false when the invocation never reached the invoke phase
	// (throttled, or its environment failed to start).
	Ran bool
	// InvokeStart and Duration bound the invoke phase; Init is the init
	// phase just before it on a cold start.
	InvokeStart time.Time
	Duration    time.Duration
	Init        time.Duration
	Cold        bool
	// Status is success, error, timeout, failure or throttled.
	Status    string
	ErrorType string
}

// InvocationSpans returns an invocation's spans: a server span for the
// request with children for the queue wait (admission until an
// environment was ready, without its init), the init phase of a cold start,
// and the invoke phase.
func InvocationSpans(inv Invocation) []Span {
	common := map[string]any{
		"faas.name": inv.Function, "faas.version": inv.Version, "faas.invocation_id": inv.RequestID,
	}
	if inv.Alias != "" {
		common["kappa.alias"] = inv.Alias
	}
	with := func(extra map[string]any) map[string]any {
		m := make(map[string]any, len(common)+len(extra))
		for k, v := range common {
			m[k] = v
		}
		for k, v := range extra {
			m[k] = v
		}
		return m
	}
	status, msg := StatusOK, ""
	if inv.Status != "success" {
		status, msg = StatusError, inv.Status
		if inv.ErrorType != "" {
			msg = inv.ErrorType
		}
	}
	reqAttrs := map[string]any{"faas.coldstart": inv.Cold, "kappa.status": inv.Status}
	if inv.ARN != "" {
		reqAttrs["cloud.resource_id"] = inv.ARN
	}
	if inv.ErrorType != "" {
		reqAttrs["error.type"] = inv.ErrorType
	}
	req := Span{
		Trace: inv.Header.Trace, ID: inv.RequestSpan, Parent: inv.Header.Parent,
		Name: "Invoke " + inv.Function, Kind: KindServer, Start: inv.Start, End: inv.End,
		Attributes: with(reqAttrs), Status: status, Message: msg,
	}
	spans := []Span{req}
	if !inv.Ran {
		return spans
	}
	initStart := inv.InvokeStart.Add(-inv.Init)
	if initStart.Before(inv.Start) {
		initStart = inv.Start
	}
	child := func(id SpanID, name string, start, end time.Time, extra map[string]any) Span {
		if end.Before(start) {
			end = start
		}
		return Span{Trace: inv.Header.Trace, ID: id, Parent: inv.RequestSpan, Name: name,
			Kind: KindInternal, Start: start, End: end, Attributes: with(extra)}
	}
	spans = append(spans, child(NewSpanID(), "queue", inv.Start, initStart, nil))
	if inv.Cold && inv.Init > 0 {
		spans = append(spans, child(NewSpanID(), "init", initStart, inv.InvokeStart, nil))
	}
	invoke := child(inv.InvokeSpan, "invoke", inv.InvokeStart, inv.InvokeStart.Add(inv.Duration), nil)
	invoke.Status, invoke.Message = status, msg
	return append(spans, invoke)
}
