// Package cwlogs serves the part of the CloudWatch Logs API that reads
// functions' logs, so that the aws CLI (`aws logs filter-log-events`,
// `get-log-events`, `describe-log-streams`, v2's `aws logs tail`) and the
// SDKs' CloudWatch Logs clients read Kappa's logs unchanged, pointed at
// Kappa's address:
//
//	DescribeLogGroups   the functions' log groups (LoggingConfig.LogGroup,
//	                    /aws/lambda/<function> by default)
//	DescribeLogStreams  a group's streams, newest first
//	GetLogEvents        one stream's events, with forward and backward
//	                    tokens
//	FilterLogEvents     a group's events across streams, oldest first
//
// The protocol is AWS JSON 1.1: POST / with X-Amz-Target
// Logs_20140328.<Operation>, errors as {"__type","message"} with status
// 400. Filter patterns are CloudWatch's term patterns (every term, -term
// for none of it, a "quoted phrase" as one term, ?term for any of them);
// JSON and space-delimited patterns are refused. A page of events holds at
// most 10,000 of them and 1 MB, as in CloudWatch.
//
// A log group is the LoggingConfig.LogGroup of the functions writing to it
// now (package daemon lists them), or /aws/lambda/<function> for logs whose
// function was deleted: a function's logs follow its current group. Nothing here writes: Kappa's logs
// are the functions' own output and START/END/REPORT lines (package logs).
package cwlogs

import (
	"context"
	"encoding/base64"
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
		if len(strings.TrimSpace(string(body))) == 0 {
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

// functionsOf returns the functions writing to group.
func (h *Handler) functionsOf(ctx context.Context, group string) ([]string, error) {
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
	group := in.LogGroupName
	if group == "" {
		group = strings.TrimSuffix(strings.TrimPrefix(in.LogGroupIdentifier, h.groupARN("")), ":*")
	}
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
	fns, err := h.functionsOf(ctx, group)
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
				CreationTime: ms(st.LastWrite), LastEventTimestamp: ms(st.LastWrite),
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

// event is an OutputLogEvent or a FilteredLogEvent.
type event struct {
	LogStreamName string `json:"logStreamName,omitempty"`
	Timestamp     int64  `json:"timestamp"`
	Message       string `json:"message"`
	IngestionTime int64  `json:"ingestionTime"`
	EventID       string `json:"eventId,omitempty"`
}

type getEventsIn struct {
	LogGroupName       string  `json:"logGroupName"`
	LogGroupIdentifier string  `json:"logGroupIdentifier"`
	LogStreamName      string  `json:"logStreamName"`
	StartTime          *int64  `json:"startTime"`
	EndTime            *int64  `json:"endTime"`
	Limit              *int    `json:"limit"`
	StartFromHead      *bool   `json:"startFromHead"`
	NextToken          *string `json:"nextToken"`
}

// Tokens of GetLogEvents: "f/<n>" reads forward from after the event
// stamped n, "b/<n>" backward from before it (stamps are the log store's
// unique nanoseconds).
func parseToken(tok string) (forward bool, stamp int64, err error) {
	dir, n, ok := strings.Cut(tok, "/")
	if ok && (dir == "f" || dir == "b") {
		if stamp, err = strconv.ParseInt(n, 10, 64); err == nil && stamp >= 0 && stamp < math.MaxInt64 {
			return dir == "f", stamp, nil
		}
	}
	return false, 0, invalid("The specified nextToken is invalid.")
}

func (h *Handler) getEvents(ctx context.Context, in getEventsIn) (any, error) {
	group := in.LogGroupName
	if group == "" {
		group = strings.TrimSuffix(strings.TrimPrefix(in.LogGroupIdentifier, h.groupARN("")), ":*")
	}
	if in.LogStreamName == "" {
		return nil, invalid("1 validation error detected: Value null at 'logStreamName' failed to satisfy constraint: Member must not be null")
	}
	limit, err := checkLimit(in.Limit, maxEvents, maxEvents)
	if err != nil {
		return nil, err
	}
	fns, err := h.functionsOf(ctx, group)
	if err != nil {
		return nil, err
	}
	q := logs.Query{Stream: in.LogStreamName}
	if q.Since, q.Until, err = window(in.StartTime, in.EndTime, false); err != nil {
		return nil, err
	}
	forward := in.StartFromHead != nil && *in.StartFromHead
	var after, before int64 = -1, -1
	if in.NextToken != nil {
		fwd, stamp, err := parseToken(*in.NextToken)
		if err != nil {
			return nil, err
		}
		forward = fwd
		if fwd {
			after = stamp
		} else {
			before = stamp
		}
	}
	if after >= 0 && (q.Since.IsZero() || q.Since.UnixNano() <= after) {
		q.Since = time.Unix(0, after+1)
	}
	if before >= 0 && (q.Until.IsZero() || q.Until.UnixNano() >= before) {
		q.Until = time.Unix(0, before-1)
	}
	found := false
	// Forward: the oldest events, up to limit and maxPage. Backward: the
	// newest, kept as a window that drops its oldest past either bound.
	var evs []logs.Event
	bytes := 0
	for _, fn := range fns {
		sts, err := h.opts.Store.Streams(fn)
		if err != nil {
			return nil, err
		}
		owns := false
		for _, st := range sts {
			owns = owns || st.Name == in.LogStreamName
		}
		if !owns {
			continue
		}
		found = true
		err = h.opts.Store.Query(ctx, fn, q, func(e logs.Event) error {
			if forward && (len(evs) == limit || len(evs) > 0 && bytes+size(e) > maxPage) {
				return errEnough
			}
			evs, bytes = append(evs, e), bytes+size(e)
			for !forward && (len(evs) > limit || len(evs) > 1 && bytes > maxPage) {
				evs, bytes = evs[1:], bytes-size(evs[0])
			}
			return nil
		})
		if err != nil && !errors.Is(err, errEnough) {
			return nil, err
		}
		break
	}
	if !found {
		return nil, notFound("log stream")
	}
	out := struct {
		Events            []event `json:"events"`
		NextForwardToken  string  `json:"nextForwardToken"`
		NextBackwardToken string  `json:"nextBackwardToken"`
	}{Events: []event{}}
	for _, e := range evs {
		out.Events = append(out.Events, event{Timestamp: ms(e.Time), Message: e.Message, IngestionTime: ms(e.Time)})
	}
	// With nothing read, the tokens stay where the request was.
	first, last := before, after
	if len(evs) > 0 {
		first, last = stampOf(evs[0]), stampOf(evs[len(evs)-1])
	}
	if last < 0 {
		last = max(first-1, 0)
	}
	if first < 0 {
		first = last + 1
	}
	out.NextForwardToken = "f/" + strconv.FormatInt(last, 10)
	out.NextBackwardToken = "b/" + strconv.FormatInt(first, 10)
	return out, nil
}

var errEnough = errors.New("enough events")

// stampOf is an event's unique stamp in the store.
func stampOf(e logs.Event) int64 { return e.Time.UnixNano() }

type filterEventsIn struct {
	LogGroupName        string   `json:"logGroupName"`
	LogGroupIdentifier  string   `json:"logGroupIdentifier"`
	LogStreamNames      []string `json:"logStreamNames"`
	LogStreamNamePrefix string   `json:"logStreamNamePrefix"`
	StartTime           *int64   `json:"startTime"`
	EndTime             *int64   `json:"endTime"`
	FilterPattern       string   `json:"filterPattern"`
	Limit               *int     `json:"limit"`
	NextToken           *string  `json:"nextToken"`
	Interleaved         *bool    `json:"interleaved"`
	Unmask              *bool    `json:"unmask"`
}

// filterToken is FilterLogEvents' nextToken: the stamp of the last event
// returned.
func filterToken(stamp int64) string {
	return base64.RawURLEncoding.EncodeToString([]byte("kappa:" + strconv.FormatInt(stamp, 10)))
}

func parseFilterToken(tok string) (int64, error) {
	b, err := base64.RawURLEncoding.DecodeString(tok)
	if err == nil {
		if n, ok := strings.CutPrefix(string(b), "kappa:"); ok {
			if v, err := strconv.ParseInt(n, 10, 64); err == nil && v >= 0 && v < math.MaxInt64 {
				return v, nil
			}
		}
	}
	return 0, invalid("The specified nextToken is invalid.")
}

func (h *Handler) filterEvents(ctx context.Context, in filterEventsIn) (any, error) {
	group := in.LogGroupName
	if group == "" {
		group = strings.TrimSuffix(strings.TrimPrefix(in.LogGroupIdentifier, h.groupARN("")), ":*")
	}
	if len(in.LogStreamNames) > 0 && in.LogStreamNamePrefix != "" {
		return nil, invalid("logStreamNames and logStreamNamePrefix are mutually exclusive")
	}
	limit, err := checkLimit(in.Limit, maxEvents, maxEvents)
	if err != nil {
		return nil, err
	}
	match, err := parsePattern(in.FilterPattern)
	if err != nil {
		return nil, err
	}
	fns, err := h.functionsOf(ctx, group)
	if err != nil {
		return nil, err
	}
	var q logs.Query
	if q.Since, q.Until, err = window(in.StartTime, in.EndTime, true); err != nil {
		return nil, err
	}
	if in.NextToken != nil {
		after, err := parseFilterToken(*in.NextToken)
		if err != nil {
			return nil, err
		}
		if q.Since.IsZero() || q.Since.UnixNano() <= after {
			q.Since = time.Unix(0, after+1)
		}
	}
	streamOK := func(name string) bool {
		if len(in.LogStreamNames) > 0 {
			for _, n := range in.LogStreamNames {
				if n == name {
					return true
				}
			}
			return false
		}
		return strings.HasPrefix(name, in.LogStreamNamePrefix)
	}
	// Each function's events come oldest first. Each is read up to limit+1
	// events or maxPage bytes; one cut short so ends the page at its last
	// event read (every function's events up to there are all read),
	// which the page then trims to limit and maxPage.
	var evs []logs.Event
	cutoff := int64(math.MaxInt64)
	for _, fn := range fns {
		n, bytes := 0, 0
		err := h.opts.Store.Query(ctx, fn, q, func(e logs.Event) error {
			if !streamOK(e.Stream) || !match(e.Message) {
				return nil
			}
			if n > limit || n > 0 && bytes+size(e) > maxPage {
				cutoff = min(cutoff, stampOf(evs[len(evs)-1]))
				return errEnough
			}
			evs, n, bytes = append(evs, e), n+1, bytes+size(e)
			return nil
		})
		if err != nil && !errors.Is(err, errEnough) {
			return nil, err
		}
	}
	sort.SliceStable(evs, func(i, j int) bool { return evs[i].Time.Before(evs[j].Time) })
	out := struct {
		Events             []event  `json:"events"`
		SearchedLogStreams []string `json:"searchedLogStreams"`
		NextToken          *string  `json:"nextToken,omitempty"`
	}{Events: []event{}, SearchedLogStreams: []string{}}
	keep, bytes := 0, 0
	for keep < len(evs) && keep < limit && stampOf(evs[keep]) <= cutoff &&
		(keep == 0 || bytes+size(evs[keep]) <= maxPage) {
		bytes += size(evs[keep])
		keep++
	}
	if keep < len(evs) || cutoff != math.MaxInt64 {
		evs = evs[:keep]
		tok := filterToken(stampOf(evs[keep-1]))
		out.NextToken = &tok
	}
	for _, e := range evs {
		out.Events = append(out.Events, event{LogStreamName: e.Stream, Timestamp: ms(e.Time), Message: e.Message,
			IngestionTime: ms(e.Time), EventID: strconv.FormatInt(stampOf(e), 10)})
	}
	return out, nil
}

// parsePattern compiles a CloudWatch term pattern: space-separated terms
// a message must all contain (case-sensitive), -term for one it must not,
// "a quoted phrase" as one term, or, when every term starts with ?, any
// one of them. "" matches everything.
func parsePattern(p string) (func(string) bool, error) {
	p = strings.TrimSpace(p)
	if strings.HasPrefix(p, "{") || strings.HasPrefix(p, "[") || strings.HasPrefix(p, "%") {
		return nil, invalid("Kappa supports CloudWatch's term patterns (terms, -terms, \"quoted phrases\", ?any): JSON, space-delimited and regular-expression patterns are not supported")
	}
	type term struct {
		text    string
		exclude bool
	}
	var terms []term
	anyOf := 0
	for p != "" {
		var t term
		switch {
		case strings.HasPrefix(p, "?"):
			p = p[1:]
			anyOf++
		case strings.HasPrefix(p, "-") && len(p) > 1:
			p, t.exclude = p[1:], true
		}
		if strings.HasPrefix(p, `"`) {
			end := strings.Index(p[1:], `"`)
			if end < 0 {
				return nil, invalid("Invalid filter pattern: unterminated quoted phrase")
			}
			t.text, p = p[1:1+end], p[2+end:]
		} else {
			t.text, p, _ = strings.Cut(p, " ")
		}
		if t.text != "" {
			terms = append(terms, t)
		}
		p = strings.TrimLeft(p, " ")
	}
	if anyOf > 0 && anyOf != len(terms) {
		return nil, invalid("Invalid filter pattern: ?terms cannot be mixed with other terms")
	}
	return func(msg string) bool {
		for _, t := range terms {
			hit := strings.Contains(msg, t.text)
			switch {
			case anyOf > 0 && hit:
				return true
			case anyOf == 0 && hit == t.exclude:
				return false
			}
		}
		return anyOf == 0 || len(terms) == 0
	}, nil
}
