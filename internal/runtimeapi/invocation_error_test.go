package runtimeapi

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"unicode/utf8"
)

func TestInvocationError(t *testing.T) {
	const limit = 128
	tests := []struct {
		name        string
		path        string
		body        string
		headers     []string
		wantStatus  int
		wantAPIType apiErrorType
		wantType    string
		wantPayload string
	}{
		{
			name: "typed JSON error", path: pathError("req-1"),
			body:       `{"errorMessage":"boom","errorType":"MyError","stackTrace":[]}`,
			headers:    []string{hdrErrorType, "Function.MyError", "Content-Type", "application/json"},
			wantStatus: http.StatusAccepted, wantType: "Function.MyError",
			wantPayload: `{"errorMessage":"boom","errorType":"MyError","stackTrace":[]}`,
		},
		{
			name: "untyped", path: pathError("req-1"), body: `{"errorMessage":"x"}`,
			wantStatus: http.StatusAccepted, wantType: "Unhandled", wantPayload: `{"errorMessage":"x"}`,
		},
		{
			name: "non-JSON body wrapped", path: pathError("req-1"), body: "Traceback <most recent call last>\n\tline 1",
			headers:    []string{hdrErrorType, "Runtime.Crash"},
			wantStatus: http.StatusAccepted, wantType: "Runtime.Crash",
			wantPayload: `{"errorMessage":"Traceback <most recent call last>\n\tline 1","errorType":"Runtime.Crash"}`,
		},
		{
			name: "empty body wrapped", path: pathError("req-1"),
			wantStatus: http.StatusAccepted, wantType: "Unhandled",
			wantPayload: `{"errorMessage":"","errorType":"Unhandled"}`,
		},
		{
			name: "JSON scalar kept", path: pathError("req-1"), body: `"just a string"`,
			wantStatus: http.StatusAccepted, wantType: "Unhandled", wantPayload: `"just a string"`,
		},
		{
			name: "too large", path: pathError("req-1"), body: strings.Repeat("e", limit+1),
			wantStatus: http.StatusRequestEntityTooLarge, wantAPIType: errRequestEntityTooLarge,
			wantType:    "Function.ResponseSizeTooLarge",
			wantPayload: `{"errorMessage":"Response payload size exceeded maximum allowed payload size (128 bytes).","errorType":"Function.ResponseSizeTooLarge"}`,
		},
		{name: "other id", path: pathError("req-9"), wantStatus: http.StatusBadRequest, wantAPIType: errInvalidRequestID},
		{name: "dot-dot id", path: pathError(".."), wantStatus: http.StatusBadRequest, wantAPIType: errInvalidRequestID},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, ts := newTestServer(t, Options{MaxResponseBytes: limit})
			_, done := running(t, s, ts, testInvocation("req-1"))
			r := do(t, ts, http.MethodPost, tt.path, []byte(tt.body), tt.headers...)
			if tt.wantStatus == http.StatusAccepted {
				wantAccepted(t, r)
			} else {
				wantAPIError(t, r, tt.wantStatus, tt.wantAPIType)
			}
			if tt.wantType == "" {
				if got := s.State(); got != StateRunning {
					t.Errorf("state %s, want Running", got)
				}
				return
			}
			got := receive(t, done)
			if got.err != nil {
				t.Fatalf("Invoke: %v", got.err)
			}
			if got.res.ErrorType != tt.wantType || string(got.res.Payload) != tt.wantPayload || got.res.ContentType != "application/json" {
				t.Errorf("Result %q %q %s\nwant    %q %s", got.res.ErrorType, got.res.ContentType, got.res.Payload, tt.wantType, tt.wantPayload)
			}
		})
	}
}

func TestNormalizeErrorBody(t *testing.T) {
	tests := []struct {
		name  string
		body  string
		limit int64
	}{
		{name: "fits", body: "short", limit: 1024},
		{name: "escaping grows past the cap", body: strings.Repeat("<\x01", 100), limit: 200},
		{name: "invalid UTF-8", body: strings.Repeat("\xff", 150), limit: 200},
		{name: "multi-byte runes cut", body: strings.Repeat("é", 150), limit: 120},
		{name: "cap smaller than the wrapper", body: "abc", limit: 10},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := normalizeErrorBody([]byte(tt.body), "T", tt.limit)
			overhead := int64(len(errorPayload("T", "")))
			if int64(len(got)) > max(tt.limit, overhead) {
				t.Errorf("%d bytes, over the cap %d", len(got), tt.limit)
			}
			var e errorBody
			if err := json.Unmarshal(got, &e); err != nil || e.ErrorType != "T" {
				t.Fatalf("not an error payload: %s (%v)", got, err)
			}
			if !utf8.ValidString(e.ErrorMessage) || !strings.HasPrefix(string([]rune(tt.body)), strings.TrimSuffix(e.ErrorMessage, "\uFFFD")) {
				t.Errorf("message %q is not a prefix of the body", e.ErrorMessage)
			}
		})
	}
}
