package config

import (
	"fmt"
	"net"
	"path/filepath"
	"regexp"
	"strings"
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
	// FreezeAfter is how long an environment is idle before it is frozen.
	FreezeAfter time.Duration
	// DrainTimeout bounds how long shutdown waits for running invocations
	// (their own timeouts bound them anyway; Lambda's maximum is 15 min).
	DrainTimeout time.Duration
	// LogLevel is debug, info, warn or error.
	LogLevel string
	// Pprof serves /debug/pprof/ (profiling) on the server's port.
	Pprof bool
	// SyncWrites fsyncs every store write before acknowledging it.
	SyncWrites bool

	// AsyncRetryDelay is the wait before the first retry of an
	// asynchronous invocation that returned a function error; the n-th
	// retry waits n times as long (Lambda: about 1 and 2 minutes).
	AsyncRetryDelay time.Duration
	// AsyncBackoffMin and AsyncBackoffMax bound the exponential back-off of
	// an asynchronous invocation that was throttled or hit a platform
	// error (Lambda: 1 s … 5 min).
	AsyncBackoffMin, AsyncBackoffMax time.Duration
	// AsyncAckWait is how long an asynchronous invocation in delivery may
	// go unacknowledged (running ones extend it) before it is delivered
	// again: after a crash, the redelivery delay.
	AsyncAckWait time.Duration
	// ESMRetryDelay is how long a message of an event source mapping
	// whose batch failed waits before it is delivered again (SQS's
	// visibility timeout, 30 s by default).
	ESMRetryDelay time.Duration
	// AsyncConcurrency caps asynchronous invocations running at once; the
	// rest of the account concurrency is always left to synchronous ones.
	// AsyncFunctionConcurrency caps them per function.
	AsyncConcurrency, AsyncFunctionConcurrency int
	// ScheduleCatchUp is how many missed ticks a schedule fires after the
	// server was down (the latest ones).
	ScheduleCatchUp int
	// IAMAccessKeyID and IAMSecretAccessKey are the credentials AWS_IAM
	// function URLs accept (SigV4, service lambda); without them such URLs
	// refuse every request.
	IAMAccessKeyID, IAMSecretAccessKey string

	// RegistryUser and RegistryPassword, set together, are an account of
	// the embedded registry. With them or RegistryHtpasswd (a file of
	// "user:bcrypt-hash" lines, as `htpasswd -B` writes) every registry
	// request needs credentials, and the server may listen on a
	// non-loopback address; the Lambda API and the rest of the server
	// still answer clients on this host only unless Insecure is set, since
	// they have no authentication yet.
	RegistryUser     string
	RegistryPassword string
	RegistryHtpasswd string
	// RegistryRealm is the token endpoint URL the registry advertises in
	// its challenges; empty means the URL the client used. Set it when a
	// TLS proxy fronts Kappa.
	RegistryRealm string

	// LogRetention is how long function logs are kept (0: until
	// LogMaxBytes pushes them out).
	LogRetention time.Duration
	// LogMaxBytes caps the stored logs of one function; the oldest go
	// first (0: unlimited).
	LogMaxBytes int64
	// LogRateLimit is how many bytes per second one execution environment
	// may log; beyond it lines are dropped and a logsDropped record says
	// so (0: unlimited).
	LogRateLimit int64
	// OTLPEndpoint is the OTLP/HTTP receiver invocation spans are sent to
	// ("http://127.0.0.1:4318"); empty sends none.
	OTLPEndpoint string

	// Spares is how many created-but-not-started environments are kept for
	// recently invoked configurations, across all functions, so that their
	// cold starts only start one (0: none).
	Spares int
	// SpareIdleTimeout is how long a configuration's spare is kept after
	// the configuration was last invoked.
	SpareIdleTimeout time.Duration
	// NetNSPool is how many network namespaces, with their Runtime API
	// listeners, are kept created ahead (0: one is made per environment).
	NetNSPool int
	// ExecStart starts containers with `<runtime> start` rather than
	// through crun's exec fifo (which needs no process).
	ExecStart bool
	// CRIU is the criu binary SnapStart snapshots are taken and restored
	// with (through runc); "" uses /opt/criu/sbin/criu, else criu in PATH.
	CRIU string
	// RestoreViaRuntime restores snapshots through `runc restore` even
	// where Kappa can run CRIU itself (slower; see docs/snapshot-restore.md).
	RestoreViaRuntime bool
}

// RegistryAuth reports whether registry credentials are configured.
func (c *Server) RegistryAuth() bool {
	return c.RegistryUser != "" || c.RegistryHtpasswd != ""
}

// Defaults returns the embedded defaults.
func Defaults() Server {
	return Server{
		Listen:                   "127.0.0.1:9070",
		DataDir:                  "/var/lib/kappa",
		RunDir:                   "/run/kappa",
		Region:                   "us-east-1",
		Account:                  "000000000000",
		MaxEnvironments:          1000,
		AccountConcurrency:       1000,
		IdleTimeout:              10 * time.Minute,
		FreezeIdle:               true,
		FreezeAfter:              50 * time.Millisecond,
		DrainTimeout:             15 * time.Minute,
		LogLevel:                 "info",
		SyncWrites:               true,
		AsyncRetryDelay:          time.Minute,
		AsyncBackoffMin:          time.Second,
		AsyncBackoffMax:          5 * time.Minute,
		AsyncAckWait:             time.Minute,
		ESMRetryDelay:            30 * time.Second,
		AsyncConcurrency:         64,
		AsyncFunctionConcurrency: 16,
		ScheduleCatchUp:          60,
		LogRetention:             7 * 24 * time.Hour,
		LogMaxBytes:              256 << 20,
		LogRateLimit:             4 << 20,
		Spares:                   16,
		SpareIdleTimeout:         5 * time.Minute,
		NetNSPool:                8,
	}
}

// Validate checks the configuration and makes paths absolute.
// regionRE is the region part of Lambda's function ARN pattern.
var regionRE = regexp.MustCompile(`^[a-z]{2}((-gov)|(-iso(b?)))?-[a-z]+-\d{1}$`)

func (c *Server) Validate() error {
	host, _, err := net.SplitHostPort(c.Listen)
	if err != nil {
		return fmt.Errorf("--listen %q: %w", c.Listen, err)
	}
	if !regionRE.MatchString(c.Region) {
		// Function ARNs carry it, and the SDKs and Lambda's own ARN
		// pattern accept only regions of AWS's shape.
		return fmt.Errorf("--region %q: want a region name of AWS's shape, such as us-east-1", c.Region)
	}
	if (c.RegistryUser == "") != (c.RegistryPassword == "") {
		return fmt.Errorf("--registry-user and --registry-password must be given together")
	}
	if strings.ContainsAny(c.RegistryUser, ": \t\r\n") {
		return fmt.Errorf("--registry-user %q: no colon or white space allowed", c.RegistryUser)
	}
	if c.RegistryHtpasswd != "" {
		if c.RegistryHtpasswd, err = filepath.Abs(c.RegistryHtpasswd); err != nil {
			return err
		}
	}
	if !c.Insecure && !c.RegistryAuth() && !isLoopback(host) {
		return fmt.Errorf("refusing to listen on non-loopback address %s without authentication: configure registry credentials (--registry-user and --registry-password, or --registry-htpasswd) to expose the registry, and pass --insecure to also expose the Lambda API, which has no authentication yet", c.Listen)
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
	if c.LogRetention < 0 || c.LogMaxBytes < 0 || c.LogRateLimit < 0 {
		return fmt.Errorf("--log-retention, --log-max-bytes and --log-rate-limit must not be negative")
	}
	if c.OTLPEndpoint != "" && !strings.HasPrefix(c.OTLPEndpoint, "http://") && !strings.HasPrefix(c.OTLPEndpoint, "https://") {
		return fmt.Errorf("--otlp-endpoint %q: want an http:// or https:// URL of an OTLP/HTTP receiver", c.OTLPEndpoint)
	}
	if c.AccountConcurrency < 100 {
		return fmt.Errorf("--concurrency-limit must be at least 100 (Lambda keeps 100 unreserved)")
	}
	if err := c.validateEvents(); err != nil {
		return err
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

func (c *Server) validateEvents() error {
	switch {
	case c.AsyncRetryDelay <= 0 || c.AsyncBackoffMin <= 0 || c.AsyncBackoffMax < c.AsyncBackoffMin:
		return fmt.Errorf("--async-retry-delay and --async-backoff-min must be positive, and --async-backoff-max at least --async-backoff-min")
	case c.AsyncAckWait < time.Second:
		return fmt.Errorf("--async-ack-wait must be at least 1s")
	case c.ESMRetryDelay <= 0:
		return fmt.Errorf("--esm-retry-delay must be positive")
	case c.AsyncConcurrency < 1 || c.AsyncFunctionConcurrency < 1:
		return fmt.Errorf("--async-concurrency and --async-function-concurrency must be at least 1")
	case c.AsyncConcurrency >= c.AccountConcurrency:
		return fmt.Errorf("--async-concurrency must stay below --concurrency-limit, so that synchronous invocations keep capacity")
	case c.ScheduleCatchUp < 0:
		return fmt.Errorf("--schedule-catch-up must not be negative")
	case (c.IAMAccessKeyID == "") != (c.IAMSecretAccessKey == ""):
		return fmt.Errorf("--iam-access-key-id and --iam-secret-access-key must be given together")
	}
	return nil
}
