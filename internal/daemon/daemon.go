package daemon

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"time"

	"github.com/kappa-run/kappa/internal/config"
	"github.com/kappa-run/kappa/internal/cwlogs"
	"github.com/kappa-run/kappa/internal/function"
	"github.com/kappa-run/kappa/internal/image"
	"github.com/kappa-run/kappa/internal/invoker"
	"github.com/kappa-run/kappa/internal/lambdaapi"
	"github.com/kappa-run/kappa/internal/logs"
	"github.com/kappa-run/kappa/internal/registry"
	"github.com/kappa-run/kappa/internal/sandbox/oci"
	"github.com/kappa-run/kappa/internal/sqsapi"
	"github.com/kappa-run/kappa/internal/store/jetstream"
)

// Daemon is one running `kappa server`: every service, in start order.
type Daemon struct {
	cfg      config.Server
	log      *slog.Logger
	listener net.Listener

	store    *jetstream.Store
	registry *registry.Registry
	images   *image.Store
	runtime  *oci.Runtime
	// runDir says whether the run directory is on Kappa's tmpfs
	// (oci.MountRunDir), which stop unmounts once Cleanup emptied it.
	runDir oci.RunDirMount
	// runLock and dataLock hold the run and data directories' locks (see
	// lockRunDir).
	runLock, dataLock *os.File
	// listenHost is the host part of --listen, a name the server answers
	// to (see browserRefusal).
	listenHost string
	logs       *logs.Store
	obs        *observability
	cwlogs     *cwlogs.Handler
	sqs        *sqsapi.Handler
	invoker    *invoker.Invoker
	functions  *function.Service
	events     *events
	api        *lambdaapi.API
	http       *http.Server
}

// New starts every service but the HTTP server, in dependency order. On
// error, whatever was started is stopped again.
func New(ctx context.Context, cfg config.Server, log *slog.Logger) (_ *Daemon, err error) {
	d := &Daemon{cfg: cfg, log: log}
	defer func() {
		if err != nil {
			d.stop(context.Background())
		}
	}()
	// Before anything else: a second server started by mistake on the
	// same run directory (whatever its data directory) or data directory
	// stops here, before it touches the first one's files, stores,
	// overlays or environments.
	if d.runLock, err = lockRunDir(cfg.RunDir); err != nil {
		return nil, err
	}
	if d.dataLock, err = lockDataDir(cfg.DataDir); err != nil {
		return nil, err
	}
	for _, dir := range []string{cfg.DataDir, cfg.RunDir} {
		if err := os.MkdirAll(dir, 0o700); err != nil {
			return nil, fmt.Errorf("create %s: %w", dir, err)
		}
	}
	if h, _, err := net.SplitHostPort(cfg.Listen); err == nil {
		d.listenHost = h
	}
	// Listen first: the port decides the registry's own host names.
	if d.listener, err = net.Listen("tcp", cfg.Listen); err != nil {
		return nil, fmt.Errorf("listen on %s: %w", cfg.Listen, err)
	}
	addr := d.listener.Addr().(*net.TCPAddr)

	if d.store, err = jetstream.Open(ctx, jetstream.Options{
		Dir: filepath.Join(cfg.DataDir, "nats"), Logger: log, SyncAlways: cfg.SyncWrites,
	}); err != nil {
		return nil, err
	}
	keychain, err := d.openRegistry(addr)
	if err != nil {
		return nil, err
	}
	port := fmt.Sprint(addr.Port)
	if d.images, err = image.NewStore(image.Options{
		Dir:                filepath.Join(cfg.DataDir, "images"),
		Logger:             log.With("svc", "image"),
		Keychain:           keychain,
		InsecureRegistries: []string{cfg.Listen, addr.String(), "localhost:" + port, "127.0.0.1:" + port},
	}); err != nil {
		return nil, fmt.Errorf("image store: %w", err)
	}
	if d.runDir, err = oci.MountRunDir(cfg.RunDir); err != nil {
		// Slower on a disk, not wrong: environments work either way.
		log.Warn("run directory stays on its disk", "dir", cfg.RunDir, "err", err)
	} else if d.runDir == oci.RunDirMounted {
		log.Info("mounted a tmpfs on the run directory", "dir", cfg.RunDir)
	}
	if d.runtime, err = oci.New(ctx, oci.Options{
		Runtime:           cfg.Runtime,
		StateDir:          filepath.Join(cfg.RunDir, "sb"),
		RunDir:            cfg.RunDir,
		CgroupParent:      cgroupParent(cfg.RunDir),
		Logger:            log.With("svc", "sandbox"),
		NetNSPool:         cfg.NetNSPool,
		ExecStart:         cfg.ExecStart,
		CRIU:              cfg.CRIU,
		RestoreViaRuntime: cfg.RestoreViaRuntime,
	}); err != nil {
		return nil, fmt.Errorf("sandbox runtime: %w", err)
	}
	if err := d.runtime.Cleanup(ctx); err != nil {
		log.Warn("cleaning up leftovers of a previous run", "err", err)
	}
	if d.logs, err = logs.Open(logs.Options{
		Dir: filepath.Join(cfg.DataDir, "logs"), MaxAge: cfg.LogRetention, MaxBytes: cfg.LogMaxBytes,
		RateLimit: float64(cfg.LogRateLimit), Logger: log.With("svc", "logs"),
	}); err != nil {
		return nil, err
	}
	if d.obs, err = newObservability(cfg, d.logs, d.runtime); err != nil {
		return nil, err
	}
	initBin := initBinary()
	d.invoker = invoker.New(invoker.Options{
		Runtime:         d.obs.runtime,
		Images:          d.images,
		Logs:            d.logs,
		Observer:        d.obs,
		Region:          cfg.Region,
		Account:         cfg.Account,
		MaxEnvironments: cfg.MaxEnvironments,
		IdleTimeout:     cfg.IdleTimeout,
		FreezeIdle:      cfg.FreezeIdle,
		FreezeAfter:     cfg.FreezeAfter,
		MemAvailable:    memAvailable,
		MinMemAvailable: minMemAvailable(),
		Logger:          log.With("svc", "invoker"),
		Spares:          invoker.SpareOptions{Max: cfg.Spares, IdleTimeout: cfg.SpareIdleTimeout},
		InitBinary:      initBin,
		SnapshotDir:     filepath.Join(cfg.DataDir, "snapshots"),
		SnapshotWanted: func(ctx context.Context, c function.Config) bool {
			return d.functions.SnapshotWanted(ctx, c) // set below, before any snapshot is taken
		},
	})
	if initBin == "" {
		log.Warn("no static init binary (kappa-init next to kappa, or kappa itself built with CGO_ENABLED=0): images with /opt/extensions run without their extensions, and SnapStart is unavailable")
	}
	d.obs.attach(d.invoker)
	bucket, err := d.store.Bucket(ctx, "functions")
	if err != nil {
		return nil, err
	}
	d.functions = function.NewService(function.Options{
		Bucket:    bucket,
		Images:    d.images,
		Region:    cfg.Region,
		Account:   cfg.Account,
		Logger:    log.With("svc", "function"),
		Changed:   d.changed,
		Snapshots: d.invoker,

		AccountConcurrency: cfg.AccountConcurrency,
	})
	if err := d.startEvents(ctx, addr.Port, d.obs.wrap(d.invoker)); err != nil {
		return nil, err
	}
	if err := d.functions.Start(ctx); err != nil {
		return nil, err
	}
	if fns, err := d.functions.List(ctx); err == nil {
		for _, fn := range fns {
			d.reconcile(fn.Latest.Name)
		}
	}
	sqsBucket, err := d.store.Bucket(ctx, "sqs")
	if err != nil {
		return nil, err
	}
	d.sqs = sqsapi.New(sqsapi.Options{Queues: d.events.async.Queues(), Bucket: sqsBucket,
		Region: cfg.Region, Account: cfg.Account, Logger: log.With("svc", "sqs")})
	d.cwlogs = cwlogs.New(cwlogs.Options{Store: d.logs, Groups: logGroups{d.functions, d.logs},
		Region: cfg.Region, Account: cfg.Account, Logger: log.With("svc", "logs")})
	d.api = lambdaapi.New(lambdaapi.Options{
		Functions:      d.functions,
		Invoker:        d.obs.wrap(d.invoker),
		Region:         cfg.Region,
		Account:        cfg.Account,
		MaxConcurrency: cfg.AccountConcurrency,
		Provisioning:   d.invoker,
		Logger:         log.With("svc", "api"),
		Async:          d.events.async,
		URLs:           d.events.urls,
		Queues:         d.events.async.Queues(),
		Schedules:      d.events.scheduler,
		EventSources:   d.events.esm,
	})
	d.http = &http.Server{Handler: d.routes(), ReadHeaderTimeout: 30 * time.Second}
	// Queue long polls must not hold up shutdown either.
	d.http.RegisterOnShutdown(d.events.async.Queues().StopWaiting)
	// Event source mappings start no new batch once shutdown begins.
	d.http.RegisterOnShutdown(d.events.esm.Stop)
	d.http.RegisterOnShutdown(d.logs.CloseFollowers) // open log tails must not hold up shutdown
	log.Info("kappa server ready", "listen", addr.String(), "data", cfg.DataDir, "runtime", d.runtime.Name())
	return d, nil
}

// cgroupParent names this server's cgroup subtree after its run directory,
// so that two servers on one host (tests, or a staging instance) never
// clean up each other's environments: kappa/<8 hex of sha256(RunDir)>.
func cgroupParent(runDir string) string {
	sum := sha256.Sum256([]byte(runDir))
	return "kappa/" + hex.EncodeToString(sum[:4])
}

// pprofMux serves net/http/pprof when --pprof is set.
var pprofMux = func() *http.ServeMux {
	m := http.NewServeMux()
	m.HandleFunc("/debug/pprof/", pprof.Index)
	m.HandleFunc("/debug/pprof/profile", pprof.Profile)
	m.HandleFunc("/debug/pprof/trace", pprof.Trace)
	m.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	return m
}()

// changed reacts to a function's change: idle environments of old
// configurations go, and provisioned concurrency follows the new state.
func (d *Daemon) changed(name string) {
	// The environments of configurations gone go; those of $LATEST and
	// the versions as they are stay. When the versions cannot be read
	// (the function was deleted), all go.
	current, err := d.functions.Versions(context.Background(), name)
	if err != nil {
		current = nil
	}
	d.invoker.Retire(name, current)
	d.eventsChanged(name)
	d.reconcile(name)
	// A new serving configuration gets a spare right away, so that its
	// first invocation only starts one; not when it may not run at all.
	ctx := context.Background()
	if fn, err := d.functions.Get(ctx, name); err == nil && (fn.ReservedConcurrency == nil || *fn.ReservedConcurrency > 0) {
		if cfg, err := d.functions.Config(ctx, function.Ref{Name: name}); err == nil && cfg.State == function.StateActive {
			d.invoker.Prewarm(cfg)
		}
	}
}

// reconcile makes the invoker's provisioned environments match the
// function's provisioned-concurrency configurations.
func (d *Daemon) reconcile(name string) {
	ctx := context.Background()
	want := map[string]bool{}
	if ps, err := d.functions.ListProvisioned(ctx, name); err == nil {
		for _, p := range ps {
			cfg, err := d.functions.Config(ctx, function.Ref{Name: name, Qualifier: p.Qualifier})
			if err != nil || cfg.State != function.StateActive {
				continue
			}
			want[p.Owner()] = true
			d.invoker.Provision(p.Owner(), cfg, p.Requested)
		}
	}
	for _, owner := range d.invoker.Provisioned() {
		if strings.HasPrefix(owner, name+":") && !want[owner] {
			d.invoker.Unprovision(owner)
		}
	}
}

// Addr is the address the server listens on.
func (d *Daemon) Addr() string { return d.listener.Addr().String() }

func (d *Daemon) routes() http.Handler {
	reg := d.registry.Handler()
	admin := d.registry.Guard(&registryAdmin{d: d})
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p := r.URL.Path
		switch {
		case d.events.isFunctionURL(r) && (d.cfg.Insecure || loopbackPeer(r)):
			d.events.urlServer.ServeHTTP(w, r)
			return
		}
		if why := browserRefusal(r, d.cfg.Insecure, d.listenHost); why != "" {
			refuseBrowser(w, why)
			return
		}
		switch {
		case p == "/v2" || strings.HasPrefix(p, "/v2/"):
			reg.ServeHTTP(w, r)
		case strings.HasPrefix(p, adminPrefix):
			admin.ServeHTTP(w, r)
		case !d.cfg.Insecure && !loopbackPeer(r):
			refuseRemote(w)
		case r.Method == http.MethodPost && r.Header.Get("X-Amz-Target") != "":
			// The AWS JSON protocols (no Lambda operation is one): one
			// header lookup on the Invoke path, none more.
			switch {
			case cwlogs.Owns(r):
				d.cwlogs.ServeHTTP(w, r)
			case sqsapi.Owns(r):
				d.sqs.ServeHTTP(w, r)
			default:
				d.api.ServeHTTP(w, r)
			}
		case d.obs.owns(p):
			d.obs.ServeHTTP(w, r)
		case strings.HasPrefix(p, "/debug/pprof/") && d.cfg.Pprof:
			pprofMux.ServeHTTP(w, r)
		case p == "/healthz":
			live, idle := d.invoker.Stats()
			w.Header().Set("Content-Type", "application/json")
			fmt.Fprintf(w, `{"status":"ok","goroutines":%d,"environments":{"live":%d,"idle":%d}}`+"\n",
				runtime.NumGoroutine(), live, idle)
		default:
			d.api.ServeHTTP(w, r)
		}
	})
}

// logGroups tells the CloudWatch Logs API which functions write to which
// log group: their LoggingConfig.LogGroup, or /aws/lambda/<function> for
// the logs of a function deleted since (they stay until retention ends).
type logGroups struct {
	fns  *function.Service
	logs *logs.Store
}

func (g logGroups) LogGroups(ctx context.Context) (map[string][]string, error) {
	fns, err := g.fns.List(ctx)
	if err != nil {
		return nil, err
	}
	out := map[string][]string{}
	live := map[string]bool{}
	for _, fn := range fns {
		group := fn.Latest.LoggingConfig.LogGroup
		if group == "" {
			group = "/aws/lambda/" + fn.Latest.Name
		}
		out[group] = append(out[group], fn.Latest.Name)
		live[fn.Latest.Name] = true
	}
	stored, err := g.logs.Functions()
	if err != nil {
		return nil, err
	}
	for _, name := range stored {
		if !live[name] {
			group := "/aws/lambda/" + name
			out[group] = append(out[group], name)
		}
	}
	return out, nil
}

// Run serves until ctx ends, then drains running invocations (up to
// DrainTimeout, or until force ends), stops every service and returns.
func (d *Daemon) Run(ctx, force context.Context) error {
	errc := make(chan error, 1)
	go func() { errc <- d.http.Serve(d.listener) }()
	var err error
	select {
	case <-ctx.Done():
	case err = <-errc:
	}
	live, idle := d.invoker.Stats()
	d.log.Info("shutting down: draining running invocations (signal again to stop now)", "running", live-idle)
	sctx, cancel := context.WithTimeout(force, d.cfg.DrainTimeout)
	defer cancel()
	d.stop(sctx)
	if errors.Is(err, http.ErrServerClosed) {
		err = nil
	}
	return err
}

// stop stops services in reverse start order; nil services are skipped.
func (d *Daemon) stop(ctx context.Context) {
	// drain bounds the waits for work in progress (the drain timeout, or
	// a second signal); what tears environments down runs to its end.
	drain := ctx
	ctx = context.WithoutCancel(ctx)
	if d.http != nil {
		// Shutdown waits for running handlers, i.e. invocations, to finish.
		if err := d.http.Shutdown(drain); err != nil {
			d.log.Warn("stopping with invocations still running", "err", err)
			d.http.Close()
		}
	} else if d.listener != nil {
		d.listener.Close()
	}
	// Asynchronous invocations still running when the drain ends are
	// delivered again after the restart (at least once).
	d.stopEvents(drain)
	if d.functions != nil {
		d.functions.Close()
	}
	if d.invoker != nil {
		d.invoker.Close(ctx)
	}
	if d.obs != nil {
		d.obs.close(ctx)
	}
	if d.logs != nil {
		d.logs.Close()
	}
	cleaned := d.runtime != nil
	if d.runtime != nil {
		if err := d.runtime.Cleanup(ctx); err != nil {
			d.log.Warn("sandbox cleanup", "err", err)
			cleaned = false
		}
	}
	// Kappa's tmpfs goes once emptied, or when this server mounted it and
	// never used it. Otherwise what is left there (an adopted directory
	// not cleaned up, or a failed cleanup) is for the next start's
	// Cleanup.
	if d.runDir == oci.RunDirMounted && d.runtime == nil || d.runDir != oci.RunDirElsewhere && cleaned {
		if err := oci.UnmountRunDir(d.cfg.RunDir); err != nil {
			d.log.Warn("run directory", "err", err)
		}
	} else if d.runDir != oci.RunDirElsewhere {
		d.log.Warn("run directory left mounted for the next start's cleanup", "dir", d.cfg.RunDir)
	}
	if d.images != nil {
		if err := d.images.Close(); err != nil {
			d.log.Warn("image store close", "err", err)
		}
	}
	if d.registry != nil {
		d.registry.Close()
	}
	if d.store != nil {
		d.store.Close()
	}
	if d.runLock != nil {
		d.runLock.Close()
	}
	if d.dataLock != nil {
		d.dataLock.Close()
	}
	d.log.Info("stopped")
}
