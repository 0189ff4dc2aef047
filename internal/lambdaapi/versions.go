package lambdaapi

import (
	"net/http"
	"strconv"

	"github.com/kappa-run/kappa/internal/apierr"
	"github.com/kappa-run/kappa/internal/function"
)

type publishRequest struct {
	CodeSha256  string  `json:"CodeSha256"`
	Description *string `json:"Description"`
	RevisionId  string  `json:"RevisionId"`
}

func (a *API) publishVersion(w http.ResponseWriter, r *http.Request) {
	ref, err := a.ref(r)
	if err != nil {
		writeError(w, a.log, err)
		return
	}
	var req publishRequest
	if err := decode(r, &req); err != nil {
		writeError(w, a.log, err)
		return
	}
	c, err := a.fns.Publish(r.Context(), ref.Name, function.PublishInput{CodeSha256: req.CodeSha256, Description: req.Description, RevisionID: req.RevisionId})
	if err != nil {
		writeError(w, a.log, err)
		return
	}
	a.writeJSON(w, http.StatusCreated, a.toWire(c))
}

func (a *API) listVersions(w http.ResponseWriter, r *http.Request) {
	ref, err := a.ref(r)
	max := 0
	if err == nil {
		max, err = maxItems(r.URL.Query())
	}
	var vs []function.Config
	if err == nil {
		vs, err = a.fns.Versions(r.Context(), ref.Name)
	}
	if err != nil {
		writeError(w, a.log, err)
		return
	}
	// A marker is the last version a page returned: the next page starts
	// after it, whatever was deleted meanwhile ($LATEST comes first, then
	// the versions in order).
	start := 0
	if m := r.URL.Query().Get("Marker"); m != "" {
		var ok bool
		if start, ok = versionsAfter(vs, m); !ok {
			writeError(w, a.log, apierr.New(apierr.InvalidParameter, "Invalid Marker %q", m))
			return
		}
	}
	end := min(start+max, len(vs))
	out := listVersionsResponse{Versions: []functionConfiguration{}}
	for _, c := range vs[start:end] {
		out.Versions = append(out.Versions, a.toWire(c))
	}
	if end < len(vs) {
		next := vs[end-1].Version
		out.NextMarker = &next
	}
	a.writeJSON(w, http.StatusOK, out)
}

// versionsAfter returns the index in vs ($LATEST, then published versions
// in ascending order) of the first version after marker, a version a page
// ended with; false for a marker that is no version.
func versionsAfter(vs []function.Config, marker string) (int, bool) {
	if marker == function.LatestVersion {
		return min(1, len(vs)), true
	}
	n, err := strconv.Atoi(marker)
	if err != nil || n < 1 || strconv.Itoa(n) != marker {
		return 0, false
	}
	for i, c := range vs {
		if v, err := strconv.Atoi(c.Version); err == nil && v > n {
			return i, true
		}
	}
	return len(vs), true
}

type routingConfig struct {
	AdditionalVersionWeights map[string]float64 `json:"AdditionalVersionWeights,omitempty"`
}

type aliasRequest struct {
	Name            string         `json:"Name"`
	FunctionVersion string         `json:"FunctionVersion"`
	Description     *string        `json:"Description"`
	RoutingConfig   *routingConfig `json:"RoutingConfig"`
	RevisionId      string         `json:"RevisionId"`
}

type aliasConfiguration struct {
	AliasArn        string         `json:"AliasArn"`
	Name            string         `json:"Name"`
	FunctionVersion string         `json:"FunctionVersion"`
	Description     string         `json:"Description"`
	RoutingConfig   *routingConfig `json:"RoutingConfig,omitempty"`
	RevisionId      string         `json:"RevisionId"`
}

func (a *API) aliasWire(al *function.Alias) aliasConfiguration {
	out := aliasConfiguration{
		AliasArn: a.fns.ARN(al.FunctionName, al.Name), Name: al.Name, FunctionVersion: al.FunctionVersion,
		Description: al.Description, RevisionId: al.RevisionID,
	}
	if len(al.AdditionalWeights) > 0 {
		out.RoutingConfig = &routingConfig{AdditionalVersionWeights: al.AdditionalWeights}
	}
	return out
}

func (a *API) aliasInput(r *http.Request) (function.Ref, function.AliasInput, error) {
	ref, err := a.ref(r)
	if err != nil {
		return ref, function.AliasInput{}, err
	}
	var req aliasRequest
	if err := decode(r, &req); err != nil {
		return ref, function.AliasInput{}, err
	}
	in := function.AliasInput{Name: req.Name, FunctionVersion: req.FunctionVersion, Description: req.Description, RevisionID: req.RevisionId}
	if n := r.PathValue("alias"); n != "" {
		in.Name = n
	}
	if req.RoutingConfig != nil {
		in.Weights = req.RoutingConfig.AdditionalVersionWeights
		if in.Weights == nil {
			in.Weights = map[string]float64{}
		}
	}
	return ref, in, nil
}

func (a *API) createAlias(w http.ResponseWriter, r *http.Request) {
	ref, in, err := a.aliasInput(r)
	var al *function.Alias
	if err == nil {
		al, err = a.fns.CreateAlias(r.Context(), ref.Name, in)
	}
	if err != nil {
		writeError(w, a.log, err)
		return
	}
	a.writeJSON(w, http.StatusCreated, a.aliasWire(al))
}

func (a *API) updateAlias(w http.ResponseWriter, r *http.Request) {
	ref, in, err := a.aliasInput(r)
	var al *function.Alias
	if err == nil {
		al, err = a.fns.UpdateAlias(r.Context(), ref.Name, in)
	}
	if err != nil {
		writeError(w, a.log, err)
		return
	}
	a.writeJSON(w, http.StatusOK, a.aliasWire(al))
}

func (a *API) getAlias(w http.ResponseWriter, r *http.Request) {
	ref, err := a.ref(r)
	var al *function.Alias
	if err == nil {
		al, err = a.fns.GetAlias(r.Context(), ref.Name, r.PathValue("alias"))
	}
	if err != nil {
		writeError(w, a.log, err)
		return
	}
	a.writeJSON(w, http.StatusOK, a.aliasWire(al))
}

func (a *API) deleteAlias(w http.ResponseWriter, r *http.Request) {
	ref, err := a.ref(r)
	if err == nil {
		err = a.fns.DeleteAlias(r.Context(), ref.Name, r.PathValue("alias"))
	}
	if err != nil {
		writeError(w, a.log, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

func (a *API) listAliases(w http.ResponseWriter, r *http.Request) {
	ref, err := a.ref(r)
	q := r.URL.Query()
	max := 0
	if err == nil {
		max, err = maxItems(q)
	}
	var all []*function.Alias
	if err == nil {
		all, err = a.fns.Aliases(r.Context(), ref.Name, q.Get("FunctionVersion"))
	}
	if err != nil {
		writeError(w, a.log, err)
		return
	}
	start, end, next := pageOf(all, func(al *function.Alias) string { return al.Name }, q.Get("Marker"), max)
	out := struct {
		Aliases    []aliasConfiguration `json:"Aliases"`
		NextMarker *string              `json:"NextMarker,omitempty"`
	}{Aliases: []aliasConfiguration{}, NextMarker: next}
	for _, al := range all[start:end] {
		out.Aliases = append(out.Aliases, a.aliasWire(al))
	}
	a.writeJSON(w, http.StatusOK, out)
}

type concurrencyBody struct {
	ReservedConcurrentExecutions *int `json:"ReservedConcurrentExecutions"`
}

func (a *API) putConcurrency(w http.ResponseWriter, r *http.Request) {
	ref, err := a.ref(r)
	if err != nil {
		writeError(w, a.log, err)
		return
	}
	var req concurrencyBody
	if err := decode(r, &req); err != nil {
		writeError(w, a.log, err)
		return
	}
	if req.ReservedConcurrentExecutions == nil {
		writeError(w, a.log, apierr.New(apierr.Validation,
			"1 validation error detected: Value null at 'reservedConcurrentExecutions' failed to satisfy constraint: Member must not be null"))
		return
	}
	n, err := a.fns.PutReservedConcurrency(r.Context(), ref.Name, *req.ReservedConcurrentExecutions)
	if err != nil {
		writeError(w, a.log, err)
		return
	}
	a.writeJSON(w, http.StatusOK, concurrencyBody{ReservedConcurrentExecutions: &n})
}

func (a *API) deleteConcurrency(w http.ResponseWriter, r *http.Request) {
	ref, err := a.ref(r)
	if err == nil {
		err = a.fns.DeleteReservedConcurrency(r.Context(), ref.Name)
	}
	if err != nil {
		writeError(w, a.log, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

func (a *API) getConcurrency(w http.ResponseWriter, r *http.Request) {
	ref, err := a.ref(r)
	var fn *function.Function
	if err == nil {
		fn, err = a.fns.Get(r.Context(), ref.Name)
	}
	if err != nil {
		writeError(w, a.log, err)
		return
	}
	a.writeJSON(w, http.StatusOK, concurrencyBody{ReservedConcurrentExecutions: fn.ReservedConcurrency})
}
