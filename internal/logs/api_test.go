package logs

import (
	"bufio"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

func TestHandler(t *testing.T) {
	st := openStore(t, Options{})
	s := openStream(t, st, "fn", "2026/01/01/[$LATEST]a")
	c := NewCapture(s, Format{}, nil)
	invocation(c, "r1", func() { c.Writer().Write([]byte("hello <b>\nworld\n")) })
	srv := httptest.NewServer(st.Handler("/kappa/logs"))
	defer srv.Close()

	get := func(path string) (int, string, string) {
		t.Helper()
		resp, err := http.Get(srv.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, resp.Header.Get("Content-Type"), string(b)
	}
	tests := []struct {
		name, path string
		status     int
		ctype      string
		check      func(body string) bool
	}{
		{"ndjson", "/kappa/logs/fn?filter=hello", 200, "application/x-ndjson", func(b string) bool {
			var e Event
			return json.Unmarshal([]byte(b), &e) == nil && e.Message == "hello <b>" && e.RequestID == "r1" &&
				e.Stream == "2026/01/01/[$LATEST]a" && e.Type == "function"
		}},
		{"text", "/kappa/logs/fn?format=text&request=r1&since=1h", 200, "text/plain; charset=utf-8", func(b string) bool {
			return strings.HasPrefix(b, "START RequestId: r1") && strings.Contains(b, "\nworld\n")
		}},
		{"limit", "/kappa/logs/fn?limit=1&format=text", 200, "text/plain; charset=utf-8", func(b string) bool {
			return strings.HasPrefix(b, "REPORT") && strings.Count(b, "\n") == 1
		}},
		{"functions", "/kappa/logs", 200, "application/json", func(b string) bool { return strings.Contains(b, `"fn"`) }},
		{"streams", "/kappa/logs/fn/streams", 200, "application/json", func(b string) bool {
			return strings.Contains(b, `"name":"2026/01/01/[$LATEST]a"`)
		}},
		{"limit too large", "/kappa/logs/fn?limit=2000000000", 400, "application/json", func(b string) bool { return strings.Contains(b, "10000") }},
		{"bad since", "/kappa/logs/fn?since=yesterday", 400, "application/json", func(b string) bool { return strings.Contains(b, "since") }},
		{"bad name", "/kappa/logs/..%2Fetc", 400, "application/json", func(string) bool { return true }},
		{"unknown function is empty", "/kappa/logs/nothing", 200, "application/x-ndjson", func(b string) bool { return b == "" }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			status, ctype, body := get(tt.path)
			if status != tt.status || ctype != tt.ctype || !tt.check(body) {
				t.Errorf("GET %s = %d %s %q", tt.path, status, ctype, body)
			}
		})
	}

	t.Run("follow", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		req, _ := http.NewRequestWithContext(ctx, "GET", srv.URL+"/kappa/logs/fn?follow=1&since=1m&format=text", nil)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		rd := bufio.NewReader(resp.Body)
		for range 5 { // the history
			if _, err := rd.ReadString('\n'); err != nil {
				t.Fatal(err)
			}
		}
		c.Writer().Write([]byte("live line\n"))
		line, err := rd.ReadString('\n')
		if err != nil || line != "live line\n" {
			t.Errorf("followed line %q, %v", line, err)
		}
	})
}
