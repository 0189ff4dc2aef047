//go:build linux

package rie

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// entrypointScript has the shape of the AWS base images'
// /lambda-entrypoint.sh: one argument (the handler), then the runtime
// bootstrap directly when AWS_LAMBDA_RUNTIME_API is set, else under
// /usr/local/bin/aws-lambda-rie.
const entrypointScript = `#!/bin/sh
if [ $# -ne 1 ]; then
  echo "entrypoint requires the handler name to be the first argument" 1>&2
  exit 142
fi
export _HANDLER="$1"

RUNTIME_ENTRYPOINT=/var/runtime/bootstrap
if [ -z "${AWS_LAMBDA_RUNTIME_API}" ]; then
  exec /usr/local/bin/aws-lambda-rie $RUNTIME_ENTRYPOINT
else
  exec $RUNTIME_ENTRYPOINT
fi
`

// TestLambdaEntrypointContainer runs an image laid out like an AWS base
// image, with the kappa binary as /usr/local/bin/aws-lambda-rie, in a crun
// (or runc) container inside a network namespace the test creates, and
// invokes it through that namespace's loopback.
func TestLambdaEntrypointContainer(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root")
	}
	rt := ""
	for _, name := range []string{"crun", "runc"} {
		if _, err := exec.LookPath(name); err == nil {
			rt = name
			break
		}
	}
	if rt == "" {
		t.Skip("needs crun or runc")
	}
	busybox := "/bin/busybox"
	if out, err := exec.Command("file", "-L", busybox).CombinedOutput(); err != nil || !strings.Contains(string(out), "statically linked") {
		if _, err := os.Stat(busybox); err != nil {
			t.Skip("needs a static /bin/busybox (Debian: busybox-static)")
		}
	}
	for _, tool := range []string{"ip", "curl"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("needs %s", tool)
		}
	}

	dir := t.TempDir()
	rootfs := filepath.Join(dir, "rootfs")
	for _, d := range []string{"bin", "usr/local/bin", "var/runtime", "var/task", "opt/extensions", "proc", "dev", "sys", "tmp", "etc"} {
		if err := os.MkdirAll(filepath.Join(rootfs, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	copyFile(t, busybox, filepath.Join(rootfs, "bin/busybox"))
	if err := os.Symlink("busybox", filepath.Join(rootfs, "bin/sh")); err != nil {
		t.Fatal(err)
	}
	copyFile(t, build(t, "../../cmd/kappa"), filepath.Join(rootfs, "usr/local/bin/aws-lambda-rie"))
	copyFile(t, build(t, "../../testdata/functions/stream"), filepath.Join(rootfs, "var/runtime/bootstrap"))
	if err := os.WriteFile(filepath.Join(rootfs, "lambda-entrypoint.sh"), []byte(entrypointScript), 0o755); err != nil {
		t.Fatal(err)
	}

	ns := fmt.Sprintf("kappa-rie-%d", os.Getpid())
	if out, err := exec.Command("ip", "netns", "add", ns).CombinedOutput(); err != nil {
		t.Skipf("cannot create a network namespace: %v %s", err, out)
	}
	t.Cleanup(func() { _ = exec.Command("ip", "netns", "del", ns).Run() })
	if out, err := exec.Command("ip", "netns", "exec", ns, "ip", "link", "set", "lo", "up").CombinedOutput(); err != nil {
		t.Fatalf("lo up: %v %s", err, out)
	}

	bundle := filepath.Join(dir, "bundle")
	if err := os.MkdirAll(bundle, 0o755); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command(rt, "spec", "--bundle", bundle).CombinedOutput(); err != nil {
		t.Fatalf("%s spec: %v\n%s", rt, err, out)
	}
	var spec map[string]any
	raw, _ := os.ReadFile(filepath.Join(bundle, "config.json"))
	if err := json.Unmarshal(raw, &spec); err != nil {
		t.Fatal(err)
	}
	proc := spec["process"].(map[string]any)
	proc["terminal"] = false
	proc["args"] = []string{"/lambda-entrypoint.sh", "app.handler"}
	proc["cwd"] = "/var/task"
	proc["env"] = []string{"PATH=/usr/local/bin:/usr/bin:/bin", "AWS_LAMBDA_FUNCTION_TIMEOUT=30"}
	spec["root"] = map[string]any{"path": rootfs, "readonly": true}
	linux := spec["linux"].(map[string]any)
	var nss []any
	for _, n := range linux["namespaces"].([]any) {
		if n.(map[string]any)["type"] != "network" {
			nss = append(nss, n)
		}
	}
	linux["namespaces"] = append(nss, map[string]any{"type": "network", "path": "/var/run/netns/" + ns})
	raw, _ = json.Marshal(spec)
	if err := os.WriteFile(filepath.Join(bundle, "config.json"), raw, 0o644); err != nil {
		t.Fatal(err)
	}

	id := fmt.Sprintf("kappa-rie-test-%d", os.Getpid())
	state := filepath.Join(dir, "state")
	run := exec.Command(rt, "--root", state, "run", "--bundle", bundle, id)
	out := &syncBuffer{}
	run.Stdout, run.Stderr = out, out
	if err := run.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- run.Wait() }()
	t.Cleanup(func() {
		_ = exec.Command(rt, "--root", state, "kill", id, "KILL").Run()
		select {
		case <-exited:
		case <-time.After(10 * time.Second):
			_ = run.Process.Kill()
			<-exited
		}
		_ = exec.Command(rt, "--root", state, "delete", "-f", id).Run()
		if t.Failed() {
			t.Logf("container output:\n%s", out)
		}
	})

	invoke := func(body string) (string, error) {
		b, err := exec.Command("ip", "netns", "exec", ns, "curl", "-sS", "--max-time", "20", "-XPOST",
			"http://127.0.0.1:8080/2015-03-31/functions/function/invocations", "-d", body).CombinedOutput()
		return string(b), err
	}
	deadline := time.Now().Add(20 * time.Second)
	for {
		got, err := invoke(`{"op":"echo","data":"from the container"}`)
		if err == nil {
			if got != `{"data":"from the container","ok":true}` {
				t.Fatalf("invoke: %q", got)
			}
			break
		}
		select {
		case err := <-exited:
			t.Fatalf("container exited: %v", err)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("no answer from the container: %v %s", err, got)
		}
		time.Sleep(100 * time.Millisecond)
	}
	for key, want := range map[string]string{"_HANDLER": "app.handler", "AWS_LAMBDA_RUNTIME_API": "127.0.0.1:9001", "AWS_LAMBDA_FUNCTION_NAME": "test_function"} {
		got, err := invoke(`{"op":"getenv","key":"` + key + `"}`)
		if err != nil || got != `{"data":"`+want+`","ok":true}` {
			t.Errorf("%s: %q %v, want %q", key, got, err, want)
		}
	}
	deadline = time.Now().Add(5 * time.Second)
	for !strings.Contains(out.String(), "REPORT RequestId: ") && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	if !strings.Contains(out.String(), "START RequestId: ") || !strings.Contains(out.String(), "REPORT RequestId: ") {
		t.Errorf("no START/REPORT lines in the container's output")
	}
}

func copyFile(t *testing.T, from, to string) {
	t.Helper()
	b, err := os.ReadFile(from)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(to, b, 0o755); err != nil {
		t.Fatal(err)
	}
}
