package bench

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"text/tabwriter"
	"time"
)

// Scenario names, in the order Run runs them.
const (
	ScenarioCold       = "cold"
	ScenarioWarm       = "warm"
	ScenarioThroughput = "throughput"
	ScenarioScale      = "scale"
	ScenarioDensity    = "density"
	ScenarioSnapshot   = "snapshot"
)

// Scenarios lists every scenario.
// The cold starts come first, on a quiet machine: scale-out and density
// leave the kernel tearing down hundreds of cgroups and namespaces for a
// while after them.
var Scenarios = []string{ScenarioCold, ScenarioSnapshot, ScenarioWarm, ScenarioThroughput, ScenarioScale, ScenarioDensity}

// Options configure Run. Kappa, Probe and Noop are required; zero values
// elsewhere take the defaults documented on each field.
type Options struct {
	// Kappa is the kappa binary: Run starts `Kappa server` and, for the
	// echo baseline, `Kappa bench echo`.
	Kappa string
	// Probe is a statically linked build of testdata/functions/probe (the
	// function), Noop one of testdata/functions/noop (the baselines'
	// process). Both go into one root filesystem.
	Probe, Noop string
	// WorkDir holds the root filesystem, bundles and the server's data;
	// "" makes and removes a temporary directory.
	WorkDir string
	// Scenarios to run (see Scenarios); nil runs all.
	Scenarios []string
	// ColdSamples is the number of cold starts per variant (default 50).
	ColdSamples int
	// WarmSamples is the number of sequential warm invocations (1,000).
	WarmSamples int
	// Concurrency is the number of clients of the throughput scenario (32)
	// and ThroughputTime how long it runs (5 s).
	Concurrency    int
	ThroughputTime time.Duration
	// ScaleOut is the number of environments started at once from zero
	// (200), ScaleRounds how many times (3).
	ScaleOut    int
	ScaleRounds int
	// Density is the number of idle warm environments measured (200), and
	// IdleWindow how long their CPU use is sampled (5 s).
	Density    int
	IdleWindow time.Duration
	// ServerArgs are extra `kappa server` flags.
	ServerArgs []string
	// ProfileDir, when set, receives CPU profiles of the server taken
	// during the cold-start samples (cold-recent.pprof.N,
	// cold-update.pprof.N, cold-first.pprof.N) and the throughput run
	// (throughput.pprof.N, of an extra run before the measured ones).
	ProfileDir string
	// Progress receives one line per step; nil discards them.
	Progress io.Writer
	// ServerLog, when set, receives everything the server logs.
	ServerLog io.Writer
}

func (o *Options) defaults() {
	def := func(v *int, d int) {
		if *v <= 0 {
			*v = d
		}
	}
	def(&o.ColdSamples, 50)
	def(&o.WarmSamples, 1000)
	def(&o.Concurrency, 32)
	def(&o.ScaleOut, 200)
	def(&o.ScaleRounds, 3)
	def(&o.Density, 200)
	if o.ThroughputTime <= 0 {
		o.ThroughputTime = 5 * time.Second
	}
	if o.IdleWindow <= 0 {
		o.IdleWindow = 5 * time.Second
	}
	if len(o.Scenarios) == 0 {
		o.Scenarios = Scenarios
	}
	if o.Progress == nil {
		o.Progress = io.Discard
	}
}

// Row is one line of the report: a scenario measured on Kappa and on its
// baseline.
type Row struct {
	Scenario string
	Unit     Unit
	Kappa    Stat
	Baseline string
	Base     Stat
	// Target is the goal for the Kappa column, for the reader.
	Target string
	Note   string
}

// Ratio is Kappa's median over the baseline's, or 0 when the baseline
// has none.
func (r Row) Ratio() float64 {
	if r.Base.N == 0 || r.Base.P50 == 0 {
		return 0
	}
	return r.Kappa.P50 / r.Base.P50
}

// Report is the outcome of Run.
type Report struct {
	Rows []Row
	// Runtime is the OCI runtime of the baselines.
	Runtime string
}

// WriteTable prints the report as an aligned table.
func (r *Report) WriteTable(w io.Writer) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "scenario\tkappa p50\tkappa p99\t  baseline\tbase p50\tbase p99\tratio\t  target\t")
	for _, row := range r.Rows {
		ratio := "-"
		if x := row.Ratio(); x != 0 {
			ratio = fmt.Sprintf("%.2f", x)
		}
		base50, base99 := "-", "-"
		if row.Base.N > 0 {
			base50, base99 = format(row.Unit, row.Base.P50), format(row.Unit, row.Base.P99)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t  %s\t%s\t%s\t%s\t  %s\t\n", row.Scenario,
			format(row.Unit, row.Kappa.P50), format(row.Unit, row.Kappa.P99),
			row.Baseline, base50, base99, ratio, row.Target)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	for _, row := range r.Rows {
		if row.Note != "" {
			fmt.Fprintf(w, "  %s: %s\n", row.Scenario, row.Note)
		}
	}
	return nil
}

// run is the state of one Run.
type run struct {
	opts   Options
	work   string
	rootfs string
	srv    *server
	report *Report
	raw    *rawRuntime
	echo   *childServer
	// serverArgs are the flags every server of the run gets.
	serverArgs []string
}

func (r *run) progress(format string, args ...any) {
	fmt.Fprintf(r.opts.Progress, "bench: "+format+"\n", args...)
}

// Run starts a Kappa server, runs the chosen scenarios with their
// baselines and returns the report. It needs root, an OCI runtime and a
// host where Kappa's server runs.
func Run(ctx context.Context, opts Options) (_ *Report, err error) {
	opts.defaults()
	for _, s := range opts.Scenarios {
		if !slices.Contains(Scenarios, s) {
			return nil, fmt.Errorf("unknown scenario %q (want %s)", s, strings.Join(Scenarios, ", "))
		}
	}
	if opts.Kappa == "" || opts.Probe == "" || opts.Noop == "" {
		return nil, errors.New("bench: Kappa, Probe and Noop are required")
	}
	r := &run{opts: opts, report: &Report{}}
	r.work = opts.WorkDir
	if r.work == "" {
		if r.work, err = os.MkdirTemp("", "kappa-bench-"); err != nil {
			return nil, err
		}
		defer os.RemoveAll(r.work)
	}
	if opts.ProfileDir != "" {
		if err := os.MkdirAll(opts.ProfileDir, 0o755); err != nil {
			return nil, err
		}
	}
	if err := r.prepareRootFS(); err != nil {
		return nil, err
	}
	if r.raw, err = newRawRuntime(r.work, r.rootfs, "crun", "runc"); err != nil {
		return nil, err
	}
	r.report.Runtime = r.raw.name
	// Room for every scenario's environments at once.
	maxEnv := opts.Density + opts.ScaleOut + opts.Concurrency + 64
	r.serverArgs = append([]string{
		"--max-environments", fmt.Sprint(maxEnv),
		"--concurrency-limit", fmt.Sprint(max(1000, maxEnv)),
	}, opts.ServerArgs...)
	r.progress("starting kappa server")
	if r.srv, err = startServer(ctx, opts.Kappa, filepath.Join(r.work, "main"), opts.ServerLog, r.serverArgs...); err != nil {
		return nil, err
	}
	defer r.srv.stop()
	if r.echo, err = startEcho(opts.Kappa); err != nil {
		return nil, err
	}
	defer r.echo.stop()

	steps := map[string]func(context.Context) error{
		ScenarioCold:       r.cold,
		ScenarioWarm:       r.warm,
		ScenarioThroughput: r.throughput,
		ScenarioScale:      r.scale,
		ScenarioDensity:    r.density,
		ScenarioSnapshot:   r.snapshot,
	}
	for _, s := range Scenarios {
		if !slices.Contains(opts.Scenarios, s) {
			continue
		}
		if err := steps[s](ctx); err != nil {
			return r.report, fmt.Errorf("%s: %w\nserver log:\n%s", s, err, r.srv.tail())
		}
	}
	return r.report, nil
}

// prepareRootFS assembles the function's root filesystem: the probe as
// /bootstrap, the no-op as /noop, and the directories a runtime mounts on.
func (r *run) prepareRootFS() error {
	r.rootfs = filepath.Join(r.work, "rootfs")
	for _, d := range []string{"proc", "dev", "sys", "tmp", "etc", "var/task"} {
		if err := os.MkdirAll(filepath.Join(r.rootfs, d), 0o755); err != nil {
			return err
		}
	}
	if err := os.WriteFile(filepath.Join(r.rootfs, "etc", "hosts"), nil, 0o644); err != nil {
		return err
	}
	for src, dst := range map[string]string{r.opts.Probe: "bootstrap", r.opts.Noop: "noop"} {
		data, err := os.ReadFile(src)
		if err != nil {
			return err
		}
		if err := os.WriteFile(filepath.Join(r.rootfs, dst), data, 0o755); err != nil {
			return err
		}
	}
	return nil
}
