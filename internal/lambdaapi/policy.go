package lambdaapi

import (
	"context"
	"encoding/json"
	"net/http"

	"github.com/kappa-run/kappa/internal/function"
)

// Permissions keeps functions' resource-based policies;
// *function.Service implements it. Kappa stores and reports the policies
// but does not enforce them (see package function).
type Permissions interface {
	AddPermission(ctx context.Context, ref function.Ref, in function.PermissionInput) (function.Statement, error)
	Policy(ctx context.Context, ref function.Ref) (function.Policy, error)
	RemovePermission(ctx context.Context, ref function.Ref, sid, revisionID string) error
}

// addPermissionRequest is AddPermission's body. Unknown members are
// ignored, as Lambda does.
type addPermissionRequest struct {
	StatementId           string `json:"StatementId"`
	Action                string `json:"Action"`
	Principal             string `json:"Principal"`
	SourceArn             string `json:"SourceArn"`
	SourceAccount         string `json:"SourceAccount"`
	EventSourceToken      string `json:"EventSourceToken"`
	PrincipalOrgID        string `json:"PrincipalOrgID"`
	FunctionUrlAuthType   string `json:"FunctionUrlAuthType"`
	InvokedViaFunctionUrl bool   `json:"InvokedViaFunctionUrl"`
	RevisionId            string `json:"RevisionId"`
}

// parsePermission reads and checks AddPermission's body.
func parsePermission(body []byte) (function.PermissionInput, error) {
	var req addPermissionRequest
	if err := decodeBytes(body, &req); err != nil {
		return function.PermissionInput{}, err
	}
	in := function.PermissionInput{
		StatementID: req.StatementId, Action: req.Action, Principal: req.Principal,
		SourceArn: req.SourceArn, SourceAccount: req.SourceAccount, EventSourceToken: req.EventSourceToken,
		PrincipalOrgID: req.PrincipalOrgID, FunctionURLAuthType: req.FunctionUrlAuthType,
		InvokedViaFunctionURL: req.InvokedViaFunctionUrl, RevisionID: req.RevisionId,
	}
	return in, in.Validate()
}

// addPermission is AddPermission: POST /2015-03-31/functions/{F}/policy
// (?Qualifier) → 201 {"Statement":"<statement JSON>"}.
func (a *API) addPermission(w http.ResponseWriter, r *http.Request) {
	ref, err := a.ref(r)
	var body []byte
	if err == nil {
		body, err = readBody(r)
	}
	var in function.PermissionInput
	if err == nil {
		in, err = parsePermission(body)
	}
	var st function.Statement
	if err == nil {
		st, err = a.fns.AddPermission(r.Context(), ref, in)
	}
	if err != nil {
		writeError(w, a.log, err)
		return
	}
	b, _ := json.Marshal(st)
	a.writeJSON(w, http.StatusCreated, struct {
		Statement string `json:"Statement"`
	}{string(b)})
}

// getPolicy is GetPolicy: GET /2015-03-31/functions/{F}/policy (?Qualifier)
// → 200 {"Policy":"<policy document JSON>","RevisionId":…}.
func (a *API) getPolicy(w http.ResponseWriter, r *http.Request) {
	ref, err := a.ref(r)
	var p function.Policy
	if err == nil {
		p, err = a.fns.Policy(r.Context(), ref)
	}
	if err != nil {
		writeError(w, a.log, err)
		return
	}
	a.writeJSON(w, http.StatusOK, struct {
		Policy     string `json:"Policy"`
		RevisionId string `json:"RevisionId"`
	}{string(p.Document()), p.RevisionID})
}

// removePermission is RemovePermission: DELETE
// /2015-03-31/functions/{F}/policy/{StatementId} (?Qualifier, ?RevisionId)
// → 204.
func (a *API) removePermission(w http.ResponseWriter, r *http.Request) {
	ref, err := a.ref(r)
	if err == nil {
		err = a.fns.RemovePermission(r.Context(), ref, r.PathValue("sid"), r.URL.Query().Get("RevisionId"))
	}
	if err != nil {
		writeError(w, a.log, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}
