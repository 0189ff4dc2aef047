package runtimeapi

import "net/http"

// handleExtension stands in for the Extensions API (/2020-01-01/extension/…)
// until it is implemented: every request gets 501 Extension.NotSupported, so
// an extension fails its registration loudly instead of hanging.
func (s *Server) handleExtension(w http.ResponseWriter, _ *http.Request, _ string) {
	writeAPIError(w, &apiError{http.StatusNotImplemented, errExtensionNotSupported,
		"The Extensions API is not supported yet"})
}
