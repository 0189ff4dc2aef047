package lambdaapi

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"sort"
	"strconv"

	"github.com/google/uuid"

	"github.com/kappa-run/kappa/internal/apierr"
	"github.com/kappa-run/kappa/internal/async"
	"github.com/kappa-run/kappa/internal/function"
	"github.com/kappa-run/kappa/internal/invoker"
)

// Functions is the function service the API drives; *function.Service
// implements it.
type Functions interface {
	ARN(name, qualifier string) string
	Create(ctx context.Context, in function.CreateInput) (*function.Function, error)
	Get(ctx context.Context, name string) (*function.Function, error)
	List(ctx context.Context) ([]*function.Function, error)
	UpdateCode(ctx context.Context, name string, in function.UpdateCodeInput) (*function.Function, error)
	UpdateConfig(ctx context.Context, name string, in function.UpdateConfigInput) (*function.Function, error)
	Delete(ctx context.Context, name string) error
	Resolve(ctx context.Context, ref function.Ref) (function.Target, error)
	Config(ctx context.Context, ref function.Ref) (function.Config, error)
	Publish(ctx context.Context, name string, in function.PublishInput) (function.Config, error)
	Versions(ctx context.Context, name string) ([]function.Config, error)
	DeleteVersion(ctx context.Context, name, qualifier string) error
	CreateAlias(ctx context.Context, fn string, in function.AliasInput) (*function.Alias, error)
	GetAlias(ctx context.Context, fn, name string) (*function.Alias, error)
	UpdateAlias(ctx context.Context, fn string, in function.AliasInput) (*function.Alias, error)
	DeleteAlias(ctx context.Context, fn, name string) error
	Aliases(ctx context.Context, fn, version string) ([]*function.Alias, error)
	PutReservedConcurrency(ctx context.Context, name string, n int) (int, error)
	PutRecursion(ctx context.Context, name string, loop *string) (string, error)
	DeleteReservedConcurrency(ctx context.Context, name string) error
	Unreserved(ctx context.Context) (int, error)
	UnreservedCached() int
	PutProvisioned(ctx context.Context, fn, qualifier string, n int) (*function.Provisioned, error)
	GetProvisioned(ctx context.Context, fn, qualifier string) (*function.Provisioned, error)
	DeleteProvisioned(ctx context.Context, fn, qualifier string) error
	ListProvisioned(ctx context.Context, fn string) ([]*function.Provisioned, error)
	Tagger
	Permissions
}

// Invoker runs invocations; *invoker.Invoker implements it.
type Invoker interface {
	Invoke(ctx context.Context, req invoker.Request) (*invoker.Response, error)
}

// Options configure the API.
type Options struct {
	Functions Functions
	Invoker   Invoker
	Region    string
	Account   string
	// Provisioning reports provisioned-concurrency status; may be nil.
	Provisioning ProvisionStatus
	// MaxConcurrency is reported by GetAccountSettings.
	MaxConcurrency int
	Logger         *slog.Logger
	// Async, URLs, Queues and Schedules serve Event invocations, function
	// URL configurations, Kappa queues and schedules; nil: not enabled.
	Async     AsyncInvocations
	URLs      URLConfigs
	Queues    Queues
	Schedules Schedules
	// EventSources serves event source mappings; nil: not enabled.
	EventSources EventSources
}

// API is the HTTP front of the control plane and Invoke API.
type API struct {
	fns  Functions
	inv  Invoker
	opts Options
	log  *slog.Logger
	mux  *http.ServeMux
}

// maxControlBody caps control-plane request bodies.
const maxControlBody = 1 << 20

// New returns the API.
func New(opts Options) *API {
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	a := &API{fns: opts.Functions, inv: opts.Invoker, opts: opts, log: opts.Logger, mux: http.NewServeMux()}
	m := a.mux
	m.HandleFunc("POST /2015-03-31/functions", a.createFunction)
	m.HandleFunc("POST /2015-03-31/functions/{$}", a.createFunction)
	m.HandleFunc("GET /2015-03-31/functions", a.listFunctions)
	m.HandleFunc("GET /2015-03-31/functions/{$}", a.listFunctions)
	m.HandleFunc("GET /2015-03-31/functions/{name}", a.getFunction)
	m.HandleFunc("DELETE /2015-03-31/functions/{name}", a.deleteFunction)
	m.HandleFunc("GET /2015-03-31/functions/{name}/configuration", a.getConfiguration)
	m.HandleFunc("PUT /2015-03-31/functions/{name}/configuration", a.updateConfiguration)
	m.HandleFunc("PUT /2015-03-31/functions/{name}/code", a.updateCode)
	m.HandleFunc("GET /2015-03-31/functions/{name}/versions", a.listVersions)
	m.HandleFunc("POST /2015-03-31/functions/{name}/versions", a.publishVersion)
	m.HandleFunc("POST /2015-03-31/functions/{name}/aliases", a.createAlias)
	m.HandleFunc("GET /2015-03-31/functions/{name}/aliases", a.listAliases)
	m.HandleFunc("GET /2015-03-31/functions/{name}/aliases/{alias}", a.getAlias)
	m.HandleFunc("PUT /2015-03-31/functions/{name}/aliases/{alias}", a.updateAlias)
	m.HandleFunc("DELETE /2015-03-31/functions/{name}/aliases/{alias}", a.deleteAlias)
	m.HandleFunc("PUT /2017-10-31/functions/{name}/concurrency", a.putConcurrency)
	m.HandleFunc("PUT /2019-09-30/functions/{name}/provisioned-concurrency", a.putProvisioned)
	m.HandleFunc("GET /2019-09-30/functions/{name}/provisioned-concurrency", a.getProvisioned)
	m.HandleFunc("DELETE /2019-09-30/functions/{name}/provisioned-concurrency", a.deleteProvisioned)
	m.HandleFunc("DELETE /2017-10-31/functions/{name}/concurrency", a.deleteConcurrency)
	m.HandleFunc("POST /2015-03-31/functions/{name}/invocations", a.invoke)
	m.HandleFunc("POST /2021-11-15/functions/{name}/response-streaming-invocations", a.invokeStream)
	m.HandleFunc("GET /2019-09-30/functions/{name}/concurrency", a.getConcurrency)
	m.HandleFunc("PUT /2024-08-31/functions/{name}/recursion-config", a.putRecursion)
	m.HandleFunc("GET /2024-08-31/functions/{name}/recursion-config", a.getRecursion)
	m.HandleFunc("GET /2016-08-19/account-settings", a.accountSettings)
	m.HandleFunc("GET /2016-08-19/account-settings/{$}", a.accountSettings)
	m.HandleFunc("GET /2017-03-31/tags/{arn}", a.listTags)
	m.HandleFunc("POST /2017-03-31/tags/{arn}", a.tagResource)
	m.HandleFunc("DELETE /2017-03-31/tags/{arn}", a.untagResource)
	m.HandleFunc("POST /2015-03-31/functions/{name}/policy", a.addPermission)
	m.HandleFunc("GET /2015-03-31/functions/{name}/policy", a.getPolicy)
	m.HandleFunc("DELETE /2015-03-31/functions/{name}/policy/{sid}", a.removePermission)
	m.HandleFunc("POST /2014-11-13/functions/{name}/invoke-async", a.invokeAsync)
	m.HandleFunc("POST /2014-11-13/functions/{name}/invoke-async/{$}", a.invokeAsync)
	m.HandleFunc("PUT /2019-09-25/functions/{name}/event-invoke-config", a.putEventInvokeConfig)
	m.HandleFunc("POST /2019-09-25/functions/{name}/event-invoke-config", a.updateEventInvokeConfig)
	m.HandleFunc("GET /2019-09-25/functions/{name}/event-invoke-config", a.getEventInvokeConfig)
	m.HandleFunc("DELETE /2019-09-25/functions/{name}/event-invoke-config", a.deleteEventInvokeConfig)
	m.HandleFunc("GET /2019-09-25/functions/{name}/event-invoke-config/list", a.listEventInvokeConfigs)
	m.HandleFunc("POST /2021-10-31/functions/{name}/url", a.createURLConfig)
	m.HandleFunc("GET /2021-10-31/functions/{name}/url", a.getURLConfig)
	m.HandleFunc("PUT /2021-10-31/functions/{name}/url", a.updateURLConfig)
	m.HandleFunc("DELETE /2021-10-31/functions/{name}/url", a.deleteURLConfig)
	m.HandleFunc("GET /2021-10-31/functions/{name}/urls", a.listURLConfigs)
	m.HandleFunc("POST /2015-03-31/event-source-mappings", a.createESM)
	m.HandleFunc("POST /2015-03-31/event-source-mappings/{$}", a.createESM)
	m.HandleFunc("GET /2015-03-31/event-source-mappings", a.listESMs)
	m.HandleFunc("GET /2015-03-31/event-source-mappings/{$}", a.listESMs)
	m.HandleFunc("GET /2015-03-31/event-source-mappings/{uuid}", a.getESM)
	m.HandleFunc("PUT /2015-03-31/event-source-mappings/{uuid}", a.updateESM)
	m.HandleFunc("DELETE /2015-03-31/event-source-mappings/{uuid}", a.deleteESM)
	m.HandleFunc("GET /kappa/queues", a.listQueues)
	m.HandleFunc("PUT /kappa/queues/{queue}", a.createQueue)
	m.HandleFunc("GET /kappa/queues/{queue}", a.getQueue)
	m.HandleFunc("DELETE /kappa/queues/{queue}", a.deleteQueue)
	m.HandleFunc("POST /kappa/queues/{queue}/messages", a.sendQueueMessage)
	m.HandleFunc("GET /kappa/queues/{queue}/messages", a.readQueue)
	m.HandleFunc("POST /schedules/{sched}", a.createSchedule)
	m.HandleFunc("GET /schedules/{sched}", a.getSchedule)
	m.HandleFunc("PUT /schedules/{sched}", a.updateSchedule)
	m.HandleFunc("DELETE /schedules/{sched}", a.deleteSchedule)
	m.HandleFunc("GET /schedules", a.listSchedules)
	m.HandleFunc("/", a.unknown)
	return a
}

// ServeHTTP sets x-amzn-RequestId and dispatches.
func (a *API) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	id := uuid.NewString()
	w.Header().Set("X-Amzn-Requestid", id)
	r = r.WithContext(context.WithValue(r.Context(), requestIDKey{}, id))
	a.mux.ServeHTTP(w, r)
}

type requestIDKey struct{}

func requestID(r *http.Request) string {
	id, _ := r.Context().Value(requestIDKey{}).(string)
	return id
}

func (a *API) unknown(w http.ResponseWriter, r *http.Request) {
	writeError(w, a.log, apierr.New(apierr.NotImplemented, "Kappa does not implement %s %s", r.Method, r.URL.Path))
}

func (a *API) writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	json.NewEncoder(w).Encode(v)
}

// decode reads a JSON request body into v; a body that is not JSON is
// InvalidRequestContentException, as Lambda answers.
func decode(r *http.Request, v any) error {
	body, err := io.ReadAll(io.LimitReader(r.Body, maxControlBody+1))
	if err != nil {
		return apierr.Wrap(apierr.InvalidRequest, err, "Could not read request body")
	}
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

func jsonErrText(err error) string {
	var se *json.SyntaxError
	var te *json.UnmarshalTypeError
	switch {
	case errors.As(err, &se):
		return "Unexpected character at offset " + strconv.FormatInt(se.Offset, 10) + ": " + se.Error()
	case errors.As(err, &te):
		return "Cannot deserialize value of type " + te.Value + " into field " + te.Field
	default:
		return err.Error()
	}
}

// ref parses the {name} path value with an optional Qualifier query.
func (a *API) ref(r *http.Request) (function.Ref, error) {
	raw := r.PathValue("name")
	ref, err := function.ParseRef(raw, a.opts.Region, a.opts.Account)
	if err != nil {
		return ref, err
	}
	if q := r.URL.Query().Get("Qualifier"); q != "" {
		if !function.ValidQualifier(q) {
			return ref, apierr.New(apierr.Validation,
				"1 validation error detected: Value '%s' at 'qualifier' failed to satisfy constraint: Member must satisfy regular expression pattern: (|[a-zA-Z0-9$_-]+)", q)
		}
		if ref.Qualifier != "" && ref.Qualifier != q {
			return ref, apierr.New(apierr.InvalidParameter, "The derived qualifier from the function name does not match the specified qualifier.")
		}
		ref.Qualifier = q
	}
	return ref, nil
}

func (a *API) createFunction(w http.ResponseWriter, r *http.Request) {
	var req createFunctionRequest
	if err := decode(r, &req); err != nil {
		writeError(w, a.log, err)
		return
	}
	if err := req.check(); err != nil {
		writeError(w, a.log, err)
		return
	}
	in := function.CreateInput{
		FunctionName: req.FunctionName, Role: req.Role, PackageType: req.PackageType,
		Runtime: req.Runtime, Handler: req.Handler, Layers: req.Layers,
		Description: req.Description, MemorySize: req.MemorySize, Timeout: req.Timeout,
		Architectures: req.Architectures, Tags: req.Tags, Publish: req.Publish,
	}
	if req.Code != nil {
		in.ImageURI = req.Code.ImageUri
		in.HasZipFile = len(req.Code.ZipFile) > 0 || req.Code.S3Bucket != "" || req.Code.S3Key != ""
	}
	if req.EphemeralStorage != nil {
		in.EphemeralStorage = req.EphemeralStorage.Size
	}
	if req.Environment != nil {
		in.Environment = req.Environment.Variables
	}
	if req.ImageConfig != nil {
		in.ImageConfig = (*function.ImageConfig)(req.ImageConfig)
	}
	if req.LoggingConfig != nil {
		in.LoggingConfig = (*function.LoggingConfig)(req.LoggingConfig)
	}
	if req.TracingConfig != nil {
		in.TracingMode = req.TracingConfig.Mode
	}
	if req.SnapStart != nil {
		in.SnapStartApplyOn = req.SnapStart.ApplyOn
	}
	if req.DeadLetterConfig != nil {
		in.DeadLetterTarget = deadLetterTarget(req.DeadLetterConfig)
		if err := a.checkDeadLetter(in.DeadLetterTarget); err != nil {
			writeError(w, a.log, err)
			return
		}
	}
	fn, err := a.fns.Create(r.Context(), in)
	if err != nil {
		writeError(w, a.log, err)
		return
	}
	a.writeJSON(w, http.StatusCreated, a.toWire(fn.Latest))
}

// latestOnly rejects qualifiers other than $LATEST until versions exist.

func (a *API) getFunction(w http.ResponseWriter, r *http.Request) {
	ref, err := a.ref(r)
	var fn *function.Function
	var c function.Config
	if err == nil {
		fn, err = a.fns.Get(r.Context(), ref.Name)
	}
	if err == nil {
		c, err = a.fns.Config(r.Context(), ref)
	}
	if err != nil {
		writeError(w, a.log, err)
		return
	}
	var out getFunctionResponse
	out.Configuration = a.toWire(c)
	out.Code.RepositoryType = "ECR"
	out.Code.ImageUri = c.Code.ImageURI
	out.Code.ResolvedImageUri = c.Code.ResolvedImageURI
	out.Tags = fn.Tags
	if fn.ReservedConcurrency != nil {
		out.Concurrency = &struct {
			ReservedConcurrentExecutions int `json:"ReservedConcurrentExecutions"`
		}{*fn.ReservedConcurrency}
	}
	a.writeJSON(w, http.StatusOK, out)
}

func (a *API) getConfiguration(w http.ResponseWriter, r *http.Request) {
	ref, err := a.ref(r)
	var c function.Config
	if err == nil {
		c, err = a.fns.Config(r.Context(), ref)
	}
	if err != nil {
		writeError(w, a.log, err)
		return
	}
	a.writeJSON(w, http.StatusOK, a.toWire(c))
}

func (a *API) deleteFunction(w http.ResponseWriter, r *http.Request) {
	ref, err := a.ref(r)
	if err == nil {
		if ref.Qualifier != "" {
			err = a.fns.DeleteVersion(r.Context(), ref.Name, ref.Qualifier)
		} else {
			err = a.fns.Delete(r.Context(), ref.Name)
		}
	}
	if err != nil {
		writeError(w, a.log, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

// pageSize is the most items one List page holds, as in Lambda.
const pageSize = 50

func (a *API) listFunctions(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	max, err := maxItems(q)
	if err != nil {
		writeError(w, a.log, err)
		return
	}
	all := false
	switch v := q.Get("FunctionVersion"); v {
	case "":
	case "ALL":
		all = true
	default:
		writeError(w, a.log, apierr.New(apierr.Validation,
			"1 validation error detected: Value '%s' at 'functionVersion' failed to satisfy constraint: Member must satisfy enum value set: [ALL]", v))
		return
	}
	fns, err := a.fns.List(r.Context())
	if err != nil {
		writeError(w, a.log, err)
		return
	}
	// Each function's $LATEST, and with FunctionVersion=ALL its published
	// versions after it, in one list (the marker is the last one returned).
	var configs []function.Config
	for _, fn := range fns {
		if !all {
			configs = append(configs, fn.Latest)
			continue
		}
		vs, err := a.fns.Versions(r.Context(), fn.Latest.Name)
		if errors.Is(err, apierr.NotFound) {
			continue // deleted meanwhile
		}
		if err != nil {
			writeError(w, a.log, err)
			return
		}
		configs = append(configs, vs...)
	}
	start, end, next := pageOf(configs, listKey, q.Get("Marker"), max)
	out := listFunctionsResponse{Functions: []functionConfiguration{}, NextMarker: next}
	for _, c := range configs[start:end] {
		out.Functions = append(out.Functions, a.toWire(c))
	}
	a.writeJSON(w, http.StatusOK, out)
}

// deadLetterTarget reads DeadLetterConfig: a missing TargetArn clears it.
func deadLetterTarget(d *wireDeadLetter) *string {
	arn := ""
	if d.TargetArn != nil {
		arn = *d.TargetArn
	}
	return &arn
}

// checkDeadLetter refuses a DeadLetterConfig target Kappa could not deliver
// to (the function package checks only its shape): a dead-letter queue is
// one of Kappa's queues in this region and account. Refusing it here is
// what keeps failed events from being dropped later with nobody told.
func (a *API) checkDeadLetter(arn *string) error {
	if arn == nil || *arn == "" {
		return nil
	}
	d, err := async.ParseDestination(*arn, a.opts.Region, a.opts.Account)
	if err != nil {
		return err
	}
	if d.Queue == "" {
		return apierr.New(apierr.InvalidParameter,
			"The provided target ARN %s is invalid: a dead-letter target is a Kappa queue (arn:aws:sqs:%s:%s:<name>)", *arn, a.opts.Region, a.opts.Account)
	}
	return nil
}

func maxItems(q url.Values) (int, error) {
	s := q.Get("MaxItems")
	if s == "" {
		return pageSize, nil
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < 1 || n > 10000 {
		return 0, apierr.New(apierr.Validation,
			"1 validation error detected: Value '%s' at 'maxItems' failed to satisfy constraint: Member must have value between 1 and 10000", s)
	}
	return min(n, pageSize), nil
}

// pageOf pages items (sorted by key) like page.
// listKey orders ListFunctions: by name, then $LATEST before the versions
// in numeric order. "!" sorts before every character of a name.
func listKey(c function.Config) string {
	if c.Version == function.LatestVersion {
		return c.Name + "!"
	}
	return c.Name + "!" + fmt.Sprintf("%010s", c.Version)
}

func pageOf[T any](items []T, key func(T) string, marker string, max int) (start, end int, next *string) {
	keys := make([]string, len(items))
	for i, it := range items {
		keys[i] = key(it)
	}
	return page(keys, marker, max)
}

// page returns the slice bounds after marker (the last name of the previous
// page, opaque to clients) and the next marker. names are sorted.
func page(names []string, marker string, max int) (start, end int, next *string) {
	if marker != "" {
		start = sort.SearchStrings(names, marker)
		if start < len(names) && names[start] == marker {
			start++
		}
	}
	end = min(start+max, len(names))
	if end < len(names) {
		m := names[end-1]
		next = &m
	}
	return start, end, next
}

func (a *API) updateConfiguration(w http.ResponseWriter, r *http.Request) {
	ref, err := a.ref(r)
	if err != nil {
		writeError(w, a.log, err)
		return
	}
	var req updateConfigRequest
	if err := decode(r, &req); err != nil {
		writeError(w, a.log, err)
		return
	}
	if err := req.check(); err != nil {
		writeError(w, a.log, err)
		return
	}
	in := function.UpdateConfigInput{
		Role: req.Role, Description: req.Description, MemorySize: req.MemorySize, Timeout: req.Timeout,
		RevisionID: req.RevisionId, Runtime: req.Runtime, Handler: req.Handler, Layers: req.Layers,
	}
	if req.EphemeralStorage != nil {
		in.EphemeralStorage = req.EphemeralStorage.Size
	}
	if req.Environment != nil {
		in.Environment, in.HasEnvironment = req.Environment.Variables, true
	}
	if req.ImageConfig != nil {
		in.ImageConfig = (*function.ImageConfig)(req.ImageConfig)
	}
	if req.LoggingConfig != nil {
		in.LoggingConfig = (*function.LoggingConfig)(req.LoggingConfig)
	}
	if req.TracingConfig != nil {
		in.TracingMode = req.TracingConfig.Mode
	}
	if req.SnapStart != nil {
		in.SnapStartApplyOn = req.SnapStart.ApplyOn
	}
	if req.DeadLetterConfig != nil {
		in.DeadLetterTarget = deadLetterTarget(req.DeadLetterConfig)
		if err := a.checkDeadLetter(in.DeadLetterTarget); err != nil {
			writeError(w, a.log, err)
			return
		}
	}
	fn, err := a.fns.UpdateConfig(r.Context(), ref.Name, in)
	if err != nil {
		writeError(w, a.log, err)
		return
	}
	a.writeJSON(w, http.StatusOK, a.toWire(fn.Latest))
}

func (a *API) updateCode(w http.ResponseWriter, r *http.Request) {
	ref, err := a.ref(r)
	if err != nil {
		writeError(w, a.log, err)
		return
	}
	var req updateCodeRequest
	if err := decode(r, &req); err != nil {
		writeError(w, a.log, err)
		return
	}
	if len(req.ZipFile) > 0 || req.S3Bucket != "" {
		writeError(w, a.log, apierr.New(apierr.InvalidParameter, "Please provide ImageUri when updating a function with package type Image."))
		return
	}
	fn, err := a.fns.UpdateCode(r.Context(), ref.Name, function.UpdateCodeInput{
		ImageURI: req.ImageUri, Architectures: req.Architectures, RevisionID: req.RevisionId,
		DryRun: req.DryRun, Publish: req.Publish,
	})
	if err != nil {
		writeError(w, a.log, err)
		return
	}
	a.writeJSON(w, http.StatusOK, a.toWire(fn.Latest))
}

func (a *API) accountSettings(w http.ResponseWriter, r *http.Request) {
	fns, err := a.fns.List(r.Context())
	var unreserved int
	if err == nil {
		unreserved, err = a.fns.Unreserved(r.Context())
	}
	if err != nil {
		writeError(w, a.log, err)
		return
	}
	type limit struct {
		TotalCodeSize                  int64
		CodeSizeUnzipped               int64
		CodeSizeZipped                 int64
		ConcurrentExecutions           int
		UnreservedConcurrentExecutions int
	}
	type usage struct {
		TotalCodeSize int64
		FunctionCount int
	}
	a.writeJSON(w, http.StatusOK, struct {
		AccountLimit limit
		AccountUsage usage
	}{
		AccountLimit: limit{TotalCodeSize: 80530636800, CodeSizeUnzipped: 262144000, CodeSizeZipped: 52428800,
			ConcurrentExecutions: a.opts.MaxConcurrency, UnreservedConcurrentExecutions: unreserved},
		AccountUsage: usage{FunctionCount: len(fns)},
	})
}
