package console

import (
	"bytes"
	"embed"
	"io/fs"
	"net/http"
	"path"
	"strings"
	"time"
)

//go:embed assets
var assets embed.FS

// csp confines the page to its own origin: no inline script or style, no
// third-party anything, no framing.
const csp = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; " +
	"connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"

// started stands in for the assets' modification time (they change only
// with the binary).
var started = time.Now()

// Handler serves the console: GET / is the page, GET /console/<file> an
// asset; anything else is 404.
func Handler() http.Handler {
	sub, _ := fs.Sub(assets, "assets")
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			w.Header().Set("Allow", "GET, HEAD")
			http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
			return
		}
		name := ""
		switch p := r.URL.Path; {
		case p == "/":
			name = "index.html"
		case strings.HasPrefix(p, "/console/"):
			name = path.Clean(strings.TrimPrefix(p, "/console/"))
		case p == "/favicon.ico":
			name = "favicon.svg"
		}
		b, err := fs.ReadFile(sub, name)
		if name == "" || strings.HasPrefix(name, ".") || err != nil {
			http.NotFound(w, r)
			return
		}
		h := w.Header()
		h.Set("Content-Security-Policy", csp)
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("X-Frame-Options", "DENY")
		h.Set("Referrer-Policy", "no-referrer")
		h.Set("Cache-Control", "no-cache")
		if strings.HasSuffix(name, ".svg") {
			h.Set("Content-Type", "image/svg+xml")
		}
		http.ServeContent(w, r, name, started, bytes.NewReader(b))
	})
}
