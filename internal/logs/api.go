package logs

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// Handler serves the log API under prefix (e.g. "/kappa/logs"):
//
//	GET {prefix}                     {"functions":[…]}: functions with stored logs
//	GET {prefix}/{function}          the function's lines (see below)
//	GET {prefix}/{function}/streams  {"streams":[{name,lastEventTime,storedBytes,open}]}
//
// Lines are selected by the query parameters since and until (a duration
// ago such as "10m", an RFC 3339 time or Unix milliseconds), filter (a
// substring of the line), request (a request id), stream (a stream name)
// and limit (the newest N); follow=1 keeps the response open and streams
// new lines as they are written. They are sent as NDJSON, one Event
// object a line (Content-Type application/x-ndjson), or with format=text
// as the bare lines. Errors are JSON {"message":…} with status 400.
func (s *Store) Handler(prefix string) http.Handler {
	prefix = strings.TrimSuffix(prefix, "/")
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			w.Header().Set("Allow", "GET, HEAD")
			apiError(w, http.StatusMethodNotAllowed, "the log API is read-only: use GET")
			return
		}
		rest, ok := strings.CutPrefix(r.URL.Path, prefix)
		if !ok {
			http.NotFound(w, r)
			return
		}
		rest = strings.Trim(rest, "/")
		fn, sub, _ := strings.Cut(rest, "/")
		switch {
		case fn == "":
			fns, err := s.Functions()
			if err != nil {
				apiError(w, http.StatusInternalServerError, "list functions with logs")
				return
			}
			if fns == nil {
				fns = []string{}
			}
			writeJSON(w, map[string]any{"functions": fns})
		case !ValidFunction(fn):
			apiError(w, http.StatusBadRequest, fmt.Sprintf("%q is not a function name", fn))
		case sub == "streams":
			st, err := s.Streams(fn)
			if err != nil {
				apiError(w, http.StatusInternalServerError, "list streams")
				return
			}
			writeJSON(w, map[string]any{"streams": st})
		case sub == "":
			s.serveEvents(w, r, fn)
		default:
			http.NotFound(w, r)
		}
	})
}

func (s *Store) serveEvents(w http.ResponseWriter, r *http.Request, fn string) {
	v := r.URL.Query()
	now := s.opts.Now()
	var q Query
	var err error
	if q.Since, err = ParseTime(v.Get("since"), now); err != nil {
		apiError(w, http.StatusBadRequest, "since: "+err.Error())
		return
	}
	if q.Until, err = ParseTime(v.Get("until"), now); err != nil {
		apiError(w, http.StatusBadRequest, "until: "+err.Error())
		return
	}
	if l := v.Get("limit"); l != "" {
		if q.Limit, err = strconv.Atoi(l); err != nil || q.Limit < 0 || q.Limit > MaxLimit {
			apiError(w, http.StatusBadRequest, fmt.Sprintf("limit: want a number of lines up to %d", MaxLimit))
			return
		}
	}
	q.Filter, q.RequestID, q.Stream = v.Get("filter"), v.Get("request"), v.Get("stream")
	text := false
	switch v.Get("format") {
	case "", "ndjson", "json":
	case "text":
		text = true
	default:
		apiError(w, http.StatusBadRequest, "format: want ndjson or text")
		return
	}
	follow := v.Get("follow") == "1" || v.Get("follow") == "true"

	h := w.Header()
	if text {
		h.Set("Content-Type", "text/plain; charset=utf-8")
	} else {
		h.Set("Content-Type", "application/x-ndjson")
	}
	h.Set("Cache-Control", "no-store")
	h.Set("X-Content-Type-Options", "nosniff")
	if r.Method == http.MethodHead {
		return
	}
	flusher, _ := w.(http.Flusher)
	enc := json.NewEncoder(w)
	write := func(evs []Event) error {
		for _, e := range evs {
			var err error
			if text {
				_, err = fmt.Fprintln(w, e.Message)
			} else {
				err = enc.Encode(e)
			}
			if err != nil {
				return err
			}
		}
		return nil
	}
	if !follow {
		err := s.Query(r.Context(), fn, q, func(e Event) error { return write([]Event{e}) })
		if err != nil && r.Context().Err() == nil {
			s.log.Warn("log query", "function", fn, "err", err)
		}
		return
	}
	w.WriteHeader(http.StatusOK)
	if flusher != nil {
		flusher.Flush()
	}
	s.Follow(r.Context(), fn, q, func(evs []Event) error {
		if err := write(evs); err != nil {
			return err
		}
		if flusher != nil {
			flusher.Flush()
		}
		return nil
	})
}

// ParseTime reads a point in time: "" (zero), a duration ago ("10m",
// "1h30m", "2d"), an RFC 3339 time, or Unix milliseconds.
func ParseTime(s string, now time.Time) (time.Time, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return time.Time{}, nil
	}
	if days, ok := strings.CutSuffix(s, "d"); ok {
		if n, err := strconv.Atoi(days); err == nil && n >= 0 {
			return now.Add(-time.Duration(n) * 24 * time.Hour), nil
		}
	}
	if d, err := time.ParseDuration(s); err == nil {
		if d < 0 {
			d = -d
		}
		return now.Add(-d), nil
	}
	if t, err := time.Parse(time.RFC3339Nano, s); err == nil {
		return t, nil
	}
	if ms, err := strconv.ParseInt(s, 10, 64); err == nil {
		return time.UnixMilli(ms), nil
	}
	return time.Time{}, errors.New("want a duration ago (10m), an RFC 3339 time or Unix milliseconds")
}

func writeJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	json.NewEncoder(w).Encode(v)
}

func apiError(w http.ResponseWriter, status int, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(map[string]string{"message": msg})
}
