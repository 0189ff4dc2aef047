package config

import (
	"strings"
	"testing"
)

func TestValidate(t *testing.T) {
	tests := []struct {
		name    string
		mutate  func(*Server)
		wantErr string
	}{
		{name: "defaults", mutate: func(*Server) {}},
		{name: "ipv6 loopback", mutate: func(c *Server) { c.Listen = "[::1]:9070" }},
		{name: "localhost", mutate: func(c *Server) { c.Listen = "localhost:0" }},
		{name: "public refused", mutate: func(c *Server) { c.Listen = "0.0.0.0:9070" }, wantErr: "--insecure"},
		{name: "public insecure", mutate: func(c *Server) { c.Listen = "0.0.0.0:9070"; c.Insecure = true }},
		{name: "no port", mutate: func(c *Server) { c.Listen = "127.0.0.1" }, wantErr: "--listen"},
		{name: "bad runtime", mutate: func(c *Server) { c.Runtime = "docker" }, wantErr: "--runtime"},
		{name: "bad account", mutate: func(c *Server) { c.Account = "12" }, wantErr: "--account"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := Defaults()
			tt.mutate(&c)
			err := c.Validate()
			if tt.wantErr == "" && err != nil {
				t.Fatalf("Validate() = %v, want nil", err)
			}
			if tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)) {
				t.Fatalf("Validate() = %v, want error containing %q", err, tt.wantErr)
			}
		})
	}
}
