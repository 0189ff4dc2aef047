package e2e

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/kappa-run/kappa/internal/bench"
)

// BenchmarkScenarios runs every scenario of `kappa bench` — cold start,
// warm invoke, throughput, scale-out and density, each next to its
// baseline — on the kappa binary and probe function TestMain built, prints
// the table and reports each row's p50 and p99 as metrics. b.N is ignored;
// KAPPA_BENCH_SCENARIOS (comma separated) picks scenarios:
//
//	go test -run '^$' -bench Scenarios -benchtime 1x -timeout 30m ./test/e2e/
func BenchmarkScenarios(b *testing.B) {
	if skipReason != "" {
		b.Skip(skipReason)
	}
	noop := filepath.Join(b.TempDir(), "noop")
	if out, err := goBuild(noop, "./testdata/functions/noop", true); err != nil {
		b.Fatalf("build noop: %v\n%s", err, out)
	}
	var scenarios []string
	if s := os.Getenv("KAPPA_BENCH_SCENARIOS"); s != "" {
		scenarios = strings.Split(s, ",")
	}
	rep, err := bench.Run(context.Background(), bench.Options{
		Kappa:     kappaBin,
		Probe:     filepath.Join(probeDir, "bootstrap"),
		Noop:      noop,
		Scenarios: scenarios,
		Progress:  os.Stderr,
	})
	if rep != nil {
		rep.WriteTable(os.Stdout)
		for _, row := range rep.Rows {
			key := strings.NewReplacer(" ", "-", ",", "", ":", "", "(", "", ")", "", "→", "-to-").Replace(row.Scenario)
			unit := map[bench.Unit]string{bench.Duration: "ns", bench.PerSecond: "/s", bench.Bytes: "B", bench.Percent: "%cpu"}[row.Unit]
			b.ReportMetric(row.Kappa.P50, key+"-p50-"+unit)
			b.ReportMetric(row.Kappa.P99, key+"-p99-"+unit)
		}
	}
	if err != nil {
		b.Fatal(err)
	}
}
