package lambdaapi

import (
	"context"
	"net/http"

	"github.com/kappa-run/kappa/internal/apierr"
	"github.com/kappa-run/kappa/internal/function"
	"github.com/kappa-run/kappa/internal/funcurl"
)

// URLConfigs stores function URLs; *funcurl.Configs implements it.
type URLConfigs interface {
	Create(ctx context.Context, fn, qualifier string, in funcurl.Input) (*funcurl.Config, error)
	Get(ctx context.Context, fn, qualifier string) (*funcurl.Config, error)
	Update(ctx context.Context, fn, qualifier string, in funcurl.Input) (*funcurl.Config, error)
	Delete(ctx context.Context, fn, qualifier string) error
	List(ctx context.Context, fn string) ([]*funcurl.Config, error)
	FunctionURL(id string) string
}

// urlTime is the layout of CreationTime and LastModifiedTime (ISO-8601 with
// microseconds, as Lambda sends them).
const urlTime = "2006-01-02T15:04:05.000000Z"

type urlConfigRequest struct {
	AuthType   *string       `json:"AuthType"`
	Cors       *funcurl.Cors `json:"Cors"`
	InvokeMode *string       `json:"InvokeMode"`
}

type urlConfigWire struct {
	FunctionUrl      string        `json:"FunctionUrl"`
	FunctionArn      string        `json:"FunctionArn"`
	AuthType         string        `json:"AuthType"`
	Cors             *funcurl.Cors `json:"Cors,omitempty"`
	CreationTime     string        `json:"CreationTime"`
	LastModifiedTime string        `json:"LastModifiedTime,omitempty"`
	InvokeMode       string        `json:"InvokeMode"`
}

// parseURLConfig decodes a Create/UpdateFunctionUrlConfig body.
func parseURLConfig(body []byte, create bool) (funcurl.Input, error) {
	var req urlConfigRequest
	if err := decodeBytes(body, &req); err != nil {
		return funcurl.Input{}, err
	}
	in := funcurl.Input{AuthType: req.AuthType, Cors: req.Cors, InvokeMode: req.InvokeMode}
	return in, in.Validate(create)
}

func (a *API) urlWire(c *funcurl.Config, withModified bool) urlConfigWire {
	q := c.Qualifier
	if q == function.LatestVersion {
		q = ""
	}
	out := urlConfigWire{
		FunctionUrl: a.opts.URLs.FunctionURL(c.ID), FunctionArn: a.fns.ARN(c.FunctionName, q),
		AuthType: c.AuthType, Cors: c.Cors, InvokeMode: c.InvokeMode,
		CreationTime: c.CreationTime.UTC().Format(urlTime),
	}
	if withModified {
		out.LastModifiedTime = c.LastModifiedTime.UTC().Format(urlTime)
	}
	return out
}

func (a *API) noURLs(w http.ResponseWriter) bool {
	if a.opts.URLs == nil {
		writeError(w, a.log, apierr.New(apierr.NotImplemented, "function URLs are not enabled on this server"))
		return true
	}
	return false
}

func (a *API) createURLConfig(w http.ResponseWriter, r *http.Request) { a.writeURLConfig(w, r, true) }
func (a *API) updateURLConfig(w http.ResponseWriter, r *http.Request) { a.writeURLConfig(w, r, false) }

func (a *API) writeURLConfig(w http.ResponseWriter, r *http.Request, create bool) {
	if a.noURLs(w) {
		return
	}
	ref, err := a.ref(r)
	var body []byte
	if err == nil {
		body, err = readBody(r)
	}
	var in funcurl.Input
	if err == nil {
		in, err = parseURLConfig(body, create)
	}
	var c *funcurl.Config
	if err == nil {
		if create {
			c, err = a.opts.URLs.Create(r.Context(), ref.Name, ref.Qualifier, in)
		} else {
			c, err = a.opts.URLs.Update(r.Context(), ref.Name, ref.Qualifier, in)
		}
	}
	if err != nil {
		writeError(w, a.log, err)
		return
	}
	if create {
		a.writeJSON(w, http.StatusCreated, a.urlWire(c, false))
		return
	}
	a.writeJSON(w, http.StatusOK, a.urlWire(c, true))
}

func (a *API) getURLConfig(w http.ResponseWriter, r *http.Request) {
	if a.noURLs(w) {
		return
	}
	ref, err := a.ref(r)
	var c *funcurl.Config
	if err == nil {
		c, err = a.opts.URLs.Get(r.Context(), ref.Name, ref.Qualifier)
	}
	if err != nil {
		writeError(w, a.log, err)
		return
	}
	a.writeJSON(w, http.StatusOK, a.urlWire(c, true))
}

func (a *API) deleteURLConfig(w http.ResponseWriter, r *http.Request) {
	if a.noURLs(w) {
		return
	}
	ref, err := a.ref(r)
	if err == nil {
		err = a.opts.URLs.Delete(r.Context(), ref.Name, ref.Qualifier)
	}
	if err != nil {
		writeError(w, a.log, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

func (a *API) listURLConfigs(w http.ResponseWriter, r *http.Request) {
	if a.noURLs(w) {
		return
	}
	ref, err := a.ref(r)
	var max int
	if err == nil {
		max, err = maxItems(r.URL.Query())
	}
	var cfgs []*funcurl.Config
	if err == nil {
		cfgs, err = a.opts.URLs.List(r.Context(), ref.Name)
	}
	if err != nil {
		writeError(w, a.log, err)
		return
	}
	start, end, next := pageOf(cfgs, func(c *funcurl.Config) string { return c.Qualifier }, r.URL.Query().Get("Marker"), max)
	out := struct {
		FunctionUrlConfigs []urlConfigWire `json:"FunctionUrlConfigs"`
		NextMarker         *string         `json:"NextMarker,omitempty"`
	}{FunctionUrlConfigs: []urlConfigWire{}, NextMarker: next}
	for _, c := range cfgs[start:end] {
		out.FunctionUrlConfigs = append(out.FunctionUrlConfigs, a.urlWire(c, true))
	}
	a.writeJSON(w, http.StatusOK, out)
}
