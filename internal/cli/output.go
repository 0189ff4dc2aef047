package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strings"
	"syscall"
	"text/tabwriter"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/lambda"
	"github.com/aws/smithy-go"
	"github.com/spf13/cobra"
)

// Exit codes (besides exitOK, exitError and exitUsage in root.go):
// exitFunction is returned by `kappa invoke` when the invocation ran but
// the function failed (X-Amz-Function-Error set); its payload is still
// printed.
const exitFunction = 3

// functionError is an invocation that ran and failed.
type functionError struct{ kind, errorType string }

func (e functionError) Error() string {
	if e.errorType != "" {
		return fmt.Sprintf("the function failed (%s: %s)", e.kind, e.errorType)
	}
	return fmt.Sprintf("the function failed (%s)", e.kind)
}

// exitCode maps an error to the process exit code: 2 for wrong usage
// (flags, arguments), 3 for a function error, 1 for anything else.
func exitCode(err error) int {
	var ue usageError
	var fe functionError
	switch {
	case err == nil:
		return exitOK
	case errors.As(err, &ue):
		return exitUsage
	case errors.As(err, &fe):
		return exitFunction
	}
	// Errors cobra makes of a wrong command line.
	msg := err.Error()
	for _, p := range []string{"unknown command", "unknown flag", "unknown shorthand flag", "accepts ",
		"requires at least", "requires at most", "required flag(s)", "invalid argument", "flag needs an argument"} {
		if strings.HasPrefix(msg, p) {
			return exitUsage
		}
	}
	return exitError
}

// explain renders an error for a person: what went wrong and what to do
// next. The cause stays in the text for scripts and bug reports.
func explain(err error) string {
	var ae smithy.APIError
	switch {
	case errors.Is(err, syscall.ECONNREFUSED):
		return "cannot reach the Kappa server (connection refused): is `kappa server` running? " +
			"Start it with `kappa server` (or `make up`), or point --endpoint / KAPPA_ENDPOINT at it.\n  cause: " + err.Error()
	case isDNSError(err):
		return "cannot resolve the Kappa server's host name: check --endpoint / KAPPA_ENDPOINT.\n  cause: " + err.Error()
	case errors.Is(err, context.Canceled):
		return "interrupted"
	case errors.As(err, &ae):
		msg := ae.ErrorCode() + ": " + ae.ErrorMessage()
		switch ae.ErrorCode() {
		case "ResourceNotFoundException":
			msg += "\n  hint: `kappa fn list` shows the functions, `kappa alias list FUNCTION` a function's aliases"
		case "ResourceConflictException":
			msg += "\n  hint: the function is being created or updated; retry in a moment (`kappa fn get NAME` shows its state)"
		case "ResourceNotReadyException":
			msg += "\n  hint: wait until the function is Active (`kappa fn get NAME`), or create it with --wait"
		case "TooManyRequestsException":
			msg += "\n  hint: the function or account is at its concurrency limit; retry later or raise the reserved concurrency"
		case "InvalidParameterValueException", "ValidationException":
			msg += "\n  hint: see `kappa help` for the command's flags"
		}
		return msg
	}
	return err.Error()
}

func isDNSError(err error) bool {
	var de *net.DNSError
	return errors.As(err, &de)
}

// output is the --output flag: table (human, the default) or json.
type output struct{ format string }

func (o *output) register(cmd *cobra.Command, extra ...string) {
	choices := append([]string{"table", "json"}, extra...)
	cmd.Flags().StringVarP(&o.format, "output", "o", "table", "output format: "+strings.Join(choices, ", "))
	cmd.RegisterFlagCompletionFunc("output", cobra.FixedCompletions(choices, cobra.ShellCompDirectiveNoFileComp))
}

func (o *output) check(extra ...string) error {
	for _, c := range append([]string{"table", "json"}, extra...) {
		if o.format == c {
			return nil
		}
	}
	return usageError{fmt.Errorf("--output %q: want table or json", o.format)}
}

func (o *output) json() bool { return o.format == "json" }

// table writes aligned columns.
type table struct{ tw *tabwriter.Writer }

func newTable(w io.Writer, headers ...string) *table {
	t := &table{tw: tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)}
	t.row(headers...)
	return t
}

func (t *table) row(cols ...string) {
	for i, c := range cols {
		cols[i] = strings.NewReplacer("\t", " ", "\n", " ").Replace(c)
	}
	fmt.Fprintln(t.tw, strings.Join(cols, "\t"))
}

func (t *table) flush() error { return t.tw.Flush() }

// fields writes "key: value" lines, aligned.
func fields(w io.Writer, kv ...string) error {
	tw := tabwriter.NewWriter(w, 0, 0, 1, ' ', 0)
	for i := 0; i+1 < len(kv); i += 2 {
		if kv[i+1] == "" {
			continue
		}
		fmt.Fprintf(tw, "%s:\t%s\n", kv[i], kv[i+1])
	}
	return tw.Flush()
}

// endpointFlag registers --endpoint on cmd (persistent: for subcommands
// too).
func endpointFlag(cmd *cobra.Command, p *string) {
	cmd.PersistentFlags().StringVar(p, "endpoint", envOr("KAPPA_ENDPOINT", "http://127.0.0.1:9070"), "Kappa server URL (env KAPPA_ENDPOINT)")
}

// usageArgs makes cobra's argument checks usage errors (exit 2).
func usageArgs(check cobra.PositionalArgs) cobra.PositionalArgs {
	return func(cmd *cobra.Command, args []string) error {
		if err := check(cmd, args); err != nil {
			return usageError{fmt.Errorf("%w (usage: %s)", err, cmd.UseLine())}
		}
		return nil
	}
}

// completeFunctions completes a function name from the server, for the
// first argument.
func completeFunctions(endpoint *string) cobra.CompletionFunc {
	return func(cmd *cobra.Command, args []string, toComplete string) ([]string, cobra.ShellCompDirective) {
		if len(args) > 0 {
			return nil, cobra.ShellCompDirectiveNoFileComp
		}
		p := lambda.NewListFunctionsPaginator(lambdaClient(*endpoint), &lambda.ListFunctionsInput{})
		var names []string
		for p.HasMorePages() && len(names) < 1000 {
			page, err := p.NextPage(cmd.Context())
			if err != nil {
				break
			}
			for _, f := range page.Functions {
				if n := aws.ToString(f.FunctionName); strings.HasPrefix(n, toComplete) {
					names = append(names, n)
				}
			}
		}
		return names, cobra.ShellCompDirectiveNoFileComp
	}
}

// httpGet is a GET of a Kappa API path, erroring on a non-2xx status with
// the server's message.
func httpGet(ctx context.Context, endpoint, path string) (*http.Response, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, strings.TrimSuffix(endpoint, "/")+path, nil)
	if err != nil {
		return nil, usageError{fmt.Errorf("--endpoint %q: %w", endpoint, err)}
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode/100 != 2 {
		defer resp.Body.Close()
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
		msg := strings.TrimSpace(string(b))
		if i := strings.Index(msg, `"message":"`); i >= 0 {
			msg = strings.TrimSuffix(strings.TrimSuffix(msg[i+len(`"message":"`):], "}"), `"`)
		}
		return nil, fmt.Errorf("GET %s: %s: %s", path, resp.Status, msg)
	}
	return resp, nil
}

// stdinPiped reports whether stdin is a pipe or file rather than a
// terminal.
func stdinPiped(r io.Reader) bool {
	f, ok := r.(*os.File)
	if !ok {
		return r != nil
	}
	st, err := f.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice == 0
}

// groupRun makes a command that only groups subcommands print its help
// when run alone, and reject an unknown subcommand as a usage error.
func groupRun(cmd *cobra.Command) {
	cmd.Args = cobra.ArbitraryArgs
	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		if len(args) > 0 {
			return usageError{fmt.Errorf("unknown command %q for %q (see `%s --help`)", args[0], cmd.CommandPath(), cmd.CommandPath())}
		}
		return cmd.Help()
	}
}
