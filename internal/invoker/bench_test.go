package invoker

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/kappa-run/kappa/internal/logs"
)

// BenchmarkWarmInvoke measures the server's side of a warm invocation, one
// at a time and 32 at once: the invoker and the Runtime API server, with
// the log store, against the fake runtime (package-level goroutines
// speaking the Runtime API over loopback, whose share is in the numbers
// too). `kappa bench` measures the whole path against its baselines; this
// one counts time and allocations per invocation in process, where the
// VM's noise matters less.
func BenchmarkWarmInvoke(b *testing.B) {
	for _, bc := range []struct {
		name string
		conc int
	}{{"sequential", 1}, {"concurrent32", 32}} {
		b.Run(bc.name, func(b *testing.B) {
			store, err := logs.Open(logs.Options{Dir: b.TempDir(), PruneInterval: -1})
			if err != nil {
				b.Fatal(err)
			}
			b.Cleanup(func() { store.Close() })
			inv, rt, _ := newTestInvoker(b, func(o *Options) { o.Logs = store; o.MaxEnvironments = 64 })
			c := cfg("f", "keepalive")
			ctx := context.Background()
			// Warm bc.conc environments: bursts of bc.conc at once until
			// that many exist (one that ends early lends its environment).
			for try := 0; rt.created.Load() < int64(bc.conc) && try < 20; try++ {
				warm := make(chan error, bc.conc)
				for range bc.conc {
					go func() {
						_, err := inv.Invoke(ctx, request(c, `"warm"`))
						warm <- err
					}()
				}
				for range bc.conc {
					if err := <-warm; err != nil {
						b.Fatal(err)
					}
				}
			}
			if n := rt.created.Load(); n != int64(bc.conc) {
				b.Fatalf("%d environments after the warm-up, want %d", n, bc.conc)
			}
			b.ReportAllocs()
			if bc.conc == 1 {
				for b.Loop() {
					if _, err := inv.Invoke(ctx, request(c, `{"op":"noop"}`)); err != nil {
						b.Fatal(err)
					}
				}
				return
			}
			// Exactly bc.conc callers share b.N invocations (RunParallel
			// would start bc.conc per GOMAXPROCS).
			b.ResetTimer()
			var next atomic.Int64
			var wg sync.WaitGroup
			for range bc.conc {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for next.Add(1) <= int64(b.N) {
						if _, err := inv.Invoke(ctx, request(c, `{"op":"noop"}`)); err != nil {
							b.Error(err)
							return
						}
					}
				}()
			}
			wg.Wait()
		})
	}
}
