package e2e

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/lambda"
)

// TestConsoleInBrowser runs test/console/console.mjs: Playwright driving
// headless chromium through the web console (list → function → invoke →
// logs → chart update → registry → billing). Screenshots are written to
// build/console-screenshots/ (or $KAPPA_ARTIFACTS/console-screenshots).
func TestConsoleInBrowser(t *testing.T) {
	requireEnv(t)
	node, err := exec.LookPath("node")
	if err != nil {
		t.Skip("needs node: run scripts/console-deps.sh")
	}
	chromium := os.Getenv("CHROMIUM")
	if chromium == "" {
		chromium = "/usr/bin/chromium"
	}
	if _, err := os.Stat(chromium); err != nil {
		t.Skip("needs chromium at " + chromium + ": run scripts/console-deps.sh")
	}
	if _, err := os.Stat(filepath.Join(repoRoot, "test", "console", "node_modules", "playwright-core")); err != nil {
		t.Skip("needs playwright-core in test/console/node_modules: run scripts/console-deps.sh")
	}
	shots := filepath.Join(repoRoot, "build", "console-screenshots")
	if dir := os.Getenv("KAPPA_ARTIFACTS"); dir != "" {
		shots = filepath.Join(dir, "console-screenshots")
	}

	s := newServer(t)
	img := s.pushProbe(t, "web/probe:v1")
	s.createFunction(t, "web", img, func(in *lambda.CreateFunctionInput) {
		in.Description = aws.String(`<img src=x onerror="window.__pwned=true">`)
		in.MemorySize = aws.Int32(256)
	})
	v := publish(t, s, "web")
	if _, err := s.Lambda.CreateAlias(context.Background(), &lambda.CreateAliasInput{FunctionName: aws.String("web"),
		Name: aws.String("live"), FunctionVersion: v.Version}); err != nil {
		t.Fatal(err)
	}
	mustInvoke(t, s, "web", map[string]any{"op": "echo", "log": "first invocation"})

	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, node, filepath.Join("test", "console", "console.mjs"))
	cmd.Dir = repoRoot
	cmd.Env = append(os.Environ(), "KAPPA_URL=http://"+s.addr, "KAPPA_FUNCTION=web", "KAPPA_REPO=web/probe",
		"SCREENSHOT_DIR="+shots, "CHROMIUM="+chromium)
	out, err := cmd.CombinedOutput()
	t.Logf("playwright:\n%s", out)
	if err != nil {
		t.Fatalf("the browser test failed (%v); screenshots in %s", err, shots)
	}
	t.Logf("screenshots in %s", shots)
}
