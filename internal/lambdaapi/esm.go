package lambdaapi

import (
	"context"
	"encoding/json"
	"net/http"

	"github.com/kappa-run/kappa/internal/eventsource"
	"github.com/kappa-run/kappa/internal/function"
)

// EventSources stores event source mappings and runs them;
// *eventsource.Service implements it.
type EventSources interface {
	Create(ctx context.Context, in eventsource.Input) (eventsource.Mapping, error)
	Get(ctx context.Context, id string) (eventsource.Mapping, error)
	Update(ctx context.Context, id string, in eventsource.Input) (eventsource.Mapping, error)
	Delete(ctx context.Context, id string) (eventsource.Mapping, error)
	List(ctx context.Context, function, sourceARN string) ([]eventsource.Mapping, error)
	// The tagging operations, with a mapping's UUID for resource.
	Tagger
}

// esmRequest is CreateEventSourceMapping's and UpdateEventSourceMapping's
// body. The members of other kinds of event source (streams, Kafka, MQ,
// DocumentDB) are refused when set: Kappa's sources are its queues.
type esmRequest struct {
	FunctionName                   *string  `json:"FunctionName"`
	EventSourceArn                 string   `json:"EventSourceArn"`
	Enabled                        *bool    `json:"Enabled"`
	BatchSize                      *int     `json:"BatchSize"`
	MaximumBatchingWindowInSeconds *int     `json:"MaximumBatchingWindowInSeconds"`
	FunctionResponseTypes          []string `json:"FunctionResponseTypes"`
	// Tags is create-only, as in Lambda (TagResource changes them after).
	Tags map[string]string `json:"Tags"`

	StartingPosition           *string         `json:"StartingPosition"`
	StartingPositionTimestamp  json.RawMessage `json:"StartingPositionTimestamp"`
	ParallelizationFactor      *int            `json:"ParallelizationFactor"`
	MaximumRecordAgeInSeconds  *int            `json:"MaximumRecordAgeInSeconds"`
	BisectBatchOnFunctionError *bool           `json:"BisectBatchOnFunctionError"`
	MaximumRetryAttempts       *int            `json:"MaximumRetryAttempts"`
	TumblingWindowInSeconds    *int            `json:"TumblingWindowInSeconds"`
	Topics                     []string        `json:"Topics"`
	Queues                     []string        `json:"Queues"`
	SourceAccessConfigurations []any           `json:"SourceAccessConfigurations"`
	SelfManagedEventSource     json.RawMessage `json:"SelfManagedEventSource"`
	FilterCriteria             *struct {
		Filters []any `json:"Filters"`
	} `json:"FilterCriteria"`
	DestinationConfig *struct {
		OnFailure *struct {
			Destination *string `json:"Destination"`
		} `json:"OnFailure"`
	} `json:"DestinationConfig"`
	ScalingConfig *struct {
		MaximumConcurrency *int `json:"MaximumConcurrency"`
	} `json:"ScalingConfig"`
}

func (r *esmRequest) input() eventsource.Input {
	in := eventsource.Input{Function: r.FunctionName, EventSourceArn: r.EventSourceArn, Enabled: r.Enabled,
		BatchSize: r.BatchSize, Window: r.MaximumBatchingWindowInSeconds, Tags: r.Tags}
	if r.FunctionResponseTypes != nil {
		t := r.FunctionResponseTypes
		in.FunctionResponseTypes = &t
	}
	set := func(name string, isSet bool) {
		if isSet {
			in.Unsupported = append(in.Unsupported, name)
		}
	}
	set("StartingPosition", r.StartingPosition != nil)
	set("StartingPositionTimestamp", len(r.StartingPositionTimestamp) > 0 && string(r.StartingPositionTimestamp) != "null")
	set("ParallelizationFactor", r.ParallelizationFactor != nil)
	set("MaximumRecordAgeInSeconds", r.MaximumRecordAgeInSeconds != nil)
	set("BisectBatchOnFunctionError", r.BisectBatchOnFunctionError != nil && *r.BisectBatchOnFunctionError)
	set("MaximumRetryAttempts", r.MaximumRetryAttempts != nil)
	set("TumblingWindowInSeconds", r.TumblingWindowInSeconds != nil)
	set("Topics", len(r.Topics) > 0)
	set("Queues", len(r.Queues) > 0)
	set("SourceAccessConfigurations", len(r.SourceAccessConfigurations) > 0)
	set("SelfManagedEventSource", len(r.SelfManagedEventSource) > 0 && string(r.SelfManagedEventSource) != "null")
	set("FilterCriteria", r.FilterCriteria != nil && len(r.FilterCriteria.Filters) > 0)
	set("DestinationConfig", r.DestinationConfig != nil && r.DestinationConfig.OnFailure != nil &&
		r.DestinationConfig.OnFailure.Destination != nil && *r.DestinationConfig.OnFailure.Destination != "")
	if r.ScalingConfig != nil {
		n := 0 // an empty ScalingConfig clears it
		if r.ScalingConfig.MaximumConcurrency != nil {
			n = *r.ScalingConfig.MaximumConcurrency
		}
		in.MaxConcurrency = &n
	}
	return in
}

// esmWire is an EventSourceMappingConfiguration.
type esmWire struct {
	UUID                           string   `json:"UUID"`
	EventSourceMappingArn          string   `json:"EventSourceMappingArn"`
	EventSourceArn                 string   `json:"EventSourceArn"`
	FunctionArn                    string   `json:"FunctionArn"`
	BatchSize                      int      `json:"BatchSize"`
	MaximumBatchingWindowInSeconds int      `json:"MaximumBatchingWindowInSeconds"`
	FunctionResponseTypes          []string `json:"FunctionResponseTypes"`
	LastModified                   float64  `json:"LastModified"`
	LastProcessingResult           string   `json:"LastProcessingResult"`
	State                          string   `json:"State"`
	StateTransitionReason          string   `json:"StateTransitionReason"`
	ScalingConfig                  *struct {
		MaximumConcurrency int `json:"MaximumConcurrency"`
	} `json:"ScalingConfig,omitempty"`
}

func (a *API) esmWire(m eventsource.Mapping) esmWire {
	types := []string{}
	if m.ReportFailures {
		types = append(types, eventsource.ReportBatchItemFailures)
	}
	w := esmWire{
		UUID:                           m.UUID,
		EventSourceMappingArn:          eventsource.ARN(a.opts.Region, a.opts.Account, m.UUID),
		EventSourceArn:                 "arn:aws:sqs:" + a.opts.Region + ":" + a.opts.Account + ":" + m.Queue,
		FunctionArn:                    a.fns.ARN(m.Function, m.Qualifier),
		BatchSize:                      m.BatchSize,
		MaximumBatchingWindowInSeconds: m.Window,
		FunctionResponseTypes:          types,
		LastModified:                   epoch(m.LastModified),
		LastProcessingResult:           m.LastResult,
		State:                          m.State,
		StateTransitionReason:          "USER_INITIATED",
	}
	if m.MaxConcurrency > 0 {
		w.ScalingConfig = &struct {
			MaximumConcurrency int `json:"MaximumConcurrency"`
		}{m.MaxConcurrency}
	}
	return w
}

func (a *API) noEventSources(w http.ResponseWriter, r *http.Request) bool {
	if a.opts.EventSources == nil {
		a.unknown(w, r)
		return true
	}
	return false
}

// writeESM answers with a mapping, or with err.
func (a *API) writeESM(w http.ResponseWriter, code int, m eventsource.Mapping, err error) {
	if err != nil {
		writeError(w, a.log, err)
		return
	}
	a.writeJSON(w, code, a.esmWire(m))
}

func (a *API) createESM(w http.ResponseWriter, r *http.Request) {
	var req esmRequest
	if a.noEventSources(w, r) || !a.decodeESM(w, r, &req) {
		return
	}
	if err := function.ValidateTags(req.Tags); err != nil {
		writeError(w, a.log, err)
		return
	}
	m, err := a.opts.EventSources.Create(r.Context(), req.input())
	a.writeESM(w, http.StatusAccepted, m, err)
}

func (a *API) updateESM(w http.ResponseWriter, r *http.Request) {
	var req esmRequest
	if a.noEventSources(w, r) || !a.decodeESM(w, r, &req) {
		return
	}
	req.Tags = nil // not a member of UpdateEventSourceMapping
	m, err := a.opts.EventSources.Update(r.Context(), r.PathValue("uuid"), req.input())
	a.writeESM(w, http.StatusAccepted, m, err)
}

// decodeESM reads a Create or Update body; false when it answered an error.
func (a *API) decodeESM(w http.ResponseWriter, r *http.Request, req *esmRequest) bool {
	if err := decode(r, req); err != nil {
		writeError(w, a.log, err)
		return false
	}
	return true
}

func (a *API) getESM(w http.ResponseWriter, r *http.Request) {
	if a.noEventSources(w, r) {
		return
	}
	m, err := a.opts.EventSources.Get(r.Context(), r.PathValue("uuid"))
	a.writeESM(w, http.StatusOK, m, err)
}

func (a *API) deleteESM(w http.ResponseWriter, r *http.Request) {
	if a.noEventSources(w, r) {
		return
	}
	m, err := a.opts.EventSources.Delete(r.Context(), r.PathValue("uuid"))
	a.writeESM(w, http.StatusAccepted, m, err)
}

func (a *API) listESMs(w http.ResponseWriter, r *http.Request) {
	if a.noEventSources(w, r) {
		return
	}
	q := r.URL.Query()
	max, err := maxItems(q)
	if err != nil {
		writeError(w, a.log, err)
		return
	}
	ms, err := a.opts.EventSources.List(r.Context(), q.Get("FunctionName"), q.Get("EventSourceArn"))
	if err != nil {
		writeError(w, a.log, err)
		return
	}
	start, end, next := pageOf(ms, func(m eventsource.Mapping) string { return m.UUID }, q.Get("Marker"), max)
	out := struct {
		EventSourceMappings []esmWire `json:"EventSourceMappings"`
		NextMarker          *string   `json:"NextMarker,omitempty"`
	}{EventSourceMappings: []esmWire{}, NextMarker: next}
	for _, m := range ms[start:end] {
		out.EventSourceMappings = append(out.EventSourceMappings, a.esmWire(m))
	}
	a.writeJSON(w, http.StatusOK, out)
}
