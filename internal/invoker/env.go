package invoker

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/kappa-run/kappa/internal/function"
	"github.com/kappa-run/kappa/internal/logs"
	"github.com/kappa-run/kappa/internal/runtimeapi"
	"github.com/kappa-run/kappa/internal/sandbox"
)

// env is one execution environment and the Runtime API serving it.
type env struct {
	id      string
	key     string
	fn      string
	sb      sandbox.Sandbox
	api     *runtimeapi.Server
	srv     *http.Server
	capture *logs.Capture
	stream  *logs.Stream

	// initDuration is set on a cold start and reported once;
	// initDurationReported keeps it for the Observer record.
	initDuration         time.Duration
	initDurationReported time.Duration
	// restored is set when the environment was restored from a snapshot
	// (its "init" is the restore).
	restored bool

	destroyOnce sync.Once

	// freezeMu orders freezing (after release) and thawing (on reuse):
	// busy is set before thawing, and a freeze of a busy env is skipped.
	freezeMu    sync.Mutex
	busy        bool
	frozen      bool
	freezeTimer *time.Timer // pending sleepAfter
	invocations int
	lastUsed    time.Time

	// digest is the image whose root filesystem images holds for us.
	digest string
	images RootFSProvider
	// extensions is true when the image runs external extensions.
	extensions bool
	// timeoutFrom, when set, is when the function timeout of the first
	// invocation began: its init was retried within that invocation (a
	// suppressed init), and Lambda gives both one timeout.
	timeoutFrom time.Time
	// retired: its configuration is no longer current (Retire); it is
	// destroyed when released. Guarded by Invoker.mu.
	retired bool
	// owner is the provisioned-concurrency config that keeps this
	// environment ("" for on-demand ones); such environments are never
	// reaped while provisioned.
	owner string
}

func newID() string {
	var b [16]byte
	rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// streamName is Lambda's log stream name: YYYY/MM/DD/[$LATEST]<32 hex>.
func streamName(now time.Time, version, id string) string {
	return fmt.Sprintf("%s/[%s]%s", now.UTC().Format("2006/01/02"), version, id)
}

// handler is the function's handler setting (_HANDLER): CMD's first word.
func handler(c function.Config) string {
	cmd := c.ImageConfig.Command
	if len(cmd) == 0 {
		cmd = c.Code.Cmd
	}
	if len(cmd) > 0 {
		return cmd[0]
	}
	return ""
}

// command combines the image's ENTRYPOINT and CMD with the function's
// ImageConfig overrides, as Lambda does.
func command(c function.Config) []string {
	ep := c.Code.Entrypoint
	if len(c.ImageConfig.EntryPoint) > 0 {
		ep = c.ImageConfig.EntryPoint
	}
	cmd := c.Code.Cmd
	if len(c.ImageConfig.Command) > 0 {
		cmd = c.ImageConfig.Command
	}
	return append(append([]string(nil), ep...), cmd...)
}

func workingDir(c function.Config) string {
	if c.ImageConfig.WorkingDirectory != "" {
		return c.ImageConfig.WorkingDirectory
	}
	if c.Code.WorkingDir != "" {
		return c.Code.WorkingDir
	}
	return "/"
}

// environment builds the process environment: the image's ENV, then the
// function's variables, then Lambda's reserved variables, later entries
// overriding earlier ones.
func environment(c function.Config, region, stream, initType string) []string {
	vars := map[string]string{}
	var order []string
	set := func(k, v string) {
		if _, ok := vars[k]; !ok {
			order = append(order, k)
		}
		vars[k] = v
	}
	set("PATH", "/var/lang/bin:/usr/local/bin:/usr/bin/:/bin:/opt/bin")
	set("LANG", "en_US.UTF-8")
	set("LD_LIBRARY_PATH", "/var/lang/lib:/lib64:/usr/lib64:/var/runtime:/var/runtime/lib:/var/task:/var/task/lib:/opt/lib")
	// Not reserved in Lambda: the image or the function may set its own.
	set("TZ", ":UTC")
	for _, kv := range c.Code.Env {
		k, v, _ := strings.Cut(kv, "=")
		set(k, v)
	}
	for k, v := range c.Environment {
		set(k, v)
	}
	cmd := c.ImageConfig.Command
	if len(cmd) == 0 {
		cmd = c.Code.Cmd
	}
	if len(cmd) > 0 {
		set("_HANDLER", cmd[0])
	}
	set("AWS_REGION", region)
	set("AWS_DEFAULT_REGION", region)
	set("AWS_LAMBDA_FUNCTION_NAME", c.Name)
	set("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", strconv.Itoa(c.MemorySize))
	set("AWS_LAMBDA_FUNCTION_VERSION", c.Version)
	set("AWS_LAMBDA_INITIALIZATION_TYPE", initType)
	if initType != initSnapStart && !c.SnapStartOn() {
		// Lambda leaves both out of SnapStart versions: one snapshot
		// serves many environments, each logging to a stream of its own.
		// (Also when one cold-starts without its snapshot.)
		set("AWS_LAMBDA_LOG_GROUP_NAME", c.LoggingConfig.LogGroup)
		set("AWS_LAMBDA_LOG_STREAM_NAME", stream)
	}
	set("LAMBDA_TASK_ROOT", "/var/task")
	set("LAMBDA_RUNTIME_DIR", "/var/runtime")
	if c.LoggingConfig.LogFormat == "JSON" {
		set("AWS_LAMBDA_LOG_FORMAT", "JSON")
		if c.LoggingConfig.ApplicationLogLevel != "" {
			set("AWS_LAMBDA_LOG_LEVEL", c.LoggingConfig.ApplicationLogLevel)
		}
	}
	out := make([]string, 0, len(order))
	for _, k := range order {
		out = append(out, k+"="+vars[k])
	}
	return out
}

// sleepAfter freezes the idle environment after d unless it is taken
// again first; each call restarts the wait.
func (e *env) sleepAfter(d time.Duration) {
	if d <= 0 {
		go e.sleep()
		return
	}
	e.freezeMu.Lock()
	defer e.freezeMu.Unlock()
	if e.freezeTimer == nil {
		e.freezeTimer = time.AfterFunc(d, e.sleep)
		return
	}
	e.freezeTimer.Reset(d)
}

// sleep freezes an idle environment unless it was taken again meanwhile.
func (e *env) sleep() {
	e.freezeMu.Lock()
	defer e.freezeMu.Unlock()
	if e.busy || e.frozen {
		return
	}
	if err := e.sb.Freeze(context.Background()); err == nil {
		e.frozen = true
	}
}

// wake marks the environment busy and thaws it if it was frozen.
func (e *env) wake(ctx context.Context) error {
	e.freezeMu.Lock()
	defer e.freezeMu.Unlock()
	e.busy = true
	if !e.frozen {
		return nil
	}
	if err := e.sb.Thaw(ctx); err != nil {
		return err
	}
	e.frozen = false
	return nil
}

// idle marks the environment free again.
func (e *env) idle() {
	e.freezeMu.Lock()
	e.busy = false
	e.freezeMu.Unlock()
}

// destroy tears the environment down; safe to call more than once.
func (e *env) destroy(ctx context.Context) {
	e.destroyOnce.Do(func() {
		e.freezeMu.Lock()
		if e.freezeTimer != nil {
			e.freezeTimer.Stop()
		}
		e.freezeMu.Unlock()
		e.api.Close()
		e.srv.Close()
		e.sb.Destroy(ctx) // the sandbox logs its own failures
		if e.stream != nil {
			e.stream.Close()
		}
		e.images.Release(e.digest)
	})
}
