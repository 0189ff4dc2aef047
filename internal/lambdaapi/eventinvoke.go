package lambdaapi

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"

	"github.com/kappa-run/kappa/internal/apierr"
	"github.com/kappa-run/kappa/internal/async"
)

// AsyncInvocations accepts Event invocations and keeps their
// configurations; *async.Service implements it.
type AsyncInvocations interface {
	Enqueue(ctx context.Context, ev *async.Event) error
	PutConfig(ctx context.Context, fn, qualifier string, in async.ConfigInput) (*async.Config, error)
	UpdateConfig(ctx context.Context, fn, qualifier string, in async.ConfigInput) (*async.Config, error)
	GetConfig(ctx context.Context, fn, qualifier string) (*async.Config, error)
	DeleteConfig(ctx context.Context, fn, qualifier string) error
	ListConfigs(ctx context.Context, fn string) ([]*async.Config, error)
}

func (a *API) noAsync(w http.ResponseWriter) bool {
	if a.opts.Async == nil {
		writeError(w, a.log, apierr.New(apierr.NotImplemented, "asynchronous invocations are not enabled on this server"))
		return true
	}
	return false
}

func asyncTooLarge() error {
	return apierr.New(apierr.RequestTooLarge, "Request must be smaller than %d bytes for the InvokeFunction operation", async.MaxPayload)
}

// invokeEvent queues an Event invocation and answers 202 once it is stored.
func (a *API) invokeEvent(w http.ResponseWriter, r *http.Request, req invokeRequest) {
	if a.noAsync(w) {
		return
	}
	if len(req.payload) > async.MaxPayload {
		writeError(w, a.log, asyncTooLarge())
		return
	}
	ev := &async.Event{RequestID: requestID(r), Function: req.ref.Name, Qualifier: req.ref.Qualifier,
		Payload: req.payload, TraceID: req.traceID}
	if err := a.opts.Async.Enqueue(context.WithoutCancel(r.Context()), ev); err != nil {
		writeError(w, a.log, err)
		return
	}
	w.WriteHeader(http.StatusAccepted)
}

// invokeAsync is the deprecated InvokeAsync: the body is the event; the
// answer is 202 {"Status":202}.
func (a *API) invokeAsync(w http.ResponseWriter, r *http.Request) {
	if a.noAsync(w) {
		return
	}
	ref, err := a.ref(r)
	if err == nil {
		_, err = a.fns.Resolve(r.Context(), ref)
	}
	if err != nil {
		writeError(w, a.log, err)
		return
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, async.MaxPayload+1))
	if err != nil {
		writeError(w, a.log, apierr.Wrap(apierr.InvalidRequest, err, "Could not read request body"))
		return
	}
	if len(body) > async.MaxPayload {
		writeError(w, a.log, asyncTooLarge())
		return
	}
	if len(bytes.TrimSpace(body)) > 0 && !json.Valid(body) {
		writeError(w, a.log, apierr.New(apierr.InvalidRequest, "Could not parse request body into json: Could not parse payload into json: Unexpected character: was expecting a JSON value"))
		return
	}
	ev := &async.Event{RequestID: requestID(r), Function: ref.Name, Qualifier: ref.Qualifier, Payload: body,
		TraceID: r.Header.Get("X-Amzn-Trace-Id")}
	if err := a.opts.Async.Enqueue(context.WithoutCancel(r.Context()), ev); err != nil {
		writeError(w, a.log, err)
		return
	}
	a.writeJSON(w, http.StatusAccepted, map[string]int{"Status": http.StatusAccepted})
}

// Wire shapes of FunctionEventInvokeConfig.
type destinationWire struct {
	Destination *string `json:"Destination,omitempty"`
}

type destinationConfigWire struct {
	OnSuccess *destinationWire `json:"OnSuccess,omitempty"`
	OnFailure *destinationWire `json:"OnFailure,omitempty"`
}

type eventInvokeConfigRequest struct {
	MaximumRetryAttempts     *int                   `json:"MaximumRetryAttempts"`
	MaximumEventAgeInSeconds *int                   `json:"MaximumEventAgeInSeconds"`
	DestinationConfig        *destinationConfigWire `json:"DestinationConfig"`
}

type eventInvokeConfigWire struct {
	LastModified             float64               `json:"LastModified"`
	FunctionArn              string                `json:"FunctionArn"`
	MaximumRetryAttempts     *int                  `json:"MaximumRetryAttempts,omitempty"`
	MaximumEventAgeInSeconds *int                  `json:"MaximumEventAgeInSeconds,omitempty"`
	DestinationConfig        destinationConfigWire `json:"DestinationConfig"`
}

// parseEventInvokeConfig decodes a Put/UpdateFunctionEventInvokeConfig body.
func parseEventInvokeConfig(body []byte) (async.ConfigInput, error) {
	var req eventInvokeConfigRequest
	if err := decodeBytes(body, &req); err != nil {
		return async.ConfigInput{}, err
	}
	in := async.ConfigInput{MaximumRetryAttempts: req.MaximumRetryAttempts, MaximumEventAgeInSeconds: req.MaximumEventAgeInSeconds}
	if d := req.DestinationConfig; d != nil {
		empty := ""
		if d.OnSuccess != nil {
			in.OnSuccess = &empty
			if d.OnSuccess.Destination != nil {
				in.OnSuccess = d.OnSuccess.Destination
			}
		}
		if d.OnFailure != nil {
			in.OnFailure = &empty
			if d.OnFailure.Destination != nil {
				in.OnFailure = d.OnFailure.Destination
			}
		}
	}
	return in, in.Validate()
}

// decodeBytes is decode for a body already read.
func decodeBytes(body []byte, v any) error {
	if len(body) > maxControlBody {
		return apierr.New(apierr.RequestTooLarge, "Request must be smaller than %d bytes", maxControlBody)
	}
	if len(bytes.TrimSpace(body)) == 0 {
		body = []byte("{}")
	}
	if err := json.Unmarshal(body, v); err != nil {
		return apierr.New(apierr.InvalidRequest, "Could not parse request body into json: %s", jsonErrText(err))
	}
	return nil
}

func readBody(r *http.Request) ([]byte, error) {
	b, err := io.ReadAll(io.LimitReader(r.Body, maxControlBody+1))
	if err != nil {
		return nil, apierr.Wrap(apierr.InvalidRequest, err, "Could not read request body")
	}
	return b, nil
}

func (a *API) eventInvokeConfigWire(c *async.Config) eventInvokeConfigWire {
	out := eventInvokeConfigWire{
		LastModified:             float64(c.LastModified.UnixMilli()) / 1000,
		FunctionArn:              a.fns.ARN(c.FunctionName, c.Qualifier),
		MaximumRetryAttempts:     c.MaximumRetryAttempts,
		MaximumEventAgeInSeconds: c.MaximumEventAgeInSeconds,
		DestinationConfig:        destinationConfigWire{OnSuccess: &destinationWire{}, OnFailure: &destinationWire{}},
	}
	if d := c.Destinations.OnSuccess; d != "" {
		out.DestinationConfig.OnSuccess.Destination = &d
	}
	if d := c.Destinations.OnFailure; d != "" {
		out.DestinationConfig.OnFailure.Destination = &d
	}
	return out
}

func (a *API) putEventInvokeConfig(w http.ResponseWriter, r *http.Request) {
	a.writeEventInvokeConfig(w, r, false)
}

func (a *API) updateEventInvokeConfig(w http.ResponseWriter, r *http.Request) {
	a.writeEventInvokeConfig(w, r, true)
}

func (a *API) writeEventInvokeConfig(w http.ResponseWriter, r *http.Request, partial bool) {
	if a.noAsync(w) {
		return
	}
	ref, err := a.ref(r)
	var body []byte
	if err == nil {
		body, err = readBody(r)
	}
	var in async.ConfigInput
	if err == nil {
		in, err = parseEventInvokeConfig(body)
	}
	var c *async.Config
	if err == nil {
		if partial {
			c, err = a.opts.Async.UpdateConfig(r.Context(), ref.Name, ref.Qualifier, in)
		} else {
			c, err = a.opts.Async.PutConfig(r.Context(), ref.Name, ref.Qualifier, in)
		}
	}
	if err != nil {
		writeError(w, a.log, err)
		return
	}
	a.writeJSON(w, http.StatusOK, a.eventInvokeConfigWire(c))
}

func (a *API) getEventInvokeConfig(w http.ResponseWriter, r *http.Request) {
	if a.noAsync(w) {
		return
	}
	ref, err := a.ref(r)
	var c *async.Config
	if err == nil {
		c, err = a.opts.Async.GetConfig(r.Context(), ref.Name, ref.Qualifier)
	}
	if err != nil {
		writeError(w, a.log, err)
		return
	}
	a.writeJSON(w, http.StatusOK, a.eventInvokeConfigWire(c))
}

func (a *API) deleteEventInvokeConfig(w http.ResponseWriter, r *http.Request) {
	if a.noAsync(w) {
		return
	}
	ref, err := a.ref(r)
	if err == nil {
		err = a.opts.Async.DeleteConfig(r.Context(), ref.Name, ref.Qualifier)
	}
	if err != nil {
		writeError(w, a.log, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

func (a *API) listEventInvokeConfigs(w http.ResponseWriter, r *http.Request) {
	if a.noAsync(w) {
		return
	}
	ref, err := a.ref(r)
	var max int
	if err == nil {
		max, err = maxItems(r.URL.Query())
	}
	var cfgs []*async.Config
	if err == nil {
		cfgs, err = a.opts.Async.ListConfigs(r.Context(), ref.Name)
	}
	if err != nil {
		writeError(w, a.log, err)
		return
	}
	start, end, next := pageOf(cfgs, func(c *async.Config) string { return c.Qualifier }, r.URL.Query().Get("Marker"), max)
	out := struct {
		FunctionEventInvokeConfigs []eventInvokeConfigWire `json:"FunctionEventInvokeConfigs"`
		NextMarker                 *string                 `json:"NextMarker,omitempty"`
	}{FunctionEventInvokeConfigs: []eventInvokeConfigWire{}, NextMarker: next}
	for _, c := range cfgs[start:end] {
		out.FunctionEventInvokeConfigs = append(out.FunctionEventInvokeConfigs, a.eventInvokeConfigWire(c))
	}
	a.writeJSON(w, http.StatusOK, out)
}
