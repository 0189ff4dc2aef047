package cli

import (
	"encoding/base64"
	"fmt"
	"io"
	"os"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/lambda"
	"github.com/aws/aws-sdk-go-v2/service/lambda/types"
	"github.com/spf13/cobra"
)

func newInvokeCmd() *cobra.Command {
	var endpoint, payload, payloadFile, qualifier string
	var tail bool
	cmd := &cobra.Command{
		Use:   "invoke FUNCTION",
		Short: "Invoke a function and print its result (payload from --payload, --payload-file or stdin)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			body := []byte(payload)
			switch {
			case payloadFile == "-":
				b, err := io.ReadAll(cmd.InOrStdin())
				if err != nil {
					return err
				}
				body = b
			case payloadFile != "":
				b, err := os.ReadFile(payloadFile)
				if err != nil {
					return err
				}
				body = b
			}
			client := lambdaClient(endpoint)
			in := &lambda.InvokeInput{FunctionName: aws.String(args[0]), Payload: body}
			if qualifier != "" {
				in.Qualifier = aws.String(qualifier)
			}
			if tail {
				in.LogType = types.LogTypeTail
			}
			out, err := client.Invoke(cmd.Context(), in)
			if err != nil {
				return err
			}
			if tail && out.LogResult != nil {
				logs, _ := base64.StdEncoding.DecodeString(*out.LogResult)
				fmt.Fprint(cmd.ErrOrStderr(), string(logs))
			}
			fmt.Fprintln(cmd.OutOrStdout(), string(out.Payload))
			if out.FunctionError != nil {
				return fmt.Errorf("function error (%s)", *out.FunctionError)
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&endpoint, "endpoint", envOr("KAPPA_ENDPOINT", "http://127.0.0.1:9070"), "Kappa server URL (env KAPPA_ENDPOINT)")
	f.StringVar(&payload, "payload", "{}", "JSON payload")
	f.StringVar(&payloadFile, "payload-file", "", "read the payload from a file, or - for stdin")
	f.StringVar(&qualifier, "qualifier", "", "version or alias")
	f.BoolVar(&tail, "tail", false, "print the last 4 KB of the invocation's log to stderr")
	return cmd
}

// lambdaClient returns an SDK client for a Kappa endpoint. Kappa does not
// check signatures yet, so static placeholder credentials are used when the
// environment has none.
func lambdaClient(endpoint string) *lambda.Client {
	region := envOr("AWS_REGION", envOr("AWS_DEFAULT_REGION", "us-east-1"))
	creds := credentials.NewStaticCredentialsProvider(
		envOr("AWS_ACCESS_KEY_ID", "kappa"), envOr("AWS_SECRET_ACCESS_KEY", "kappa"), os.Getenv("AWS_SESSION_TOKEN"))
	return lambda.New(lambda.Options{
		Region:       region,
		Credentials:  creds,
		BaseEndpoint: aws.String(endpoint),
	})
}
