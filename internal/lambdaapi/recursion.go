package lambdaapi

import (
	"net/http"

	"github.com/kappa-run/kappa/internal/apierr"
	"github.com/kappa-run/kappa/internal/function"
)

// recursionBody is PutFunctionRecursionConfig's request and both
// operations' answer.
type recursionBody struct {
	RecursiveLoop *string `json:"RecursiveLoop"`
}

// unqualified resolves the request's function, which these operations
// take without a qualifier.
func (a *API) unqualified(r *http.Request) (function.Ref, error) {
	ref, err := a.ref(r)
	if err == nil && ref.Qualifier != "" {
		err = apierr.New(apierr.InvalidParameter, "Recursion configuration is set for a function, not for its versions or aliases; remove the qualifier %s.", ref.Qualifier)
	}
	return ref, err
}

// putRecursion is PutFunctionRecursionConfig:
// PUT /2024-08-31/functions/{name}/recursion-config → 200.
func (a *API) putRecursion(w http.ResponseWriter, r *http.Request) {
	ref, err := a.unqualified(r)
	var req recursionBody
	if err == nil {
		err = decode(r, &req)
	}
	var loop string
	if err == nil {
		loop, err = a.fns.PutRecursion(r.Context(), ref.Name, req.RecursiveLoop)
	}
	if err != nil {
		writeError(w, a.log, err)
		return
	}
	a.writeJSON(w, http.StatusOK, recursionBody{RecursiveLoop: &loop})
}

// getRecursion is GetFunctionRecursionConfig:
// GET /2024-08-31/functions/{name}/recursion-config → 200.
func (a *API) getRecursion(w http.ResponseWriter, r *http.Request) {
	ref, err := a.unqualified(r)
	var fn *function.Function
	if err == nil {
		fn, err = a.fns.Get(r.Context(), ref.Name)
	}
	if err != nil {
		writeError(w, a.log, err)
		return
	}
	loop := fn.Recursion()
	a.writeJSON(w, http.StatusOK, recursionBody{RecursiveLoop: &loop})
}
