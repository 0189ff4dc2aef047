package console

import (
	"io"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"testing"
)

func TestHandler(t *testing.T) {
	srv := httptest.NewServer(Handler())
	defer srv.Close()
	tests := []struct {
		name, method, path string
		status             int
		ctype, contains    string
	}{
		{"page", "GET", "/", 200, "text/html; charset=utf-8", `<script src="/console/app.js" defer></script>`},
		{"script", "GET", "/console/app.js", 200, "text/javascript; charset=utf-8", "'use strict'"},
		{"style", "GET", "/console/style.css", 200, "text/css; charset=utf-8", ":root"},
		{"favicon", "GET", "/favicon.ico", 200, "image/svg+xml", "<svg"},
		{"unknown asset", "GET", "/console/nope.js", 404, "", ""},
		{"traversal", "GET", "/console/../console.go", 404, "", ""},
		{"dot file", "GET", "/console/.hidden", 404, "", ""},
		{"post", "POST", "/", 405, "", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req, _ := http.NewRequest(tt.method, srv.URL+tt.path, nil)
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			b, _ := io.ReadAll(resp.Body)
			if resp.StatusCode != tt.status {
				t.Fatalf("%s %s = %d", tt.method, tt.path, resp.StatusCode)
			}
			if tt.status != 200 {
				return
			}
			if ct := resp.Header.Get("Content-Type"); ct != tt.ctype {
				t.Errorf("Content-Type = %q, want %q", ct, tt.ctype)
			}
			if !strings.Contains(string(b), tt.contains) {
				t.Errorf("body lacks %q", tt.contains)
			}
			csp := resp.Header.Get("Content-Security-Policy")
			if !strings.Contains(csp, "script-src 'self'") || strings.Contains(csp, "unsafe") || resp.Header.Get("X-Content-Type-Options") != "nosniff" {
				t.Errorf("security headers: CSP %q, nosniff %q", csp, resp.Header.Get("X-Content-Type-Options"))
			}
		})
	}
}

// TestScriptBuildsDOMFromText guards the console's escaping discipline:
// data reaches the page through text nodes only, never through an HTML
// parser or eval.
func TestScriptBuildsDOMFromText(t *testing.T) {
	b, err := assets.ReadFile("assets/app.js")
	if err != nil {
		t.Fatal(err)
	}
	forbidden := regexp.MustCompile(`innerHTML|outerHTML|insertAdjacentHTML|document\.write|\beval\(|new Function\(|DOMParser|createContextualFragment`)
	for i, line := range strings.Split(string(b), "\n") {
		if forbidden.MatchString(line) {
			t.Errorf("app.js:%d parses markup or code: %s", i+1, strings.TrimSpace(line))
		}
	}
	html, _ := assets.ReadFile("assets/index.html")
	if regexp.MustCompile(`(?i)<script>|\son\w+=|style=`).Match(html) {
		t.Errorf("index.html has inline script, handlers or styles, which the CSP forbids")
	}
}
