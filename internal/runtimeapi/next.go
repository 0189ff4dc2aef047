package runtimeapi

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"time"

	"github.com/kappa-run/kappa/internal/envinit"
)

// Headers of a /next response.
const (
	hdrRequestID       = "Lambda-Runtime-Aws-Request-Id"
	hdrDeadlineMs      = "Lambda-Runtime-Deadline-Ms"
	hdrFunctionARN     = "Lambda-Runtime-Invoked-Function-Arn"
	hdrTraceID         = "Lambda-Runtime-Trace-Id"
	hdrClientContext   = "Lambda-Runtime-Client-Context"
	hdrCognitoIdentity = "Lambda-Runtime-Cognito-Identity"
	hdrTenantID        = "Lambda-Runtime-Aws-Tenant-Id"
)

// handleNext serves GET /2018-06-01/runtime/invocation/next: the runtime's
// long-poll for its next event, without a timeout. The first /next ends the
// runtime's init (init as a whole ends when the extensions are done too).
// While an event is pending and init is complete it is written at once, and
// the INVOKE extensions get theirs; otherwise the request parks until that
// holds, the client goes away (state Idle, nothing consumed) or Close
// releases it with 500. An event whose write fails is pending again for the
// following /next.
func (s *Server) handleNext(w http.ResponseWriter, r *http.Request, _ string) {
	s.mu.Lock()
	if s.state == StateClosed {
		s.mu.Unlock()
		writeAPIError(w, apiErrClosed)
		return
	}
	from, ok := s.fire(evNext)
	if !ok {
		s.mu.Unlock()
		writeAPIError(w, apiErrRefused(from, evNext))
		return
	}
	if from == StateStarted {
		s.runtimeReady = true
		s.checkInit()
	}

	// s.mu is held at the top of each iteration. Only this handler moves
	// the state out of Ready (deliver, abandon) and no other /next can
	// park meanwhile, so the state is Ready or Closed here.
	for {
		if s.state != StateReady {
			s.mu.Unlock()
			writeAPIError(w, apiErrClosed)
			return
		}
		if ckpt := s.ckpt; ckpt != nil && s.initResolved {
			s.fire(evAbandon)
			s.wakeParked() // a /restore/next may wait on it too
			s.mu.Unlock()
			answerCheckpoint(w, ckpt)
			return
		}
		if c := s.pending; c != nil && s.deliverable() {
			s.fire(evDeliver)
			s.pending, s.current = nil, c
			if c.delivered.IsZero() {
				c.delivered = s.now()
			}
			s.queueInvokeEvents(c)
			s.mu.Unlock()
			s.deliver(w, c)
			return
		}
		if s.park(r, s.parkedWake()) {
			if s.state == StateReady {
				s.fire(evAbandon)
				s.wakeParked() // a /restore/next may wait on it too
			}
			s.mu.Unlock()
			return
		}
	}
}

// deliver writes c's event to the /next response; when that fails, c is
// pending again (unless it was answered meanwhile, or Invoke gave up on it).
func (s *Server) deliver(w http.ResponseWriter, c *call) {
	untrack := s.track(w, transferWrite)
	h := w.Header()
	for name, v := range c.header {
		h[name] = v
	}
	w.WriteHeader(http.StatusOK)
	_, err := w.Write(c.inv.Payload)
	if err == nil {
		if ferr := http.NewResponseController(w).Flush(); ferr != nil && !errors.Is(ferr, http.ErrNotSupported) {
			err = ferr
		}
	}
	untrack()
	if err == nil {
		return
	}

	s.mu.Lock()
	defer s.mu.Unlock()
	if s.current != c || s.state != StateRunning {
		return // answered already, or closed
	}
	s.fire(evUndeliver)
	s.current = nil
	c.delivered = time.Time{}
	if !c.abandoned {
		s.pending = c
	}
	s.log.Warn("runtime api: event not delivered, pending again", "requestId", c.inv.RequestID, "err", err)
}

// checkpointCloseWait bounds how long Checkpoint waits for the relay to
// close its connection after the checkpoint answer (a variable for tests).
var checkpointCloseWait = 5 * time.Second

// Checkpoint prepares a checkpointable environment (see sandbox.Checkpointer)
// for its checkpoint, once its init is complete: it answers the runtime's
// parked /next (or /restore/next, see SnapshotTaken), which came through
// the environment's relay (package
// envinit), with the relay's checkpoint signal, and returns once the relay
// has closed that connection. The environment then holds no connection to
// Kappa, and the relay asks for the next event again, of whichever server
// is at its upstream address after the restore. The caller closes the
// listener first, so that the relay's tries are refused meanwhile. The
// server serves no invocation after; Close it.
func (s *Server) Checkpoint(ctx context.Context) error {
	s.mu.Lock()
	if s.state == StateClosed {
		s.mu.Unlock()
		return ErrClosed
	}
	if !s.initResolved || s.initErr != nil {
		s.mu.Unlock()
		return errors.New("runtime api: checkpoint before init completed")
	}
	if s.ckpt == nil {
		s.ckpt = make(chan error, 1)
		s.wakeParked()
	}
	ckpt := s.ckpt
	s.mu.Unlock()
	select {
	case err := <-ckpt:
		return err
	case <-ctx.Done():
		return ctx.Err()
	}
}

// answerCheckpoint answers w, a parked request, with the checkpoint signal
// and reports the outcome on ckpt: the first answer is Checkpoint's;
// later ones (a request that got through after it) are not.
func answerCheckpoint(w http.ResponseWriter, ckpt chan error) {
	err := writeCheckpointSignal(w)
	select {
	case ckpt <- err:
	default:
	}
}

// writeCheckpointSignal writes the checkpoint signal on the connection of w
// and waits for the relay to close it.
func writeCheckpointSignal(w http.ResponseWriter) error {
	conn, brw, err := http.NewResponseController(w).Hijack()
	if err != nil {
		return fmt.Errorf("runtime api: checkpoint: %w", err)
	}
	defer conn.Close()
	brw.WriteString("HTTP/1.1 503 Service Unavailable\r\n" + envinit.CheckpointHeader +
		": 1\r\nConnection: close\r\nContent-Length: 0\r\n\r\n")
	if err := brw.Flush(); err != nil {
		return fmt.Errorf("runtime api: checkpoint: %w", err)
	}
	_ = conn.SetReadDeadline(time.Now().Add(checkpointCloseWait))
	if _, err := io.Copy(io.Discard, conn); err != nil {
		return fmt.Errorf("runtime api: checkpoint: the relay kept its connection: %w", err)
	}
	return nil
}
