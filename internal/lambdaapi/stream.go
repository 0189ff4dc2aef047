package lambdaapi

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"net/http"

	"github.com/kappa-run/kappa/internal/apierr"
	"github.com/kappa-run/kappa/internal/eventstream"
	"github.com/kappa-run/kappa/internal/invoker"
)

// streamChunk is the most one PayloadChunk event carries.
const streamChunk = 32 << 10

// invokeStream serves InvokeWithResponseStream: 200 with an AWS event
// stream of PayloadChunk events as the function produces its response, then
// one InvokeComplete event, the only place errors appear once the stream
// has started. Errors before it starts (bad request, throttles, unknown
// function) are ordinary AWS errors.
func (a *API) invokeStream(w http.ResponseWriter, r *http.Request) {
	req, typ, err := a.parseInvoke(r)
	if err != nil {
		writeError(w, a.log, err)
		return
	}
	if typ == "Event" {
		writeError(w, a.log, apierr.New(apierr.Validation,
			"1 validation error detected: Value 'Event' at 'invocationType' failed to satisfy constraint: Member must satisfy enum value set: [RequestResponse, DryRun]"))
		return
	}
	target, err := a.fns.Resolve(r.Context(), req.ref)
	if err != nil {
		writeError(w, a.log, err)
		return
	}
	cfg := target.Config
	if typ == "DryRun" {
		w.Header().Set("X-Amz-Executed-Version", cfg.Version)
		w.WriteHeader(http.StatusNoContent)
		return
	}
	resp, err := a.inv.Invoke(context.WithoutCancel(r.Context()), invoker.Request{
		Config:        cfg,
		Reserved:      target.Reserved,
		Unreserved:    a.fns.UnreservedCached(),
		RequestID:     requestID(r),
		Payload:       req.payload,
		InvokedARN:    a.fns.ARN(req.ref.Name, req.ref.Qualifier),
		TraceID:       req.traceID,
		ClientContext: req.clientContext,
		TenantID:      req.tenantID,
		Tail:          req.tail,
		Stream:        true,
	})
	if err != nil {
		writeError(w, a.log, err)
		return
	}
	h := w.Header()
	h.Set("Content-Type", "application/vnd.amazon.eventstream")
	h.Set("X-Amz-Executed-Version", resp.ExecutedVersion)
	w.WriteHeader(http.StatusOK)
	flusher, _ := w.(http.Flusher)
	var done eventstream.InvokeComplete
	if resp.Stream == nil {
		// The function failed before streaming (an /error, a crash, a
		// timeout): the error document goes into InvokeComplete.
		if resp.FunctionError != "" {
			var doc struct {
				ErrorType    string `json:"errorType"`
				ErrorMessage string `json:"errorMessage"`
			}
			json.Unmarshal(resp.Payload, &doc)
			done.ErrorCode, done.ErrorDetails = doc.ErrorType, doc.ErrorMessage
			if done.ErrorCode == "" {
				done.ErrorCode = resp.FunctionError
			}
		} else if len(resp.Payload) > 0 {
			eventstream.Write(w, eventstream.PayloadChunk(resp.Payload))
		}
		if req.tail {
			done.LogResult = base64.StdEncoding.EncodeToString(resp.LogTail)
		}
	} else {
		buf := make([]byte, streamChunk)
		clientGone := false
		for {
			n, rerr := resp.Stream.Read(buf)
			if n > 0 && !clientGone {
				if err := eventstream.Write(w, eventstream.PayloadChunk(buf[:n])); err != nil {
					clientGone = true // keep draining so the invocation completes
				} else if flusher != nil {
					flusher.Flush()
				}
			}
			if rerr != nil {
				break
			}
		}
		resp.Stream.Close()
		end := resp.Finish()
		done.ErrorCode, done.ErrorDetails = end.ErrorType, end.ErrorMessage
		if req.tail {
			done.LogResult = base64.StdEncoding.EncodeToString(end.LogTail)
		}
	}
	eventstream.Write(w, done.Message())
	if flusher != nil {
		flusher.Flush()
	}
}
