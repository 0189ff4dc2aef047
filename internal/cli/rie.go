package cli

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"strconv"
	"time"

	"github.com/spf13/cobra"

	"github.com/kappa-run/kappa/internal/rie"
)

// rieProgram is the name under which the kappa binary behaves as `kappa
// rie`, so that it can stand in for /usr/local/bin/aws-lambda-rie.
const rieProgram = "aws-lambda-rie"

func newRIECmd() *cobra.Command {
	var (
		logLevel       string
		runtimeAPIAddr string
		listenAddr     string
		initCaching    bool
		maxConcurrency int
		extensionsDir  string
	)
	cmd := &cobra.Command{
		Use:   "rie [flags] [<bootstrap> [args...]]",
		Short: "Emulate the Lambda runtime environment locally (a drop-in for aws-lambda-rie)",
		Long: `rie runs a function's bootstrap behind the invoke endpoint of aws-lambda-rie:
  POST http://<address>/2015-03-31/functions/function/invocations
and the response streaming endpoint
  POST http://<address>/2021-11-15/functions/function/response-streaming-invocations

Without a bootstrap it runs the first of /var/task/bootstrap, /opt/bootstrap and
/var/runtime/bootstrap. With two or more arguments the last is the handler.
It honours AWS_LAMBDA_FUNCTION_TIMEOUT (300), AWS_LAMBDA_FUNCTION_NAME
(test_function), AWS_LAMBDA_FUNCTION_VERSION ($LATEST),
AWS_LAMBDA_FUNCTION_MEMORY_SIZE (3008), AWS_LAMBDA_FUNCTION_HANDLER, _HANDLER and
LOG_LEVEL, and passes its environment to the runtime.`,
		SilenceUsage: true,
		RunE: func(cmd *cobra.Command, args []string) error {
			if !cmd.Flags().Changed("log-level") {
				logLevel = envOr("LOG_LEVEL", logLevel)
			}
			cfg, err := rieConfig(args)
			if err != nil {
				return usageError{err}
			}
			if _, _, err := net.SplitHostPort(listenAddr); err != nil {
				return usageError{fmt.Errorf("--runtime-interface-emulator-address %q: %w", listenAddr, err)}
			}
			cfg.RuntimeAPIAddr = runtimeAPIAddr
			cfg.InitCaching = initCaching
			cfg.MaxConcurrency = maxConcurrency
			cfg.ExtensionsDir = extensionsDir
			cfg.Stdout = cmd.OutOrStdout()
			cfg.Logger = newLogger(logLevel)
			return runRIE(cmd.Context(), cfg, listenAddr)
		},
	}
	f := cmd.Flags()
	f.SetInterspersed(false) // flags after the bootstrap belong to it
	cmd.FParseErrWhitelist.UnknownFlags = true
	f.StringVar(&logLevel, "log-level", "info", "debug, info, warn or error (env LOG_LEVEL)")
	f.StringVar(&runtimeAPIAddr, "runtime-api-address", rie.DefaultRuntimeAPIAddr, "address of the Runtime API (AWS_LAMBDA_RUNTIME_API) of the first environment")
	f.StringVar(&listenAddr, "runtime-interface-emulator-address", rie.DefaultAddr, "address to serve the invoke endpoint on")
	f.BoolVar(&initCaching, "enable-init-caching", false, "initialise the first environment at start instead of at the first invocation")
	f.IntVar(&maxConcurrency, "max-concurrency", rie.DefaultMaxConcurrency, "most invocations running at once, each in its own environment (429 past it)")
	f.StringVar(&extensionsDir, "extensions-dir", rie.DefaultExtensionsDir, "directory of the external extensions")
	return cmd
}

// rieConfig reads the bootstrap from args and the rest from the
// environment, as aws-lambda-rie does.
func rieConfig(args []string) (rie.Config, error) {
	cfg := rie.Config{
		FunctionName:    envNonEmpty("AWS_LAMBDA_FUNCTION_NAME", rie.DefaultFunctionName),
		FunctionVersion: envNonEmpty("AWS_LAMBDA_FUNCTION_VERSION", rie.DefaultFunctionVersion),
		Handler:         envNonEmpty("AWS_LAMBDA_FUNCTION_HANDLER", os.Getenv("_HANDLER")),
		Env:             os.Environ(),
	}
	timeout, err := strconv.Atoi(envNonEmpty("AWS_LAMBDA_FUNCTION_TIMEOUT", "300"))
	if err != nil || timeout < 1 {
		return cfg, fmt.Errorf("AWS_LAMBDA_FUNCTION_TIMEOUT must be a positive number of seconds")
	}
	cfg.Timeout = time.Duration(timeout) * time.Second
	mem, err := strconv.Atoi(envNonEmpty("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", strconv.Itoa(rie.DefaultMemoryMB)))
	if err != nil || mem < 1 {
		return cfg, fmt.Errorf("AWS_LAMBDA_FUNCTION_MEMORY_SIZE must be a positive number of MB")
	}
	cfg.MemoryMB = mem
	if len(args) == 0 {
		b, err := rie.FindBootstrap()
		if err != nil {
			return cfg, err
		}
		cfg.Bootstrap, cfg.Cwd = []string{b}, "/var/task"
		return cfg, nil
	}
	cfg.Bootstrap = args
	if len(args) >= 2 {
		cfg.Handler = args[len(args)-1]
	}
	if wd, err := os.Getwd(); err == nil {
		cfg.Cwd = wd
	}
	return cfg, nil
}

// envNonEmpty returns the variable key, or def when it is unset or empty.
func envNonEmpty(key, def string) string {
	if v := os.Getenv(key); v != "" {
		return v
	}
	return def
}

func runRIE(ctx context.Context, cfg rie.Config, listenAddr string) error {
	em, err := rie.New(cfg)
	if err != nil {
		return usageError{err}
	}
	ln, err := net.Listen("tcp", listenAddr)
	if err != nil {
		return err
	}
	cfg.Logger.Info("exec", "bootstrap", cfg.Bootstrap, "cwd", cfg.Cwd, "handler", cfg.Handler)
	srv := &http.Server{Handler: em.Handler(), ReadHeaderTimeout: 30 * time.Second}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	if err := em.Start(ctx); err != nil {
		cfg.Logger.Warn("init caching", "err", err)
	}
	select {
	case err := <-served:
		_ = em.Close(context.Background())
		return err
	case <-ctx.Done():
	}
	stopCtx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_ = srv.Shutdown(stopCtx)
	if err := em.Close(stopCtx); err != nil {
		return err
	}
	if err := <-served; err != nil && !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}
