package cli

import (
	"fmt"
	"net/url"
	"time"

	"github.com/spf13/cobra"
)

const esmPath = "/2015-03-31/event-source-mappings"

func newESMCmd() *cobra.Command {
	var endpoint string
	cmd := &cobra.Command{
		Use:   "esm",
		Short: "Event source mappings: feed a Kappa queue to a function in SQS-shaped batches",
	}
	cmd.PersistentFlags().StringVar(&endpoint, "endpoint", envOr("KAPPA_ENDPOINT", "http://127.0.0.1:9070"), "Kappa server URL (env KAPPA_ENDPOINT)")

	// settings are the flags create and update share.
	type settings struct {
		batch, window, concurrency int
		reportFailures             bool
	}
	addSettings := func(c *cobra.Command, s *settings) {
		f := c.Flags()
		f.IntVar(&s.batch, "batch-size", 0, "most messages per batch, 1–10000 (default 10; over 10 needs --window)")
		f.IntVar(&s.window, "window", 0, "seconds to gather a batch, 0–300 (MaximumBatchingWindowInSeconds)")
		f.IntVar(&s.concurrency, "max-concurrency", 0, "batches at once, 2–1000 (ScalingConfig.MaximumConcurrency; default one at a time)")
		f.BoolVar(&s.reportFailures, "report-failures", false, "the function answers batchItemFailures (ReportBatchItemFailures)")
	}
	// body puts the flags the user set into a request body.
	body := func(c *cobra.Command, s *settings, b map[string]any) {
		f := c.Flags()
		if f.Changed("batch-size") {
			b["BatchSize"] = s.batch
		}
		if f.Changed("window") {
			b["MaximumBatchingWindowInSeconds"] = s.window
		}
		if f.Changed("max-concurrency") {
			b["ScalingConfig"] = map[string]int{"MaximumConcurrency": s.concurrency}
		}
		if f.Changed("report-failures") {
			types := []string{}
			if s.reportFailures {
				types = append(types, "ReportBatchItemFailures")
			}
			b["FunctionResponseTypes"] = types
		}
	}

	var fn, queue string
	var disabled bool
	var cs settings
	create := &cobra.Command{
		Use:   "create --function FUNCTION --queue QUEUE",
		Short: "Create a mapping from a Kappa queue to a function",
		Example: `  kappa esm create --function worker --queue jobs --batch-size 50 --window 2 --report-failures
  kappa queue send jobs '{"job":1}'`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			var q struct{ Arn string }
			if err := callAPI(cmd.Context(), endpoint, "GET", "/kappa/queues/"+url.PathEscape(queue), nil, &q); err != nil {
				return err
			}
			b := map[string]any{"FunctionName": fn, "EventSourceArn": q.Arn}
			if disabled {
				b["Enabled"] = false
			}
			body(cmd, &cs, b)
			var out map[string]any
			if err := callAPI(cmd.Context(), endpoint, "POST", esmPath, b, &out); err != nil {
				return err
			}
			return printJSON(cmd, out)
		},
	}
	create.Flags().StringVar(&fn, "function", "", "function name or ARN, optionally qualified (required)")
	create.Flags().StringVar(&queue, "queue", "", "Kappa queue name (required; `kappa queue create` makes one)")
	create.Flags().BoolVar(&disabled, "disabled", false, "create the mapping disabled")
	addSettings(create, &cs)
	create.MarkFlagRequired("function")
	create.MarkFlagRequired("queue")

	var us settings
	var enable, disable bool
	var ufn string
	update := &cobra.Command{
		Use:   "update UUID",
		Short: "Change a mapping: enable or disable it, its function or its batching",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if enable && disable {
				return usageError{fmt.Errorf("--enable and --disable exclude each other")}
			}
			b := map[string]any{}
			if enable || disable {
				b["Enabled"] = enable
			}
			if ufn != "" {
				b["FunctionName"] = ufn
			}
			body(cmd, &us, b)
			var out map[string]any
			if err := callAPI(cmd.Context(), endpoint, "PUT", esmPath+"/"+url.PathEscape(args[0]), b, &out); err != nil {
				return err
			}
			return printJSON(cmd, out)
		},
	}
	update.Flags().BoolVar(&enable, "enable", false, "enable the mapping")
	update.Flags().BoolVar(&disable, "disable", false, "disable the mapping")
	update.Flags().StringVar(&ufn, "function", "", "invoke this function (or version, alias) instead")
	addSettings(update, &us)

	var lfn string
	list := &cobra.Command{
		Use: "list", Short: "List mappings", Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			w := cmd.OutOrStdout()
			fmt.Fprintf(w, "%-36s %-9s %-5s %-40s %s\n", "UUID", "STATE", "BATCH", "SOURCE", "FUNCTION")
			marker := ""
			for {
				q := url.Values{}
				if lfn != "" {
					q.Set("FunctionName", lfn)
				}
				if marker != "" {
					q.Set("Marker", marker)
				}
				var out struct {
					EventSourceMappings []struct {
						UUID, State, EventSourceArn, FunctionArn string
						BatchSize                                int
					}
					NextMarker *string
				}
				if err := callAPI(cmd.Context(), endpoint, "GET", esmPath+"?"+q.Encode(), nil, &out); err != nil {
					return err
				}
				for _, m := range out.EventSourceMappings {
					fmt.Fprintf(w, "%-36s %-9s %-5d %-40s %s\n", m.UUID, m.State, m.BatchSize, m.EventSourceArn, m.FunctionArn)
				}
				if out.NextMarker == nil {
					return nil
				}
				marker = *out.NextMarker
			}
		},
	}
	list.Flags().StringVar(&lfn, "function", "", "only the mappings of this function")

	get := &cobra.Command{
		Use: "get UUID", Short: "Show a mapping, with its last processing result", Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			var out map[string]any
			if err := callAPI(cmd.Context(), endpoint, "GET", esmPath+"/"+url.PathEscape(args[0]), nil, &out); err != nil {
				return err
			}
			if lm, ok := out["LastModified"].(float64); ok {
				out["LastModified"] = time.UnixMilli(int64(lm * 1000)).UTC().Format(time.RFC3339)
			}
			return printJSON(cmd, out)
		},
	}
	del := &cobra.Command{
		Use: "delete UUID", Short: "Delete a mapping (the queue keeps its messages)", Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return callAPI(cmd.Context(), endpoint, "DELETE", esmPath+"/"+url.PathEscape(args[0]), nil, nil)
		},
	}
	cmd.AddCommand(create, update, list, get, del)
	return cmd
}
