package e2e

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/lambda"
	"github.com/aws/aws-sdk-go-v2/service/lambda/types"
)

// tfConfig is the configuration TestTerraform applies: one of each Lambda
// resource the hashicorp/aws provider has that Kappa serves, with the
// provider pointed at the server under test and told not to look for
// credentials, an account or a region anywhere else.
const tfConfig = `
terraform {
  required_providers {
    aws = { source = "hashicorp/aws" }
  }
}

variable "endpoint" {}
variable "image" {}
variable "memory" {}
variable "greeting" {}
variable "batch_size" {}
variable "owner" {}

provider "aws" {
  region                      = "us-east-1"
  access_key                  = "kappa"
  secret_key                  = "kappa"
  skip_credentials_validation = true
  skip_requesting_account_id  = true
  skip_metadata_api_check     = true
  skip_region_validation      = true
  endpoints {
    lambda = var.endpoint
    sqs    = var.endpoint
  }
}

resource "aws_sqs_queue" "orders" {
  name                       = "tf-q"
  visibility_timeout_seconds = 60
  tags                       = { team = "kappa" }
}

resource "aws_sqs_queue" "dlq" {
  name = "tf-dlq"
}

resource "aws_lambda_function" "fn" {
  function_name = "tf-fn"
  description   = "made by Terraform"
  package_type  = "Image"
  image_uri     = var.image
  role          = "arn:aws:iam::000000000000:role/kappa-test"
  memory_size   = var.memory
  timeout       = 10
  architectures = ["x86_64"]
  publish       = true
  reserved_concurrent_executions = 20
  environment {
    variables = { GREETING = var.greeting }
  }
  image_config {
    entry_point       = ["/bootstrap"]
    working_directory = "/tmp"
  }
  ephemeral_storage {
    size = 1024
  }
  logging_config {
    log_format            = "JSON"
    application_log_level = "INFO"
    system_log_level      = "WARN"
  }
  tracing_config {
    mode = "PassThrough"
  }
  dead_letter_config {
    target_arn = aws_sqs_queue.dlq.arn
  }
  tags = { team = "kappa" }
}

resource "aws_lambda_alias" "live" {
  name             = "live"
  function_name    = aws_lambda_function.fn.function_name
  function_version = aws_lambda_function.fn.version
}

resource "aws_lambda_permission" "events" {
  statement_id  = "AllowEvents"
  action        = "lambda:InvokeFunction"
  function_name = aws_lambda_function.fn.function_name
  principal     = "events.amazonaws.com"
  qualifier     = aws_lambda_alias.live.name
}

resource "aws_lambda_function_url" "url" {
  function_name      = aws_lambda_function.fn.function_name
  authorization_type = "NONE"
  cors {
    allow_origins = ["https://example.com"]
    allow_methods = ["GET", "POST"]
    max_age       = 600
  }
}

resource "aws_lambda_function_event_invoke_config" "async" {
  function_name                = aws_lambda_function.fn.function_name
  maximum_retry_attempts       = 1
  maximum_event_age_in_seconds = 600
}

resource "aws_lambda_provisioned_concurrency_config" "warm" {
  function_name                     = aws_lambda_function.fn.function_name
  qualifier                         = aws_lambda_alias.live.name
  provisioned_concurrent_executions = 1
}

resource "aws_lambda_event_source_mapping" "queue" {
  function_name                      = aws_lambda_alias.live.arn
  event_source_arn                   = aws_sqs_queue.orders.arn
  batch_size                         = var.batch_size
  maximum_batching_window_in_seconds = 1
  function_response_types            = ["ReportBatchItemFailures"]
  tags                               = { owner = var.owner }
}

resource "aws_lambda_function_recursion_config" "loops" {
  function_name  = aws_lambda_function.fn.function_name
  recursive_loop = "Allow"
}

resource "aws_lambda_invocation" "hello" {
  function_name = aws_lambda_function.fn.function_name
  qualifier     = aws_lambda_alias.live.name
  input         = jsonencode({ op = "echo", text = "from terraform" })
}

data "aws_lambda_function" "live" {
  function_name = aws_lambda_function.fn.function_name
  qualifier     = aws_lambda_alias.live.name
}

output "version" { value = aws_lambda_function.fn.version }
output "invocation" { value = aws_lambda_invocation.hello.result }
output "data_version" { value = data.aws_lambda_function.live.version }
output "url" { value = aws_lambda_function_url.url.function_url }
`

// TestTerraform applies a configuration of every Lambda resource Kappa
// serves, and the SQS queues that feed and catch its events, with the real
// Terraform and hashicorp/aws provider, unchanged but for the provider's
// endpoints: create, a plan that finds nothing to change
// (what Terraform reads back matches what it wrote), an update that
// publishes a new version and moves the alias, another empty plan, and
// destroy. Kappa's own state is checked through the SDK at each step.
func TestTerraform(t *testing.T) {
	requireEnv(t)
	tf := newTerraform(t)
	s := newServer(t)
	img1 := s.pushProbe(t, "probe:tf", "PROBE_VERSION=1")
	img2 := s.pushProbe(t, "probe:tf2", "PROBE_VERSION=2")
	ctx := context.Background()
	vars := func(img string, memory int, greeting string, batch int, owner string) []string {
		return []string{"-var", "endpoint=http://" + s.addr, "-var", "image=" + img,
			"-var", fmt.Sprint("memory=", memory), "-var", "greeting=" + greeting,
			"-var", fmt.Sprint("batch_size=", batch), "-var", "owner=" + owner}
	}

	tf.run(t, "init", "-input=false")
	first := vars(img1, 256, "hi", 5, "esm")
	tf.run(t, append([]string{"apply", "-auto-approve", "-input=false"}, first...)...)
	if v := tf.output(t, "version"); v != "1" {
		t.Errorf("output version = %q, want 1", v)
	}
	if u := tf.output(t, "url"); !strings.HasPrefix(u, "http://") || !strings.Contains(u, ".lambda-url.us-east-1.") {
		t.Errorf("output url = %q, want the function URL", u)
	}
	if inv := tf.output(t, "invocation"); !strings.Contains(inv, `"text":"from terraform"`) || !strings.Contains(inv, ":live") {
		t.Errorf("output invocation = %s, want the probe's echo through the alias", inv)
	}
	if v := tf.output(t, "data_version"); v != "1" {
		t.Errorf("data source version = %q, want 1", v)
	}
	mapping := tfCheck(t, s, "1", 256, "hi", 5, "esm")

	fn, err := s.Lambda.GetFunction(ctx, &lambda.GetFunctionInput{FunctionName: aws.String("tf-fn")})
	if err != nil {
		t.Fatal(err)
	}
	if fn.Tags["team"] != "kappa" {
		t.Errorf("function tags %v, want team=kappa", fn.Tags)
	}
	if c := fn.Configuration; aws.ToString(c.Description) != "made by Terraform" || c.ImageConfigResponse == nil ||
		c.ImageConfigResponse.ImageConfig == nil || aws.ToString(c.ImageConfigResponse.ImageConfig.WorkingDirectory) != "/tmp" ||
		c.EphemeralStorage == nil || aws.ToInt32(c.EphemeralStorage.Size) != 1024 ||
		c.LoggingConfig == nil || c.LoggingConfig.LogFormat != types.LogFormatJson ||
		c.DeadLetterConfig == nil || aws.ToString(c.DeadLetterConfig.TargetArn) != queueARN("tf-dlq") {
		t.Errorf("tf-fn's configuration lost some of what Terraform set: %+v", c)
	}
	if fn.Concurrency == nil || aws.ToInt32(fn.Concurrency.ReservedConcurrentExecutions) != 20 {
		t.Errorf("GetFunction Concurrency %+v, want 20 reserved", fn.Concurrency)
	}
	rc, err := s.Lambda.GetFunctionRecursionConfig(ctx, &lambda.GetFunctionRecursionConfigInput{FunctionName: aws.String("tf-fn")})
	if err != nil || rc.RecursiveLoop != types.RecursiveLoopAllow {
		t.Errorf("GetFunctionRecursionConfig = %v; want Allow", err)
	}
	pol, err := s.Lambda.GetPolicy(ctx, &lambda.GetPolicyInput{FunctionName: aws.String("tf-fn"), Qualifier: aws.String("live")})
	if err != nil || !strings.Contains(aws.ToString(pol.Policy), "AllowEvents") || !strings.Contains(aws.ToString(pol.Policy), "events.amazonaws.com") {
		t.Errorf("GetPolicy(live) = %v; want the AllowEvents statement", err)
	}
	url, err := s.Lambda.GetFunctionUrlConfig(ctx, &lambda.GetFunctionUrlConfigInput{FunctionName: aws.String("tf-fn")})
	if err != nil || url.AuthType != types.FunctionUrlAuthTypeNone || url.Cors == nil || aws.ToInt32(url.Cors.MaxAge) != 600 {
		t.Errorf("GetFunctionUrlConfig = %v; want AuthType NONE and the CORS settings", err)
	}
	ev, err := s.Lambda.GetFunctionEventInvokeConfig(ctx, &lambda.GetFunctionEventInvokeConfigInput{FunctionName: aws.String("tf-fn")})
	if err != nil || aws.ToInt32(ev.MaximumRetryAttempts) != 1 || aws.ToInt32(ev.MaximumEventAgeInSeconds) != 600 {
		t.Errorf("GetFunctionEventInvokeConfig = %v; want 1 retry and 600 s", err)
	}
	pc, err := s.Lambda.GetProvisionedConcurrencyConfig(ctx, &lambda.GetProvisionedConcurrencyConfigInput{FunctionName: aws.String("tf-fn"), Qualifier: aws.String("live")})
	if err != nil || pc.Status != types.ProvisionedConcurrencyStatusEnumReady || aws.ToInt32(pc.AllocatedProvisionedConcurrentExecutions) != 1 {
		t.Errorf("GetProvisionedConcurrencyConfig(live) = %v; want READY with 1 allocated", err)
	}
	// The mapping Terraform made feeds the alias.
	s.sendMessages(t, "tf-q", "from-terraform")
	s.waitSQS(t, "tf-fn", "the queue's message", func(ls []sqsLine) bool { return len(bodyCounts(ls, "from-terraform")) > 0 })

	tf.run(t, append([]string{"plan", "-input=false", "-detailed-exitcode"}, first...)...)

	// A new image and new settings: Terraform updates the code and the
	// configuration, publishes version 2 and moves the alias.
	second := vars(img2, 512, "hello", 3, "esm2")
	tf.run(t, append([]string{"apply", "-auto-approve", "-input=false"}, second...)...)
	if v := tf.output(t, "version"); v != "2" {
		t.Errorf("output version after the update = %q, want 2", v)
	}
	if _, res := invoke(t, s, "tf-fn:live", map[string]any{"op": "echo"}); res["version"] != "2" {
		t.Errorf("tf-fn:live runs the image of PROBE_VERSION %v, want the new image's 2", res["version"])
	}
	if m := tfCheck(t, s, "2", 512, "hello", 3, "esm2"); m != mapping {
		t.Errorf("the update replaced mapping %s with %s, want it updated in place", mapping, m)
	}
	tf.run(t, append([]string{"plan", "-input=false", "-detailed-exitcode"}, second...)...)

	tf.run(t, append([]string{"destroy", "-auto-approve", "-input=false"}, second...)...)
	_, err = s.Lambda.GetFunction(ctx, &lambda.GetFunctionInput{FunctionName: aws.String("tf-fn")})
	asWireError(t, err).check(t, "GetFunction after destroy", 404, "ResourceNotFoundException")
	s.waitESMGone(t, mapping)
}

// tfCheck checks what an apply made, through the SDK: the function's
// configuration, the alias on the new version (which answers with the new
// environment), and the event source mapping with its tags. It returns the
// mapping's UUID.
func tfCheck(t *testing.T, s *server, version string, memory int32, greeting string, batch int32, owner string) string {
	t.Helper()
	ctx := context.Background()
	cfg, err := s.Lambda.GetFunctionConfiguration(ctx, &lambda.GetFunctionConfigurationInput{FunctionName: aws.String("tf-fn")})
	if err != nil {
		t.Fatalf("GetFunctionConfiguration: %v", err)
	}
	if aws.ToInt32(cfg.MemorySize) != memory || cfg.Environment == nil || cfg.Environment.Variables["GREETING"] != greeting ||
		cfg.State != types.StateActive || cfg.LastUpdateStatus != types.LastUpdateStatusSuccessful {
		t.Errorf("tf-fn: %d MB, environment %v, %s/%s; want %d MB, GREETING=%s, Active/Successful",
			aws.ToInt32(cfg.MemorySize), cfg.Environment, cfg.State, cfg.LastUpdateStatus, memory, greeting)
	}
	alias, err := s.Lambda.GetAlias(ctx, &lambda.GetAliasInput{FunctionName: aws.String("tf-fn"), Name: aws.String("live")})
	if err != nil || aws.ToString(alias.FunctionVersion) != version {
		t.Errorf("GetAlias(live) = %v; want version %s", err, version)
	}
	out, res := invoke(t, s, "tf-fn:live", map[string]any{"op": "env"})
	if aws.ToString(out.ExecutedVersion) != version || environ(res)["GREETING"] != greeting {
		t.Errorf("tf-fn:live ran version %s with GREETING=%q; want %s and %s", aws.ToString(out.ExecutedVersion), environ(res)["GREETING"], version, greeting)
	}
	ms, err := s.Lambda.ListEventSourceMappings(ctx, &lambda.ListEventSourceMappingsInput{FunctionName: aws.String("tf-fn")})
	if err != nil || len(ms.EventSourceMappings) != 1 {
		t.Fatalf("ListEventSourceMappings(tf-fn) = %v, %v; want the one mapping", ms, err)
	}
	m := ms.EventSourceMappings[0]
	if aws.ToInt32(m.BatchSize) != batch || aws.ToString(m.FunctionArn) != fnARN("tf-fn")+":live" {
		t.Errorf("mapping %s: BatchSize %d, function %s; want %d and the alias", aws.ToString(m.UUID), aws.ToInt32(m.BatchSize), aws.ToString(m.FunctionArn), batch)
	}
	tags, err := s.Lambda.ListTags(ctx, &lambda.ListTagsInput{Resource: m.EventSourceMappingArn})
	if err != nil || len(tags.Tags) != 1 || tags.Tags["owner"] != owner {
		t.Errorf("ListTags(mapping) = %v, %v; want owner=%s", tags, err, owner)
	}
	return aws.ToString(m.UUID)
}

// terraform runs the terraform CLI in a directory of its own holding
// tfConfig, with the hashicorp/aws provider taken from a local filesystem
// mirror (it is never downloaded).
type terraform struct {
	dir string
	env []string
}

// tfMirrors are where a filesystem mirror of the provider is looked for,
// after $KAPPA_TF_PLUGIN_MIRROR.
var tfMirrors = []string{"/opt/tf-plugins", "/usr/local/share/terraform/plugins", "/usr/share/terraform/plugins"}

func newTerraform(t *testing.T) *terraform {
	t.Helper()
	if _, err := exec.LookPath("terraform"); err != nil {
		t.Skip("needs terraform on PATH and the hashicorp/aws provider in a filesystem mirror (" + strings.Join(tfMirrors, ", ") + " or $KAPPA_TF_PLUGIN_MIRROR)")
	}
	mirror := ""
	for _, d := range append([]string{os.Getenv("KAPPA_TF_PLUGIN_MIRROR")}, tfMirrors...) {
		if d == "" {
			continue
		}
		if st, err := os.Stat(filepath.Join(d, "registry.terraform.io", "hashicorp", "aws")); err == nil && st.IsDir() {
			mirror = d
			break
		}
	}
	if mirror == "" {
		t.Skip("needs the hashicorp/aws provider in a filesystem mirror (registry.terraform.io/hashicorp/aws/<version>/<os>_<arch> under " +
			strings.Join(tfMirrors, ", ") + " or $KAPPA_TF_PLUGIN_MIRROR)")
	}
	dir := t.TempDir()
	rc := fmt.Sprintf(`provider_installation {
  filesystem_mirror {
    path    = %q
    include = ["registry.terraform.io/hashicorp/aws"]
  }
  direct {
    exclude = ["registry.terraform.io/hashicorp/aws"]
  }
}
`, mirror)
	for name, text := range map[string]string{"terraform.rc": rc, "main.tf": tfConfig} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	home := t.TempDir()
	return &terraform{dir: dir, env: []string{
		"PATH=" + os.Getenv("PATH"), "HOME=" + home,
		"TF_CLI_CONFIG_FILE=" + filepath.Join(dir, "terraform.rc"),
		"CHECKPOINT_DISABLE=1", "TF_IN_AUTOMATION=1",
		// Nothing but the endpoint in the configuration: no profile,
		// no instance metadata.
		"AWS_CONFIG_FILE=" + filepath.Join(home, "none"), "AWS_SHARED_CREDENTIALS_FILE=" + filepath.Join(home, "none"),
		"AWS_EC2_METADATA_DISABLED=true",
	}}
}

// run runs terraform with args and fails the test unless it exits 0
// (which, for plan -detailed-exitcode, means there is nothing to change).
func (tf *terraform) run(t *testing.T, args ...string) string {
	t.Helper()
	cmd := exec.Command("terraform", append(args[:1:1], append([]string{"-no-color"}, args[1:]...)...)...)
	cmd.Dir, cmd.Env = tf.dir, tf.env
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("terraform %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

// output returns a root module output's value.
func (tf *terraform) output(t *testing.T, name string) string {
	t.Helper()
	return strings.TrimSpace(tf.run(t, "output", "-raw", name))
}
