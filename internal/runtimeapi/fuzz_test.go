package runtimeapi

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
)

// FuzzRequest feeds arbitrary requests (method, target, header lines, body)
// to the handler in every state, with and without a queued event. The
// request is parsed by net/http as the server would; whatever it accepts
// must get a known status, a well-formed JSON error for every failure, and
// leave the state machine consistent.
func FuzzRequest(f *testing.F) {
	seeds := []struct {
		method, target, headers string
		body                    string
		state, flags            uint8
	}{
		{"GET", pathNext, "", "", 0, 2},
		{"GET", pathNext, "", "", 4, 0},
		{"POST", pathResponse("req-1"), "Content-Type: application/json", `{"ok":true}`, 3, 1},
		{"POST", pathResponse("req-1"), "Lambda-Runtime-Function-Response-Mode: streaming\nTransfer-Encoding: chunked", "5\r\nhello\r\n0\r\nLambda-Runtime-Function-Error-Type: X\r\n\r\n", 3, 0},
		{"POST", pathResponse("req-1"), "Lambda-Runtime-Function-Response-Mode: bogus", "{}", 3, 1},
		{"POST", pathResponse("req-1"), "Content-Length: 500", "short", 3, 0},
		{"POST", pathResponse("req-1"), "", strings.Repeat("x", 100), 3, 1},
		{"POST", pathError("req-1"), "Lambda-Runtime-Function-Error-Type: Custom.Err", "not json", 3, 1},
		{"POST", pathError("..%2F..%2Freq-1"), "", "{}", 3, 1},
		{"POST", pathInitError, "Lambda-Runtime-Function-Error-Type: Runtime.Import", `{"errorMessage":"x"}`, 0, 3},
		{"GET", "/2018-06-01/ping", "", "", 6, 0},
		{"PUT", "/2022-07-01/telemetry", "", "{}", 2, 1},
		{"POST", "/2020-01-01/extension/register", "Lambda-Extension-Name: e", "{}", 1, 1},
		{"POST", "/2020-01-01/extension/register", "Lambda-Extension-Name: e", `{"events":["INVOKE"]}`, 0, 1},
		{"GET", "/2020-01-01/extension/event/next", "Lambda-Extension-Identifier: 7f6ae0b1-1c1e-4d7e-9d52-1a8ba1f8a1aa", "", 2, 0},
		{"POST", "/2020-01-01/extension/exit/error", "Lambda-Extension-Identifier: x\nLambda-Extension-Function-Error-Type: E", "", 3, 0},
		{"PUT", "/2020-08-15/logs", "Lambda-Extension-Identifier: 7f6ae0b1-1c1e-4d7e-9d52-1a8ba1f8a1aa", "{}", 0, 1},
		{"DELETE", pathNext, "", "", 0, 0},
		{"GET", "http://127.0.0.1:9001" + pathNext, "", "", 5, 2},
		{"GET", "/%zz", "", "", 0, 0},
		// flags 4: a restored environment; 8: one to be checkpointed.
		{"GET", "/2018-06-01/runtime/restore/next", "", "", 0, 4},
		{"GET", "/2018-06-01/runtime/restore/next", "", "", 0, 8},
		{"GET", "/2018-06-01/runtime/restore/next", "", "", 0, 0},
		{"POST", "/2018-06-01/runtime/restore/error", "Lambda-Runtime-Function-Error-Type: Runtime.AfterRestoreError", `{"errorMessage":"x"}`, 0, 5},
		{"POST", "/2018-06-01/runtime/restore/error", "", "plain", 0, 9},
	}
	for _, s := range seeds {
		f.Add(s.method, s.target, s.headers, []byte(s.body), s.state, s.flags)
	}
	f.Fuzz(func(t *testing.T, method, target, headers string, body []byte, state, flags uint8) {
		var raw bytes.Buffer
		raw.WriteString(method + " " + target + " HTTP/1.1\r\nHost: 127.0.0.1:9001\r\n")
		for line := range strings.SplitSeq(headers, "\n") {
			if line = strings.TrimRight(line, "\r"); line != "" {
				raw.WriteString(line + "\r\n")
			}
		}
		if flags&1 != 0 {
			raw.WriteString("Content-Length: " + strconv.Itoa(len(body)) + "\r\n")
		}
		raw.WriteString("\r\n")
		raw.Write(body)
		req, err := http.ReadRequest(bufio.NewReader(&raw))
		if err != nil {
			return // net/http answers 400 before the handler runs
		}
		ctx, cancel := context.WithCancel(context.Background())
		cancel() // a parked /next leaves at once
		req = req.WithContext(ctx)

		st := allStates[int(state)%len(allStates)]
		opts := Options{MaxResponseBytes: 64}
		switch {
		case flags&4 != 0:
			opts.Snapshot = SnapshotRestored
		case flags&8 != 0:
			opts.Snapshot = SnapshotTaken
		}
		s := New(opts)
		defer s.Close()
		forceState(s, st)
		if flags&2 != 0 {
			queue(t, s, "req-2")
		}

		rec := httptest.NewRecorder()
		s.Handler().ServeHTTP(rec, req)

		checkInvariants(t, s)
		written := rec.Body.Len() > 0 || len(rec.Header()) > 0
		restoreNext := req.URL.Path == "/2018-06-01/runtime/restore/next"
		if !written {
			// Only a /next that parked and was left may write nothing
			// (and leaves Idle), or a /restore/next (state unchanged).
			if after := s.State(); after != StateIdle && !(restoreNext && after == st) {
				t.Fatalf("nothing written, state %s → %s", st, after)
			}
			return
		}
		switch rec.Code {
		case http.StatusOK:
			if restoreNext && opts.Snapshot == SnapshotRestored && rec.Body.Len() == 0 {
				break // the restore is done
			}
			if rec.Header().Get(hdrRequestID) == "" && rec.Body.String() != "pong" && rec.Header().Get(hdrExtIdentifier) == "" {
				t.Fatalf("200 that is neither an event, pong nor a registration: %v %q", rec.Header(), rec.Body)
			}
		case http.StatusAccepted:
			if rec.Body.String() != `{"status":"OK"}` {
				t.Fatalf("202 body %q", rec.Body)
			}
		case 400, 403, 404, 405, 413, 500:
			if ct := rec.Header().Get("Content-Type"); ct != "application/json" {
				t.Fatalf("%d with Content-Type %q", rec.Code, ct)
			}
			e, err := decodeAPIError(rec.Body.Bytes())
			if err != nil {
				t.Fatalf("%d body %q: %v", rec.Code, rec.Body, err)
			}
			if !knownAPIError[e.ErrorType] {
				t.Fatalf("unknown errorType %q", e.ErrorType)
			}
			if unchangedOn[e.ErrorType] && s.State() != st {
				t.Fatalf("%s moved the state %s → %s", e.ErrorType, st, s.State())
			}
		default:
			t.Fatalf("status %d", rec.Code)
		}
	})
}

var knownAPIError = map[apiErrorType]bool{
	errInvalidStateTransition: true, errInvalidRequestID: true, errRequestEntityTooLarge: true,
	errTruncatedHTTPRequest: true, errInvalidFunctionResponseMode: true, errInternalServerError: true,
	errNotFound: true, errMethodNotAllowed: true,
	errExtMissingIdentifier: true, errExtInvalidIdentifier: true, errExtInvalidName: true,
	errExtRegistrationClosed: true, errExtUnknownIdentifier: true, errExtInvalidState: true,
	errExtMissingHeader: true, errExtTooMany: true, errExtInvalidEventType: true, errInvalidRequestFormat: true,
	errValidation: true, errTelemetrySubscriptionClosed: true, errLogsSubscriptionClosed: true,
}

// unchangedOn lists the errors that refuse a request before it does
// anything. (An invalid response mode ends the invocation, as 413 does.)
var unchangedOn = map[apiErrorType]bool{
	errInvalidStateTransition: true, errInvalidRequestID: true,
	errInternalServerError: true, errNotFound: true, errMethodNotAllowed: true,
	errExtMissingIdentifier: true, errExtInvalidIdentifier: true, errExtInvalidName: true,
	errExtRegistrationClosed: true, errExtUnknownIdentifier: true, errExtInvalidState: true,
	errExtMissingHeader: true, errExtTooMany: true, errExtInvalidEventType: true, errInvalidRequestFormat: true,
	errValidation: true, errTelemetrySubscriptionClosed: true, errLogsSubscriptionClosed: true,
}

// queue puts an event for id in the pending slot, as Invoke does, where the
// state allows one.
func queue(t *testing.T, s *Server, id string) {
	t.Helper()
	c, err := s.newCall(testInvocation(id))
	if err != nil {
		t.Fatal(err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := transition(s.state, evInvoke); ok && s.state != StateReady {
		s.pending = c
	}
}

// checkInvariants checks that the fields agree with the state.
func checkInvariants(t *testing.T, s *Server) {
	t.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	if (s.state == StateRunning) != (s.current != nil) {
		t.Fatalf("state %s with current %v", s.state, s.current != nil)
	}
	if s.pending != nil {
		if _, ok := transition(s.state, evInvoke); !ok {
			t.Fatalf("event pending in state %s", s.state)
		}
	}
	if len(s.transfers) != 0 {
		t.Fatalf("%d transfers left registered", len(s.transfers))
	}
	if s.state != StateReady && s.wake != nil {
		t.Fatalf("wake channel left in state %s", s.state)
	}
}

// FuzzErrorBody checks that any /error body becomes a JSON payload within
// the cap: JSON kept as is, anything else wrapped.
func FuzzErrorBody(f *testing.F) {
	for _, s := range []string{"", "{}", `{"errorMessage":"x"}`, "plain", "\xff\xfe<>&", `"str"`, "[1,2", strings.Repeat("é<", 40)} {
		f.Add([]byte(s), "Unhandled", uint16(64))
	}
	f.Fuzz(func(t *testing.T, body []byte, typ string, limit uint16) {
		lim := int64(limit)
		if int64(len(body)) > lim {
			body = body[:lim] // bodies over the cap never get here
		}
		got := normalizeErrorBody(body, typ, lim)
		if !json.Valid(got) {
			t.Fatalf("not JSON: %q", got)
		}
		if json.Valid(body) {
			if !bytes.Equal(got, body) {
				t.Fatalf("JSON body changed: %q → %q", body, got)
			}
			return
		}
		if floor := int64(len(errorPayload(typ, ""))); int64(len(got)) > max(lim, floor) {
			t.Fatalf("%d bytes over the cap %d", len(got), lim)
		}
		var e errorBody
		if err := json.Unmarshal(got, &e); err != nil || e.ErrorType != strings.ToValidUTF8(typ, "\uFFFD") && e.ErrorType != string([]rune(typ)) {
			t.Fatalf("payload %q: type %q (%v)", got, e.ErrorType, err)
		}
	})
}
