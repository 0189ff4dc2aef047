package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/spf13/cobra"
)

// callAPI sends a JSON request to a Kappa endpoint and decodes the JSON
// answer into out (when not nil); an AWS-style error becomes a Go error.
func callAPI(ctx context.Context, endpoint, method, path string, body, out any) error {
	var rd io.Reader
	switch b := body.(type) {
	case nil:
	case []byte:
		rd = bytes.NewReader(b)
	default:
		enc, err := json.Marshal(b)
		if err != nil {
			return err
		}
		rd = bytes.NewReader(enc)
	}
	req, err := http.NewRequestWithContext(ctx, method, strings.TrimRight(endpoint, "/")+path, rd)
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		return err
	}
	if resp.StatusCode >= 300 {
		var e struct {
			Message      string `json:"Message"`
			LowerMessage string `json:"message"`
		}
		json.Unmarshal(data, &e)
		msg := e.Message
		if msg == "" {
			msg = e.LowerMessage
		}
		if msg == "" {
			msg = strings.TrimSpace(string(data))
		}
		return fmt.Errorf("%s: %s", resp.Header.Get("X-Amzn-ErrorType"), msg)
	}
	if out != nil && len(data) > 0 {
		return json.Unmarshal(data, out)
	}
	return nil
}

func newQueueCmd() *cobra.Command {
	var endpoint string
	cmd := &cobra.Command{Use: "queue", Short: "Kappa's durable queues, where asynchronous invocation destinations deliver"}
	cmd.PersistentFlags().StringVar(&endpoint, "endpoint", envOr("KAPPA_ENDPOINT", "http://127.0.0.1:9070"), "Kappa server URL (env KAPPA_ENDPOINT)")

	list := &cobra.Command{
		Use: "list", Short: "List queues", Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			var out struct {
				Queues []struct {
					Name, Arn    string
					Messages     uint64
					LastSequence uint64
				}
			}
			if err := callAPI(cmd.Context(), endpoint, "GET", "/kappa/queues", nil, &out); err != nil {
				return err
			}
			w := cmd.OutOrStdout()
			fmt.Fprintf(w, "%-30s %-10s %-10s %s\n", "NAME", "MESSAGES", "LAST SEQ", "ARN")
			for _, q := range out.Queues {
				fmt.Fprintf(w, "%-30s %-10d %-10d %s\n", q.Name, q.Messages, q.LastSequence, q.Arn)
			}
			return nil
		},
	}
	create := &cobra.Command{
		Use: "create NAME", Short: "Create a queue (destinations create theirs when first used)", Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			var out map[string]any
			if err := callAPI(cmd.Context(), endpoint, "PUT", "/kappa/queues/"+url.PathEscape(args[0]), nil, &out); err != nil {
				return err
			}
			return printJSON(cmd, out)
		},
	}
	del := &cobra.Command{
		Use: "delete NAME", Short: "Delete a queue and its messages", Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return callAPI(cmd.Context(), endpoint, "DELETE", "/kappa/queues/"+url.PathEscape(args[0]), nil, nil)
		},
	}
	send := &cobra.Command{
		Use: "send NAME MESSAGE", Short: "Append a message to a queue", Args: cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			var out struct{ Sequence uint64 }
			if err := callAPI(cmd.Context(), endpoint, "POST", "/kappa/queues/"+url.PathEscape(args[0])+"/messages", []byte(args[1]), &out); err != nil {
				return err
			}
			fmt.Fprintln(cmd.OutOrStdout(), out.Sequence)
			return nil
		},
	}
	var follow, withSeq bool
	var from uint64
	var limit int
	tail := &cobra.Command{
		Use:   "tail NAME",
		Short: "Print a queue's messages, one JSON document a line (--follow waits for new ones)",
		Long: "Print a queue's messages, one JSON document a line, oldest first. Reading does not consume:\n" +
			"--from N starts after sequence number N. With --follow, wait for new messages until interrupted.",
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return tailQueue(cmd, endpoint, args[0], from, limit, follow, withSeq)
		},
	}
	f := tail.Flags()
	f.BoolVarP(&follow, "follow", "f", false, "keep waiting for new messages")
	f.Uint64Var(&from, "from", 0, "start after this sequence number")
	f.IntVar(&limit, "max", 0, "stop after this many messages (0: all)")
	f.BoolVar(&withSeq, "seq", false, "prefix each message with its sequence number and time")
	cmd.AddCommand(list, create, del, send, tail)
	return cmd
}

func tailQueue(cmd *cobra.Command, endpoint, name string, after uint64, limit int, follow, withSeq bool) error {
	ctx := cmd.Context()
	w := cmd.OutOrStdout()
	printed := 0
	for {
		wait := "0"
		if follow {
			wait = "20"
		}
		var out struct {
			Messages []struct {
				Sequence uint64
				Time     string
				Body     json.RawMessage
			}
			LastSequence uint64
		}
		path := fmt.Sprintf("/kappa/queues/%s/messages?after=%d&max=500&wait=%s", url.PathEscape(name), after, wait)
		err := callAPI(ctx, endpoint, "GET", path, nil, &out)
		if ctx.Err() != nil {
			return nil // interrupted while following
		}
		if err != nil {
			return err
		}
		for _, m := range out.Messages {
			var line bytes.Buffer
			if json.Compact(&line, m.Body) != nil {
				line.Write(m.Body)
			}
			if withSeq {
				fmt.Fprintf(w, "%d\t%s\t%s\n", m.Sequence, m.Time, line.Bytes())
			} else {
				fmt.Fprintf(w, "%s\n", line.Bytes())
			}
			after = m.Sequence
			if printed++; limit > 0 && printed >= limit {
				return nil
			}
		}
		if !follow && len(out.Messages) == 0 {
			return nil
		}
		if len(out.Messages) == 0 {
			select {
			case <-ctx.Done():
				return nil
			case <-time.After(100 * time.Millisecond):
			}
		}
	}
}
