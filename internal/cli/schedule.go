package cli

import (
	"fmt"
	"net/url"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/lambda"
	"github.com/spf13/cobra"
)

func newScheduleCmd() *cobra.Command {
	var endpoint string
	cmd := &cobra.Command{
		Use:   "schedule",
		Short: "Invoke functions on a schedule: rate(…), cron(…) or at(…) expressions",
	}
	cmd.PersistentFlags().StringVar(&endpoint, "endpoint", envOr("KAPPA_ENDPOINT", "http://127.0.0.1:9070"), "Kappa server URL (env KAPPA_ENDPOINT)")

	var expr, fn, qualifier, zone, input, start, end, description string
	var disabled bool
	create := &cobra.Command{
		Use:   "create NAME --expression EXPR --function FUNCTION",
		Short: "Create a schedule that invokes a function asynchronously",
		Example: `  kappa schedule create nightly --expression 'cron(0 3 * * ? *)' --timezone Europe/Paris --function report
  kappa schedule create poll --expression 'rate(5 minutes)' --function poller --input '{"source":"schedule"}'`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			arn := fn
			if !strings.HasPrefix(fn, "arn:") {
				out, err := lambdaClient(endpoint).GetFunction(cmd.Context(), &lambda.GetFunctionInput{FunctionName: aws.String(fn)})
				if err != nil {
					return err
				}
				arn = aws.ToString(out.Configuration.FunctionArn)
			}
			if qualifier != "" {
				arn += ":" + qualifier
			}
			body := map[string]any{
				"ScheduleExpression":         expr,
				"ScheduleExpressionTimezone": zone,
				"Description":                description,
				"FlexibleTimeWindow":         map[string]string{"Mode": "OFF"},
			}
			target := map[string]any{"Arn": arn}
			if input != "" {
				target["Input"] = input
			}
			body["Target"] = target
			if disabled {
				body["State"] = "DISABLED"
			}
			for key, v := range map[string]string{"StartDate": start, "EndDate": end} {
				if v == "" {
					continue
				}
				t, err := time.Parse(time.RFC3339, v)
				if err != nil {
					return usageError{fmt.Errorf("--%s %q: want RFC 3339, e.g. 2030-01-01T09:00:00Z", strings.ToLower(key[:len(key)-4]), v)}
				}
				body[key] = t.Unix()
			}
			var out map[string]any
			if err := callAPI(cmd.Context(), endpoint, "POST", "/schedules/"+url.PathEscape(args[0]), body, &out); err != nil {
				return err
			}
			return printJSON(cmd, out)
		},
	}
	f := create.Flags()
	f.StringVar(&expr, "expression", "", "rate(5 minutes), cron(0 12 * * ? *) or at(2030-01-01T09:00:00) (required)")
	f.StringVar(&fn, "function", "", "function name or ARN (required)")
	f.StringVar(&qualifier, "qualifier", "", "version or alias to invoke")
	f.StringVar(&zone, "timezone", "UTC", "IANA time zone of cron and at expressions")
	f.StringVar(&input, "input", "", "JSON payload (default: an EventBridge Scheduled Event)")
	f.StringVar(&start, "start", "", "first possible tick, RFC 3339 (rate schedules count from it)")
	f.StringVar(&end, "end", "", "last possible tick, RFC 3339")
	f.StringVar(&description, "description", "", "description")
	f.BoolVar(&disabled, "disabled", false, "create the schedule disabled")
	create.MarkFlagRequired("expression")
	create.MarkFlagRequired("function")

	list := &cobra.Command{
		Use: "list", Short: "List schedules", Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			var out struct {
				Schedules []struct {
					Name, State, ScheduleExpression string
					Target                          struct{ Arn string }
				}
			}
			if err := callAPI(cmd.Context(), endpoint, "GET", "/schedules", nil, &out); err != nil {
				return err
			}
			w := cmd.OutOrStdout()
			fmt.Fprintf(w, "%-30s %-9s %-28s %s\n", "NAME", "STATE", "EXPRESSION", "TARGET")
			for _, s := range out.Schedules {
				fmt.Fprintf(w, "%-30s %-9s %-28s %s\n", s.Name, s.State, s.ScheduleExpression, s.Target.Arn)
			}
			return nil
		},
	}
	get := &cobra.Command{
		Use: "get NAME", Short: "Show a schedule, with its last and next tick", Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			var out map[string]any
			if err := callAPI(cmd.Context(), endpoint, "GET", "/schedules/"+url.PathEscape(args[0]), nil, &out); err != nil {
				return err
			}
			return printJSON(cmd, out)
		},
	}
	del := &cobra.Command{
		Use: "delete NAME", Short: "Delete a schedule", Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return callAPI(cmd.Context(), endpoint, "DELETE", "/schedules/"+url.PathEscape(args[0]), nil, nil)
		},
	}
	cmd.AddCommand(create, list, get, del)
	return cmd
}
