package lambdaapi

import (
	"net/http"

	"github.com/kappa-run/kappa/internal/apierr"
	"github.com/kappa-run/kappa/internal/function"
)

// ProvisionStatus reports live provisioned-concurrency progress;
// *invoker.Invoker implements it.
type ProvisionStatus interface {
	ProvisionStatus(owner string) (ready, want int, failure string)
}

type provisionedConfig struct {
	FunctionArn                              string `json:"FunctionArn,omitempty"`
	RequestedProvisionedConcurrentExecutions int    `json:"RequestedProvisionedConcurrentExecutions"`
	AvailableProvisionedConcurrentExecutions int    `json:"AvailableProvisionedConcurrentExecutions"`
	AllocatedProvisionedConcurrentExecutions int    `json:"AllocatedProvisionedConcurrentExecutions"`
	Status                                   string `json:"Status"`
	StatusReason                             string `json:"StatusReason,omitempty"`
	LastModified                             string `json:"LastModified"`
}

func (a *API) provisionedWire(p *function.Provisioned, withARN bool) provisionedConfig {
	out := provisionedConfig{
		RequestedProvisionedConcurrentExecutions: p.Requested,
		LastModified:                             p.LastModified.Format(lambdaTime),
		Status:                                   "IN_PROGRESS",
	}
	if withARN {
		out.FunctionArn = a.fns.ARN(p.FunctionName, p.Qualifier)
	}
	if a.opts.Provisioning != nil {
		ready, _, failure := a.opts.Provisioning.ProvisionStatus(p.Owner())
		out.AvailableProvisionedConcurrentExecutions = min(ready, p.Requested)
		out.AllocatedProvisionedConcurrentExecutions = min(ready, p.Requested)
		switch {
		case ready >= p.Requested:
			out.Status = "READY"
		case failure != "":
			out.Status, out.StatusReason = "FAILED", failure
		}
	}
	return out
}

func (a *API) putProvisioned(w http.ResponseWriter, r *http.Request) {
	ref, err := a.ref(r)
	if err != nil {
		writeError(w, a.log, err)
		return
	}
	var req struct {
		ProvisionedConcurrentExecutions *int `json:"ProvisionedConcurrentExecutions"`
	}
	if err := decode(r, &req); err != nil {
		writeError(w, a.log, err)
		return
	}
	if req.ProvisionedConcurrentExecutions == nil {
		writeError(w, a.log, apierr.New(apierr.Validation,
			"1 validation error detected: Value null at 'provisionedConcurrentExecutions' failed to satisfy constraint: Member must not be null"))
		return
	}
	p, err := a.fns.PutProvisioned(r.Context(), ref.Name, ref.Qualifier, *req.ProvisionedConcurrentExecutions)
	if err != nil {
		writeError(w, a.log, err)
		return
	}
	out := a.provisionedWire(p, false)
	if out.Status == "READY" {
		out.Status = "IN_PROGRESS" // as Lambda answers a Put
	}
	a.writeJSON(w, http.StatusAccepted, out)
}

func (a *API) getProvisioned(w http.ResponseWriter, r *http.Request) {
	ref, err := a.ref(r)
	if err != nil {
		writeError(w, a.log, err)
		return
	}
	if r.URL.Query().Get("List") == "ALL" {
		ps, err := a.fns.ListProvisioned(r.Context(), ref.Name)
		if err != nil {
			writeError(w, a.log, err)
			return
		}
		out := struct {
			ProvisionedConcurrencyConfigs []provisionedConfig `json:"ProvisionedConcurrencyConfigs"`
		}{ProvisionedConcurrencyConfigs: []provisionedConfig{}}
		for _, p := range ps {
			out.ProvisionedConcurrencyConfigs = append(out.ProvisionedConcurrencyConfigs, a.provisionedWire(p, true))
		}
		a.writeJSON(w, http.StatusOK, out)
		return
	}
	if ref.Qualifier == "" {
		writeError(w, a.log, apierr.New(apierr.Validation, "1 validation error detected: Value null at 'qualifier' failed to satisfy constraint: Member must not be null"))
		return
	}
	p, err := a.fns.GetProvisioned(r.Context(), ref.Name, ref.Qualifier)
	if err != nil {
		writeError(w, a.log, err)
		return
	}
	a.writeJSON(w, http.StatusOK, a.provisionedWire(p, false))
}

func (a *API) deleteProvisioned(w http.ResponseWriter, r *http.Request) {
	ref, err := a.ref(r)
	if err == nil {
		err = a.fns.DeleteProvisioned(r.Context(), ref.Name, ref.Qualifier)
	}
	if err != nil {
		writeError(w, a.log, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}
