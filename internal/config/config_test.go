package config

import (
	"strings"
	"testing"
	"time"
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
		{name: "public with registry user", mutate: func(c *Server) {
			c.Listen, c.RegistryUser, c.RegistryPassword = "0.0.0.0:9070", "u", "p"
		}},
		{name: "public with htpasswd", mutate: func(c *Server) { c.Listen, c.RegistryHtpasswd = "0.0.0.0:9070", "users" }},
		{name: "registry user without password", mutate: func(c *Server) { c.RegistryUser = "u" }, wantErr: "together"},
		{name: "registry password without user", mutate: func(c *Server) { c.RegistryPassword = "p" }, wantErr: "together"},
		{name: "registry user with colon", mutate: func(c *Server) { c.RegistryUser, c.RegistryPassword = "a:b", "p" }, wantErr: "colon"},
		{name: "no port", mutate: func(c *Server) { c.Listen = "127.0.0.1" }, wantErr: "--listen"},
		{name: "bad runtime", mutate: func(c *Server) { c.Runtime = "docker" }, wantErr: "--runtime"},
		{name: "bad account", mutate: func(c *Server) { c.Account = "12" }, wantErr: "--account"},
		{name: "other region", mutate: func(c *Server) { c.Region = "eu-central-2" }},
		{name: "gov region", mutate: func(c *Server) { c.Region = "us-gov-west-1" }},
		{name: "region not of AWS's shape", mutate: func(c *Server) { c.Region = "local" }, wantErr: "--region"},
		{name: "async concurrency takes all", mutate: func(c *Server) { c.AsyncConcurrency = c.AccountConcurrency }, wantErr: "--async-concurrency"},
		{name: "async backoff inverted", mutate: func(c *Server) { c.AsyncBackoffMax = time.Millisecond }, wantErr: "--async-backoff-max"},
		{name: "short ack wait", mutate: func(c *Server) { c.AsyncAckWait = time.Millisecond }, wantErr: "--async-ack-wait"},
		{name: "iam key without secret", mutate: func(c *Server) { c.IAMAccessKeyID = "AKID" }, wantErr: "together"},
		{name: "iam key and secret", mutate: func(c *Server) { c.IAMAccessKeyID, c.IAMSecretAccessKey = "AKID", "s" }},
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
