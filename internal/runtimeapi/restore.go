package runtimeapi

import "net/http"

// handleRestoreNext serves GET /2018-06-01/runtime/restore/next, which a
// runtime with SnapStart hooks calls once, during init, after its
// before-snapshot hooks (see SnapshotRole). Refused (403) in an ordinary
// environment and after init; a later one (a relay's retry) takes the
// place of one still parked.
//
// In an environment to be checkpointed it ends the runtime's init and
// parks until Checkpoint answers it with the relay's checkpoint signal;
// the relay sends it again after the restore. In a restored environment it
// answers 200 at once: the runtime then runs its after-restore hooks and
// asks for its first event.
func (s *Server) handleRestoreNext(w http.ResponseWriter, r *http.Request, _ string) {
	s.mu.Lock()
	st := s.state
	if st == StateClosed {
		s.mu.Unlock()
		writeAPIError(w, apiErrClosed)
		return
	}
	// Again while the state is Started is a relay's retry after its
	// connection broke: answered again, or parked in place of the first
	// one, which may not have noticed yet that its client went away.
	if s.snapshot == SnapshotNone || st != StateStarted {
		s.mu.Unlock()
		s.log.Warn("runtime api: restore/next refused", "state", st, "snapshot", s.snapshot != SnapshotNone)
		writeAPIError(w, apiErrRefused(st, evRestoreNext))
		return
	}
	s.restoreNext = true
	if s.snapshot == SnapshotRestored {
		s.mu.Unlock()
		w.Header().Set("Content-Length", "0")
		w.WriteHeader(http.StatusOK)
		return
	}

	// The runtime's init is done, as with a first /next.
	s.runtimeReady = true
	s.checkInit()
	s.restoreGen++
	gen := s.restoreGen
	s.wakeParked() // an earlier one, superseded
	for {
		if s.state == StateClosed {
			s.mu.Unlock()
			writeAPIError(w, apiErrClosed)
			return
		}
		if gen != s.restoreGen {
			s.mu.Unlock()
			writeAPIError(w, apiErrRefused(StateStarted, evRestoreNext))
			return
		}
		if ckpt := s.ckpt; ckpt != nil && s.initResolved {
			s.mu.Unlock()
			answerCheckpoint(w, ckpt)
			return
		}
		if s.park(r, s.parkedWake()) {
			// The relay went away; Checkpoint, if it comes, finds no
			// request to answer and times out (or answers the relay's
			// retry).
			if s.restoreGen == gen && s.state == StateStarted {
				s.wakeParked()
			}
			s.mu.Unlock()
			return
		}
	}
}

// handleRestoreError serves POST /2018-06-01/runtime/restore/error: a
// restored environment's runtime reports that its after-restore hooks
// failed, before its first /invocation/next. Like /init/error (202, and the
// runtime must exit), with the error's Restore set. Refused (403) anywhere
// else.
func (s *Server) handleRestoreError(w http.ResponseWriter, r *http.Request, _ string) {
	s.mu.Lock()
	st, role := s.state, s.snapshot
	s.mu.Unlock()
	if st != StateClosed && role != SnapshotRestored {
		s.log.Warn("runtime api: restore/error refused", "state", st)
		writeAPIError(w, apiErrRefused(st, evRestoreError))
		return
	}
	s.failInit(w, r, evRestoreError)
}

// RestoreNextCalled reports whether the runtime has called /restore/next.
// A restored environment's runtime that has reached its Runtime API and
// runs its after-restore hooks before it asks for its first event.
func (s *Server) RestoreNextCalled() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.restoreNext
}
