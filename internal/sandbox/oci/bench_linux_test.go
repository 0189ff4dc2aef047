package oci

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/kappa-run/kappa/internal/sandbox"
	"github.com/kappa-run/kappa/internal/sandbox/sandboxtest"
	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// BenchmarkCreateStart measures a cold start: Create, Start, and the first
// Runtime API request from inside the environment. Beside it, every
// iteration also times a plain `<runtime> run` of a no-op probe with the
// runtime's default configuration (`<runtime> spec`) on the same root
// filesystem, as a baseline. Destroy is not timed.
//
// Metrics: create-ms, start-ms, first-request-ms (Create to first
// request), raw-run-ms (the baseline).
func BenchmarkCreateStart(b *testing.B) {
	for _, name := range []string{"crun", "runc"} {
		b.Run(name, func(b *testing.B) {
			requireRuntime(b, name)
			te := newTestEnv(b, name)
			r := te.runtime(b, true)
			rootfs := sandboxtest.ReadOnly(b, sandboxtest.BuildRootFS(b))
			raw := newRawRun(b, r.cli.bin, rootfs)
			ctx := context.Background()

			var create, start, first, rawRun time.Duration
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				ready := make(chan struct{}, 1)
				t0 := time.Now()
				sb, err := r.Create(ctx, sandbox.Spec{
					ID: "bench" + strconv.Itoa(i), RootFS: rootfs, Args: []string{sandboxtest.ProbePath, "get", "/ready"},
					Cwd: "/", MemoryMB: 1769, TmpMB: 16, Hostname: "bench",
				})
				if err != nil {
					b.Fatal(err)
				}
				t1 := time.Now()
				srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
					select {
					case ready <- struct{}{}:
					default:
					}
					io.WriteString(w, "ok")
				})}
				go srv.Serve(sb.RuntimeAPIListener())
				if err := sb.Start(ctx); err != nil {
					b.Fatal(err)
				}
				t2 := time.Now()
				select {
				case <-ready:
				case <-time.After(30 * time.Second):
					b.Fatal("no request from inside")
				}
				t3 := time.Now()
				create += t1.Sub(t0)
				start += t2.Sub(t1)
				first += t3.Sub(t0)

				b.StopTimer()
				srv.Close()
				if err := sb.Destroy(ctx); err != nil {
					b.Fatal(err)
				}
				rawRun += raw.run(b, "raw"+strconv.Itoa(i))
				b.StartTimer()
			}
			ms := func(d time.Duration) float64 { return float64(d) / float64(b.N) / float64(time.Millisecond) }
			b.ReportMetric(ms(create), "create-ms")
			b.ReportMetric(ms(start), "start-ms")
			b.ReportMetric(ms(first), "first-request-ms")
			b.ReportMetric(ms(rawRun), "raw-run-ms")
		})
	}
}

// rawRun is a bundle with the runtime's default configuration.
type rawRun struct {
	bin, root, bundle string
}

func newRawRun(b *testing.B, bin, rootfs string) rawRun {
	dir, err := os.MkdirTemp("", "kappa-raw-")
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { os.RemoveAll(dir) })
	rr := rawRun{bin: bin, root: filepath.Join(dir, "root"), bundle: filepath.Join(dir, "bundle")}
	if err := os.MkdirAll(rr.bundle, 0o700); err != nil {
		b.Fatal(err)
	}
	cmd := exec.Command(bin, "spec")
	cmd.Dir = rr.bundle
	if out, err := cmd.CombinedOutput(); err != nil {
		b.Fatalf("%s spec: %v: %s", bin, err, out)
	}
	path := filepath.Join(rr.bundle, "config.json")
	data, err := os.ReadFile(path)
	if err != nil {
		b.Fatal(err)
	}
	var s specs.Spec
	if err := json.Unmarshal(data, &s); err != nil {
		b.Fatal(err)
	}
	s.Root = &specs.Root{Path: rootfs, Readonly: true}
	s.Process.Terminal = false
	s.Process.Args = []string{sandboxtest.ProbePath, "noop"}
	if data, err = json.Marshal(&s); err != nil {
		b.Fatal(err)
	}
	if err := os.WriteFile(path, data, 0o600); err != nil {
		b.Fatal(err)
	}
	return rr
}

// run runs the no-op container in the foreground and returns how long the
// runtime took.
func (rr rawRun) run(b *testing.B, id string) time.Duration {
	t0 := time.Now()
	out, err := exec.Command(rr.bin, "--root", rr.root, "run", "--bundle", rr.bundle, id).CombinedOutput()
	d := time.Since(t0)
	if err != nil {
		b.Fatalf("%s run: %v: %s", rr.bin, err, out)
	}
	return d
}
