package cli

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/lambda"
	"github.com/aws/aws-sdk-go-v2/service/lambda/types"
	"github.com/spf13/cobra"
)

func newInvokeCmd() *cobra.Command {
	var endpoint, payload, payloadFile, qualifier string
	var tail bool
	var o output
	cmd := &cobra.Command{
		Use:   "invoke FUNCTION",
		Short: "Invoke a function and print its result",
		Long: `Invoke a function synchronously and print its response payload.

The payload is --payload, or the file --payload-file names ("-" for stdin),
or stdin when it is piped; without any of them it is {}.

Exit status: 0 when the function succeeded, 3 when it ran and failed (its
error document is printed), 1 when the invocation could not run, 2 for a
wrong command line.`,
		Example: `  kappa invoke hello --payload '{"name":"world"}'
  echo '{"name":"world"}' | kappa invoke hello --tail
  kappa invoke hello --qualifier live --payload-file event.json`,
		Args: usageArgs(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := o.check(); err != nil {
				return err
			}
			body, err := invokePayload(cmd, payload, payloadFile)
			if err != nil {
				return err
			}
			in := &lambda.InvokeInput{FunctionName: aws.String(args[0]), Payload: body}
			if qualifier != "" {
				in.Qualifier = aws.String(qualifier)
			}
			if tail {
				in.LogType = types.LogTypeTail
			}
			out, err := lambdaClient(endpoint).Invoke(cmd.Context(), in)
			if err != nil {
				return err
			}
			var logs []byte
			if out.LogResult != nil {
				logs, _ = base64.StdEncoding.DecodeString(*out.LogResult)
			}
			if o.json() {
				v := map[string]any{"StatusCode": out.StatusCode, "ExecutedVersion": aws.ToString(out.ExecutedVersion)}
				if json.Valid(out.Payload) && len(out.Payload) > 0 {
					v["Payload"] = json.RawMessage(out.Payload)
				} else {
					v["Payload"] = string(out.Payload)
				}
				if out.FunctionError != nil {
					v["FunctionError"] = *out.FunctionError
				}
				if tail {
					v["Log"] = string(logs)
				}
				if err := printJSON(cmd, v); err != nil {
					return err
				}
			} else {
				if tail {
					fmt.Fprint(cmd.ErrOrStderr(), string(logs))
				}
				fmt.Fprintln(cmd.OutOrStdout(), string(out.Payload))
			}
			if out.FunctionError != nil {
				var doc struct {
					ErrorType string `json:"errorType"`
				}
				json.Unmarshal(out.Payload, &doc)
				return functionError{kind: *out.FunctionError, errorType: doc.ErrorType}
			}
			return nil
		},
	}
	endpointFlag(cmd, &endpoint)
	cmd.ValidArgsFunction = completeFunctions(&endpoint)
	f := cmd.Flags()
	f.StringVarP(&payload, "payload", "p", "", "JSON payload")
	f.StringVarP(&payloadFile, "payload-file", "f", "", "read the payload from a file, or - for stdin")
	f.StringVarP(&qualifier, "qualifier", "q", "", "version or alias")
	f.BoolVar(&tail, "tail", false, "print the last 4 KB of the invocation's log (to stderr; in --output json as Log)")
	o.register(cmd)
	return cmd
}

// invokePayload reads the payload from --payload, --payload-file or a
// piped stdin.
func invokePayload(cmd *cobra.Command, payload, file string) ([]byte, error) {
	if payload != "" && file != "" {
		return nil, usageError{fmt.Errorf("give the payload with --payload or --payload-file, not both")}
	}
	var body []byte
	switch {
	case payload != "":
		body = []byte(payload)
	case file == "-" || file == "" && stdinPiped(cmd.InOrStdin()):
		b, err := io.ReadAll(cmd.InOrStdin())
		if err != nil {
			return nil, fmt.Errorf("read the payload from stdin: %w", err)
		}
		body = b
	case file != "":
		b, err := os.ReadFile(file)
		if err != nil {
			return nil, usageError{fmt.Errorf("--payload-file: %w", err)}
		}
		body = b
	}
	if strings.TrimSpace(string(body)) == "" {
		return []byte("{}"), nil
	}
	if !json.Valid(body) {
		return nil, usageError{fmt.Errorf("the payload is not valid JSON (Lambda accepts JSON payloads only): %.80q", body)}
	}
	return body, nil
}

// lambdaClient returns an SDK client for a Kappa endpoint. Kappa does not
// check signatures yet, so static placeholder credentials are used when the
// environment has none. It does not retry: a refused connection is
// reported at once.
func lambdaClient(endpoint string) *lambda.Client {
	region := envOr("AWS_REGION", envOr("AWS_DEFAULT_REGION", "us-east-1"))
	creds := credentials.NewStaticCredentialsProvider(
		envOr("AWS_ACCESS_KEY_ID", "kappa"), envOr("AWS_SECRET_ACCESS_KEY", "kappa"), os.Getenv("AWS_SESSION_TOKEN"))
	return lambda.New(lambda.Options{
		Region:       region,
		Credentials:  creds,
		BaseEndpoint: aws.String(endpoint),
		Retryer:      aws.NopRetryer{},
	})
}
