package cli

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"

	"github.com/spf13/cobra"

	"github.com/kappa-run/kappa/internal/bench"
)

func newBenchCmd() *cobra.Command {
	var (
		o         bench.Options
		source    string
		scenarios []string
		serverLog string
	)
	cmd := &cobra.Command{
		Use:   "bench",
		Short: "Measure cold start, warm invoke, throughput, scale-out, density and snapshot restore next to baselines",
		Long: `Start a Kappa server of this binary on a loopback port, deploy the probe
function and run each scenario next to its baseline on this host, then print
a table: scenario, Kappa p50/p99, baseline p50/p99, ratio.

  cold        Invoke with no warm environment, vs ` + "`crun run`" + ` (and ` + "`podman run`" + `)
              of the same root filesystem, and vs the Runtime API floor
              starting a fresh host process of the runtime per invocation
  warm        sequential warm invokes, vs a bare Go HTTP echo round trip
              and vs the Runtime API floor: a bare relay handing each
              request to the same runtime, run as a plain host process
  throughput  --concurrency clients for --duration, vs the echo server and
              the floor, and the CPU one invocation costs the server, the
              function's runtime and the load client
  scale       --scale environments at once from zero, vs as many ` + "`crun run`" + `s
  density     --density idle environments: server RSS per environment and
              idle CPU, vs the echo server holding as many idle long polls
  snapshot    cold starts of a SnapStart version whose init sleeps 1 s,
              restored from its snapshot, vs the same function's ordinary
              cold start (needs runc and CRIU: scripts/build-criu.sh)

The function and the baseline no-op are built from the Kappa source tree
(--source, default the current directory) unless --probe and --noop name
prebuilt static binaries. Needs root and crun or runc.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			o.Scenarios = scenarios
			if o.Kappa == "" {
				self, err := os.Executable()
				if err != nil {
					return err
				}
				o.Kappa = self
			}
			o.Progress = cmd.ErrOrStderr()
			if o.Probe == "" || o.Noop == "" {
				dir, err := os.MkdirTemp("", "kappa-bench-bin-")
				if err != nil {
					return err
				}
				defer os.RemoveAll(dir)
				if o.Probe == "" {
					if o.Probe, err = buildStatic(cmd.Context(), source, "./testdata/functions/probe", filepath.Join(dir, "probe")); err != nil {
						return err
					}
				}
				if o.Noop == "" {
					if o.Noop, err = buildStatic(cmd.Context(), source, "./testdata/functions/noop", filepath.Join(dir, "noop")); err != nil {
						return err
					}
				}
			}
			if serverLog != "" {
				f, err := os.Create(serverLog)
				if err != nil {
					return err
				}
				defer f.Close()
				o.ServerLog = f
			}
			rep, err := bench.Run(cmd.Context(), o)
			if rep != nil && len(rep.Rows) > 0 {
				fmt.Fprintln(cmd.OutOrStdout())
				rep.WriteTable(cmd.OutOrStdout())
			}
			return err
		},
	}
	f := cmd.Flags()
	f.StringVar(&o.Kappa, "kappa", "", "kappa binary whose server is measured (default: this one), e.g. an older build to compare")
	f.StringVar(&source, "source", ".", "Kappa source tree to build the probe function and the no-op from")
	f.StringVar(&o.Probe, "probe", "", "prebuilt static binary of testdata/functions/probe")
	f.StringVar(&o.Noop, "noop", "", "prebuilt static binary of testdata/functions/noop")
	f.StringSliceVar(&scenarios, "scenarios", nil, "scenarios to run, comma separated (default all: "+strings.Join(bench.Scenarios, ",")+")")
	f.IntVar(&o.ColdSamples, "cold", 50, "cold starts per variant")
	f.IntVar(&o.WarmSamples, "warm", 1000, "sequential warm invocations")
	f.IntVar(&o.Concurrency, "concurrency", 32, "clients of the throughput scenario")
	f.DurationVar(&o.ThroughputTime, "duration", 0, "how long the throughput scenario runs (default 5s)")
	f.IntVar(&o.ScaleOut, "scale", 200, "environments started at once in the scale-out scenario")
	f.IntVar(&o.ScaleRounds, "rounds", 3, "scale-out rounds")
	f.IntVar(&o.Density, "density", 200, "idle environments of the density scenario (e.g. 1000)")
	f.DurationVar(&o.IdleWindow, "idle-window", 0, "how long idle CPU is sampled (default 5s)")
	f.StringVar(&o.WorkDir, "work-dir", "", "scratch directory (default: a temporary one, removed after)")
	f.StringVar(&o.ProfileDir, "profile-dir", "", "save CPU profiles of the server during the cold starts here")
	f.StringVar(&serverLog, "server-log", "", "write the server's log to this file")
	f.StringArrayVar(&o.ServerArgs, "server-arg", nil, "extra flag for the measured server (repeatable), e.g. --server-arg=--spares=0")
	cmd.AddCommand(newBenchEchoCmd(), newBenchRelayCmd())
	return cmd
}

// newBenchEchoCmd is the bare HTTP baseline server, run by `kappa bench`
// in a child process.
func newBenchEchoCmd() *cobra.Command {
	var listen string
	cmd := &cobra.Command{
		Use:    "echo",
		Short:  "Serve the bare HTTP echo baseline (used by kappa bench)",
		Hidden: true,
		Args:   cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ln, err := net.Listen("tcp", listen)
			if err != nil {
				return err
			}
			fmt.Fprintln(cmd.OutOrStdout(), ln.Addr().String())
			return bench.ServeEcho(cmd.Context(), ln)
		},
	}
	cmd.Flags().StringVar(&listen, "listen", "127.0.0.1:0", "address to listen on")
	return cmd
}

// newBenchRelayCmd is the Runtime API floor (see bench.ServeRelay), run by
// `kappa bench` in a child process.
func newBenchRelayCmd() *cobra.Command {
	var (
		listen string
		opts   bench.RelayOptions
	)
	cmd := &cobra.Command{
		Use:    "relay -- RUNTIME [ARG...]",
		Short:  "Serve the Runtime API floor to processes of RUNTIME (used by kappa bench)",
		Hidden: true,
		Args:   cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			ln, err := net.Listen("tcp", listen)
			if err != nil {
				return err
			}
			fmt.Fprintln(cmd.OutOrStdout(), ln.Addr().String())
			opts.Argv = args
			return bench.ServeRelay(cmd.Context(), ln, opts)
		},
	}
	cmd.Flags().StringVar(&listen, "listen", "127.0.0.1:0", "address to listen on")
	cmd.Flags().IntVar(&opts.Runtimes, "runtimes", 1, "runtime processes to start")
	cmd.Flags().BoolVar(&opts.Cold, "cold", false, "start a runtime for every invocation instead, and kill it after")
	return cmd
}

// buildStatic builds pkg of the module at source into out with the Go
// toolchain, statically linked.
func buildStatic(ctx context.Context, source, pkg, out string) (string, error) {
	if _, err := os.Stat(filepath.Join(source, "go.mod")); err != nil {
		return "", usageError{errors.New("no Kappa source tree at --source " + source + ": run from the repository or pass --probe and --noop")}
	}
	c := exec.CommandContext(ctx, "go", "build", "-trimpath", "-o", out, pkg)
	c.Dir = source
	c.Env = append(os.Environ(), "CGO_ENABLED=0")
	if b, err := c.CombinedOutput(); err != nil {
		return "", fmt.Errorf("build %s: %v\n%s", pkg, err, b)
	}
	return out, nil
}
