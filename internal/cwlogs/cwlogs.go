package cwlogs

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net/http"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/kappa-run/kappa/internal/logs"
)

// TargetPrefix marks a CloudWatch Logs request (the X-Amz-Target header).
const TargetPrefix = "Logs_20140328."

// Limits, as CloudWatch Logs has them.
const (
	maxEvents  = 10_000 // GetLogEvents and FilterLogEvents limit
	maxStreams = 50     // DescribeLogStreams limit
	maxGroups  = 50     // DescribeLogGroups limit
	maxBody    = 1 << 20
	// FilterLogEvents takes at most maxStreamNames logStreamNames and a
	// filterPattern of at most maxPattern characters.
	maxStreamNames = 100
	maxPattern     = 1024
	// maxPage is the most message bytes one page of events holds (each
	// event counted with eventOverhead more), as CloudWatch caps a
	// response at 1 MB; a page always holds at least one event.
	maxPage       = 1 << 20
	eventOverhead = 26
	// maxMillis is the latest time a request may name: nanoseconds past
	// it do not fit an int64.
	maxMillis = math.MaxInt64/int64(time.Millisecond) - 1
)

// Groups tells which functions write to which log group.
type Groups interface {
	// LogGroups returns every log group with the functions that write to
	// it.
	LogGroups(ctx context.Context) (map[string][]string, error)
}

// Options configure a Handler.
type Options struct {
	Store   *logs.Store
	Groups  Groups
	Region  string
	Account string
	Logger  *slog.Logger
}

// Handler serves the CloudWatch Logs operations.
type Handler struct {
	opts Options
	log  *slog.Logger
}

// New returns a Handler.
func New(opts Options) *Handler {
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Handler{opts: opts, log: log}
}

// Owns reports whether r is a CloudWatch Logs request.
func Owns(r *http.Request) bool {
	return r.Method == http.MethodPost && strings.HasPrefix(r.Header.Get("X-Amz-Target"), TargetPrefix)
}

// apiError is a CloudWatch Logs error.
type apiError struct {
	typ, msg string
}

func (e *apiError) Error() string { return e.typ + ": " + e.msg }

func invalid(format string, args ...any) error {
	return &apiError{"InvalidParameterException", fmt.Sprintf(format, args...)}
}

func notFound(what string) error {
	return &apiError{"ResourceNotFoundException", "The specified " + what + " does not exist."}
}

func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	op := strings.TrimPrefix(r.Header.Get("X-Amz-Target"), TargetPrefix)
	body, err := io.ReadAll(io.LimitReader(r.Body, maxBody+1))
	var out any
	switch {
	case err != nil:
		err = &apiError{"SerializationException", "could not read the request body"}
	case len(body) > maxBody:
		err = invalid("the request body is larger than %d bytes", maxBody)
	default:
		out, err = h.do(r.Context(), op, body)
	}
	w.Header().Set("Content-Type", "application/x-amz-json-1.1")
	if err != nil {
		var ae *apiError
		if !errors.As(err, &ae) {
			h.log.Error("cloudwatch logs api", "operation", op, "err", err)
			ae = &apiError{"ServiceUnavailableException", "Kappa could not read its logs"}
			w.WriteHeader(http.StatusInternalServerError)
		} else {
			w.WriteHeader(http.StatusBadRequest)
		}
		json.NewEncoder(w).Encode(map[string]string{"__type": ae.typ, "message": ae.msg})
		return
	}
	json.NewEncoder(w).Encode(out)
}

// do runs operation op on its JSON body.
func (h *Handler) do(ctx context.Context, op string, body []byte) (any, error) {
	decode := func(v any) error {
		if len(bytes.TrimSpace(body)) == 0 {
			body = []byte("{}")
		}
		if err := json.Unmarshal(body, v); err != nil {
			return &apiError{"SerializationException", "the request body is not valid JSON for " + op}
		}
		return nil
	}
	switch op {
	case "DescribeLogGroups":
		var in describeGroupsIn
		if err := decode(&in); err != nil {
			return nil, err
		}
		return h.describeGroups(ctx, in)
	case "DescribeLogStreams":
		var in describeStreamsIn
		if err := decode(&in); err != nil {
			return nil, err
		}
		return h.describeStreams(ctx, in)
	case "GetLogEvents":
		var in getEventsIn
		if err := decode(&in); err != nil {
			return nil, err
		}
		return h.getEvents(ctx, in)
	case "FilterLogEvents":
		var in filterEventsIn
		if err := decode(&in); err != nil {
			return nil, err
		}
		return h.filterEvents(ctx, in)
	}
	return nil, &apiError{"UnknownOperationException",
		"Kappa serves DescribeLogGroups, DescribeLogStreams, GetLogEvents and FilterLogEvents of the CloudWatch Logs API"}
}

// functionsOf returns the group a request names (logGroupName, or the
// logGroupIdentifier ARN) and the functions writing to it.
func (h *Handler) functionsOf(ctx context.Context, name, identifier string) (string, []string, error) {
	group := name
	if group == "" {
		group = strings.TrimSuffix(strings.TrimPrefix(identifier, h.groupARN("")), ":*")
	}
	fns, err := h.writers(ctx, group)
	return group, fns, err
}

// writers returns the functions writing to group.
func (h *Handler) writers(ctx context.Context, group string) ([]string, error) {
	if group == "" {
		return nil, invalid("1 validation error detected: Value null at 'logGroupName' failed to satisfy constraint: Member must not be null")
	}
	groups, err := h.opts.Groups.LogGroups(ctx)
	if err != nil {
		return nil, err
	}
	fns, ok := groups[group]
	if !ok {
		return nil, notFound("log group")
	}
	return fns, nil
}

func (h *Handler) groupARN(group string) string {
	return "arn:aws:logs:" + h.opts.Region + ":" + h.opts.Account + ":log-group:" + group
}

func ms(t time.Time) int64 { return t.UnixMilli() }

// window turns startTime and endTime into the store's bounds; endTime is
// exclusive (GetLogEvents) or inclusive (FilterLogEvents).
func window(start, end *int64, endInclusive bool) (since, until time.Time, err error) {
	for _, v := range []*int64{start, end} {
		if v != nil && (*v < 0 || *v > maxMillis) {
			return since, until, invalid("1 validation error detected: Value '%d' at 'startTime' or 'endTime' failed to satisfy constraint: Member must have value between 0 and %d", *v, maxMillis)
		}
	}
	if start != nil {
		since = time.UnixMilli(*start)
	}
	if end != nil {
		e := *end
		if endInclusive {
			e++
		}
		until = time.UnixMilli(e).Add(-time.Nanosecond)
	}
	return since, until, nil
}

// size is what an event counts against maxPage.
func size(e logs.Event) int { return len(e.Message) + eventOverhead }

func checkLimit(limit *int, max, def int) (int, error) {
	if limit == nil {
		return def, nil
	}
	if *limit < 1 || *limit > max {
		return 0, invalid("1 validation error detected: Value '%d' at 'limit' failed to satisfy constraint: Member must have value between 1 and %d", *limit, max)
	}
	return *limit, nil
}

type describeGroupsIn struct {
	LogGroupNamePrefix string  `json:"logGroupNamePrefix"`
	Limit              *int    `json:"limit"`
	NextToken          *string `json:"nextToken"`
}

type logGroup struct {
	LogGroupName string `json:"logGroupName"`
	Arn          string `json:"arn"`
	LogGroupArn  string `json:"logGroupArn"`
	CreationTime int64  `json:"creationTime"`
	StoredBytes  int64  `json:"storedBytes"`
}

func (h *Handler) describeGroups(ctx context.Context, in describeGroupsIn) (any, error) {
	limit, err := checkLimit(in.Limit, maxGroups, maxGroups)
	if err != nil {
		return nil, err
	}
	groups, err := h.opts.Groups.LogGroups(ctx)
	if err != nil {
		return nil, err
	}
	var names []string
	for g := range groups {
		if strings.HasPrefix(g, in.LogGroupNamePrefix) && (in.NextToken == nil || g > *in.NextToken) {
			names = append(names, g)
		}
	}
	sort.Strings(names)
	out := struct {
		LogGroups []logGroup `json:"logGroups"`
		NextToken *string    `json:"nextToken,omitempty"`
	}{LogGroups: []logGroup{}}
	if len(names) > limit {
		names = names[:limit]
		out.NextToken = &names[limit-1]
	}
	for _, g := range names {
		lg := logGroup{LogGroupName: g, Arn: h.groupARN(g) + ":*", LogGroupArn: h.groupARN(g)}
		for _, fn := range groups[g] {
			sts, err := h.opts.Store.Streams(fn)
			if err != nil {
				continue
			}
			for _, st := range sts {
				lg.StoredBytes += st.Bytes
				// A function's log group comes into being with its first
				// line, as in Lambda: the oldest stream's first event (which
				// moves on as retention drops old segments).
				if t := ms(st.FirstWrite); t > 0 && (lg.CreationTime == 0 || t < lg.CreationTime) {
					lg.CreationTime = t
				}
			}
		}
		out.LogGroups = append(out.LogGroups, lg)
	}
	return out, nil
}

type describeStreamsIn struct {
	LogGroupName        string  `json:"logGroupName"`
	LogGroupIdentifier  string  `json:"logGroupIdentifier"`
	LogStreamNamePrefix string  `json:"logStreamNamePrefix"`
	OrderBy             string  `json:"orderBy"`
	Descending          *bool   `json:"descending"`
	Limit               *int    `json:"limit"`
	NextToken           *string `json:"nextToken"`
}

type logStream struct {
	LogStreamName       string `json:"logStreamName"`
	Arn                 string `json:"arn"`
	CreationTime        int64  `json:"creationTime"`
	FirstEventTimestamp int64  `json:"firstEventTimestamp,omitempty"`
	LastEventTimestamp  int64  `json:"lastEventTimestamp"`
	LastIngestionTime   int64  `json:"lastIngestionTime"`
	StoredBytes         int64  `json:"storedBytes"`
}

func (h *Handler) describeStreams(ctx context.Context, in describeStreamsIn) (any, error) {
	limit, err := checkLimit(in.Limit, maxStreams, maxStreams)
	if err != nil {
		return nil, err
	}
	switch in.OrderBy {
	case "", "LogStreamName", "LastEventTime":
	default:
		return nil, invalid("1 validation error detected: Value '%s' at 'orderBy' failed to satisfy constraint: Member must satisfy enum value set: [LogStreamName, LastEventTime]", in.OrderBy)
	}
	if in.OrderBy == "LastEventTime" && in.LogStreamNamePrefix != "" {
		return nil, invalid("Cannot order by LastEventTime with a logStreamNamePrefix.")
	}
	group, fns, err := h.functionsOf(ctx, in.LogGroupName, in.LogGroupIdentifier)
	if err != nil {
		return nil, err
	}
	var all []logStream
	for _, fn := range fns {
		sts, err := h.opts.Store.Streams(fn)
		if err != nil {
			return nil, err
		}
		for _, st := range sts {
			if !strings.HasPrefix(st.Name, in.LogStreamNamePrefix) {
				continue
			}
			all = append(all, logStream{LogStreamName: st.Name, Arn: h.groupARN(group) + ":log-stream:" + st.Name,
				CreationTime: ms(st.FirstWrite), FirstEventTimestamp: ms(st.FirstWrite), LastEventTimestamp: ms(st.LastWrite),
				LastIngestionTime: ms(st.LastWrite), StoredBytes: st.Bytes})
		}
	}
	desc := in.Descending != nil && *in.Descending
	if in.OrderBy == "LastEventTime" {
		sort.SliceStable(all, func(i, j int) bool {
			a, b := all[i].LastEventTimestamp, all[j].LastEventTimestamp
			if a == b {
				return (all[i].LogStreamName < all[j].LogStreamName) != desc
			}
			return (a < b) != desc
		})
	} else {
		sort.Slice(all, func(i, j int) bool { return (all[i].LogStreamName < all[j].LogStreamName) != desc })
	}
	// The token is the number of streams already returned.
	start := 0
	if in.NextToken != nil {
		n, err := strconv.Atoi(*in.NextToken)
		if err != nil || n < 0 || n > len(all) {
			return nil, invalid("The specified nextToken is invalid.")
		}
		start = n
	}
	end := min(start+limit, len(all))
	out := struct {
		LogStreams []logStream `json:"logStreams"`
		NextToken  *string     `json:"nextToken,omitempty"`
	}{LogStreams: append([]logStream{}, all[start:end]...)}
	if end < len(all) {
		next := strconv.Itoa(end)
		out.NextToken = &next
	}
	return out, nil
}
