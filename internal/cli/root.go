package cli

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"

	"github.com/spf13/cobra"

	"github.com/kappa-run/kappa/internal/envinit"
)

// Version is set at build time with -ldflags "-X ...cli.Version=v1.2.3".
var Version = "dev"

// Exit codes a script can rely on (and exitFunction, 3, in output.go).
const (
	exitOK    = 0
	exitError = 1
	exitUsage = 2
)

type usageError struct{ error }

// Main runs the CLI with args and returns the process exit code.
func Main(args []string) int {
	if len(os.Args) > 0 && filepath.Base(os.Args[0]) == envinit.InitName {
		return envinit.Main(args)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	root := newRoot()
	if len(os.Args) > 0 && filepath.Base(os.Args[0]) == rieProgram {
		args = append([]string{"rie"}, args...)
	}
	root.SetArgs(args)
	err := root.ExecuteContext(ctx)
	if err == nil {
		return exitOK
	}
	fmt.Fprintln(os.Stderr, "kappa:", explain(err))
	return exitCode(err)
}

func newRoot() *cobra.Command {
	root := &cobra.Command{
		Use:   "kappa",
		Short: "Kappa runs AWS Lambda container-image functions on your own machines",
		Long: `Kappa runs AWS Lambda container-image functions on your own machines.

Exit status: 0 success, 1 error, 2 wrong command line (flags, arguments),
3 the invoked function failed (kappa invoke). Client commands talk to
--endpoint or KAPPA_ENDPOINT (default http://127.0.0.1:9070).`,
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.SetFlagErrorFunc(func(c *cobra.Command, err error) error { return usageError{err} })
	root.AddCommand(newServerCmd(), newPushCmd(), newInvokeCmd(), newFnCmd(), newVersionCmd())
	root.AddCommand(newRIECmd())
	root.AddCommand(newQueueCmd(), newScheduleCmd(), newESMCmd())
	root.AddCommand(newAliasCmd(), newLogsCmd())
	root.AddCommand(newRegistryCmd())
	root.AddCommand(newBenchCmd())
	return root
}

func newVersionCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "Print the version",
		Args:  cobra.NoArgs,
		Run: func(cmd *cobra.Command, _ []string) {
			fmt.Fprintln(cmd.OutOrStdout(), "kappa", Version)
		},
	}
}

// envOr returns the environment variable key, or def when unset.
func envOr(key, def string) string {
	if v, ok := os.LookupEnv(key); ok {
		return v
	}
	return def
}
