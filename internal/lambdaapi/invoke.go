package lambdaapi

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"io"
	"net/http"

	"github.com/kappa-run/kappa/internal/apierr"
	"github.com/kappa-run/kappa/internal/function"
	"github.com/kappa-run/kappa/internal/invoker"
)

// Invoke limits (LAMBDA_SURFACE §2).
const (
	MaxSyncPayload       = 6 * 1024 * 1024
	maxClientContextSize = 3583
)

func (a *API) invoke(w http.ResponseWriter, r *http.Request) {
	req, typ, err := a.parseInvoke(r)
	if err != nil {
		writeError(w, a.log, err)
		return
	}
	target, err := a.fns.Resolve(r.Context(), req.ref)
	if err != nil {
		writeError(w, a.log, err)
		return
	}
	cfg := target.Config
	switch typ {
	case "DryRun":
		w.Header().Set("X-Amz-Executed-Version", cfg.Version)
		w.WriteHeader(http.StatusNoContent)
		return
	case "Event":
		a.invokeEvent(w, r, req)
		return
	}
	qualifier := req.ref.Qualifier
	resp, err := a.inv.Invoke(context.WithoutCancel(r.Context()), invoker.Request{
		Config:        cfg,
		Reserved:      target.Reserved,
		Unreserved:    a.fns.UnreservedCached(),
		RequestID:     requestID(r),
		Payload:       req.payload,
		InvokedARN:    a.fns.ARN(req.ref.Name, qualifier),
		TraceID:       req.traceID,
		ClientContext: req.clientContext,
		TenantID:      req.tenantID,
		Tail:          req.tail,
	})
	if err != nil {
		writeError(w, a.log, err)
		return
	}
	h := w.Header()
	h.Set("Content-Type", resp.ContentType)
	h.Set("X-Amz-Executed-Version", resp.ExecutedVersion)
	if resp.FunctionError != "" {
		h.Set("X-Amz-Function-Error", resp.FunctionError)
	}
	if req.tail {
		h.Set("X-Amz-Log-Result", base64.StdEncoding.EncodeToString(resp.LogTail))
	}
	w.WriteHeader(http.StatusOK)
	w.Write(resp.Payload)
}

type invokeRequest struct {
	ref           function.Ref
	payload       []byte
	traceID       string
	clientContext string
	tenantID      string
	tail          bool
}

// parseInvoke validates an Invoke request's headers and payload.
func (a *API) parseInvoke(r *http.Request) (invokeRequest, string, error) {
	var out invokeRequest
	ref, err := a.ref(r)
	if err != nil {
		return out, "", err
	}
	out.ref = ref
	typ := r.Header.Get("X-Amz-Invocation-Type")
	switch typ {
	case "":
		typ = "RequestResponse"
	case "RequestResponse", "Event", "DryRun":
	default:
		return out, "", apierr.New(apierr.Validation,
			"1 validation error detected: Value '%s' at 'invocationType' failed to satisfy constraint: Member must satisfy enum value set: [Event, RequestResponse, DryRun]", typ)
	}
	switch lt := r.Header.Get("X-Amz-Log-Type"); lt {
	case "", "None":
	case "Tail":
		out.tail = typ == "RequestResponse"
	default:
		return out, "", apierr.New(apierr.Validation,
			"1 validation error detected: Value '%s' at 'logType' failed to satisfy constraint: Member must satisfy enum value set: [None, Tail]", lt)
	}
	if cc := r.Header.Get("X-Amz-Client-Context"); cc != "" {
		if len(cc) > maxClientContextSize {
			return out, "", apierr.New(apierr.InvalidParameter, "Client context must be at most %d bytes", maxClientContextSize)
		}
		dec, err := base64.StdEncoding.DecodeString(cc)
		if err != nil || !json.Valid(dec) {
			return out, "", apierr.New(apierr.InvalidParameter, "Client context must be a valid Base64-encoded JSON object.")
		}
		out.clientContext = string(dec)
	}
	out.traceID = r.Header.Get("X-Amzn-Trace-Id")
	out.tenantID = r.Header.Get("X-Amz-Tenant-Id")
	if r.ContentLength > MaxSyncPayload {
		return out, "", tooLarge()
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, MaxSyncPayload+1))
	if err != nil {
		return out, "", apierr.Wrap(apierr.InvalidRequest, err, "Could not read request body")
	}
	if len(body) > MaxSyncPayload {
		return out, "", tooLarge()
	}
	if len(body) > 0 && !json.Valid(body) {
		return out, "", apierr.New(apierr.InvalidRequest, "Could not parse request body into json: Could not parse payload into json: Unexpected character: was expecting a JSON value")
	}
	out.payload = body
	return out, typ, nil
}

func tooLarge() error {
	return apierr.New(apierr.RequestTooLarge, "Request must be smaller than %d bytes for the InvokeFunction operation", MaxSyncPayload)
}
