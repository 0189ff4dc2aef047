package runtimeapi

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"time"
)

// Shutdown runs the Extensions API's part of the shutdown phase: it flushes
// the telemetry buffers to the subscribers (bounded by ctx), then gives
// every external extension subscribed to SHUTDOWN the event
// {"eventType":"SHUTDOWN","shutdownReason":reason,"deadlineMs":deadline}
// and waits until each has called /extension/event/next again. reason is
// ShutdownSpindown, ShutdownTimeout or ShutdownFailure (upper case is
// accepted). An INVOKE event an extension never picked up is dropped.
//
// Extensions usually exit after SHUTDOWN instead of calling next again, so
// the caller bounds Shutdown with ctx (deadline = now + ShutdownGrace()) and
// cancels it once the sandbox reports that the processes exited. It returns
// nil when every extension called next, ctx.Err(), or ErrClosed. It does not
// close the Server; calling it twice waits for the same events.
func (s *Server) Shutdown(ctx context.Context, reason string, deadline time.Time) error {
	reason = strings.ToLower(reason)
	switch reason {
	case ShutdownSpindown, ShutdownTimeout, ShutdownFailure:
	default:
		return fmt.Errorf("shutdown reason %q: want spindown, timeout or failure", reason)
	}
	_ = s.telemetry.Flush(ctx)

	s.mu.Lock()
	if s.state == StateClosed {
		s.mu.Unlock()
		return ErrClosed
	}
	if s.shutdownDone == nil {
		s.shutdownDone = make(chan struct{})
		body, _ := json.Marshal(extShutdownEvent{
			EventType: EventShutdown, ShutdownReason: reason, DeadlineMs: deadline.UnixMilli(),
		})
		for _, x := range s.exts {
			if !x.shutdown {
				continue
			}
			switch x.state {
			case ExtInitError, ExtExitError, ExtExited, ExtShuttingDown:
				continue
			}
			s.dropPending(x)
			x.pending = &extEvent{shutdown: true, body: body}
			s.shutdownWait++
			x.wakeParked()
		}
		if s.shutdownWait == 0 {
			close(s.shutdownDone)
		}
	}
	done := s.shutdownDone
	s.mu.Unlock()

	select {
	case <-done:
		s.mu.Lock()
		defer s.mu.Unlock()
		if s.state == StateClosed {
			return ErrClosed
		}
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
