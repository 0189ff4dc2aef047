package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"
)

// TestAWSCLI drives the Lambda API with the real aws CLI, unchanged but for
// --endpoint-url: a function's life from create-function to delete-function,
// with its waiters, synchronous and Event invocations, a function error,
// versions and aliases, and the errors the CLI must recognise by their type.
func TestAWSCLI(t *testing.T) {
	requireEnv(t)
	if _, err := exec.LookPath("aws"); err != nil {
		t.Skip("needs the aws CLI (pip install awscli, or AWS CLI v2) on PATH")
	}
	s := newServer(t)
	cli := newAWSCLI(t, s)
	img := s.pushProbe(t, "probe:cli")
	dir := t.TempDir()

	ok := t.Run("create and wait", func(t *testing.T) {
		var fn struct {
			FunctionName, State, PackageType string
			Timeout                          int
			Environment                      struct{ Variables map[string]string }
		}
		cli.call(t, &fn, "lambda", "create-function", "--function-name", "cli-fn", "--package-type", "Image",
			"--code", "ImageUri="+img, "--role", testRole, "--timeout", "10",
			"--environment", "Variables={GREETING=hi}")
		if fn.FunctionName != "cli-fn" || fn.State != "Pending" || fn.PackageType != "Image" || fn.Timeout != 10 {
			t.Errorf("create-function = %+v, want cli-fn Pending Image with Timeout 10", fn)
		}
		if fn.Environment.Variables["GREETING"] != "hi" {
			t.Errorf("create-function Environment %v, want GREETING=hi", fn.Environment.Variables)
		}
		cli.ok(t, "lambda", "wait", "function-active-v2", "--function-name", "cli-fn")
	})
	if !ok {
		return
	}

	t.Run("invoke", func(t *testing.T) {
		out, res := cli.invoke(t, filepath.Join(dir, "env.json"), "cli-fn", `{"op":"env"}`)
		if out.StatusCode != 200 || out.FunctionError != "" || out.ExecutedVersion != "$LATEST" {
			t.Errorf("invoke = %+v, want StatusCode 200, no FunctionError, ExecutedVersion $LATEST", out)
		}
		if got := environ(res)["GREETING"]; got != "hi" {
			t.Errorf("the function saw GREETING=%q, want hi", got)
		}
	})

	t.Run("function error", func(t *testing.T) {
		out, res := cli.invoke(t, filepath.Join(dir, "error.json"), "cli-fn", `{"op":"error","text":"from the CLI"}`)
		if out.StatusCode != 200 || out.FunctionError != "Unhandled" {
			t.Errorf("invoke = %+v, want StatusCode 200 and FunctionError Unhandled", out)
		}
		if msg, _ := res["errorMessage"].(string); !strings.Contains(msg, "from the CLI") {
			t.Errorf("error document errorMessage %q, want the function's message", msg)
		}
		if typ, _ := res["errorType"].(string); typ != "errorString" {
			t.Errorf("error document errorType %q, want errorString (aws-lambda-go's for errors.New)", typ)
		}
	})

	t.Run("update, publish and alias", func(t *testing.T) {
		var up struct {
			MemorySize       int
			LastUpdateStatus string
		}
		cli.call(t, &up, "lambda", "update-function-configuration", "--function-name", "cli-fn",
			"--memory-size", "256", "--environment", "Variables={GREETING=hello}")
		if up.MemorySize != 256 || up.LastUpdateStatus != "InProgress" {
			t.Errorf("update-function-configuration = %+v, want MemorySize 256 and LastUpdateStatus InProgress", up)
		}
		cli.ok(t, "lambda", "wait", "function-updated-v2", "--function-name", "cli-fn")

		var v struct {
			Version, FunctionArn string
			MemorySize           int
		}
		cli.call(t, &v, "lambda", "publish-version", "--function-name", "cli-fn")
		if v.Version != "1" || v.FunctionArn != testARN("cli-fn", "1") || v.MemorySize != 256 {
			t.Fatalf("publish-version = %+v, want version 1 of 256 MB", v)
		}
		var alias struct{ Name, AliasArn, FunctionVersion string }
		cli.call(t, &alias, "lambda", "create-alias", "--function-name", "cli-fn", "--name", "live", "--function-version", "1")
		if alias.Name != "live" || alias.AliasArn != testARN("cli-fn", "live") || alias.FunctionVersion != "1" {
			t.Fatalf("create-alias = %+v, want live at version 1", alias)
		}

		out, res := cli.invoke(t, filepath.Join(dir, "alias.json"), "cli-fn:live", `{"op":"env"}`)
		if out.StatusCode != 200 || out.FunctionError != "" || out.ExecutedVersion != "1" {
			t.Errorf("invoke cli-fn:live = %+v, want StatusCode 200, no FunctionError, ExecutedVersion 1", out)
		}
		if env := environ(res); env["GREETING"] != "hello" || env["AWS_LAMBDA_FUNCTION_MEMORY_SIZE"] != "256" {
			t.Errorf("cli-fn:live saw GREETING=%q AWS_LAMBDA_FUNCTION_MEMORY_SIZE=%q, want hello and 256",
				env["GREETING"], env["AWS_LAMBDA_FUNCTION_MEMORY_SIZE"])
		}
	})

	t.Run("list and get", func(t *testing.T) {
		var list struct {
			Functions []struct{ FunctionName, FunctionArn string }
		}
		cli.call(t, &list, "lambda", "list-functions")
		found := false
		for _, f := range list.Functions {
			found = found || f.FunctionName == "cli-fn" && f.FunctionArn == testARN("cli-fn", "")
		}
		if !found {
			t.Errorf("list-functions = %+v, want cli-fn among them", list.Functions)
		}

		var fn struct {
			Configuration struct {
				FunctionName, State, Version, CodeSha256 string
				MemorySize                               int
			}
			Code struct{ RepositoryType, ImageUri, ResolvedImageUri string }
		}
		cli.call(t, &fn, "lambda", "get-function", "--function-name", "cli-fn")
		c := fn.Configuration
		if c.FunctionName != "cli-fn" || c.State != "Active" || c.Version != "$LATEST" || c.MemorySize != 256 {
			t.Errorf("get-function Configuration = %+v, want cli-fn Active $LATEST of 256 MB", c)
		}
		if fn.Code.ImageUri != img || fn.Code.RepositoryType != "ECR" {
			t.Errorf("get-function Code = %+v, want ImageUri %s from ECR", fn.Code, img)
		}
		// As Lambda: CodeSha256 is the image manifest's digest, and
		// ResolvedImageUri names the image by it.
		ref, err := name.ParseReference(img)
		if err != nil {
			t.Fatal(err)
		}
		desc, err := remote.Head(ref)
		if err != nil {
			t.Fatalf("HEAD %s: %v", img, err)
		}
		if c.CodeSha256 != desc.Digest.Hex || !strings.HasSuffix(fn.Code.ResolvedImageUri, "@"+desc.Digest.String()) {
			t.Errorf("get-function CodeSha256 %q ResolvedImageUri %q, want the manifest digest %s",
				c.CodeSha256, fn.Code.ResolvedImageUri, desc.Digest)
		}
	})

	t.Run("not found", func(t *testing.T) {
		cli.fails(t, "ResourceNotFoundException", "lambda", "get-function", "--function-name", "does-not-exist")
	})

	t.Run("event invoke", func(t *testing.T) {
		outfile := filepath.Join(dir, "event.json")
		var out invokeResult
		args := append([]string{"lambda", "invoke", "--function-name", "cli-fn", "--invocation-type", "Event",
			"--payload", `{"op":"echo"}`, outfile}, cli.textPayload...)
		cli.call(t, &out, args...)
		if out.StatusCode != 202 || out.FunctionError != "" {
			t.Errorf("invoke --invocation-type Event = %+v, want StatusCode 202", out)
		}
		if b, err := os.ReadFile(outfile); err != nil || len(b) != 0 {
			t.Errorf("an Event invocation wrote %q to the outfile (%v), want it empty", b, err)
		}
	})

	// The function's logs through the CloudWatch Logs API: its output and
	// its REPORT lines, found by a filter pattern.
	t.Run("logs", func(t *testing.T) {
		var out struct {
			Events []struct {
				LogStreamName, Message string
				Timestamp              int64
			}
		}
		if !eventually(10*time.Second, func() bool {
			cli.call(t, &out, "logs", "filter-log-events", "--log-group-name", "/aws/lambda/cli-fn", "--filter-pattern", "REPORT")
			return len(out.Events) >= 2
		}) {
			t.Fatalf("logs filter-log-events REPORT: %d events, want one per invocation so far", len(out.Events))
		}
		for _, e := range out.Events {
			if !strings.HasPrefix(e.Message, "REPORT RequestId: ") || e.LogStreamName == "" || e.Timestamp == 0 {
				t.Errorf("event %+v, want a REPORT line with its stream and time", e)
			}
		}
		cli.fails(t, "ResourceNotFoundException", "logs", "filter-log-events", "--log-group-name", "/aws/lambda/does-not-exist")
	})

	// An SQS producer through the CLI: a queue, a message and its
	// attributes; what Kappa does not serve fails with SQS's codes.
	t.Run("sqs", func(t *testing.T) {
		var q struct{ QueueUrl string }
		cli.call(t, &q, "sqs", "create-queue", "--queue-name", "cli-q")
		if !strings.HasSuffix(q.QueueUrl, "/000000000000/cli-q") {
			t.Fatalf("create-queue QueueUrl %q", q.QueueUrl)
		}
		var sent struct{ MessageId, MD5OfMessageBody string }
		cli.call(t, &sent, "sqs", "send-message", "--queue-url", q.QueueUrl, "--message-body", "hello")
		if sent.MessageId == "" || sent.MD5OfMessageBody != "5d41402abc4b2a76b9719d911017c592" {
			t.Errorf("send-message = %+v, want an id and the MD5 of hello", sent)
		}
		var attrs struct{ Attributes map[string]string }
		cli.call(t, &attrs, "sqs", "get-queue-attributes", "--queue-url", q.QueueUrl, "--attribute-names", "All")
		if attrs.Attributes["ApproximateNumberOfMessages"] != "1" || attrs.Attributes["QueueArn"] != "arn:aws:sqs:us-east-1:000000000000:cli-q" {
			t.Errorf("get-queue-attributes = %v", attrs.Attributes)
		}
		cli.fails(t, "AWS.SimpleQueueService.NonExistentQueue", "sqs", "get-queue-url", "--queue-name", "no-such-queue")
		cli.fails(t, "AWS.SimpleQueueService.UnsupportedOperation", "sqs", "receive-message", "--queue-url", q.QueueUrl)
	})

	t.Run("delete", func(t *testing.T) {
		var del struct{ StatusCode int }
		cli.call(t, &del, "lambda", "delete-function", "--function-name", "cli-fn")
		if del.StatusCode != 204 {
			t.Errorf("delete-function StatusCode %d, want 204", del.StatusCode)
		}
		cli.fails(t, "ResourceNotFoundException", "lambda", "get-function", "--function-name", "cli-fn")
	})
}

// awsCLI runs the aws CLI against one server. Its environment is built
// from nothing: dummy credentials, no config or credentials file, no
// instance metadata and no pager, so that the CLI talks only to the server.
type awsCLI struct {
	endpoint string
	env      []string
	// textPayload are the options that make --payload text, not base64:
	// none for CLI v1, which sends it as is and knows no
	// --cli-binary-format; that option for v2.
	textPayload []string
}

func newAWSCLI(t *testing.T, s *server) *awsCLI {
	t.Helper()
	home := t.TempDir()
	c := &awsCLI{
		endpoint: "http://" + s.addr,
		env: []string{
			"PATH=" + os.Getenv("PATH"),
			"HOME=" + home,
			"AWS_ACCESS_KEY_ID=AKIDEXAMPLE",
			"AWS_SECRET_ACCESS_KEY=secret",
			"AWS_DEFAULT_REGION=us-east-1",
			"AWS_CONFIG_FILE=" + filepath.Join(home, "config"),
			"AWS_SHARED_CREDENTIALS_FILE=" + filepath.Join(home, "credentials"),
			"AWS_EC2_METADATA_DISABLED=true",
			"AWS_PAGER=",
		},
	}
	cmd := exec.Command("aws", "--version")
	cmd.Env = c.env
	v, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("aws --version: %v: %s", err, v)
	}
	t.Logf("%s", bytes.TrimSpace(v))
	if !bytes.HasPrefix(v, []byte("aws-cli/1.")) {
		c.textPayload = []string{"--cli-binary-format", "raw-in-base64-out"}
	}
	return c
}

// run runs `aws args... --endpoint-url <server> --output json` and returns
// its stdout, stderr and exit code.
func (c *awsCLI) run(t *testing.T, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "aws", append(args, "--endpoint-url", c.endpoint, "--output", "json")...)
	cmd.Env = c.env
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	err := cmd.Run()
	var exit *exec.ExitError
	switch {
	case errors.As(err, &exit):
		code = exit.ExitCode()
	case err != nil:
		t.Fatalf("aws %s: %v", strings.Join(args, " "), err)
	}
	return out.String(), errOut.String(), code
}

// ok runs the CLI and fails the test unless it exits 0.
func (c *awsCLI) ok(t *testing.T, args ...string) string {
	t.Helper()
	out, errOut, code := c.run(t, args...)
	if code != 0 {
		t.Fatalf("aws %s: exit %d\nstdout: %s\nstderr: %s", strings.Join(args, " "), code, out, errOut)
	}
	return out
}

// call runs the CLI, requires exit 0 and decodes its output into v.
func (c *awsCLI) call(t *testing.T, v any, args ...string) {
	t.Helper()
	out := c.ok(t, args...)
	if err := json.Unmarshal([]byte(out), v); err != nil {
		t.Fatalf("aws %s: output is not JSON (%v): %s", strings.Join(args, " "), err, out)
	}
}

// fails runs the CLI and requires it to exit non-zero with an error of the
// AWS type typ, which the CLI names on stderr.
func (c *awsCLI) fails(t *testing.T, typ string, args ...string) {
	t.Helper()
	out, errOut, code := c.run(t, args...)
	if code == 0 || !strings.Contains(errOut, "("+typ+")") {
		t.Errorf("aws %s: exit %d, stderr %q; want a non-zero exit and %s\nstdout: %s",
			strings.Join(args, " "), code, errOut, typ, out)
	}
}

// invokeResult is what `aws lambda invoke` prints.
type invokeResult struct {
	StatusCode      int
	FunctionError   string
	ExecutedVersion string
}

// invoke invokes fname synchronously with a JSON payload, as text (not
// base64), and returns what the CLI printed and the result it wrote to
// outfile, decoded.
func (c *awsCLI) invoke(t *testing.T, outfile, fname, payload string) (invokeResult, map[string]any) {
	t.Helper()
	var out invokeResult
	args := append([]string{"lambda", "invoke", "--function-name", fname, "--payload", payload, outfile}, c.textPayload...)
	c.call(t, &out, args...)
	b, err := os.ReadFile(outfile)
	if err != nil {
		t.Fatal(err)
	}
	var res map[string]any
	if err := json.Unmarshal(b, &res); err != nil {
		t.Fatalf("invoke %s: the outfile is not a JSON object (%v): %s", fname, err, b)
	}
	return out, res
}
