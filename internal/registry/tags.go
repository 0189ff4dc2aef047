package registry

import (
	"encoding/json"
	"net/http"
	"net/url"
	"sort"
	"strconv"
)

// serveTags serves GET /v2/<name>/tags/list[?n=&last=]: the repository's
// tags in lexical order, paginated.
func (r *Registry) serveTags(w http.ResponseWriter, req *http.Request, rt route) error {
	if !r.store.repoExists(rt.name) {
		return newError(http.StatusNotFound, codeNameUnknown).withDetail(map[string]string{"name": rt.name})
	}
	all, err := r.store.tags(rt.name)
	if err != nil {
		return err
	}
	page, next, err := paginate(all, req.URL.Query())
	if err != nil {
		return err
	}
	if next != "" {
		setNextLink(w, "/v2/"+rt.name+"/tags/list", next, len(page))
	}
	return writeJSON(w, req, "application/json", struct {
		Name string   `json:"name"`
		Tags []string `json:"tags"`
	}{rt.name, page})
}

// serveCatalog serves GET /v2/_catalog[?n=&last=]: every repository in
// lexical order, paginated.
func (r *Registry) serveCatalog(w http.ResponseWriter, req *http.Request, _ route) error {
	all, err := r.store.repositories()
	if err != nil {
		return err
	}
	page, next, err := paginate(all, req.URL.Query())
	if err != nil {
		return err
	}
	if next != "" {
		setNextLink(w, "/v2/_catalog", next, len(page))
	}
	return writeJSON(w, req, "application/json", struct {
		Repositories []string `json:"repositories"`
	}{page})
}

// paginate returns the page of the sorted list all that the query's last
// (exclusive start) and n (page size) select, and the last entry of the page
// when more follow. A bad n is 400 PAGINATION_NUMBER_INVALID.
func paginate(all []string, q url.Values) (page []string, next string, err error) {
	if last := q.Get("last"); last != "" {
		all = all[sort.Search(len(all), func(i int) bool { return all[i] > last }):]
	}
	page = all
	if ns := q.Get("n"); ns != "" {
		n, err := strconv.Atoi(ns)
		if err != nil || n < 0 {
			return nil, "", errorf(http.StatusBadRequest, codePaginationInvalid, "invalid n %q", ns)
		}
		if n < len(all) {
			page = all[:n]
			if n > 0 {
				next = page[n-1]
			}
		}
	}
	if page == nil {
		page = []string{}
	}
	return page, next, nil
}

// setNextLink sets the Link header to the next page of path.
func setNextLink(w http.ResponseWriter, path, last string, n int) {
	q := url.Values{"last": {last}, "n": {strconv.Itoa(n)}}
	w.Header().Set("Link", "<"+path+"?"+q.Encode()+`>; rel="next"`)
}

// writeJSON writes v as a 200 JSON response of the given content type.
func writeJSON(w http.ResponseWriter, req *http.Request, contentType string, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	h := w.Header()
	h.Set("Content-Type", contentType)
	h.Set("Content-Length", strconv.Itoa(len(b)))
	w.WriteHeader(http.StatusOK)
	if req.Method != http.MethodHead {
		_, _ = w.Write(b)
	}
	return nil
}
