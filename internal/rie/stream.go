package rie

import (
	"encoding/json"
	"errors"
	"io"
	"net/http"

	"github.com/kappa-run/kappa/internal/eventstream"
	"github.com/kappa-run/kappa/internal/runtimeapi"
)

// handleStream serves POST
// /2021-11-15/functions/function/response-streaming-invocations, Lambda's
// InvokeWithResponseStream: 200 and an application/vnd.amazon.eventstream
// body of PayloadChunk events as the runtime streams its response, then
// InvokeComplete, which carries the error (ErrorCode, ErrorDetails) when
// there is one.
func (em *Emulator) handleStream(w http.ResponseWriter, r *http.Request) {
	switch typ := r.Header.Get("X-Amz-Invocation-Type"); typ {
	case "", "RequestResponse":
	case "DryRun":
		w.WriteHeader(http.StatusNoContent)
		return
	default:
		writeLambdaError(w, http.StatusBadRequest, "InvalidParameterValueException",
			"Unsupported invocation type \""+typ+"\" for InvokeWithResponseStream")
		return
	}
	req, ok := em.readRequest(w, r, maxSyncPayload)
	if !ok {
		return
	}
	req.stream = true
	s, err := em.pool.acquire(r.Context(), false)
	if err != nil {
		em.refuse(w, err)
		return
	}
	em.run(r.Context(), s, req, func(a answer) { em.writeStream(w, req, a) })
}

// writeStream writes the event stream of one answer, reading a streamed
// body to its end even when the client went away.
func (em *Emulator) writeStream(w http.ResponseWriter, req request, a answer) {
	h := w.Header()
	h.Set("Content-Type", "application/vnd.amazon.eventstream")
	h.Set("X-Amz-Executed-Version", em.cfg.FunctionVersion)
	w.WriteHeader(http.StatusOK)
	rc := http.NewResponseController(w)
	clientGone := false
	send := func(m eventstream.Message) {
		if clientGone {
			return
		}
		if err := eventstream.Write(w, m); err != nil {
			clientGone = true
			return
		}
		_ = rc.Flush()
	}
	var done eventstream.InvokeComplete
	switch {
	case a.fe != nil:
		done = eventstream.InvokeComplete{ErrorCode: string(a.fe.Type), ErrorDetails: errorMessage(a.fe.payload(req.id))}
	case a.res.Body == nil && a.res.ErrorType != "":
		done = eventstream.InvokeComplete{ErrorCode: a.res.ErrorType, ErrorDetails: errorMessage(a.res.Payload)}
	case a.res.Body == nil:
		if len(a.res.Payload) > 0 {
			send(eventstream.PayloadChunk(a.res.Payload))
		}
	default:
		body := a.res.Body
		buf := make([]byte, 64<<10)
		for {
			n, err := body.Read(buf)
			if n > 0 {
				send(eventstream.PayloadChunk(buf[:n]))
				if clientGone {
					_ = body.Close() // the rest is read and dropped
				}
			}
			if err == nil {
				continue
			}
			var se *runtimeapi.StreamError
			switch {
			case err == io.EOF:
			case errors.As(err, &se):
				done = eventstream.InvokeComplete{ErrorCode: se.Type, ErrorDetails: errorMessage(se.Payload)}
			case errors.Is(err, io.ErrClosedPipe):
				// We closed it: the client went away.
			default:
				fe := a.explain(err)
				done = eventstream.InvokeComplete{ErrorCode: string(fe.Type), ErrorDetails: errorMessage(fe.payload(req.id))}
			}
			break
		}
	}
	send(done.Message())
}

// errorMessage returns the errorMessage of an error document, or the
// document itself.
func errorMessage(payload []byte) string {
	var e struct {
		ErrorMessage string `json:"errorMessage"`
	}
	if json.Unmarshal(payload, &e) == nil && e.ErrorMessage != "" {
		return e.ErrorMessage
	}
	return string(payload)
}
