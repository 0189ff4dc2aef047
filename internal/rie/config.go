package rie

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"strconv"
	"strings"
	"time"
)

// Defaults, as aws-lambda-rie has them.
const (
	DefaultRuntimeAPIAddr  = "127.0.0.1:9001"
	DefaultAddr            = "0.0.0.0:8080"
	DefaultFunctionName    = "test_function"
	DefaultFunctionVersion = "$LATEST"
	DefaultMemoryMB        = 3008
	DefaultTimeout         = 300 * time.Second
	DefaultMaxConcurrency  = 4
	DefaultExtensionsDir   = "/opt/extensions"
	// AccountID and Region make up the fixed ARN
	// arn:aws:lambda:us-east-1:012345678912:function:<name>.
	AccountID = "012345678912"
	Region    = "us-east-1"
)

// BootstrapCandidates are tried, in order, when no bootstrap is given.
var BootstrapCandidates = []string{"/var/task/bootstrap", "/opt/bootstrap", "/var/runtime/bootstrap"}

// Config configures an Emulator. Zero fields take the defaults above.
type Config struct {
	// RuntimeAPIAddr is the Runtime API address of the first environment
	// (AWS_LAMBDA_RUNTIME_API); the others get free ports on its host.
	RuntimeAPIAddr string
	// Bootstrap is the runtime's argv; required.
	Bootstrap []string
	// Cwd is the runtime's working directory.
	Cwd string
	// Handler is _HANDLER; empty leaves it unset.
	Handler string
	// Env is the environment passed through to the runtime and the
	// extensions (the emulator's own environment, as aws-lambda-rie does);
	// Lambda's reserved variables are added where missing.
	Env             []string
	FunctionName    string
	FunctionVersion string
	MemoryMB        int
	// Timeout is the function timeout (AWS_LAMBDA_FUNCTION_TIMEOUT).
	Timeout time.Duration
	// MaxConcurrency is how many environments may run invocations at once.
	MaxConcurrency int
	// InitCaching starts the first environment at once instead of at the
	// first invocation (--enable-init-caching).
	InitCaching bool
	// ExtensionsDir holds the external extensions.
	ExtensionsDir string
	// InitTimeout caps an environment's init; 0 means Timeout. Lambda
	// gives init 10 s and, past them, runs it again within the first
	// invocation's timeout; the AWS emulator bounds it by the function
	// timeout, and so does this one, so that an image whose init is slow
	// works here as it does there.
	InitTimeout time.Duration
	// MaxQueuedEvents caps the Event invocations waiting for an
	// environment; past it they get 429.
	MaxQueuedEvents int
	// Stdout receives the runtime's and the extensions' output and the
	// START, END and REPORT lines; nil discards them.
	Stdout io.Writer
	// Logger receives the emulator's own records; nil discards them.
	Logger *slog.Logger
	// Now is the clock; nil means time.Now.
	Now func() time.Time
}

func (c *Config) setDefaults() error {
	if len(c.Bootstrap) == 0 {
		return errors.New("no bootstrap")
	}
	if c.RuntimeAPIAddr == "" {
		c.RuntimeAPIAddr = DefaultRuntimeAPIAddr
	}
	if _, _, err := net.SplitHostPort(c.RuntimeAPIAddr); err != nil {
		return fmt.Errorf("runtime api address %q: %w", c.RuntimeAPIAddr, err)
	}
	if c.Cwd == "" {
		c.Cwd = "/var/task"
	}
	if c.FunctionName == "" {
		c.FunctionName = DefaultFunctionName
	}
	if c.FunctionVersion == "" {
		c.FunctionVersion = DefaultFunctionVersion
	}
	if c.MemoryMB <= 0 {
		c.MemoryMB = DefaultMemoryMB
	}
	if c.Timeout <= 0 {
		c.Timeout = DefaultTimeout
	}
	if c.MaxConcurrency <= 0 {
		c.MaxConcurrency = DefaultMaxConcurrency
	}
	if c.ExtensionsDir == "" {
		c.ExtensionsDir = DefaultExtensionsDir
	}
	if c.InitTimeout <= 0 {
		c.InitTimeout = c.Timeout
	}
	if c.MaxQueuedEvents <= 0 {
		c.MaxQueuedEvents = 1000
	}
	if c.Stdout == nil {
		c.Stdout = io.Discard
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	return nil
}

// FindBootstrap returns the first of BootstrapCandidates that is a file.
func FindBootstrap() (string, error) {
	for _, p := range BootstrapCandidates {
		if st, err := os.Stat(p); err == nil && !st.IsDir() {
			return p, nil
		}
	}
	return "", fmt.Errorf("no bootstrap found: tried %s", strings.Join(BootstrapCandidates, ", "))
}

// ARN returns the function ARN the emulator reports.
func (c *Config) ARN() string {
	return "arn:aws:lambda:" + Region + ":" + AccountID + ":function:" + c.FunctionName
}

// environment builds the runtime's environment: Env, then Lambda's
// reserved variables where Env lacks them; AWS_LAMBDA_RUNTIME_API is set
// by the sandbox.
func (c *Config) environment(now time.Time) []string {
	have := map[string]bool{}
	var out []string
	for _, kv := range c.Env {
		k, _, _ := strings.Cut(kv, "=")
		if k == "AWS_LAMBDA_RUNTIME_API" || k == "" {
			continue
		}
		have[k] = true
		out = append(out, kv)
	}
	def := func(k, v string) {
		if !have[k] {
			have[k] = true
			out = append(out, k+"="+v)
		}
	}
	if c.Handler != "" {
		def("_HANDLER", c.Handler)
	}
	def("AWS_LAMBDA_FUNCTION_NAME", c.FunctionName)
	def("AWS_LAMBDA_FUNCTION_VERSION", c.FunctionVersion)
	def("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", strconv.Itoa(c.MemoryMB))
	def("AWS_LAMBDA_LOG_GROUP_NAME", "/aws/lambda/"+c.FunctionName)
	def("AWS_LAMBDA_LOG_STREAM_NAME", now.UTC().Format("2006/01/02")+"/["+c.FunctionVersion+"]"+randomHex(16))
	def("AWS_LAMBDA_INITIALIZATION_TYPE", "on-demand")
	def("AWS_REGION", Region)
	def("AWS_DEFAULT_REGION", Region)
	def("LAMBDA_TASK_ROOT", "/var/task")
	def("LAMBDA_RUNTIME_DIR", "/var/runtime")
	def("PATH", "/var/lang/bin:/usr/local/bin:/usr/bin/:/bin:/opt/bin")
	def("LANG", "en_US.UTF-8")
	def("TZ", ":UTC")
	return out
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}
