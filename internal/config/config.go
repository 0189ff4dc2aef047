package config

import (
	"fmt"
	"net"
	"path/filepath"
	"time"
)

// Server is the configuration of `kappa server`.
type Server struct {
	// Listen is the address of the one port every surface is served on.
	Listen string
	// Insecure allows a non-loopback Listen address without authentication.
	Insecure bool
	// DataDir holds all durable state.
	DataDir string
	// RunDir holds runtime state that must not survive a reboot (OCI
	// runtime state, network namespace mounts).
	RunDir string
	// Runtime is the OCI runtime: "crun", "runc" or "" (auto-detect).
	Runtime string
	Region  string
	Account string
	// MaxEnvironments caps live execution environments on this host.
	MaxEnvironments int
	// AccountConcurrency is the account's concurrency limit (Lambda's
	// ConcurrentExecutions, default 1,000).
	AccountConcurrency int
	// IdleTimeout is how long an idle environment stays warm.
	IdleTimeout time.Duration
	// FreezeIdle freezes idle environments between invocations.
	FreezeIdle bool
	// DrainTimeout bounds how long shutdown waits for running invocations
	// (their own timeouts bound them anyway; Lambda's maximum is 15 min).
	DrainTimeout time.Duration
	// LogLevel is debug, info, warn or error.
	LogLevel string
	// Pprof serves /debug/pprof/ (profiling) on the server's port.
	Pprof bool
	// SyncWrites fsyncs every store write before acknowledging it.
	SyncWrites bool
}

// Defaults returns the embedded defaults.
func Defaults() Server {
	return Server{
		Listen:             "127.0.0.1:9070",
		DataDir:            "/var/lib/kappa",
		RunDir:             "/run/kappa",
		Region:             "us-east-1",
		Account:            "000000000000",
		MaxEnvironments:    1000,
		AccountConcurrency: 1000,
		IdleTimeout:        10 * time.Minute,
		LogLevel:           "info",
		SyncWrites:         true,
	}
}

// Validate checks the configuration and makes paths absolute.
func (c *Server) Validate() error {
	host, _, err := net.SplitHostPort(c.Listen)
	if err != nil {
		return fmt.Errorf("--listen %q: %w", c.Listen, err)
	}
	if !c.Insecure && !isLoopback(host) {
		return fmt.Errorf("refusing to listen on non-loopback address %s without authentication: pass --insecure to expose Kappa unauthenticated", c.Listen)
	}
	if c.DataDir == "" {
		return fmt.Errorf("--data-dir must not be empty")
	}
	if c.DataDir, err = filepath.Abs(c.DataDir); err != nil {
		return err
	}
	if c.RunDir, err = filepath.Abs(c.RunDir); err != nil {
		return err
	}
	switch c.Runtime {
	case "", "crun", "runc":
	default:
		return fmt.Errorf("--runtime %q: want crun, runc or empty for auto-detection", c.Runtime)
	}
	if len(c.Account) != 12 {
		return fmt.Errorf("--account %q: want 12 digits", c.Account)
	}
	if c.MaxEnvironments < 1 {
		return fmt.Errorf("--max-environments must be at least 1")
	}
	if c.AccountConcurrency < 100 {
		return fmt.Errorf("--concurrency-limit must be at least 100 (Lambda keeps 100 unreserved)")
	}
	return nil
}

func isLoopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}
