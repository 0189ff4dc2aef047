package invoker

import (
	"context"
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
			inv, _, _ := newTestInvoker(b, func(o *Options) { o.Logs = store; o.MaxEnvironments = 64 })
			c := cfg("f", "keepalive")
			ctx := context.Background()
			// Warm bc.conc environments.
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
			b.ReportAllocs()
			b.SetParallelism(bc.conc)
			if bc.conc == 1 {
				for b.Loop() {
					if _, err := inv.Invoke(ctx, request(c, `{"op":"noop"}`)); err != nil {
						b.Fatal(err)
					}
				}
				return
			}
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					if _, err := inv.Invoke(ctx, request(c, `{"op":"noop"}`)); err != nil {
						b.Error(err)
						return
					}
				}
			})
		})
	}
}
