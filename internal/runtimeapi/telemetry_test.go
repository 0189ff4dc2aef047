package runtimeapi

import (
	"net/http"
	"testing"
)

func TestTelemetryStub(t *testing.T) {
	tests := []struct {
		name, method, path string
	}{
		{name: "telemetry subscribe", method: http.MethodPut, path: "/2022-07-01/telemetry"},
		{name: "logs subscribe", method: http.MethodPut, path: "/2020-08-15/logs"},
		{name: "telemetry, any method", method: http.MethodGet, path: "/2022-07-01/telemetry"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, ts := newTestServer(t, Options{})
			r := do(t, ts, tt.method, tt.path, []byte(`{"schemaVersion":"2022-12-13"}`))
			wantAPIError(t, r, http.StatusNotImplemented, errTelemetryNotSupported)
		})
	}
}
