package e2e

import (
	"bytes"
	"io"
	"net/http"
	"strings"
	"testing"
)

// TestBrowserRequestsRefused: a web page the user visits cannot drive the
// unauthenticated API on 127.0.0.1 — neither a cross-site POST (CSRF, here
// the CreateFunction a no-cors fetch would send) nor any request under a
// rebound name (DNS rebinding) — while the SDK's requests still work.
func TestBrowserRequestsRefused(t *testing.T) {
	s := startServer(t)
	create := []byte(`{"FunctionName":"csrf","Role":"arn:aws:iam::000000000000:role/r","PackageType":"Image","Code":{"ImageUri":"127.0.0.1:1/x:y"}}`)

	r := s.do(t, "POST", "/2015-03-31/functions", create, map[string]string{
		"Content-Type": "text/plain", "Origin": "https://evil.example", "Sec-Fetch-Site": "cross-site"})
	if r.status != http.StatusForbidden || r.header.Get("X-Amzn-ErrorType") != "AccessDeniedException" {
		t.Errorf("cross-site CreateFunction: %d %s %s", r.status, r.header.Get("X-Amzn-ErrorType"), r.body)
	}

	req, _ := http.NewRequest("GET", s.URL("/2015-03-31/functions"), nil)
	req.Host = "rebound.evil.example:" + strings.Split(s.addr, ":")[1]
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusForbidden || bytes.Contains(body, []byte(`"Functions"`)) {
		t.Errorf("ListFunctions under a rebound name: %d %s", resp.StatusCode, body)
	}

	// Nothing was created; the SDK's own calls are served.
	if _, err := s.Lambda.ListFunctions(t.Context(), nil); err != nil {
		t.Fatalf("SDK ListFunctions: %v", err)
	}
	if r := s.do(t, "GET", "/2015-03-31/functions/csrf", nil, nil); r.status != http.StatusNotFound {
		t.Errorf("GetFunction of the forged function: %d %s", r.status, r.body)
	}
}
