package runtimeapi

import "net/http"

// handleTelemetry stands in for the Telemetry API (/2022-07-01/telemetry)
// and the legacy Logs API (/2020-08-15/logs) until they are implemented:
// every request gets 501 Telemetry.NotSupported.
func (s *Server) handleTelemetry(w http.ResponseWriter, _ *http.Request, _ string) {
	writeAPIError(w, &apiError{http.StatusNotImplemented, errTelemetryNotSupported,
		"The Telemetry API is not supported yet"})
}
