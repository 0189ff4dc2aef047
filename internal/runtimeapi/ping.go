package runtimeapi

import "net/http"

// handlePing serves GET /2018-06-01/ping, a legacy liveness probe:
// 200 "pong" in every state but Closed.
func (s *Server) handlePing(w http.ResponseWriter, _ *http.Request, _ string) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("Content-Length", "4")
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write([]byte("pong"))
}
