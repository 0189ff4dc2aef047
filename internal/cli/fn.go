package cli

import (
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/lambda"
	"github.com/aws/aws-sdk-go-v2/service/lambda/types"
	"github.com/spf13/cobra"
)

func newFnCmd() *cobra.Command {
	var endpoint string
	cmd := &cobra.Command{Use: "fn", Short: "Create, update, publish, inspect and delete functions"}
	groupRun(cmd)
	endpointFlag(cmd, &endpoint)
	complete := completeFunctions(&endpoint)
	cmd.AddCommand(fnCreateCmd(&endpoint), fnUpdateCmd(&endpoint, complete), fnListCmd(&endpoint),
		fnGetCmd(&endpoint, complete), fnDeleteCmd(&endpoint, complete), fnPublishCmd(&endpoint, complete),
		fnVersionsCmd(&endpoint, complete))
	return cmd
}

// configFlags are the settings create and update share.
type configFlags struct {
	memory, timeout, tmp      int32
	env                       map[string]string
	role, description         string
	logFormat, appLog, sysLog string
	entrypoint, command       []string
	workdir                   string
}

func (c *configFlags) register(cmd *cobra.Command, create bool) {
	f := cmd.Flags()
	role := ""
	if create {
		role = "arn:aws:iam::000000000000:role/kappa"
	}
	f.StringVar(&c.role, "role", role, "execution role ARN")
	f.Int32Var(&c.memory, "memory", 128, "memory in MB (128-10240; CPU is proportional)")
	f.Int32Var(&c.timeout, "timeout", 3, "timeout in seconds (1-900)")
	f.Int32Var(&c.tmp, "ephemeral-storage", 512, "size of /tmp in MB (512-10240)")
	f.StringToStringVar(&c.env, "env", nil, "environment variables KEY=VALUE,… (replaces all of them)")
	f.StringVar(&c.description, "description", "", "description")
	f.StringVar(&c.logFormat, "log-format", "", "log format: Text or JSON")
	f.StringVar(&c.appLog, "app-log-level", "", "least severe application log level kept (JSON format): TRACE, DEBUG, INFO, WARN, ERROR, FATAL")
	f.StringVar(&c.sysLog, "system-log-level", "", "least severe platform log level kept (JSON format): DEBUG, INFO, WARN")
	f.StringArrayVar(&c.entrypoint, "entrypoint", nil, "ImageConfig ENTRYPOINT override, one flag per argument")
	f.StringArrayVar(&c.command, "command", nil, "ImageConfig CMD override, one flag per argument")
	f.StringVar(&c.workdir, "workdir", "", "ImageConfig working directory override")
	cmd.RegisterFlagCompletionFunc("log-format", cobra.FixedCompletions([]string{"Text", "JSON"}, cobra.ShellCompDirectiveNoFileComp))
	levels := []string{"TRACE", "DEBUG", "INFO", "WARN", "ERROR", "FATAL"}
	cmd.RegisterFlagCompletionFunc("app-log-level", cobra.FixedCompletions(levels, cobra.ShellCompDirectiveNoFileComp))
	cmd.RegisterFlagCompletionFunc("system-log-level", cobra.FixedCompletions(levels[1:4], cobra.ShellCompDirectiveNoFileComp))
}

func (c *configFlags) logging(cmd *cobra.Command) *types.LoggingConfig {
	f := cmd.Flags()
	if !f.Changed("log-format") && !f.Changed("app-log-level") && !f.Changed("system-log-level") {
		return nil
	}
	lc := &types.LoggingConfig{LogFormat: types.LogFormat(c.logFormat)}
	if c.appLog != "" {
		lc.ApplicationLogLevel = types.ApplicationLogLevel(strings.ToUpper(c.appLog))
	}
	if c.sysLog != "" {
		lc.SystemLogLevel = types.SystemLogLevel(strings.ToUpper(c.sysLog))
	}
	if lc.LogFormat == "" && (c.appLog != "" || c.sysLog != "") {
		lc.LogFormat = types.LogFormatJson
	}
	return lc
}

func (c *configFlags) imageConfig(cmd *cobra.Command) *types.ImageConfig {
	f := cmd.Flags()
	if !f.Changed("entrypoint") && !f.Changed("command") && !f.Changed("workdir") {
		return nil
	}
	ic := &types.ImageConfig{EntryPoint: c.entrypoint, Command: c.command}
	if c.workdir != "" {
		ic.WorkingDirectory = aws.String(c.workdir)
	}
	return ic
}

func fnCreateCmd(endpoint *string) *cobra.Command {
	var img string
	var wait, pub bool
	var cf configFlags
	var o output
	create := &cobra.Command{
		Use:   "create NAME --image IMAGE",
		Short: "Create a function from a container image",
		Example: `  kappa push ./app localhost:9070/hello:v1 --entrypoint /bootstrap
  kappa fn create hello --image localhost:9070/hello:v1 --memory 256 --wait`,
		Args: usageArgs(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := o.check(); err != nil {
				return err
			}
			c := lambdaClient(*endpoint)
			in := &lambda.CreateFunctionInput{
				FunctionName:  aws.String(args[0]),
				PackageType:   types.PackageTypeImage,
				Code:          &types.FunctionCode{ImageUri: aws.String(img)},
				Role:          aws.String(cf.role),
				MemorySize:    aws.Int32(cf.memory),
				Timeout:       aws.Int32(cf.timeout),
				LoggingConfig: cf.logging(cmd),
				ImageConfig:   cf.imageConfig(cmd),
				Publish:       pub,
			}
			if cmd.Flags().Changed("ephemeral-storage") {
				in.EphemeralStorage = &types.EphemeralStorage{Size: aws.Int32(cf.tmp)}
			}
			if cf.description != "" {
				in.Description = aws.String(cf.description)
			}
			if len(cf.env) > 0 {
				in.Environment = &types.Environment{Variables: cf.env}
			}
			out, err := c.CreateFunction(cmd.Context(), in)
			if err != nil {
				return err
			}
			conf := configOf(out)
			if wait {
				w := lambda.NewFunctionActiveV2Waiter(c, func(o *lambda.FunctionActiveV2WaiterOptions) {
					o.MinDelay, o.MaxDelay = 100*time.Millisecond, time.Second
				})
				got, err := w.WaitForOutput(cmd.Context(), &lambda.GetFunctionInput{FunctionName: aws.String(args[0])}, 10*time.Minute)
				if err != nil {
					return fmt.Errorf("function %s did not become Active: %w (see `kappa fn get %s` for its StateReason)", args[0], err, args[0])
				}
				conf = got.Configuration
			}
			return printConfig(cmd, o, conf)
		},
	}
	f := create.Flags()
	f.StringVar(&img, "image", "", "image reference (required), e.g. localhost:9070/hello:v1")
	f.BoolVar(&wait, "wait", false, "wait until the function is Active")
	f.BoolVar(&pub, "publish", false, "also publish version 1")
	cf.register(create, true)
	o.register(create)
	create.MarkFlagRequired("image")
	return create
}

// configOf is the FunctionConfiguration of a CreateFunction answer.
func configOf(out *lambda.CreateFunctionOutput) *types.FunctionConfiguration {
	b, _ := json.Marshal(out)
	var c types.FunctionConfiguration
	json.Unmarshal(b, &c)
	return &c
}

func fnUpdateCmd(endpoint *string, complete cobra.CompletionFunc) *cobra.Command {
	var img string
	var wait bool
	var cf configFlags
	var o output
	update := &cobra.Command{
		Use:   "update NAME [--image IMAGE] [settings…]",
		Short: "Update a function's image and/or configuration",
		Example: `  kappa fn update hello --image localhost:9070/hello:v2 --wait
  kappa fn update hello --memory 512 --env STAGE=prod --log-format JSON`,
		Args:              usageArgs(cobra.ExactArgs(1)),
		ValidArgsFunction: complete,
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := o.check(); err != nil {
				return err
			}
			c := lambdaClient(*endpoint)
			name := args[0]
			f := cmd.Flags()
			in := &lambda.UpdateFunctionConfigurationInput{FunctionName: aws.String(name),
				LoggingConfig: cf.logging(cmd), ImageConfig: cf.imageConfig(cmd)}
			changed := in.LoggingConfig != nil || in.ImageConfig != nil
			if f.Changed("memory") {
				in.MemorySize, changed = aws.Int32(cf.memory), true
			}
			if f.Changed("timeout") {
				in.Timeout, changed = aws.Int32(cf.timeout), true
			}
			if f.Changed("ephemeral-storage") {
				in.EphemeralStorage, changed = &types.EphemeralStorage{Size: aws.Int32(cf.tmp)}, true
			}
			if f.Changed("env") {
				in.Environment, changed = &types.Environment{Variables: cf.env}, true
			}
			if f.Changed("description") {
				in.Description, changed = aws.String(cf.description), true
			}
			if f.Changed("role") {
				in.Role, changed = aws.String(cf.role), true
			}
			if img == "" && !changed {
				return usageError{fmt.Errorf("nothing to update: pass --image and/or a setting such as --memory (see `kappa fn update --help`)")}
			}
			waitUpdated := func() (*types.FunctionConfiguration, error) {
				w := lambda.NewFunctionUpdatedV2Waiter(c, func(o *lambda.FunctionUpdatedV2WaiterOptions) {
					o.MinDelay, o.MaxDelay = 100*time.Millisecond, time.Second
				})
				got, err := w.WaitForOutput(cmd.Context(), &lambda.GetFunctionInput{FunctionName: aws.String(name)}, 10*time.Minute)
				if err != nil {
					return nil, fmt.Errorf("update of %s did not succeed: %w (see `kappa fn get %s` for LastUpdateStatusReason)", name, err, name)
				}
				return got.Configuration, nil
			}
			var conf *types.FunctionConfiguration
			if img != "" {
				out, err := c.UpdateFunctionCode(cmd.Context(), &lambda.UpdateFunctionCodeInput{
					FunctionName: aws.String(name), ImageUri: aws.String(img)})
				if err != nil {
					return err
				}
				conf = codeConfigOf(out)
				if changed || wait {
					// A configuration update is refused while the code
					// update is in progress.
					if conf, err = waitUpdated(); err != nil {
						return err
					}
				}
			}
			if changed {
				out, err := c.UpdateFunctionConfiguration(cmd.Context(), in)
				if err != nil {
					return err
				}
				conf = updConfigOf(out)
				if wait {
					if conf, err = waitUpdated(); err != nil {
						return err
					}
				}
			}
			return printConfig(cmd, o, conf)
		},
	}
	update.Flags().StringVar(&img, "image", "", "new image reference")
	update.Flags().BoolVar(&wait, "wait", false, "wait until the update has finished")
	cf.register(update, false)
	o.register(update)
	return update
}

func codeConfigOf(out *lambda.UpdateFunctionCodeOutput) *types.FunctionConfiguration {
	b, _ := json.Marshal(out)
	var c types.FunctionConfiguration
	json.Unmarshal(b, &c)
	return &c
}

func updConfigOf(out *lambda.UpdateFunctionConfigurationOutput) *types.FunctionConfiguration {
	b, _ := json.Marshal(out)
	var c types.FunctionConfiguration
	json.Unmarshal(b, &c)
	return &c
}

func fnListCmd(endpoint *string) *cobra.Command {
	var o output
	list := &cobra.Command{
		Use: "list", Short: "List functions", Args: usageArgs(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := o.check(); err != nil {
				return err
			}
			p := lambda.NewListFunctionsPaginator(lambdaClient(*endpoint), &lambda.ListFunctionsInput{})
			var all []types.FunctionConfiguration
			for p.HasMorePages() {
				page, err := p.NextPage(cmd.Context())
				if err != nil {
					return err
				}
				all = append(all, page.Functions...)
			}
			if o.json() {
				if all == nil {
					all = []types.FunctionConfiguration{}
				}
				return printJSON(cmd, all)
			}
			t := newTable(cmd.OutOrStdout(), "NAME", "STATE", "LAST UPDATE", "MEMORY", "TIMEOUT", "MODIFIED", "IMAGE DIGEST")
			for _, fn := range all {
				t.row(aws.ToString(fn.FunctionName), string(fn.State), string(fn.LastUpdateStatus),
					fmt.Sprintf("%d MB", aws.ToInt32(fn.MemorySize)), fmt.Sprintf("%d s", aws.ToInt32(fn.Timeout)),
					shortTime(aws.ToString(fn.LastModified)), shortDigest(aws.ToString(fn.CodeSha256)))
			}
			return t.flush()
		},
	}
	o.register(list)
	return list
}

func fnGetCmd(endpoint *string, complete cobra.CompletionFunc) *cobra.Command {
	var qualifier string
	var o output
	get := &cobra.Command{
		Use: "get NAME", Short: "Show a function's configuration and code", Args: usageArgs(cobra.ExactArgs(1)),
		ValidArgsFunction: complete,
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := o.check(); err != nil {
				return err
			}
			in := &lambda.GetFunctionInput{FunctionName: aws.String(args[0])}
			if qualifier != "" {
				in.Qualifier = aws.String(qualifier)
			}
			out, err := lambdaClient(*endpoint).GetFunction(cmd.Context(), in)
			if err != nil {
				return err
			}
			if o.json() {
				return printJSON(cmd, out)
			}
			if err := printConfig(cmd, o, out.Configuration); err != nil {
				return err
			}
			if out.Code != nil {
				fields(cmd.OutOrStdout(), "Image", aws.ToString(out.Code.ImageUri), "Resolved", aws.ToString(out.Code.ResolvedImageUri))
			}
			if out.Concurrency != nil && out.Concurrency.ReservedConcurrentExecutions != nil {
				fields(cmd.OutOrStdout(), "Reserved", strconv.Itoa(int(*out.Concurrency.ReservedConcurrentExecutions)))
			}
			return nil
		},
	}
	get.Flags().StringVar(&qualifier, "qualifier", "", "version or alias")
	o.register(get)
	return get
}

// printConfig prints a function configuration as fields, or JSON.
func printConfig(cmd *cobra.Command, o output, c *types.FunctionConfiguration) error {
	if o.json() || c == nil {
		return printJSON(cmd, c)
	}
	state := string(c.State)
	if c.StateReason != nil {
		state += " (" + aws.ToString(c.StateReason) + ")"
	}
	update := string(c.LastUpdateStatus)
	if c.LastUpdateStatusReason != nil {
		update += " (" + aws.ToString(c.LastUpdateStatusReason) + ")"
	}
	logging := ""
	if c.LoggingConfig != nil {
		logging = string(c.LoggingConfig.LogFormat)
		if c.LoggingConfig.ApplicationLogLevel != "" || c.LoggingConfig.SystemLogLevel != "" {
			logging += fmt.Sprintf(" (application %s, system %s)", c.LoggingConfig.ApplicationLogLevel, c.LoggingConfig.SystemLogLevel)
		}
	}
	var env []string
	if c.Environment != nil {
		for k, v := range c.Environment.Variables {
			env = append(env, k+"="+v)
		}
	}
	tmp := ""
	if c.EphemeralStorage != nil {
		tmp = fmt.Sprintf("%d MB", aws.ToInt32(c.EphemeralStorage.Size))
	}
	return fields(cmd.OutOrStdout(),
		"Name", aws.ToString(c.FunctionName),
		"ARN", aws.ToString(c.FunctionArn),
		"Version", aws.ToString(c.Version),
		"State", state,
		"Last update", update,
		"Description", aws.ToString(c.Description),
		"Memory", fmt.Sprintf("%d MB", aws.ToInt32(c.MemorySize)),
		"Timeout", fmt.Sprintf("%d s", aws.ToInt32(c.Timeout)),
		"Ephemeral", tmp,
		"Logging", logging,
		"Environment", strings.Join(env, " "),
		"Code SHA-256", aws.ToString(c.CodeSha256),
		"Modified", aws.ToString(c.LastModified),
		"Revision", aws.ToString(c.RevisionId),
	)
}

func fnDeleteCmd(endpoint *string, complete cobra.CompletionFunc) *cobra.Command {
	var qualifier string
	del := &cobra.Command{
		Use: "delete NAME", Short: "Delete a function (or, with --qualifier, one version)", Args: usageArgs(cobra.ExactArgs(1)),
		ValidArgsFunction: complete,
		RunE: func(cmd *cobra.Command, args []string) error {
			in := &lambda.DeleteFunctionInput{FunctionName: aws.String(args[0])}
			if qualifier != "" {
				in.Qualifier = aws.String(qualifier)
			}
			_, err := lambdaClient(*endpoint).DeleteFunction(cmd.Context(), in)
			return err
		},
	}
	del.Flags().StringVar(&qualifier, "qualifier", "", "delete only this published version")
	return del
}

func fnPublishCmd(endpoint *string, complete cobra.CompletionFunc) *cobra.Command {
	var description string
	var o output
	pub := &cobra.Command{
		Use: "publish NAME", Short: "Publish $LATEST as a new immutable version", Args: usageArgs(cobra.ExactArgs(1)),
		ValidArgsFunction: complete,
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := o.check(); err != nil {
				return err
			}
			in := &lambda.PublishVersionInput{FunctionName: aws.String(args[0])}
			if description != "" {
				in.Description = aws.String(description)
			}
			out, err := lambdaClient(*endpoint).PublishVersion(cmd.Context(), in)
			if err != nil {
				return err
			}
			if o.json() {
				return printJSON(cmd, out)
			}
			fmt.Fprintf(cmd.OutOrStdout(), "published %s version %s\n", args[0], aws.ToString(out.Version))
			return nil
		},
	}
	pub.Flags().StringVar(&description, "description", "", "description of the version")
	o.register(pub)
	return pub
}

func fnVersionsCmd(endpoint *string, complete cobra.CompletionFunc) *cobra.Command {
	var o output
	vers := &cobra.Command{
		Use: "versions NAME", Short: "List a function's versions", Args: usageArgs(cobra.ExactArgs(1)),
		ValidArgsFunction: complete,
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := o.check(); err != nil {
				return err
			}
			p := lambda.NewListVersionsByFunctionPaginator(lambdaClient(*endpoint),
				&lambda.ListVersionsByFunctionInput{FunctionName: aws.String(args[0])})
			var all []types.FunctionConfiguration
			for p.HasMorePages() {
				page, err := p.NextPage(cmd.Context())
				if err != nil {
					return err
				}
				all = append(all, page.Versions...)
			}
			if o.json() {
				return printJSON(cmd, all)
			}
			t := newTable(cmd.OutOrStdout(), "VERSION", "STATE", "MEMORY", "MODIFIED", "IMAGE DIGEST", "DESCRIPTION")
			for _, v := range all {
				t.row(aws.ToString(v.Version), string(v.State), fmt.Sprintf("%d MB", aws.ToInt32(v.MemorySize)),
					shortTime(aws.ToString(v.LastModified)), shortDigest(aws.ToString(v.CodeSha256)), aws.ToString(v.Description))
			}
			return t.flush()
		},
	}
	o.register(vers)
	return vers
}

func shortDigest(d string) string {
	if len(d) > 12 {
		return d[:12]
	}
	return d
}

// shortTime renders Lambda's "2024-01-01T00:00:00.000+0000" as
// "2024-01-01 00:00".
func shortTime(s string) string {
	if t, err := time.Parse("2006-01-02T15:04:05.000-0700", s); err == nil {
		return t.UTC().Format("2006-01-02 15:04")
	}
	return s
}

func printJSON(cmd *cobra.Command, v any) error {
	enc := json.NewEncoder(cmd.OutOrStdout())
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}
