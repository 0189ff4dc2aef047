package funcurl

import (
	"net/http"
	"slices"
	"strconv"
	"strings"
)

// IsPreflight reports whether r is a CORS preflight request.
func IsPreflight(r *http.Request) bool {
	return r.Method == http.MethodOptions && r.Header.Get("Origin") != "" &&
		r.Header.Get("Access-Control-Request-Method") != ""
}

func containsFold(list []string, s string) bool {
	return slices.ContainsFunc(list, func(x string) bool { return x == "*" || strings.EqualFold(x, s) })
}

// allowOrigin returns the Access-Control-Allow-Origin value for origin,
// or "" when the origin is not allowed.
func (c *Cors) allowOrigin(origin string) string {
	if origin == "" {
		return ""
	}
	for _, o := range c.AllowOrigins {
		switch {
		case o == "*" && !c.AllowCredentials:
			return "*"
		case o == "*" || strings.EqualFold(o, origin):
			return origin
		}
	}
	return ""
}

// Preflight answers a preflight request: the headers to send with a 200,
// empty when the request is not allowed.
func (c *Cors) Preflight(r *http.Request) http.Header {
	h := http.Header{}
	h.Set("Vary", "Origin")
	origin := c.allowOrigin(r.Header.Get("Origin"))
	method := r.Header.Get("Access-Control-Request-Method")
	if origin == "" || !containsFold(c.AllowMethods, method) {
		return h
	}
	var requested []string
	for _, v := range r.Header.Values("Access-Control-Request-Headers") {
		for _, name := range strings.Split(v, ",") {
			if name = strings.TrimSpace(name); name != "" {
				requested = append(requested, name)
			}
		}
	}
	for _, name := range requested {
		if !containsFold(c.AllowHeaders, name) {
			return h
		}
	}
	h.Set("Access-Control-Allow-Origin", origin)
	if slices.Contains(c.AllowMethods, "*") {
		h.Set("Access-Control-Allow-Methods", method)
	} else {
		h.Set("Access-Control-Allow-Methods", strings.Join(c.AllowMethods, ", "))
	}
	if len(requested) > 0 {
		if slices.Contains(c.AllowHeaders, "*") {
			h.Set("Access-Control-Allow-Headers", strings.Join(requested, ", "))
		} else {
			h.Set("Access-Control-Allow-Headers", strings.Join(c.AllowHeaders, ", "))
		}
	}
	if c.MaxAge > 0 {
		h.Set("Access-Control-Max-Age", strconv.Itoa(c.MaxAge))
	}
	if c.AllowCredentials {
		h.Set("Access-Control-Allow-Credentials", "true")
	}
	return h
}

// Apply sets the CORS headers of an actual response to a request from
// origin, replacing any the function set (Lambda overrides them).
func (c *Cors) Apply(h http.Header, origin string) {
	for k := range h {
		if strings.HasPrefix(k, "Access-Control-") {
			h.Del(k)
		}
	}
	allowed := c.allowOrigin(origin)
	if allowed == "" {
		return
	}
	h.Add("Vary", "Origin")
	h.Set("Access-Control-Allow-Origin", allowed)
	if len(c.ExposeHeaders) > 0 {
		h.Set("Access-Control-Expose-Headers", strings.Join(c.ExposeHeaders, ", "))
	}
	if c.AllowCredentials {
		h.Set("Access-Control-Allow-Credentials", "true")
	}
}
