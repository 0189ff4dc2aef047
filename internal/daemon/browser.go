package daemon

import (
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"strings"
)

// Kappa's Lambda API, registry and console have no authentication for
// clients on the server's host (see refuseRemote). A web page the user
// visits is such a client too: its browser may send a no-cors POST to
// 127.0.0.1 (cross-site request forgery) and, after rebinding a name it
// owns to 127.0.0.1, read the answers too. The SDKs, the aws CLI,
// Terraform and the image tools send neither of the headers browsers add,
// nor a Host other than the address they dialled; so the server refuses:
//
//   - a request from this host naming a Host that is not an IP address,
//     "localhost", a name under ".localhost" or this machine's host name
//     (so, a rebound name), unless the server runs with --insecure;
//   - a state-changing request (not GET, HEAD or OPTIONS) that a browser
//     marks as coming from another site: Sec-Fetch-Site other than
//     same-origin or none, or an Origin whose host is not the request's.
//
// Function URLs are exempt: browsers are among their callers (CORS).

// browserRefusal says why r must be refused, or "". names are host names
// besides the built-in ones that this server answers to (its --listen
// host).
func browserRefusal(r *http.Request, insecure bool, names ...string) string {
	if !insecure && loopbackPeer(r) && !localHostName(r.Host, names...) {
		return "Host " + r.Host + " is not a name of this machine"
	}
	switch r.Method {
	case http.MethodGet, http.MethodHead, http.MethodOptions:
		return ""
	}
	if site := r.Header.Get("Sec-Fetch-Site"); site != "" && site != "same-origin" && site != "none" {
		return "a browser sent it from another site"
	}
	if origin := r.Header.Get("Origin"); origin != "" {
		u, err := url.Parse(origin)
		if err != nil || !strings.EqualFold(u.Host, r.Host) {
			return "a browser sent it from another origin"
		}
	}
	return ""
}

// localHostName reports whether host (a Host header, with or without a
// port) names this machine without DNS: an IP address, localhost or a
// name under .localhost (RFC 6761), or names this machine exactly: its
// host name, or one of names.
func localHostName(host string, names ...string) bool {
	if h, _, err := net.SplitHostPort(host); err == nil {
		host = h
	}
	host = strings.TrimSuffix(strings.TrimPrefix(host, "["), "]")
	if host == "" {
		return true // HTTP/1.0 without Host: not a browser
	}
	if net.ParseIP(host) != nil {
		return true
	}
	host = strings.ToLower(strings.TrimSuffix(host, "."))
	if host == "localhost" || strings.HasSuffix(host, ".localhost") {
		return true
	}
	// Debian's /etc/hosts maps the machine's own name to 127.0.1.1:
	// `docker push $(hostname):9070/…` comes from loopback with it. Only
	// the exact name: a rebound name may well begin with it.
	if name, err := os.Hostname(); err == nil && strings.EqualFold(host, name) {
		return true
	}
	for _, n := range names {
		if strings.EqualFold(host, strings.TrimSuffix(n, ".")) {
			return true
		}
	}
	return false
}

// refuseBrowser answers a request browserRefusal refused, in Lambda's
// AccessDenied shape.
func refuseBrowser(w http.ResponseWriter, why string) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("X-Amzn-ErrorType", "AccessDeniedException")
	w.WriteHeader(http.StatusForbidden)
	io.WriteString(w, `{"Type":"User","message":"Refused: `+jsonEscape(why)+
		`. Kappa's API has no authentication for clients on this host, so it refuses what only a web page would send."}`+"\n")
}

func jsonEscape(s string) string {
	var b strings.Builder
	for _, r := range s {
		switch {
		case r == '"' || r == '\\':
			b.WriteByte('\\')
			b.WriteRune(r)
		case r < 0x20:
			b.WriteByte(' ')
		default:
			b.WriteRune(r)
		}
	}
	return b.String()
}
