package cli

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"time"

	"github.com/spf13/cobra"

	"github.com/kappa-run/kappa/internal/logs"
)

func newLogsCmd() *cobra.Command {
	var endpoint, since, until, filter, request, stream string
	var follow bool
	var limit int
	var o output
	cmd := &cobra.Command{
		Use:   "logs FUNCTION",
		Short: "Print a function's logs, or follow them",
		Long: `Print the lines a function's environments wrote, with the platform's START,
END and REPORT lines, oldest first. Lines are kept per log stream (one per
execution environment) for the server's --log-retention.

--since and --until take a duration ago (10m, 2h, 1d), an RFC 3339 time or
Unix milliseconds. --output table prints the time and the line, raw only the
line, json one JSON object per line (time, stream, requestId, type, message).`,
		Example: `  kappa logs hello --since 10m
  kappa logs hello --follow --filter ERROR
  kappa logs hello --request 8f5c…  --output json`,
		Args: usageArgs(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := o.check("raw"); err != nil {
				return err
			}
			fn := args[0]
			if !logs.ValidFunction(fn) {
				return usageError{fmt.Errorf("%q is not a function name", fn)}
			}
			now := time.Now()
			for flag, v := range map[string]string{"--since": since, "--until": until} {
				if _, err := logs.ParseTime(v, now); err != nil {
					return usageError{fmt.Errorf("%s %q: %w", flag, v, err)}
				}
			}
			if limit < 0 {
				return usageError{errors.New("--limit must not be negative")}
			}
			if limit > logs.MaxLimit {
				return usageError{fmt.Errorf("--limit must be at most %d", logs.MaxLimit)}
			}
			q := url.Values{}
			for k, v := range map[string]string{"since": since, "until": until, "filter": filter, "request": request, "stream": stream} {
				if v != "" {
					q.Set(k, v)
				}
			}
			if limit > 0 {
				q.Set("limit", fmt.Sprint(limit))
			}
			if follow {
				q.Set("follow", "1")
			}
			resp, err := httpGet(cmd.Context(), endpoint, "/kappa/logs/"+url.PathEscape(fn)+"?"+q.Encode())
			if err != nil {
				return err
			}
			defer resp.Body.Close()
			w := bufio.NewWriter(cmd.OutOrStdout())
			sc := bufio.NewScanner(resp.Body)
			sc.Buffer(make([]byte, 64<<10), 2<<20)
			for sc.Scan() {
				line := sc.Bytes()
				if o.json() {
					w.Write(line)
					w.WriteByte('\n')
				} else {
					var e logs.Event
					if err := json.Unmarshal(line, &e); err != nil {
						return fmt.Errorf("read the log API's answer: %w", err)
					}
					if o.format == "table" {
						w.WriteString(e.Time.Local().Format("2006-01-02 15:04:05.000") + "  ")
					}
					w.WriteString(e.Message)
					w.WriteByte('\n')
				}
				if follow {
					w.Flush()
				}
			}
			if err := sc.Err(); err != nil && cmd.Context().Err() == nil {
				return fmt.Errorf("read logs: %w", err)
			}
			return w.Flush()
		},
	}
	endpointFlag(cmd, &endpoint)
	cmd.ValidArgsFunction = completeFunctions(&endpoint)
	f := cmd.Flags()
	f.BoolVarP(&follow, "follow", "f", false, "keep printing new lines as they are written (Ctrl-C ends)")
	f.StringVar(&since, "since", "", "only lines since then: 10m, 2h, 1d, an RFC 3339 time or Unix ms (default: all kept)")
	f.StringVar(&until, "until", "", "only lines until then (same forms as --since)")
	f.StringVar(&filter, "filter", "", "only lines containing this text (case-sensitive)")
	f.StringVar(&request, "request", "", "only the lines of this request id")
	f.StringVar(&stream, "stream", "", "only the lines of this log stream")
	f.IntVarP(&limit, "limit", "n", 0, "only the newest N lines (before following)")
	o.register(cmd, "raw")
	return cmd
}
