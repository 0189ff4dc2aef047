package runtimeapi

import "net/http"

// handleExtExitError serves POST /2020-01-01/extension/exit/error: the
// extension hit an error it cannot recover from and will exit. The header
// Lambda-Extension-Function-Error-Type is required. 202 fails whatever
// phase the environment is in with an *ExtensionError of type
// Extension.ExitError: init (WaitInit), the invocation in flight
// (WaitInvokeDone) or the shutdown; the invoker must then reset the
// environment.
func (s *Server) handleExtExitError(w http.ResponseWriter, r *http.Request, _ string) {
	s.handleExtError(w, r, xevExitError, ExtensionExitError, "exited with an error")
}
