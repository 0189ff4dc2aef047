package daemon

import (
	"net/http/httptest"
	"os"
	"testing"
)

func TestBrowserRefusal(t *testing.T) {
	host, _ := os.Hostname()
	for _, tt := range []struct {
		name, method, host, remote string
		headers                    map[string]string
		names                      []string
		insecure, refused          bool
	}{
		{name: "sdk", method: "POST", host: "127.0.0.1:9070"},
		{name: "localhost", method: "POST", host: "localhost:9070"},
		{name: "ipv6", method: "POST", host: "[::1]:9070"},
		{name: "dot localhost", method: "GET", host: "console.localhost:9070"},
		{name: "own host name", method: "PUT", host: host + ":9070"},
		{name: "own host name as a rebound prefix", method: "GET", host: host + ".attacker.example:9070", refused: true},
		{name: "listen name", method: "PUT", host: "kappa.internal:9070", names: []string{"kappa.internal"}},
		{name: "listen name, other case", method: "PUT", host: "Kappa.Internal:9070", names: []string{"kappa.internal"}},
		{name: "rebound name", method: "GET", host: "evil.example:9070", refused: true},
		{name: "rebound name, insecure", method: "GET", host: "evil.example:9070", insecure: true},
		{name: "other host's client by name", method: "PUT", host: "kappa.example:9070", remote: "10.0.0.7:5555"},
		{name: "cross-site POST", method: "POST", host: "127.0.0.1:9070",
			headers: map[string]string{"Sec-Fetch-Site": "cross-site", "Origin": "https://evil.example"}, refused: true},
		{name: "same-site POST from another port", method: "POST", host: "127.0.0.1:9070",
			headers: map[string]string{"Sec-Fetch-Site": "same-site"}, refused: true},
		{name: "no-cors POST, Origin only", method: "POST", host: "127.0.0.1:9070",
			headers: map[string]string{"Origin": "http://evil.example"}, refused: true},
		{name: "malformed origin", method: "POST", host: "127.0.0.1:9070",
			headers: map[string]string{"Origin": "http://[::1"}, refused: true},
		{name: "origin with userinfo", method: "POST", host: "127.0.0.1:9070",
			headers: map[string]string{"Origin": "http://127.0.0.1:9070@evil.example"}, refused: true},
		{name: "origin on another port", method: "POST", host: "127.0.0.1:9070",
			headers: map[string]string{"Origin": "http://127.0.0.1:9071"}, refused: true},
		{name: "null origin", method: "DELETE", host: "127.0.0.1:9070",
			headers: map[string]string{"Origin": "null"}, refused: true},
		{name: "console's own POST", method: "POST", host: "127.0.0.1:9070",
			headers: map[string]string{"Sec-Fetch-Site": "same-origin", "Origin": "http://127.0.0.1:9070"}},
		{name: "typed URL", method: "GET", host: "127.0.0.1:9070", headers: map[string]string{"Sec-Fetch-Site": "none"}},
		{name: "cross-site GET (cannot read the answer)", method: "GET", host: "127.0.0.1:9070",
			headers: map[string]string{"Sec-Fetch-Site": "cross-site"}},
		{name: "cross-site POST, insecure too", method: "POST", host: "127.0.0.1:9070", insecure: true,
			headers: map[string]string{"Origin": "https://evil.example"}, refused: true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			r := httptest.NewRequest(tt.method, "http://x/2015-03-31/functions", nil)
			r.Host = tt.host
			r.RemoteAddr = "127.0.0.1:40000"
			if tt.remote != "" {
				r.RemoteAddr = tt.remote
			}
			for k, v := range tt.headers {
				r.Header.Set(k, v)
			}
			if why := browserRefusal(r, tt.insecure, tt.names...); (why != "") != tt.refused {
				t.Errorf("browserRefusal = %q, want refused %v", why, tt.refused)
			}
		})
	}
}
