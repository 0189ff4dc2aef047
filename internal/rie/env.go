package rie

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/kappa-run/kappa/internal/runtimeapi"
	"github.com/kappa-run/kappa/internal/sandbox"
	"github.com/kappa-run/kappa/internal/sandbox/process"
)

// env is one execution environment: a process sandbox, its Runtime API
// server and the HTTP server serving it.
type env struct {
	em   *Emulator
	id   string
	api  *runtimeapi.Server
	sb   *process.Sandbox
	srv  *http.Server
	out  *output
	tel  *runtimeapi.Telemetry
	done chan struct{} // the Runtime API's HTTP server returned

	// initDuration is reported on the first invocation's REPORT.
	initDuration time.Duration
}

// fnError is a failure the platform reports as a function error.
type fnError struct {
	Type    runtimeapi.ErrorType
	Message string
	// Payload, when set, is the error document as the runtime or an
	// extension gave it.
	Payload []byte
	status  string // telemetry status: failure or timeout
}

func (fe *fnError) payload(reqID string) []byte {
	if fe.Payload != nil {
		return fe.Payload
	}
	return runtimeapi.ErrorPayload(fe.Type, "RequestId: "+reqID+" Error: "+fe.Message)
}

var envSeq atomic.Int64

// coldStart creates an environment in slot and runs its init phase the way
// Lambda orders it:
//
//	api := runtimeapi.New(...)                    serve api.Handler() on the sandbox's listener
//	Telemetry().Platform(PlatformInitStart)
//	api.ExpectExtensions(sb.Extensions()...)      before the extension processes start
//	sb.StartExtensions; api.WaitExtensionsRegistered
//	sb.Start (the runtime); api.WaitInit          runtime and extensions called next
//	Telemetry().Platform(PlatformInitRuntimeDone, PlatformInitReport)
//
// It returns the environment, or the init failure as a function error (the
// environment is then gone), or a platform error.
func (em *Emulator) coldStart(ctx context.Context, slot int) (*env, *fnError, error) {
	cfg := &em.cfg
	start := cfg.Now()
	e := &env{em: em, id: "rie" + strconv.FormatInt(envSeq.Add(1), 10), out: &output{out: em.out}, done: make(chan struct{})}
	e.api = runtimeapi.New(runtimeapi.Options{
		Logger: em.log,
		Now:    cfg.Now,
		Function: runtimeapi.FunctionInfo{
			Name: cfg.FunctionName, Version: cfg.FunctionVersion, Handler: cfg.Handler, AccountID: AccountID,
		},
	})
	e.tel = e.api.Telemetry()
	addr := cfg.RuntimeAPIAddr
	if slot > 0 {
		host, _, _ := net.SplitHostPort(addr)
		addr = net.JoinHostPort(host, "0")
	}
	rt := process.New(process.Options{
		Addr:          addr,
		ExtensionsDir: cfg.ExtensionsDir,
		Logger:        em.log,
		ExtensionOutput: func(_, name string) io.Writer {
			return e.out.writer(func(line []byte) { e.tel.ExtensionLog(name, line) })
		},
	})
	fnOut := e.out.writer(e.tel.FunctionLog)
	sb, err := rt.CreateSandbox(ctx, sandbox.Spec{
		ID:       e.id,
		RootFS:   "/",
		Args:     cfg.Bootstrap,
		Env:      cfg.environment(start),
		Cwd:      cfg.Cwd,
		MemoryMB: cfg.MemoryMB,
		Stdout:   fnOut,
		Stderr:   fnOut,
	})
	if err != nil {
		e.api.Close()
		return nil, nil, fmt.Errorf("create environment: %w", err)
	}
	e.sb = sb
	e.srv = runtimeapi.NewHTTPServer(e.api)
	go func() {
		defer close(e.done)
		_ = e.srv.Serve(sb.RuntimeAPIListener())
	}()
	em.log.Debug("environment created", "env", e.id, "runtimeApi", sb.RuntimeAPIAddr())

	e.tel.Platform(runtimeapi.PlatformInitStart{
		InitializationType: "on-demand", Phase: "init",
		FunctionName: cfg.FunctionName, FunctionVersion: cfg.FunctionVersion,
	})
	initCtx, cancel := context.WithTimeout(ctx, cfg.InitTimeout)
	defer cancel()
	fe := e.init(initCtx, ctx)
	status := runtimeapi.StatusSuccess
	var errType string
	if fe != nil {
		status, errType = fe.status, string(fe.Type)
	}
	e.initDuration = cfg.Now().Sub(start)
	e.tel.Platform(runtimeapi.PlatformInitRuntimeDone{InitializationType: "on-demand", Phase: "init", Status: status, ErrorType: errType})
	e.tel.Platform(runtimeapi.PlatformInitReport{InitializationType: "on-demand", Phase: "init", Status: status, ErrorType: errType,
		Metrics: runtimeapi.InitReportMetrics{DurationMs: ms(e.initDuration)}})
	if fe != nil {
		em.log.Info("init failed", "env", e.id, "errorType", fe.Type, "message", fe.Message)
		e.shutdown(runtimeapi.ShutdownFailure)
		return nil, fe, nil
	}
	return e, nil, nil
}

// init starts the extensions and the runtime and waits for init to end.
func (e *env) init(initCtx, ctx context.Context) *fnError {
	names := e.sb.Extensions()
	e.api.ExpectExtensions(names...)
	if err := e.sb.StartExtensions(initCtx); err != nil {
		return &fnError{Type: runtimeapi.ExtensionLaunchError, Message: err.Error(), status: runtimeapi.StatusFailure}
	}
	if len(names) > 0 {
		if fe := e.await(initCtx, ctx, func(c context.Context) error { return e.api.WaitExtensionsRegistered(c) }, false); fe != nil {
			return fe
		}
	}
	if err := e.sb.Start(initCtx); err != nil {
		typ := runtimeapi.RuntimeInvalidEntrypoint
		if errors.Is(err, sandbox.ErrInvalidWorkingDir) {
			typ = runtimeapi.RuntimeInvalidWorkingDir
		}
		return &fnError{Type: typ, Message: err.Error(), status: runtimeapi.StatusFailure}
	}
	return e.await(initCtx, ctx, e.api.WaitInit, true)
}

// await runs wait, failing early when a process exits.
func (e *env) await(initCtx, ctx context.Context, wait func(context.Context) error, runtimeStarted bool) *fnError {
	errc := make(chan error, 1)
	go func() { errc <- wait(initCtx) }()
	var runtimeDone <-chan struct{}
	if runtimeStarted {
		runtimeDone = e.sb.Done()
	}
	for {
		select {
		case err := <-errc:
			return e.initError(err, initCtx, ctx)
		case <-runtimeDone:
			// The runtime may have posted /init/error just before it exited.
			select {
			case err := <-errc:
				if err != nil {
					return e.initError(err, initCtx, ctx)
				}
				return nil
			case <-time.After(50 * time.Millisecond):
			}
			return exitError(e.sb.Exit())
		case name := <-e.sb.ExtensionExited():
			return &fnError{Type: runtimeapi.ExtensionCrash, Message: "Extension " + name + " exited before it finished its init",
				status: runtimeapi.StatusFailure}
		}
	}
}

func (e *env) initError(err error, initCtx, ctx context.Context) *fnError {
	var ie *runtimeapi.InitError
	var ee *runtimeapi.ExtensionError
	switch {
	case err == nil:
		return nil
	case errors.As(err, &ie):
		return &fnError{Type: runtimeapi.ErrorType(ie.Type), Payload: ie.Payload, status: runtimeapi.StatusError}
	case errors.As(err, &ee):
		return &fnError{Type: ee.Type, Message: ee.Error(), status: runtimeapi.StatusFailure}
	case errors.Is(err, context.DeadlineExceeded) && ctx.Err() == nil:
		return &fnError{Type: runtimeapi.SandboxTimedout,
			Message: fmt.Sprintf("Init phase timed out after %.2f seconds", e.em.cfg.InitTimeout.Seconds()), status: runtimeapi.StatusTimeout}
	default:
		return &fnError{Type: runtimeapi.SandboxFailure, Message: err.Error(), status: runtimeapi.StatusFailure}
	}
}

func exitError(st sandbox.ExitStatus) *fnError {
	return &fnError{Type: runtimeapi.RuntimeExitError, Message: "Runtime exited with error: " + st.String(), status: runtimeapi.StatusFailure}
}

// shutdown runs the shutdown phase and destroys the environment:
//
//	grace := api.ShutdownGrace()                  0 / 500 ms / 2 s by what registered
//	api.Shutdown(ctx, reason, deadline)           SHUTDOWN to the extensions, in parallel with
//	sb.Shutdown(ctx, grace)                       SIGTERM, wait for every process, SIGKILL
//	api.Close(); srv.Close(); sb.Destroy()
func (e *env) shutdown(reason string) {
	grace := e.api.ShutdownGrace()
	deadline := e.em.cfg.Now().Add(grace)
	ctx, cancel := context.WithTimeout(context.Background(), grace)
	apiDone := make(chan struct{})
	go func() {
		defer close(apiDone)
		if err := e.api.Shutdown(ctx, reason, deadline); err != nil && !errors.Is(err, context.Canceled) && !errors.Is(err, context.DeadlineExceeded) {
			e.em.log.Debug("shutdown", "env", e.id, "err", err)
		}
	}()
	_ = e.sb.Shutdown(ctx, grace)
	cancel()
	<-apiDone
	e.destroy()
}

// destroy releases everything at once.
func (e *env) destroy() {
	e.api.Close()
	_ = e.srv.Close()
	_ = e.sb.Destroy(context.Background())
	<-e.done
	e.em.log.Debug("environment destroyed", "env", e.id)
}
