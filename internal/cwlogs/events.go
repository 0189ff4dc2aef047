package cwlogs

import (
	"context"
	"encoding/base64"
	"errors"
	"math"
	"sort"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/kappa-run/kappa/internal/logs"
)

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
	if in.LogStreamName == "" {
		return nil, invalid("1 validation error detected: Value null at 'logStreamName' failed to satisfy constraint: Member must not be null")
	}
	limit, err := checkLimit(in.Limit, maxEvents, maxEvents)
	if err != nil {
		return nil, err
	}
	_, fns, err := h.functionsOf(ctx, in.LogGroupName, in.LogGroupIdentifier)
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
	if len(in.LogStreamNames) > 0 && in.LogStreamNamePrefix != "" {
		return nil, invalid("logStreamNames and logStreamNamePrefix are mutually exclusive")
	}
	if len(in.LogStreamNames) > maxStreamNames {
		return nil, invalid("1 validation error detected: Value at 'logStreamNames' failed to satisfy constraint: Member must have length less than or equal to %d", maxStreamNames)
	}
	if utf8.RuneCountInString(in.FilterPattern) > maxPattern {
		return nil, invalid("1 validation error detected: Value at 'filterPattern' failed to satisfy constraint: Member must have length less than or equal to %d", maxPattern)
	}
	limit, err := checkLimit(in.Limit, maxEvents, maxEvents)
	if err != nil {
		return nil, err
	}
	match, err := parsePattern(in.FilterPattern)
	if err != nil {
		return nil, err
	}
	_, fns, err := h.functionsOf(ctx, in.LogGroupName, in.LogGroupIdentifier)
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
	named := map[string]bool{}
	for _, n := range in.LogStreamNames {
		named[n] = true
	}
	streamOK := func(name string) bool {
		if len(named) > 0 {
			return named[name]
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
