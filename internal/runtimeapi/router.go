package runtimeapi

import (
	"net/http"
	"net/url"
	"strings"
)

// handlerFunc serves one endpoint; id is the {id} path segment, unescaped,
// or "" for paths without one.
type handlerFunc func(w http.ResponseWriter, r *http.Request, id string)

// route maps a method and a path pattern to a handler. Pattern segments
// match literally, except "{id}", which captures one segment, and a final
// "*", which matches one or more segments. An empty method matches any.
type route struct {
	method  string
	pattern string
	handle  handlerFunc
	segs    []string
}

// router dispatches Runtime API requests. Unknown paths get 404 and known
// paths with the wrong method 405 (with Allow), both as JSON API errors;
// after Close every known endpoint answers 500.
type router struct {
	s      *Server
	routes []route
}

// newRouter lists every endpoint of the Runtime, Extensions, Telemetry and
// Logs APIs.
func (s *Server) newRouter() *router {
	rt := &router{s: s, routes: []route{
		{method: http.MethodGet, pattern: "/2018-06-01/runtime/invocation/next", handle: s.handleNext},
		{method: http.MethodPost, pattern: "/2018-06-01/runtime/invocation/{id}/response", handle: s.handleResponse},
		{method: http.MethodPost, pattern: "/2018-06-01/runtime/invocation/{id}/error", handle: s.handleInvocationError},
		{method: http.MethodPost, pattern: "/2018-06-01/runtime/init/error", handle: s.handleInitError},
		{method: http.MethodGet, pattern: "/2018-06-01/runtime/restore/next", handle: s.handleRestoreNext},
		{method: http.MethodPost, pattern: "/2018-06-01/runtime/restore/error", handle: s.handleRestoreError},
		{method: http.MethodGet, pattern: "/2018-06-01/ping", handle: s.handlePing},
		{method: http.MethodPost, pattern: "/2020-01-01/extension/register", handle: s.handleExtRegister},
		{method: http.MethodGet, pattern: "/2020-01-01/extension/event/next", handle: s.handleExtNext},
		{method: http.MethodPost, pattern: "/2020-01-01/extension/init/error", handle: s.handleExtInitError},
		{method: http.MethodPost, pattern: "/2020-01-01/extension/exit/error", handle: s.handleExtExitError},
		{method: http.MethodPut, pattern: "/2022-07-01/telemetry", handle: s.handleTelemetrySubscribe},
		{method: http.MethodPut, pattern: "/2020-08-15/logs", handle: s.handleLogsSubscribe},
	}}
	for i := range rt.routes {
		rt.routes[i].segs = strings.Split(strings.TrimPrefix(rt.routes[i].pattern, "/"), "/")
	}
	return rt
}

func (rt *router) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	segs, ok := splitPath(r.URL)
	if !ok {
		writeAPIError(w, apiErrNotFound)
		return
	}
	var allow []string
	for _, e := range rt.routes {
		id, ok := e.match(segs)
		if !ok {
			continue
		}
		if e.method != "" && e.method != r.Method {
			allow = append(allow, e.method)
			continue
		}
		if rt.s.isClosed() {
			writeAPIError(w, apiErrClosed)
			return
		}
		e.handle(w, r, id)
		return
	}
	if len(allow) > 0 {
		w.Header().Set("Allow", strings.Join(allow, ", "))
		writeAPIError(w, apiErrMethodNotAllowed)
		return
	}
	writeAPIError(w, apiErrNotFound)
}

// splitPath splits the escaped path of u into unescaped segments, so that
// an escaped "/" stays inside its segment. It fails on paths that are not
// absolute or hold a bad escape.
func splitPath(u *url.URL) ([]string, bool) {
	if u == nil {
		return nil, false
	}
	p := u.EscapedPath()
	if !strings.HasPrefix(p, "/") {
		return nil, false
	}
	segs := strings.Split(p[1:], "/")
	for i, seg := range segs {
		v, err := url.PathUnescape(seg)
		if err != nil {
			return nil, false
		}
		segs[i] = v
	}
	return segs, true
}

func (e *route) match(segs []string) (id string, ok bool) {
	for i, want := range e.segs {
		if want == "*" && i == len(e.segs)-1 {
			return id, len(segs) > i
		}
		if i >= len(segs) {
			return "", false
		}
		switch want {
		case "{id}":
			id = segs[i]
		case segs[i]:
		default:
			return "", false
		}
	}
	return id, len(segs) == len(e.segs)
}
