package e2e

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/lambda"
	"github.com/aws/aws-sdk-go-v2/service/lambda/types"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/kappa-run/kappa/internal/imagebuild"
)

// Shared across tests: built once in TestMain.
var (
	repoRoot   string
	kappaBin   string
	probeDir   string // a directory holding /bootstrap (the probe function)
	skipReason string
)

func TestMain(m *testing.M) {
	os.Exit(run(m))
}

func run(m *testing.M) int {
	_, file, _, _ := runtime.Caller(0)
	repoRoot = filepath.Join(filepath.Dir(file), "..", "..")
	switch {
	case os.Geteuid() != 0:
		skipReason = "needs root (containers, namespaces, overlay mounts)"
	case !haveAny("crun", "runc"):
		skipReason = "needs crun or runc (run scripts/deps.sh)"
	}
	if skipReason != "" {
		return m.Run()
	}
	tmp, err := os.MkdirTemp("", "kappa-e2e-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(tmp)
	kappaBin = filepath.Join(tmp, "kappa")
	if out, err := goBuild(kappaBin, "./cmd/kappa", true); err != nil {
		fmt.Fprintf(os.Stderr, "build kappa: %v\n%s", err, out)
		return 1
	}
	// As `make build`: the environments' init beside the server.
	if out, err := goBuild(filepath.Join(tmp, "kappa-init"), "./cmd/kappa-init", true); err != nil {
		fmt.Fprintf(os.Stderr, "build kappa-init: %v\n%s", err, out)
		return 1
	}
	probeDir = filepath.Join(tmp, "probe")
	os.MkdirAll(filepath.Join(probeDir, "var", "task"), 0o755)
	if out, err := goBuild(filepath.Join(probeDir, "bootstrap"), "./testdata/functions/probe", true); err != nil {
		fmt.Fprintf(os.Stderr, "build probe: %v\n%s", err, out)
		return 1
	}
	return m.Run()
}

func haveAny(names ...string) bool {
	for _, n := range names {
		if _, err := exec.LookPath(n); err == nil {
			return true
		}
	}
	return false
}

func goBuild(out, pkg string, static bool) ([]byte, error) {
	cmd := exec.Command("go", "build", "-trimpath", "-o", out, pkg)
	cmd.Dir = repoRoot
	cmd.Env = os.Environ()
	if static {
		cmd.Env = append(cmd.Env, "CGO_ENABLED=0")
	}
	return cmd.CombinedOutput()
}

func requireEnv(t testing.TB) {
	t.Helper()
	if skipReason != "" {
		t.Skip(skipReason)
	}
}

// server is one running `kappa server`.
type server struct {
	t       testing.TB
	cmd     *exec.Cmd
	addr    string
	dataDir string
	runDir  string
	args    []string
	logMu   sync.Mutex
	log     strings.Builder
	done    chan struct{}
	Lambda  *lambda.Client
}

// startServer starts kappa on a free loopback port with a fresh data dir.
func startServer(t testing.TB, extra ...string) *server {
	t.Helper()
	requireEnv(t)
	s := &server{t: t, dataDir: t.TempDir(), args: extra}
	s.runDir = filepath.Join("/run", "kappa-e2e-"+randHex(4))
	t.Cleanup(func() { os.RemoveAll(s.runDir); os.Remove(s.runDir + ".lock") }) // runs after stop
	s.start("127.0.0.1:0")
	t.Cleanup(func() { s.stop() })
	return s
}

var listenRE = regexp.MustCompile(`listening on http://(\S+)`)

func (s *server) start(listen string) {
	t := s.t
	args := append([]string{"server", "--listen", listen, "--data-dir", s.dataDir, "--run-dir", s.runDir,
		"--log-level", "debug"}, s.args...)
	s.cmd = exec.Command(kappaBin, args...)
	stderr, _ := s.cmd.StderrPipe()
	s.cmd.Stdout = io.Discard
	if err := s.cmd.Start(); err != nil {
		t.Fatalf("start kappa: %v", err)
	}
	s.done = make(chan struct{})
	addrc := make(chan string, 1)
	go func() {
		defer close(s.done)
		sc := bufio.NewScanner(stderr)
		sc.Buffer(make([]byte, 1<<20), 1<<20)
		for sc.Scan() {
			line := sc.Text()
			s.logMu.Lock()
			s.log.WriteString(line + "\n")
			s.logMu.Unlock()
			if m := listenRE.FindStringSubmatch(line); m != nil {
				select {
				case addrc <- m[1]:
				default:
				}
			}
		}
		s.cmd.Wait()
	}()
	select {
	case s.addr = <-addrc:
	case <-s.done:
		t.Fatalf("kappa exited at start:\n%s", s.Log())
	case <-time.After(60 * time.Second):
		t.Fatalf("kappa did not start in 60s:\n%s", s.Log())
	}
	s.Lambda = lambda.New(lambda.Options{
		Region:       "us-east-1",
		Credentials:  credentials.NewStaticCredentialsProvider("AKIDEXAMPLE", "secret", ""),
		BaseEndpoint: aws.String("http://" + s.addr),
		Retryer:      aws.NopRetryer{},
	})
}

// stop sends SIGTERM and waits for a clean exit.
func (s *server) stop() {
	if s.cmd == nil || s.cmd.Process == nil {
		return
	}
	s.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-s.done:
	case <-time.After(60 * time.Second):
		s.cmd.Process.Kill()
		<-s.done
		s.t.Errorf("kappa did not stop within 60s of SIGTERM")
	}
	if st := s.cmd.ProcessState; st != nil && !st.Success() && !s.t.Failed() {
		s.t.Errorf("kappa exited with %v:\n%s", st, s.Log())
	}
	s.cmd = nil
	if s.t.Failed() {
		s.t.Logf("server log:\n%s", s.Log())
	}
}

// restart stops the server and starts it again on the same port and data.
func (s *server) restart() {
	addr := s.addr
	s.stop()
	s.start(addr)
}

func (s *server) Log() string {
	s.logMu.Lock()
	defer s.logMu.Unlock()
	return s.log.String()
}

func (s *server) URL(path string) string { return "http://" + s.addr + path }

// registry returns the host:port of the embedded registry.
func (s *server) registry() string { return s.addr }

// pushProbe pushes the probe function as repo:tag onto scratch, with extra
// environment entries, and returns the image reference.
func (s *server) pushProbe(t testing.TB, repoTag string, env ...string) string {
	t.Helper()
	ref := s.registry() + "/" + repoTag
	img := probeImage(t, env...)
	r, err := name.ParseReference(ref)
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.Write(r, img); err != nil {
		t.Fatalf("push %s: %v", ref, err)
	}
	return ref
}

func probeImage(t testing.TB, env ...string) v1.Image {
	t.Helper()
	layer, err := imagebuild.DirLayer(probeDir)
	if err != nil {
		t.Fatal(err)
	}
	img, err := mutate.AppendLayers(empty.Image, layer)
	if err != nil {
		t.Fatal(err)
	}
	cf, _ := img.ConfigFile()
	cf = cf.DeepCopy()
	cf.OS, cf.Architecture = "linux", "amd64"
	cf.Config.Entrypoint = []string{"/bootstrap"}
	cf.Config.Env = append([]string{"PATH=/usr/bin:/bin"}, env...)
	cf.Config.WorkingDir = "/var/task"
	img, err = mutate.ConfigFile(img, cf)
	if err != nil {
		t.Fatal(err)
	}
	return img
}

const testRole = "arn:aws:iam::000000000000:role/kappa-test"

// createFunction creates a function from image and waits until it is Active.
func (s *server) createFunction(t testing.TB, fname, image string, mutate ...func(*lambda.CreateFunctionInput)) *lambda.GetFunctionOutput {
	t.Helper()
	in := &lambda.CreateFunctionInput{
		FunctionName: aws.String(fname),
		PackageType:  types.PackageTypeImage,
		Code:         &types.FunctionCode{ImageUri: aws.String(image)},
		Role:         aws.String(testRole),
		Timeout:      aws.Int32(10),
	}
	for _, m := range mutate {
		m(in)
	}
	ctx := context.Background()
	out, err := s.Lambda.CreateFunction(ctx, in)
	if err != nil {
		t.Fatalf("CreateFunction %s: %v", fname, err)
	}
	if out.State != types.StatePending || out.StateReasonCode != types.StateReasonCodeCreating {
		t.Errorf("CreateFunction state = %s/%s, want Pending/Creating", out.State, out.StateReasonCode)
	}
	return s.waitActive(t, fname)
}

func (s *server) waitActive(t testing.TB, fname string) *lambda.GetFunctionOutput {
	t.Helper()
	w := lambda.NewFunctionActiveV2Waiter(s.Lambda, func(o *lambda.FunctionActiveV2WaiterOptions) {
		o.MinDelay, o.MaxDelay = 50*time.Millisecond, 500*time.Millisecond
	})
	got, err := w.WaitForOutput(context.Background(), &lambda.GetFunctionInput{FunctionName: aws.String(fname)}, 2*time.Minute)
	if err != nil {
		fn, _ := s.Lambda.GetFunction(context.Background(), &lambda.GetFunctionInput{FunctionName: aws.String(fname)})
		if fn != nil {
			t.Fatalf("function %s not Active: %v (state %s: %s)", fname, err, fn.Configuration.State, aws.ToString(fn.Configuration.StateReason))
		}
		t.Fatalf("function %s not Active: %v", fname, err)
	}
	return got
}

func randHex(n int) string {
	b := make([]byte, n)
	f, _ := os.Open("/dev/urandom")
	io.ReadFull(f, b)
	f.Close()
	return fmt.Sprintf("%x", b)
}

// apiErrorCode extracts the AWS error code of an SDK error.
func apiErrorCode(err error) string {
	var ae interface{ ErrorCode() string }
	if errors.As(err, &ae) {
		return ae.ErrorCode()
	}
	return ""
}

// httpStatus extracts the HTTP status of an SDK error.
func httpStatus(err error) int {
	var re interface{ HTTPStatusCode() int }
	if errors.As(err, &re) {
		return re.HTTPStatusCode()
	}
	return 0
}

func get(t testing.TB, url string) (int, string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}
