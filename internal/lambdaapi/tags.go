package lambdaapi

import (
	"context"
	"net/http"
	"net/url"
	"regexp"

	"github.com/kappa-run/kappa/internal/apierr"
	"github.com/kappa-run/kappa/internal/function"
)

// Tagger keeps tags. For functions (*function.Service) resource is an
// unqualified function ARN, checked by the implementation; for event
// source mappings (*eventsource.Service) it is the mapping's UUID.
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

// esmARNRE matches an event source mapping's ARN: region, account, UUID.
// (?s): whatever follows, line breaks too, is the mapping's to refuse.
var esmARNRE = regexp.MustCompile(`(?s)^arn:aws[a-zA-Z-]*:lambda:([a-z0-9-]+):([0-9]{12}):event-source-mapping:(.*)$`)

// tagged returns who keeps the tags of resource and what it calls it: the
// event source mappings for a mapping's ARN (Lambda tags mappings as well
// as functions; Terraform reads them), the functions otherwise.
func (a *API) tagged(resource string) (Tagger, string, error) {
	m := esmARNRE.FindStringSubmatch(resource)
	if m == nil {
		return a.fns, resource, nil
	}
	if a.opts.EventSources == nil || m[1] != a.opts.Region || m[2] != a.opts.Account {
		return nil, "", apierr.New(apierr.NotFound, "Event source mapping not found: %s", resource)
	}
	return a.opts.EventSources, m[3], nil
}

// tagResource is TagResource: POST /2017-03-31/tags/{ARN} {"Tags":{…}} → 204.
func (a *API) tagResource(w http.ResponseWriter, r *http.Request) {
	body, err := readBody(r)
	var tags map[string]string
	if err == nil {
		tags, err = parseTagResource(body)
	}
	var tg Tagger
	var res string
	if err == nil {
		tg, res, err = a.tagged(r.PathValue("arn"))
	}
	if err == nil {
		err = tg.TagResource(r.Context(), res, tags)
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
	var tg Tagger
	var res string
	if err == nil {
		tg, res, err = a.tagged(r.PathValue("arn"))
	}
	if err == nil {
		err = tg.UntagResource(r.Context(), res, keys)
	}
	if err != nil {
		writeError(w, a.log, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

// listTags is ListTags: GET /2017-03-31/tags/{ARN} → 200 {"Tags":{…}}.
func (a *API) listTags(w http.ResponseWriter, r *http.Request) {
	tg, res, err := a.tagged(r.PathValue("arn"))
	var tags map[string]string
	if err == nil {
		tags, err = tg.Tags(r.Context(), res)
	}
	if err != nil {
		writeError(w, a.log, err)
		return
	}
	a.writeJSON(w, http.StatusOK, tagResourceRequest{Tags: tags})
}
