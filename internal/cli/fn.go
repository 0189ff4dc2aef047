package cli

import (
	"encoding/json"
	"fmt"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/lambda"
	"github.com/aws/aws-sdk-go-v2/service/lambda/types"
	"github.com/spf13/cobra"
)

func newFnCmd() *cobra.Command {
	var endpoint string
	cmd := &cobra.Command{Use: "fn", Short: "Create, inspect and delete functions"}
	cmd.PersistentFlags().StringVar(&endpoint, "endpoint", envOr("KAPPA_ENDPOINT", "http://127.0.0.1:9070"), "Kappa server URL (env KAPPA_ENDPOINT)")

	var img, role string
	var memory, timeout int32
	var env map[string]string
	var wait bool
	create := &cobra.Command{
		Use:   "create NAME --image IMAGE",
		Short: "Create a function from a container image",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c := lambdaClient(endpoint)
			in := &lambda.CreateFunctionInput{
				FunctionName: aws.String(args[0]),
				PackageType:  types.PackageTypeImage,
				Code:         &types.FunctionCode{ImageUri: aws.String(img)},
				Role:         aws.String(role),
				MemorySize:   aws.Int32(memory),
				Timeout:      aws.Int32(timeout),
			}
			if len(env) > 0 {
				in.Environment = &types.Environment{Variables: env}
			}
			out, err := c.CreateFunction(cmd.Context(), in)
			if err != nil {
				return err
			}
			if wait {
				w := lambda.NewFunctionActiveV2Waiter(c, func(o *lambda.FunctionActiveV2WaiterOptions) {
					o.MinDelay, o.MaxDelay = 100*time.Millisecond, time.Second
				})
				got, err := w.WaitForOutput(cmd.Context(), &lambda.GetFunctionInput{FunctionName: aws.String(args[0])}, 10*time.Minute)
				if err != nil {
					return fmt.Errorf("function %s did not become Active: %w", args[0], err)
				}
				return printJSON(cmd, got.Configuration)
			}
			return printJSON(cmd, out)
		},
	}
	f := create.Flags()
	f.StringVar(&img, "image", "", "image reference (required)")
	f.StringVar(&role, "role", "arn:aws:iam::000000000000:role/kappa", "execution role ARN")
	f.Int32Var(&memory, "memory", 128, "memory in MB")
	f.Int32Var(&timeout, "timeout", 3, "timeout in seconds")
	f.StringToStringVar(&env, "env", nil, "environment variables KEY=VALUE,…")
	f.BoolVar(&wait, "wait", false, "wait until the function is Active")
	create.MarkFlagRequired("image")

	get := &cobra.Command{
		Use: "get NAME", Short: "Show a function", Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			out, err := lambdaClient(endpoint).GetFunction(cmd.Context(), &lambda.GetFunctionInput{FunctionName: aws.String(args[0])})
			if err != nil {
				return err
			}
			return printJSON(cmd, out)
		},
	}
	list := &cobra.Command{
		Use: "list", Short: "List functions", Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			p := lambda.NewListFunctionsPaginator(lambdaClient(endpoint), &lambda.ListFunctionsInput{})
			w := cmd.OutOrStdout()
			fmt.Fprintf(w, "%-40s %-8s %-7s %s\n", "NAME", "STATE", "MEMORY", "IMAGE DIGEST")
			for p.HasMorePages() {
				page, err := p.NextPage(cmd.Context())
				if err != nil {
					return err
				}
				for _, fn := range page.Functions {
					fmt.Fprintf(w, "%-40s %-8s %-7d %s\n", aws.ToString(fn.FunctionName), fn.State, aws.ToInt32(fn.MemorySize), aws.ToString(fn.CodeSha256))
				}
			}
			return nil
		},
	}
	del := &cobra.Command{
		Use: "delete NAME", Short: "Delete a function", Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			_, err := lambdaClient(endpoint).DeleteFunction(cmd.Context(), &lambda.DeleteFunctionInput{FunctionName: aws.String(args[0])})
			return err
		},
	}
	cmd.AddCommand(create, get, list, del)
	return cmd
}

func printJSON(cmd *cobra.Command, v any) error {
	enc := json.NewEncoder(cmd.OutOrStdout())
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}
