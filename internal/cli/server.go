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
	f.StringVar(&cfg.RunDir, "run-dir", envOr("KAPPA_RUN_DIR", cfg.RunDir), "directory for runtime state cleared on reboot (env KAPPA_RUN_DIR)")
	f.StringVar(&cfg.Runtime, "runtime", envOr("KAPPA_RUNTIME", ""), "OCI runtime: crun, runc, or empty to auto-detect (env KAPPA_RUNTIME)")
	f.StringVar(&cfg.Region, "region", envOr("KAPPA_REGION", cfg.Region), "region shown in ARNs")
	f.StringVar(&cfg.Account, "account", envOr("KAPPA_ACCOUNT", cfg.Account), "12-digit account id shown in ARNs")
	maxEnv, _ := strconv.Atoi(envOr("KAPPA_MAX_ENVIRONMENTS", strconv.Itoa(cfg.MaxEnvironments)))
	f.IntVar(&cfg.MaxEnvironments, "max-environments", maxEnv, "most execution environments alive at once")
	f.IntVar(&cfg.AccountConcurrency, "concurrency-limit", cfg.AccountConcurrency, "account concurrency limit (Lambda's ConcurrentExecutions)")
	f.DurationVar(&cfg.IdleTimeout, "idle-timeout", cfg.IdleTimeout, "how long an idle environment stays warm")
	f.BoolVar(&cfg.FreezeIdle, "freeze-idle", cfg.FreezeIdle, "freeze idle environments (cgroup freezer) between invocations")
	f.DurationVar(&cfg.DrainTimeout, "drain-timeout", cfg.DrainTimeout, "on SIGINT/SIGTERM, wait this long for running invocations (a second signal stops at once)")
	f.StringVar(&cfg.LogLevel, "log-level", envOr("KAPPA_LOG_LEVEL", cfg.LogLevel), "debug, info, warn or error")
	f.BoolVar(&cfg.Pprof, "pprof", false, "serve Go profiles at /debug/pprof/")
	f.BoolVar(&cfg.SyncWrites, "sync-writes", cfg.SyncWrites, "fsync every state write before acknowledging it")
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
