package bench

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/kappa-run/kappa/internal/imagebuild"
)

// rawRuntime runs the no-op of the function's root filesystem with an OCI
// runtime's default configuration (`<runtime> spec`): the cold-start and
// scale-out baseline.
type rawRuntime struct {
	name, bin, root, bundle string
	n                       int
	mu                      sync.Mutex
}

// newRawRuntime prepares a bundle of rootfs running /noop with the first
// of names that is installed.
func newRawRuntime(workDir, rootfs string, names ...string) (*rawRuntime, error) {
	var bin, rt string
	for _, n := range names {
		if p, err := exec.LookPath(n); err == nil {
			bin, rt = p, n
			break
		}
	}
	if bin == "" {
		return nil, fmt.Errorf("none of %s is installed", strings.Join(names, ", "))
	}
	r := &rawRuntime{name: rt, bin: bin, root: filepath.Join(workDir, rt+"-state"), bundle: filepath.Join(workDir, rt+"-bundle")}
	if err := os.MkdirAll(r.bundle, 0o700); err != nil {
		return nil, err
	}
	if out, err := exec.Command(bin, "spec", "--bundle", r.bundle).CombinedOutput(); err != nil {
		return nil, fmt.Errorf("%s spec: %v: %s", rt, err, out)
	}
	path := filepath.Join(r.bundle, "config.json")
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var spec map[string]any
	if err := json.Unmarshal(data, &spec); err != nil {
		return nil, err
	}
	proc := spec["process"].(map[string]any)
	proc["terminal"] = false
	proc["args"] = []string{"/noop"}
	spec["root"] = map[string]any{"path": rootfs, "readonly": true}
	if data, err = json.Marshal(spec); err != nil {
		return nil, err
	}
	return r, os.WriteFile(path, data, 0o600)
}

// run runs the no-op once in the foreground and returns how long it took.
func (r *rawRuntime) run(ctx context.Context) (time.Duration, error) {
	r.mu.Lock()
	r.n++
	id := fmt.Sprintf("kappa-bench-%d-%d", os.Getpid(), r.n)
	r.mu.Unlock()
	start := time.Now()
	out, err := exec.CommandContext(ctx, r.bin, "--root", r.root, "run", "--bundle", r.bundle, id).CombinedOutput()
	d := time.Since(start)
	if err != nil {
		return 0, fmt.Errorf("%s run: %v: %s", r.name, err, out)
	}
	return d, nil
}

// podman runs the same no-op with `podman run --rm` of the root filesystem
// imported as an image.
type podman struct {
	bin, image string
}

func newPodman(ctx context.Context, workDir, rootfs string) (*podman, error) {
	bin, err := exec.LookPath("podman")
	if err != nil {
		return nil, err
	}
	tarPath := filepath.Join(workDir, "rootfs.tar")
	f, err := os.Create(tarPath)
	if err != nil {
		return nil, err
	}
	err = imagebuild.WriteTar(f, rootfs)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return nil, err
	}
	p := &podman{bin: bin, image: "localhost/kappa-bench-noop:" + randHex(4)}
	if out, err := exec.CommandContext(ctx, bin, "import", tarPath, p.image).CombinedOutput(); err != nil {
		return nil, fmt.Errorf("podman import: %v: %s", err, out)
	}
	return p, nil
}

func (p *podman) run(ctx context.Context) (time.Duration, error) {
	start := time.Now()
	out, err := exec.CommandContext(ctx, p.bin, "run", "--rm", p.image, "/noop").CombinedOutput()
	d := time.Since(start)
	if err != nil {
		return 0, fmt.Errorf("podman run: %v: %s", err, out)
	}
	return d, nil
}

func (p *podman) close() {
	exec.Command(p.bin, "rmi", "-f", p.image).Run()
}

// ServeEcho serves the bare HTTP baseline on ln until ctx ends: POST
// echoes the request body, GET /wait holds the request until the client
// goes away (an idle long poll, as a runtime's /next is).
func ServeEcho(ctx context.Context, ln net.Listener) error {
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodGet && r.URL.Path == "/wait" {
			<-r.Context().Done()
			return
		}
		io.Copy(w, r.Body)
	})}
	go func() {
		<-ctx.Done()
		srv.Close()
	}()
	err := srv.Serve(ln)
	if err == http.ErrServerClosed {
		err = nil
	}
	return err
}

// childServer is a baseline server in a child process of this binary
// (`kappa bench echo`, `kappa bench relay`), so that its memory and CPU
// are measured like the Kappa server's.
type childServer struct {
	cmd  *exec.Cmd
	addr string
}

// startEcho runs ServeEcho in a child process.
func startEcho(kappa string) (*childServer, error) {
	return startChild(kappa, "bench", "echo", "--listen", "127.0.0.1:0")
}

// startChild starts bin with args and reads the address it serves from
// the first line of its output.
func startChild(bin string, args ...string) (*childServer, error) {
	cmd := exec.Command(bin, args...)
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	line, err := bufio.NewReader(out).ReadString('\n')
	if err != nil {
		cmd.Process.Kill()
		cmd.Wait()
		return nil, fmt.Errorf("%s: %w", strings.Join(args, " "), err)
	}
	return &childServer{cmd: cmd, addr: strings.TrimSpace(line)}, nil
}

func (e *childServer) url(path string) string { return "http://" + e.addr + path }

func (e *childServer) pid() int { return e.cmd.Process.Pid }

// stop ends the child with SIGTERM, so that the relay stops its runtimes,
// and kills it if it has not ended within 3 s.
func (e *childServer) stop() {
	e.cmd.Process.Signal(syscall.SIGTERM)
	done := make(chan struct{})
	go func() {
		e.cmd.Wait()
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(3 * time.Second):
		e.cmd.Process.Kill()
		<-done
	}
}
