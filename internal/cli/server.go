package cli

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"strconv"
	"syscall"

	"github.com/spf13/cobra"

	"github.com/kappa-run/kappa/internal/config"
	"github.com/kappa-run/kappa/internal/daemon"
)

func newServerCmd() *cobra.Command {
	cfg := config.Defaults()
	if os.Geteuid() != 0 {
		if home, err := os.UserHomeDir(); err == nil {
			cfg.DataDir = home + "/.local/share/kappa"
		}
	}
	cmd := &cobra.Command{
		Use:   "server",
		Short: "Run the Kappa server: registry, Lambda API and execution environments on one port",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := cfg.Validate(); err != nil {
				return usageError{err}
			}
			log := newLogger(cfg.LogLevel)
			d, err := daemon.New(cmd.Context(), cfg, log)
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.ErrOrStderr(), "kappa server listening on http://%s\n", d.Addr())
			return d.Run(cmd.Context(), secondSignal(cmd.Context()))
		},
	}
	f := cmd.Flags()
	f.StringVar(&cfg.Listen, "listen", envOr("KAPPA_LISTEN", cfg.Listen), "address to serve every API on (env KAPPA_LISTEN)")
	f.BoolVar(&cfg.Insecure, "insecure", false, "allow a non-loopback --listen address without authentication")
	f.StringVar(&cfg.DataDir, "data-dir", envOr("KAPPA_DATA_DIR", cfg.DataDir), "directory for all durable state (env KAPPA_DATA_DIR)")
	f.StringVar(&cfg.RunDir, "run-dir", envOr("KAPPA_RUN_DIR", cfg.RunDir), "directory for runtime state cleared on reboot; a tmpfs is mounted there when it is on a disk (env KAPPA_RUN_DIR)")
	f.StringVar(&cfg.Runtime, "runtime", envOr("KAPPA_RUNTIME", ""), "OCI runtime: crun, runc, or empty to auto-detect (env KAPPA_RUNTIME)")
	f.StringVar(&cfg.Region, "region", envOr("KAPPA_REGION", cfg.Region), "region shown in ARNs")
	f.StringVar(&cfg.Account, "account", envOr("KAPPA_ACCOUNT", cfg.Account), "12-digit account id shown in ARNs")
	maxEnv, _ := strconv.Atoi(envOr("KAPPA_MAX_ENVIRONMENTS", strconv.Itoa(cfg.MaxEnvironments)))
	f.IntVar(&cfg.MaxEnvironments, "max-environments", maxEnv, "most execution environments alive at once")
	f.IntVar(&cfg.AccountConcurrency, "concurrency-limit", cfg.AccountConcurrency, "account concurrency limit (Lambda's ConcurrentExecutions)")
	f.DurationVar(&cfg.IdleTimeout, "idle-timeout", cfg.IdleTimeout, "how long an idle environment stays warm")
	f.BoolVar(&cfg.FreezeIdle, "freeze-idle", cfg.FreezeIdle, "freeze idle environments (cgroup freezer) between invocations")
	f.DurationVar(&cfg.FreezeAfter, "freeze-after", cfg.FreezeAfter, "how long an environment is idle before it is frozen (0: at once, as Lambda does; a back-to-back invocation then pays a thaw)")
	f.DurationVar(&cfg.DrainTimeout, "drain-timeout", cfg.DrainTimeout, "on SIGINT/SIGTERM, wait this long for running invocations (a second signal stops at once)")
	f.StringVar(&cfg.LogLevel, "log-level", envOr("KAPPA_LOG_LEVEL", cfg.LogLevel), "debug, info, warn or error")
	f.BoolVar(&cfg.Pprof, "pprof", false, "serve Go profiles at /debug/pprof/")
	f.BoolVar(&cfg.SyncWrites, "sync-writes", cfg.SyncWrites, "fsync every state write before acknowledging it")
	f.StringVar(&cfg.RegistryUser, "registry-user", envOr("KAPPA_REGISTRY_USER", ""), "registry user: push and pull then need credentials (env KAPPA_REGISTRY_USER)")
	f.StringVar(&cfg.RegistryPassword, "registry-password", envOr("KAPPA_REGISTRY_PASSWORD", ""), "password of --registry-user; prefer the env KAPPA_REGISTRY_PASSWORD, flags show in ps")
	f.StringVar(&cfg.RegistryHtpasswd, "registry-htpasswd", envOr("KAPPA_REGISTRY_HTPASSWD", ""), "file of registry users, user:bcrypt-hash lines as `htpasswd -B` writes (env KAPPA_REGISTRY_HTPASSWD)")
	f.StringVar(&cfg.RegistryRealm, "registry-realm", envOr("KAPPA_REGISTRY_REALM", ""), "token URL the registry advertises (default: http://<host the client used>/v2/token); set it behind a TLS proxy")
	f.DurationVar(&cfg.LogRetention, "log-retention", cfg.LogRetention, "how long function logs are kept (0: until --log-max-bytes pushes them out)")
	f.Var(sizeFlag{&cfg.LogMaxBytes}, "log-max-bytes", "most stored log bytes per function, oldest dropped first (0: unlimited)")
	f.Var(sizeFlag{&cfg.LogRateLimit}, "log-rate-limit", "bytes per second one execution environment may log; beyond it lines are dropped with a logsDropped record (0: unlimited)")
	f.StringVar(&cfg.OTLPEndpoint, "otlp-endpoint", envOr("KAPPA_OTLP_ENDPOINT", envOr("OTEL_EXPORTER_OTLP_ENDPOINT", "")), "OTLP/HTTP receiver for invocation spans, e.g. http://127.0.0.1:4318 (env KAPPA_OTLP_ENDPOINT, OTEL_EXPORTER_OTLP_ENDPOINT)")
	f.DurationVar(&cfg.ESMRetryDelay, "esm-retry-delay", cfg.ESMRetryDelay, "wait before a message of an event source mapping whose batch failed is delivered again (SQS's visibility timeout)")
	f.DurationVar(&cfg.AsyncRetryDelay, "async-retry-delay", cfg.AsyncRetryDelay, "wait before retrying an asynchronous invocation that returned a function error; the n-th retry waits n times as long")
	f.DurationVar(&cfg.AsyncBackoffMin, "async-backoff-min", cfg.AsyncBackoffMin, "first back-off of a throttled asynchronous invocation (doubles up to --async-backoff-max)")
	f.DurationVar(&cfg.AsyncBackoffMax, "async-backoff-max", cfg.AsyncBackoffMax, "longest back-off of a throttled asynchronous invocation")
	f.DurationVar(&cfg.AsyncAckWait, "async-ack-wait", cfg.AsyncAckWait, "how long an asynchronous invocation may go unacknowledged before it is delivered again (after a crash: the redelivery delay)")
	f.IntVar(&cfg.AsyncConcurrency, "async-concurrency", cfg.AsyncConcurrency, "most asynchronous invocations running at once; the rest of --concurrency-limit stays with synchronous ones")
	f.IntVar(&cfg.AsyncFunctionConcurrency, "async-function-concurrency", cfg.AsyncFunctionConcurrency, "most asynchronous invocations of one function running at once (reserved concurrency lowers it)")
	f.IntVar(&cfg.ScheduleCatchUp, "schedule-catch-up", cfg.ScheduleCatchUp, "most missed ticks one schedule fires after the server was down (the latest)")
	f.StringVar(&cfg.IAMAccessKeyID, "iam-access-key-id", envOr("KAPPA_IAM_ACCESS_KEY_ID", ""), "access key AWS_IAM function URLs accept (env KAPPA_IAM_ACCESS_KEY_ID)")
	f.StringVar(&cfg.IAMSecretAccessKey, "iam-secret-access-key", envOr("KAPPA_IAM_SECRET_ACCESS_KEY", ""), "its secret; prefer the env KAPPA_IAM_SECRET_ACCESS_KEY, flags show in ps")
	f.IntVar(&cfg.Spares, "spares", cfg.Spares, "created-but-not-started environments kept for recently invoked configurations, so their cold starts only start one (0: none)")
	f.DurationVar(&cfg.SpareIdleTimeout, "spare-idle-timeout", cfg.SpareIdleTimeout, "how long a configuration's spare is kept after its last invocation")
	f.IntVar(&cfg.NetNSPool, "netns-pool", cfg.NetNSPool, "network namespaces with their Runtime API listeners kept created ahead (0: none)")
	f.BoolVar(&cfg.ExecStart, "exec-start", cfg.ExecStart, "start containers by running \"<runtime> start\" instead of through crun's exec fifo")
	f.BoolVar(&cfg.RestoreViaRuntime, "restore-via-runc", cfg.RestoreViaRuntime, "restore SnapStart snapshots through `runc restore` even where Kappa can run CRIU itself (slower)")
	f.StringVar(&cfg.CRIU, "criu", cfg.CRIU, "criu binary for SnapStart snapshots, taken and restored through runc (default: /opt/criu/sbin/criu, which scripts/build-criu.sh builds, else criu in PATH)")
	return cmd
}

// secondSignal returns a context canceled by a SIGINT or SIGTERM that
// arrives after ctx (canceled by the first) is done: the user insists.
func secondSignal(ctx context.Context) context.Context {
	force, cancel := context.WithCancel(context.Background())
	go func() {
		<-ctx.Done()
		ch := make(chan os.Signal, 1)
		signal.Notify(ch, os.Interrupt, syscall.SIGTERM)
		<-ch
		cancel()
	}()
	return force
}

func newLogger(level string) *slog.Logger {
	var l slog.Level
	if err := l.UnmarshalText([]byte(level)); err != nil {
		l = slog.LevelInfo
	}
	return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: l}))
}
