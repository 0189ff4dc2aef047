package rie

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/google/uuid"

	"github.com/kappa-run/kappa/internal/runtimeapi"
)

// Request limits.
const (
	maxSyncPayload  = 6 << 20 // 6 MiB, Lambda's synchronous request limit
	maxEventPayload = 1 << 20 // 1 MiB, Lambda's asynchronous request limit
)

// request is one invocation as the endpoint received it.
type request struct {
	id            string
	payload       []byte
	traceID       string
	clientContext string
	cognito       string
	tenantID      string
	stream        bool
	tail          bool
}

// answer is what the runtime (or the platform, fe) answered.
type answer struct {
	res *runtimeapi.Result
	fe  *fnError
	// explain turns an error met while reading a streamed body into the
	// platform error behind it (timeout, crash).
	explain func(error) *fnError
	tail    []byte
}

// responder delivers an answer to the caller; for a stream it returns once
// the body was read to its end.
type responder func(answer)

// handleInvoke serves POST /2015-03-31/functions/function/invocations.
func (em *Emulator) handleInvoke(w http.ResponseWriter, r *http.Request) {
	typ := r.Header.Get("X-Amz-Invocation-Type")
	limit := int64(maxSyncPayload)
	if typ == "Event" {
		limit = maxEventPayload
	}
	req, ok := em.readRequest(w, r, limit)
	if !ok {
		return
	}
	switch typ {
	case "", "RequestResponse":
	case "Event":
		em.invokeEvent(w, req)
		return
	case "DryRun":
		w.WriteHeader(http.StatusNoContent)
		return
	default:
		writeLambdaError(w, http.StatusBadRequest, "InvalidParameterValueException", "Unsupported invocation type "+strconv.Quote(typ))
		return
	}
	req.tail = r.Header.Get("X-Amz-Log-Type") == "Tail"
	s, err := em.pool.acquire(r.Context(), false)
	if err != nil {
		em.refuse(w, err)
		return
	}
	em.run(r.Context(), s, req, func(a answer) { em.writeAnswer(w, req, a) })
}

// readRequest reads the payload and the headers aws-lambda-rie honours.
func (em *Emulator) readRequest(w http.ResponseWriter, r *http.Request, limit int64) (request, bool) {
	body, err := io.ReadAll(io.LimitReader(r.Body, limit+1))
	if err != nil {
		em.log.Error("read invoke body", "err", err)
		w.WriteHeader(http.StatusInternalServerError)
		return request{}, false
	}
	if int64(len(body)) > limit {
		writeLambdaError(w, http.StatusRequestEntityTooLarge, "RequestTooLargeException",
			"Request must be smaller than "+strconv.FormatInt(limit, 10)+" bytes for the InvokeFunction operation")
		return request{}, false
	}
	// As aws-lambda-rie: a client context that is not base64 fails with 500.
	cc, err := base64.StdEncoding.DecodeString(r.Header.Get("X-Amz-Client-Context"))
	if err != nil {
		em.log.Error("decode X-Amz-Client-Context", "err", err)
		w.WriteHeader(http.StatusInternalServerError)
		return request{}, false
	}
	req := request{
		id:            r.Header.Get("X-Amzn-RequestId"),
		payload:       body,
		traceID:       r.Header.Get("X-Amzn-Trace-Id"),
		clientContext: string(cc),
		tenantID:      r.Header.Get("X-Amz-Tenant-Id"),
	}
	if ci := r.Header.Get("X-Amz-Cognito-Identity"); ci != "" && json.Valid([]byte(ci)) {
		req.cognito = ci
	}
	if !runtimeapi.ValidRequestID(req.id) {
		req.id = uuid.NewString()
	}
	if req.traceID == "" {
		req.traceID = runtimeapi.NewTraceID(em.cfg.Now())
	}
	return req, true
}

// invokeEvent answers 202 and runs req in the background, waiting for an
// environment when all are busy.
func (em *Emulator) invokeEvent(w http.ResponseWriter, req request) {
	if em.queued.Add(1) > int64(em.cfg.MaxQueuedEvents) {
		em.queued.Add(-1)
		em.refuse(w, errTooMany)
		return
	}
	em.wg.Add(1)
	go func() {
		defer em.wg.Done()
		s, err := em.pool.acquire(em.bg, true)
		em.queued.Add(-1)
		if err != nil {
			em.log.Warn("event invocation dropped", "requestId", req.id, "err", err)
			return
		}
		em.run(em.bg, s, req, func(answer) {})
	}()
	w.WriteHeader(http.StatusAccepted)
}

// refuse answers a request no environment can take.
func (em *Emulator) refuse(w http.ResponseWriter, err error) {
	if errors.Is(err, errTooMany) {
		w.Header().Set("Retry-After", "1")
		b, _ := json.Marshal(map[string]string{"Reason": "ConcurrentInvocationLimitExceeded", "Type": "User", "message": "Rate Exceeded."})
		writeJSONError(w, http.StatusTooManyRequests, "TooManyRequestsException", b)
		return
	}
	writeLambdaError(w, http.StatusInternalServerError, "ServiceException", err.Error())
}

// run invokes req in the environment of slot s (creating it on a cold
// start), calls respond with the answer as early as it is known, then waits
// for the extensions, prints END and REPORT, emits the telemetry and
// releases the slot. This is the order the server's invoker follows too:
//
//	Telemetry().Platform(PlatformStart)
//	res, err := api.Invoke(ctx, inv)          returns at the runtime's answer
//	respond                                   (a stream: read Result.Body to its end)
//	comp, err := api.WaitInvokeDone(ctx)      runtime + INVOKE extensions done
//	Telemetry().Platform(PlatformRuntimeDone, PlatformReport)
func (em *Emulator) run(reqCtx context.Context, s *slot, req request, respond responder) {
	cfg := &em.cfg
	// The invocation goes on when the client goes away, as in Lambda.
	ctx := context.WithoutCancel(reqCtx)
	e := s.env
	if e == nil {
		var fe *fnError
		var err error
		e, fe, err = em.coldStart(ctx, s.idx)
		if err != nil {
			em.pool.release(s, nil)
			em.log.Error("cold start", "err", err)
			respond(answer{fe: &fnError{Type: runtimeapi.SandboxFailure, Message: err.Error(), status: runtimeapi.StatusFailure}})
			return
		}
		if fe != nil {
			em.pool.release(s, nil)
			em.out.line("START RequestId: " + req.id + " Version: " + cfg.FunctionVersion)
			em.out.line("END RequestId: " + req.id)
			em.out.line(reportLine(req.id, 0, cfg.MemoryMB, 0, 0))
			respond(answer{fe: fe})
			return
		}
	}
	initDur := e.initDuration
	e.initDuration = 0
	if req.tail {
		e.out.beginTail()
	}
	start := cfg.Now()
	tracing := &runtimeapi.TraceContext{Type: "X-Amzn-Trace-Id", Value: req.traceID}
	e.out.platformLine("START RequestId: " + req.id + " Version: " + cfg.FunctionVersion)
	e.tel.Platform(runtimeapi.PlatformStart{RequestID: req.id, Version: cfg.FunctionVersion, Tracing: tracing})

	runCtx, cancel := context.WithDeadline(ctx, start.Add(cfg.Timeout))
	defer cancel()
	var crash atomic.Pointer[fnError]
	watchDone := make(chan struct{})
	go func() {
		defer close(watchDone)
		select {
		case <-e.sb.Done():
			crash.Store(exitError(e.sb.Exit()))
			cancel()
		case name := <-e.sb.ExtensionExited():
			crash.Store(&fnError{Type: runtimeapi.ExtensionCrash, Message: "Extension " + name + " exited", status: runtimeapi.StatusFailure})
			cancel()
		case <-runCtx.Done():
		}
	}()
	explain := func(err error) *fnError {
		if fe := crash.Load(); fe != nil {
			return fe
		}
		var ee *runtimeapi.ExtensionError
		var ie *runtimeapi.InitError
		switch {
		case errors.As(err, &ee):
			return &fnError{Type: ee.Type, Message: ee.Error(), status: runtimeapi.StatusFailure}
		case errors.As(err, &ie):
			return &fnError{Type: runtimeapi.ErrorType(ie.Type), Payload: ie.Payload, status: runtimeapi.StatusError}
		case errors.Is(runCtx.Err(), context.DeadlineExceeded) && ctx.Err() == nil:
			return &fnError{Type: runtimeapi.SandboxTimedout,
				Message: fmt.Sprintf("Task timed out after %.2f seconds", cfg.Timeout.Seconds()), status: runtimeapi.StatusTimeout}
		}
		return &fnError{Type: runtimeapi.SandboxFailure, Message: err.Error(), status: runtimeapi.StatusFailure}
	}
	stopWatch := func() bool { return false }
	if req.stream {
		// A stream outlives Invoke: end it when the time is up or the
		// runtime crashed (the environment is discarded then anyway).
		stopWatch = context.AfterFunc(runCtx, e.api.Close)
	}

	res, err := e.api.Invoke(runCtx, runtimeapi.Invocation{
		RequestID:          req.id,
		Payload:            req.payload,
		Deadline:           start.Add(cfg.Timeout),
		InvokedFunctionARN: cfg.ARN(),
		TraceID:            req.traceID,
		ClientContext:      req.clientContext,
		CognitoIdentity:    req.cognito,
		TenantID:           req.tenantID,
		Stream:             req.stream,
	})
	var fe *fnError
	if err != nil {
		fe = explain(err)
	}
	ans := answer{res: &res, fe: fe, explain: explain}
	if fe != nil {
		ans.res = nil
	}
	if fe != nil && fe.Type == runtimeapi.SandboxTimedout {
		e.out.platformLine(fmt.Sprintf("%s %s Task timed out after %.2f seconds",
			cfg.Now().UTC().Format("2006-01-02T15:04:05.000Z"), req.id, cfg.Timeout.Seconds()))
	}
	if !req.tail {
		respond(ans)
	}
	em.pool.finish(s)

	comp := runtimeapi.Completion{RequestID: req.id}
	if fe == nil {
		comp, err = e.api.WaitInvokeDone(runCtx)
		if err != nil {
			fe = explain(err)
		}
	}
	status, errType := runtimeapi.StatusSuccess, ""
	switch {
	case fe != nil:
		status, errType = fe.status, string(fe.Type)
	case comp.ErrorType != "":
		status, errType = runtimeapi.StatusError, comp.ErrorType
	}
	end := cfg.Now()
	dur := comp.Duration
	if fe != nil || dur == 0 {
		dur = min(end.Sub(start), cfg.Timeout)
	}
	runtimeDur := comp.RuntimeDuration
	if fe != nil {
		runtimeDur = dur
	}
	if req.tail || e.tel.Subscribed() > 0 {
		// Let the invocation's last lines come before platform.runtimeDone
		// and END.
		e.out.settle(2*time.Millisecond, 20*time.Millisecond)
	}
	e.tel.Platform(runtimeapi.PlatformRuntimeDone{RequestID: req.id, Status: status, ErrorType: errType,
		Metrics: &runtimeapi.RuntimeDoneMetrics{DurationMs: ms(runtimeDur), ProducedBytes: comp.ProducedBytes}, Tracing: tracing})
	used := mib(e.sb.Stats().MaxMemoryBytes)
	metrics := runtimeapi.ReportMetrics{DurationMs: ms(dur), BilledDurationMs: billedMs(dur), MemorySizeMB: cfg.MemoryMB, MaxMemoryUsedMB: used}
	if initDur > 0 {
		d := ms(initDur)
		metrics.InitDurationMs = &d
	}
	e.tel.Platform(runtimeapi.PlatformReport{RequestID: req.id, Status: status, ErrorType: errType, Metrics: metrics, Tracing: tracing})
	e.out.platformLine("END RequestId: " + req.id)
	e.out.platformLine(reportLine(req.id, dur, cfg.MemoryMB, used, initDur))
	if req.tail {
		ans.tail = e.out.endTail()
		respond(ans)
	}
	stopWatch()
	cancel()
	<-watchDone

	if fe != nil {
		reason := runtimeapi.ShutdownFailure
		if fe.Type == runtimeapi.SandboxTimedout {
			reason = runtimeapi.ShutdownTimeout
		}
		// The slot stays busy until the environment is gone: the next one
		// may need its Runtime API address.
		e.shutdown(reason)
		em.pool.release(s, nil)
		return
	}
	em.release(s, e)
}

// writeAnswer writes a synchronous answer: 200 always, as Lambda and
// aws-lambda-rie do; X-Amz-Function-Error: Unhandled on a function error.
// A timeout's body is aws-lambda-rie's plain "Task timed out after N.00
// seconds".
func (em *Emulator) writeAnswer(w http.ResponseWriter, req request, a answer) {
	h := w.Header()
	h.Set("X-Amz-Executed-Version", em.cfg.FunctionVersion)
	if a.tail != nil {
		h.Set("X-Amz-Log-Result", base64.StdEncoding.EncodeToString(a.tail))
	}
	switch {
	case a.fe != nil && a.fe.Type == runtimeapi.SandboxTimedout:
		h.Set("Content-Type", "text/plain; charset=utf-8")
		h.Set("X-Amz-Function-Error", "Unhandled")
		w.WriteHeader(http.StatusOK)
		_, _ = fmt.Fprintf(w, "Task timed out after %.2f seconds", em.cfg.Timeout.Seconds())
	case a.fe != nil:
		h.Set("Content-Type", "application/json")
		h.Set("X-Amz-Function-Error", "Unhandled")
		w.WriteHeader(http.StatusOK)
		_, _ = w.Write(a.fe.payload(req.id))
	default:
		ct := a.res.ContentType
		if ct == "" {
			ct = "application/json"
		}
		h.Set("Content-Type", ct)
		if a.res.ErrorType != "" {
			h.Set("X-Amz-Function-Error", "Unhandled")
		}
		h.Set("Content-Length", strconv.Itoa(len(a.res.Payload)))
		w.WriteHeader(http.StatusOK)
		_, _ = w.Write(a.res.Payload)
	}
	if f, ok := w.(http.Flusher); ok {
		f.Flush()
	}
}

// writeLambdaError writes a Lambda API error: X-Amzn-ErrorType and
// {"Type","message"}.
func writeLambdaError(w http.ResponseWriter, status int, typ, msg string) {
	b, _ := json.Marshal(map[string]string{"Type": "User", "message": msg})
	if status >= 500 {
		b, _ = json.Marshal(map[string]string{"Type": "Service", "message": msg})
	}
	writeJSONError(w, status, typ, b)
}

func writeJSONError(w http.ResponseWriter, status int, typ string, body []byte) {
	h := w.Header()
	h.Set("X-Amzn-ErrorType", typ)
	h.Set("Content-Type", "application/json")
	h.Set("Content-Length", strconv.Itoa(len(body)))
	w.WriteHeader(status)
	_, _ = w.Write(body)
}
