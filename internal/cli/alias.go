package cli

import (
	"fmt"
	"sort"
	"strconv"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/lambda"
	"github.com/aws/aws-sdk-go-v2/service/lambda/types"
	"github.com/spf13/cobra"
)

func newAliasCmd() *cobra.Command {
	var endpoint string
	cmd := &cobra.Command{Use: "alias", Short: "Create, update, inspect and delete aliases of a function"}
	groupRun(cmd)
	endpointFlag(cmd, &endpoint)
	complete := completeFunctions(&endpoint)

	// completeAlias completes FUNCTION then ALIAS.
	completeAlias := func(cmd *cobra.Command, args []string, toComplete string) ([]string, cobra.ShellCompDirective) {
		if len(args) == 0 {
			return complete(cmd, args, toComplete)
		}
		if len(args) > 1 {
			return nil, cobra.ShellCompDirectiveNoFileComp
		}
		out, err := lambdaClient(endpoint).ListAliases(cmd.Context(), &lambda.ListAliasesInput{FunctionName: aws.String(args[0])})
		if err != nil {
			return nil, cobra.ShellCompDirectiveNoFileComp
		}
		var names []string
		for _, a := range out.Aliases {
			if n := aws.ToString(a.Name); strings.HasPrefix(n, toComplete) {
				names = append(names, n)
			}
		}
		return names, cobra.ShellCompDirectiveNoFileComp
	}

	var version, description string
	var weights map[string]string
	var clearWeights bool
	var o output
	routing := func() (*types.AliasRoutingConfiguration, error) {
		if len(weights) == 0 {
			return nil, nil
		}
		rc := &types.AliasRoutingConfiguration{AdditionalVersionWeights: map[string]float64{}}
		for v, w := range weights {
			f, err := strconv.ParseFloat(w, 64)
			if err != nil || f < 0 || f > 1 {
				return nil, usageError{fmt.Errorf("--weight %s=%s: want VERSION=WEIGHT with a weight from 0 to 1", v, w)}
			}
			rc.AdditionalVersionWeights[v] = f
		}
		return rc, nil
	}
	print := func(cmd *cobra.Command, a aliasView) error {
		if o.json() {
			return printJSON(cmd, a)
		}
		return fields(cmd.OutOrStdout(), "Name", a.Name, "Function version", a.FunctionVersion,
			"Routing", a.routing(), "Description", a.Description, "ARN", a.AliasArn, "Revision", a.RevisionID)
	}

	create := &cobra.Command{
		Use: "create FUNCTION ALIAS --version VERSION", Short: "Create an alias pointing at a version",
		Example:           "  kappa alias create hello live --version 3 --weight 4=0.1",
		Args:              usageArgs(cobra.ExactArgs(2)),
		ValidArgsFunction: completeAlias,
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := o.check(); err != nil {
				return err
			}
			rc, err := routing()
			if err != nil {
				return err
			}
			in := &lambda.CreateAliasInput{FunctionName: aws.String(args[0]), Name: aws.String(args[1]),
				FunctionVersion: aws.String(version), RoutingConfig: rc}
			if description != "" {
				in.Description = aws.String(description)
			}
			out, err := lambdaClient(endpoint).CreateAlias(cmd.Context(), in)
			if err != nil {
				return err
			}
			return print(cmd, aliasView{Name: aws.ToString(out.Name), AliasArn: aws.ToString(out.AliasArn),
				FunctionVersion: aws.ToString(out.FunctionVersion), Description: aws.ToString(out.Description),
				RevisionID: aws.ToString(out.RevisionId), Weights: weightsOf(out.RoutingConfig)})
		},
	}
	create.Flags().StringVar(&version, "version", "", "version the alias points at (required)")
	create.MarkFlagRequired("version")

	update := &cobra.Command{
		Use: "update FUNCTION ALIAS [--version VERSION] [--weight V=W]", Short: "Point an alias elsewhere or change its routing",
		Args:              usageArgs(cobra.ExactArgs(2)),
		ValidArgsFunction: completeAlias,
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := o.check(); err != nil {
				return err
			}
			rc, err := routing()
			if err != nil {
				return err
			}
			in := &lambda.UpdateAliasInput{FunctionName: aws.String(args[0]), Name: aws.String(args[1]), RoutingConfig: rc}
			f := cmd.Flags()
			if f.Changed("version") {
				in.FunctionVersion = aws.String(version)
			}
			if f.Changed("description") {
				in.Description = aws.String(description)
			}
			if clearWeights {
				if rc != nil {
					return usageError{fmt.Errorf("give --weight or --clear-weights, not both")}
				}
				in.RoutingConfig = &types.AliasRoutingConfiguration{AdditionalVersionWeights: map[string]float64{}}
			}
			if in.FunctionVersion == nil && in.Description == nil && in.RoutingConfig == nil {
				return usageError{fmt.Errorf("nothing to update: pass --version, --weight, --clear-weights or --description")}
			}
			out, err := lambdaClient(endpoint).UpdateAlias(cmd.Context(), in)
			if err != nil {
				return err
			}
			return print(cmd, aliasView{Name: aws.ToString(out.Name), AliasArn: aws.ToString(out.AliasArn),
				FunctionVersion: aws.ToString(out.FunctionVersion), Description: aws.ToString(out.Description),
				RevisionID: aws.ToString(out.RevisionId), Weights: weightsOf(out.RoutingConfig)})
		},
	}
	update.Flags().StringVar(&version, "version", "", "version the alias points at")
	update.Flags().BoolVar(&clearWeights, "clear-weights", false, "route every invocation to the alias's version again")

	for _, c := range []*cobra.Command{create, update} {
		c.Flags().StringVar(&description, "description", "", "description")
		c.Flags().StringToStringVar(&weights, "weight", nil, "route a share of invocations to another version: VERSION=WEIGHT (0-1)")
		o.register(c)
	}

	get := &cobra.Command{
		Use: "get FUNCTION ALIAS", Short: "Show an alias", Args: usageArgs(cobra.ExactArgs(2)),
		ValidArgsFunction: completeAlias,
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := o.check(); err != nil {
				return err
			}
			out, err := lambdaClient(endpoint).GetAlias(cmd.Context(), &lambda.GetAliasInput{
				FunctionName: aws.String(args[0]), Name: aws.String(args[1])})
			if err != nil {
				return err
			}
			return print(cmd, aliasView{Name: aws.ToString(out.Name), AliasArn: aws.ToString(out.AliasArn),
				FunctionVersion: aws.ToString(out.FunctionVersion), Description: aws.ToString(out.Description),
				RevisionID: aws.ToString(out.RevisionId), Weights: weightsOf(out.RoutingConfig)})
		},
	}
	o.register(get)

	var lo output
	list := &cobra.Command{
		Use: "list FUNCTION", Short: "List a function's aliases", Args: usageArgs(cobra.ExactArgs(1)),
		ValidArgsFunction: complete,
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := lo.check(); err != nil {
				return err
			}
			p := lambda.NewListAliasesPaginator(lambdaClient(endpoint), &lambda.ListAliasesInput{FunctionName: aws.String(args[0])})
			all := []aliasView{}
			for p.HasMorePages() {
				page, err := p.NextPage(cmd.Context())
				if err != nil {
					return err
				}
				for _, a := range page.Aliases {
					all = append(all, aliasView{Name: aws.ToString(a.Name), AliasArn: aws.ToString(a.AliasArn),
						FunctionVersion: aws.ToString(a.FunctionVersion), Description: aws.ToString(a.Description),
						RevisionID: aws.ToString(a.RevisionId), Weights: weightsOf(a.RoutingConfig)})
				}
			}
			if lo.json() {
				return printJSON(cmd, all)
			}
			t := newTable(cmd.OutOrStdout(), "ALIAS", "VERSION", "ROUTING", "DESCRIPTION")
			for _, a := range all {
				t.row(a.Name, a.FunctionVersion, a.routing(), a.Description)
			}
			return t.flush()
		},
	}
	lo.register(list)

	del := &cobra.Command{
		Use: "delete FUNCTION ALIAS", Short: "Delete an alias", Args: usageArgs(cobra.ExactArgs(2)),
		ValidArgsFunction: completeAlias,
		RunE: func(cmd *cobra.Command, args []string) error {
			_, err := lambdaClient(endpoint).DeleteAlias(cmd.Context(), &lambda.DeleteAliasInput{
				FunctionName: aws.String(args[0]), Name: aws.String(args[1])})
			return err
		},
	}
	cmd.AddCommand(create, update, get, list, del)
	return cmd
}

// aliasView is an alias as the CLI prints it (the SDK's several alias
// shapes in one).
type aliasView struct {
	Name            string             `json:"Name"`
	AliasArn        string             `json:"AliasArn"`
	FunctionVersion string             `json:"FunctionVersion"`
	Description     string             `json:"Description,omitempty"`
	RevisionID      string             `json:"RevisionId"`
	Weights         map[string]float64 `json:"AdditionalVersionWeights,omitempty"`
}

func (a aliasView) routing() string {
	var parts []string
	for v, w := range a.Weights {
		parts = append(parts, fmt.Sprintf("%s: %g%%", v, w*100))
	}
	sort.Strings(parts)
	return strings.Join(parts, ", ")
}

func weightsOf(rc *types.AliasRoutingConfiguration) map[string]float64 {
	if rc == nil || len(rc.AdditionalVersionWeights) == 0 {
		return nil
	}
	return rc.AdditionalVersionWeights
}
