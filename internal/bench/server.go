package bench

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
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

// server is one `kappa server` child process on a loopback port with its
// own data and run directories.
type server struct {
	cmd     *exec.Cmd
	addr    string
	dataDir string
	runDir  string
	done    chan struct{}
	client  *http.Client
	lambda  *lambda.Client

	logMu sync.Mutex
	log   bytes.Buffer // the last lines of its stderr
}

var listenRE = regexp.MustCompile(`listening on http://(\S+)`)

// startServer runs `kappa server` with extra flags and waits until it
// listens.
func startServer(ctx context.Context, kappa, workDir string, logTo io.Writer, extra ...string) (*server, error) {
	s := &server{
		dataDir: filepath.Join(workDir, "data"),
		runDir:  "/run/kappa-bench-" + randHex(4),
		done:    make(chan struct{}),
	}
	args := append([]string{"server", "--listen", "127.0.0.1:0", "--data-dir", s.dataDir, "--run-dir", s.runDir,
		"--pprof", "--log-level", "info", "--sync-writes=false"}, extra...)
	s.cmd = exec.Command(kappa, args...)
	s.cmd.Stdout = io.Discard
	stderr, err := s.cmd.StderrPipe()
	if err != nil {
		return nil, err
	}
	if err := s.cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s server: %w", kappa, err)
	}
	addrc := make(chan string, 1)
	go func() {
		defer close(s.done)
		sc := bufio.NewScanner(stderr)
		sc.Buffer(make([]byte, 1<<20), 1<<20)
		for sc.Scan() {
			line := sc.Text()
			if logTo != nil {
				fmt.Fprintln(logTo, line)
			}
			s.logMu.Lock()
			if s.log.Len() > 1<<20 {
				s.log.Reset()
			}
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
		return nil, fmt.Errorf("kappa server exited at start:\n%s", s.tail())
	case <-time.After(2 * time.Minute):
		s.stop()
		return nil, fmt.Errorf("kappa server did not start within 2 minutes:\n%s", s.tail())
	case <-ctx.Done():
		s.stop()
		return nil, ctx.Err()
	}
	s.client = &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 1024, MaxConnsPerHost: 0}}
	s.lambda = lambda.New(lambda.Options{
		Region:       "us-east-1",
		Credentials:  credentials.NewStaticCredentialsProvider("AKIDEXAMPLE", "secret", ""),
		BaseEndpoint: aws.String("http://" + s.addr),
		Retryer:      aws.NopRetryer{},
		HTTPClient:   s.client,
	})
	return s, nil
}

// tail returns the last 4 KB the server logged.
func (s *server) tail() string {
	s.logMu.Lock()
	defer s.logMu.Unlock()
	b := s.log.Bytes()
	if len(b) > 4<<10 {
		b = b[len(b)-4<<10:]
	}
	return string(b)
}

// pid is the server's process id.
func (s *server) pid() int { return s.cmd.Process.Pid }

// stop sends SIGTERM and waits for the server to exit (SIGKILL after a
// minute).
func (s *server) stop() {
	if s.cmd.Process == nil {
		return
	}
	s.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-s.done:
	case <-time.After(time.Minute):
		s.cmd.Process.Kill()
		<-s.done
	}
	// What a cleanly stopped server leaves in its run directory is empty
	// directories; anything still mounted there is left alone.
	// (A server killed after a minute leaves its tmpfs on the directory.)
	if mi, err := os.ReadFile("/proc/self/mountinfo"); err == nil &&
		!bytes.Contains(mi, []byte(" "+s.runDir+"/")) && !bytes.Contains(mi, []byte(" "+s.runDir+" ")) {
		os.RemoveAll(s.runDir)
		os.Remove(s.runDir + ".lock") // the server's lock beside it, released at its exit
	}
}

func (s *server) url(path string) string { return "http://" + s.addr + path }

// push pushes dir as a one-layer image with entrypoint /bootstrap and
// returns its reference.
func (s *server) push(dir, repoTag string) (string, error) {
	layer, err := imagebuild.DirLayer(dir)
	if err != nil {
		return "", err
	}
	img, err := mutate.AppendLayers(empty.Image, layer)
	if err != nil {
		return "", err
	}
	cf, err := img.ConfigFile()
	if err != nil {
		return "", err
	}
	cf = cf.DeepCopy()
	cf.OS, cf.Architecture = "linux", "amd64"
	cf.Config = v1.Config{Entrypoint: []string{"/bootstrap"}, Env: []string{"PATH=/usr/bin:/bin"}, WorkingDir: "/var/task"}
	if img, err = mutate.ConfigFile(img, cf); err != nil {
		return "", err
	}
	ref := s.addr + "/" + repoTag
	r, err := name.ParseReference(ref)
	if err != nil {
		return "", err
	}
	if err := remote.Write(r, img); err != nil {
		return "", fmt.Errorf("push %s: %w", ref, err)
	}
	return ref, nil
}

// createFunction creates fn from image with memoryMB and waits until it
// is Active.
func (s *server) createFunction(ctx context.Context, fn, image string, memoryMB int32, mutate ...func(*lambda.CreateFunctionInput)) error {
	in := &lambda.CreateFunctionInput{
		FunctionName: aws.String(fn),
		PackageType:  types.PackageTypeImage,
		Code:         &types.FunctionCode{ImageUri: aws.String(image)},
		Role:         aws.String("arn:aws:iam::000000000000:role/kappa-bench"),
		Timeout:      aws.Int32(30),
		MemorySize:   aws.Int32(memoryMB),
	}
	for _, m := range mutate {
		m(in)
	}
	_, err := s.lambda.CreateFunction(ctx, in)
	if err != nil {
		return fmt.Errorf("create function %s: %w", fn, err)
	}
	w := lambda.NewFunctionActiveV2Waiter(s.lambda, func(o *lambda.FunctionActiveV2WaiterOptions) {
		o.MinDelay, o.MaxDelay = 20*time.Millisecond, 200*time.Millisecond
	})
	if err := w.Wait(ctx, &lambda.GetFunctionInput{FunctionName: aws.String(fn)}, 2*time.Minute); err != nil {
		return fmt.Errorf("function %s not active: %w", fn, err)
	}
	return nil
}

// reconfigure changes fn's environment (a new configuration, so none of
// its environments fits any more) and waits until the update is done.
func (s *server) reconfigure(ctx context.Context, fn, sample string) error {
	_, err := s.lambda.UpdateFunctionConfiguration(ctx, &lambda.UpdateFunctionConfigurationInput{
		FunctionName: aws.String(fn),
		Environment:  &types.Environment{Variables: map[string]string{"SAMPLE": sample}},
	})
	if err != nil {
		return fmt.Errorf("update %s: %w", fn, err)
	}
	w := lambda.NewFunctionUpdatedV2Waiter(s.lambda, func(o *lambda.FunctionUpdatedV2WaiterOptions) {
		o.MinDelay, o.MaxDelay = 10*time.Millisecond, 100*time.Millisecond
	})
	return w.Wait(ctx, &lambda.GetFunctionInput{FunctionName: aws.String(fn)}, time.Minute)
}

// errFunction is an invocation that returned a function error.
var errFunction = errors.New("function error")

// invoke posts payload to fn and returns the response body. A function
// error is returned as errFunction (with the body).
func (s *server) invoke(ctx context.Context, fn, payload string) ([]byte, error) {
	req, err := http.NewRequestWithContext(ctx, "POST", s.url("/2015-03-31/functions/"+fn+"/invocations"), strings.NewReader(payload))
	if err != nil {
		return nil, err
	}
	resp, err := s.client.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusOK {
		return body, fmt.Errorf("invoke %s: HTTP %d: %s", fn, resp.StatusCode, bytes.TrimSpace(body))
	}
	if resp.Header.Get("X-Amz-Function-Error") != "" {
		return body, errFunction
	}
	return body, nil
}

// envOf returns the probe's environment id from a response body.
func envOf(body []byte) string {
	var r struct {
		Env string `json:"env"`
	}
	json.Unmarshal(body, &r)
	return r.Env
}

// health reads /healthz: live and idle environments.
func (s *server) health(ctx context.Context) (live, idle int, err error) {
	req, _ := http.NewRequestWithContext(ctx, "GET", s.url("/healthz"), nil)
	resp, err := s.client.Do(req)
	if err != nil {
		return 0, 0, err
	}
	defer resp.Body.Close()
	var h struct {
		Environments struct{ Live, Idle int } `json:"environments"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&h); err != nil {
		return 0, 0, err
	}
	return h.Environments.Live, h.Environments.Idle, nil
}

// gc makes the server run a garbage collection (through pprof's heap
// endpoint), so that RSS samples compare live memory.
func (s *server) gc(ctx context.Context) {
	req, _ := http.NewRequestWithContext(ctx, "GET", s.url("/debug/pprof/heap?gc=1"), nil)
	if resp, err := s.client.Do(req); err == nil {
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
	}
}

// profile saves a CPU profile of the server taken over d to path.
func (s *server) profile(ctx context.Context, d time.Duration, path string) error {
	req, _ := http.NewRequestWithContext(ctx, "GET", s.url(fmt.Sprintf("/debug/pprof/profile?seconds=%d", int(d.Seconds()))), nil)
	resp, err := s.client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		return fmt.Errorf("profile: HTTP %d", resp.StatusCode)
	}
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	_, err = io.Copy(f, resp.Body)
	return errors.Join(err, f.Close())
}

func randHex(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return hex.EncodeToString(b)
}
