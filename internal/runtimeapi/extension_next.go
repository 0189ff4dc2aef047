package runtimeapi

import (
	"net/http"
)

// handleExtNext serves GET /2020-01-01/extension/event/next: the
// extension's long-poll for its next event. The first one ends the
// extension's init; each later one tells that it is done with the event it
// got (an invocation is not complete before every INVOKE subscriber said
// so). The request parks until an event is queued for the extension, goes
// away (state Idle, nothing consumed) or Close releases it with 500. After
// SHUTDOWN, the next call parks until Close: no event follows.
func (s *Server) handleExtNext(w http.ResponseWriter, r *http.Request, _ string) {
	x, aerr := s.extensionFor(r)
	if aerr != nil {
		writeAPIError(w, aerr)
		return
	}
	s.mu.Lock()
	if s.state == StateClosed {
		s.mu.Unlock()
		writeAPIError(w, apiErrClosed)
		return
	}
	from, ok := s.fireExt(x, xevNext)
	if !ok {
		s.mu.Unlock()
		writeAPIError(w, apiErrExtRefused(x, from, xevNext))
		return
	}
	if cur := x.current; cur != nil {
		x.current = nil
		s.release(x, cur)
	}
	if from == ExtRegistered {
		// Under s.mu, so the record precedes whatever the invoker emits
		// once init ends.
		s.telemetry.Platform(extensionRecord(x))
		s.checkInit()
	}

	// s.mu is held at the top of each iteration. Only this handler moves
	// x out of Ready (deliver, abandon) apart from exit/error and Close.
	for {
		if s.state == StateClosed {
			s.mu.Unlock()
			writeAPIError(w, apiErrClosed)
			return
		}
		switch x.state {
		case ExtReady:
		case ExtExited:
			// No event follows SHUTDOWN: hold the request until the
			// environment goes away.
			ch := s.closedCh
			s.mu.Unlock()
			select {
			case <-ch:
				writeAPIError(w, apiErrClosed)
			case <-r.Context().Done():
			}
			return
		default:
			st := x.state
			s.mu.Unlock()
			writeAPIError(w, apiErrExtRefused(x, st, xevNext))
			return
		}
		if ev := x.pending; ev != nil {
			if ev.shutdown {
				s.fireExt(x, xevDeliverShutdown)
			} else {
				s.fireExt(x, xevDeliverInvoke)
			}
			x.pending, x.current = nil, ev
			s.mu.Unlock()
			s.deliverExt(w, x, ev)
			return
		}
		if x.wake == nil {
			x.wake = make(chan struct{})
		}
		if s.park(r, x.wake) {
			if x.state == ExtReady {
				s.fireExt(x, xevAbandon)
				x.wake = nil
			}
			s.mu.Unlock()
			return
		}
	}
}

// deliverExt writes ev to x's /event/next response; when that fails, ev is
// pending again unless something else happened to x meanwhile.
func (s *Server) deliverExt(w http.ResponseWriter, x *extension, ev *extEvent) {
	untrack := s.track(w, transferWrite)
	err := writeExtEvent(w, ev.body)
	untrack()
	if err == nil {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if x.current != ev || s.state == StateClosed {
		return
	}
	if _, ok := s.fireExt(x, xevUndeliver); !ok {
		return
	}
	x.current = nil
	if x.pending == nil {
		x.pending = ev
	} else {
		s.release(x, ev)
	}
	s.log.Warn("extensions api: event not delivered, pending again", "extension", x.name, "err", err)
}
