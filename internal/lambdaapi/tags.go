package lambdaapi

import (
	"context"
	"net/http"
	"net/url"

	"github.com/kappa-run/kappa/internal/function"
)

// Tagger keeps functions' tags; *function.Service implements it. resource
// is an unqualified function ARN, checked by the implementation.
type Tagger interface {
	Tags(ctx context.Context, resource string) (map[string]string, error)
	TagResource(ctx context.Context, resource string, tags map[string]string) error
	UntagResource(ctx context.Context, resource string, keys []string) error
}

type tagResourceRequest struct {
	Tags map[string]string `json:"Tags"`
}

// parseTagResource reads and checks TagResource's body.
func parseTagResource(body []byte) (map[string]string, error) {
	var req tagResourceRequest
	if err := decodeBytes(body, &req); err != nil {
		return nil, err
	}
	if req.Tags == nil {
		return nil, nil // the service reports the missing member
	}
	return req.Tags, function.ValidateTags(req.Tags)
}

// parseTagKeys reads and checks UntagResource's repeated tagKeys query
// parameter; nil when it is missing.
func parseTagKeys(q url.Values) ([]string, error) {
	keys, ok := q["tagKeys"]
	if !ok {
		return nil, function.ValidateTagKeys(nil)
	}
	return keys, function.ValidateTagKeys(keys)
}

// tagResource is TagResource: POST /2017-03-31/tags/{ARN} {"Tags":{…}} → 204.
func (a *API) tagResource(w http.ResponseWriter, r *http.Request) {
	body, err := readBody(r)
	var tags map[string]string
	if err == nil {
		tags, err = parseTagResource(body)
	}
	if err == nil {
		err = a.fns.TagResource(r.Context(), r.PathValue("arn"), tags)
	}
	if err != nil {
		writeError(w, a.log, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

// untagResource is UntagResource: DELETE /2017-03-31/tags/{ARN}?tagKeys=…
// → 204.
func (a *API) untagResource(w http.ResponseWriter, r *http.Request) {
	keys, err := parseTagKeys(r.URL.Query())
	if err == nil {
		err = a.fns.UntagResource(r.Context(), r.PathValue("arn"), keys)
	}
	if err != nil {
		writeError(w, a.log, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

// listTags is ListTags: GET /2017-03-31/tags/{ARN} → 200 {"Tags":{…}}.
func (a *API) listTags(w http.ResponseWriter, r *http.Request) {
	tags, err := a.fns.Tags(r.Context(), r.PathValue("arn"))
	if err != nil {
		writeError(w, a.log, err)
		return
	}
	a.writeJSON(w, http.StatusOK, tagResourceRequest{Tags: tags})
}
