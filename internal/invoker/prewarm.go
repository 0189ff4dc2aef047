package invoker

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"io"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/kappa-run/kappa/internal/apierr"
	"github.com/kappa-run/kappa/internal/envinit"
	"github.com/kappa-run/kappa/internal/function"
	"github.com/kappa-run/kappa/internal/sandbox"
	"github.com/kappa-run/kappa/internal/spare"
)

// SpareOptions configure the created-but-not-started environments (spares)
// the invoker keeps for recently used configurations: after an invocation
// of a configuration, one is created in the background, and the next cold
// start of that configuration only starts it. A spare is filed under the
// configuration key it was made for (function, version, code, revision)
// and handed only to an on-demand cold start of that key whose sandbox
// would be built from exactly the same values (the fingerprint); any other
// is discarded. Spares are not counted in MaxEnvironments. The zero value
// keeps none.
type SpareOptions struct {
	// Max bounds the spares across all configurations; 0 disables them.
	Max int
	// PerKey bounds the spares of one configuration (default 1).
	PerKey int
	// IdleTimeout is how long a configuration's spare is kept after the
	// configuration was last invoked (default 5 minutes).
	IdleTimeout time.Duration
}

// spareHeadroom is how much memory above MinMemAvailable the host must
// have for spares to be kept: under pressure they go first, before idle
// environments are reaped.
const spareHeadroom = 512 << 20

// spares are the invoker's spare sandboxes. A nil *spares keeps none.
type spares struct {
	pool *spare.Pool[*prepared]

	mu sync.Mutex
	// retired is when the configurations of a function whose spares
	// Retire dropped were last wanted, for Prewarm.
	retired map[string]time.Time
}

// newSpares returns the spares of opts, or nil when they are off.
func newSpares(opts Options) *spares {
	if opts.Spares.Max <= 0 {
		return nil
	}
	var room func() bool
	if opts.MemAvailable != nil && opts.MinMemAvailable > 0 {
		room = func() bool {
			avail, err := opts.MemAvailable()
			return err == nil && avail >= opts.MinMemAvailable+spareHeadroom
		}
	}
	return &spares{
		pool: spare.New(spare.Options{
			Max:         opts.Spares.Max,
			PerKey:      opts.Spares.PerKey,
			IdleTimeout: opts.Spares.IdleTimeout,
			Room:        room,
			Now:         opts.Now,
			Logger:      opts.Logger.With("part", "spares"),
		}, (*prepared).discard),
		retired: map[string]time.Time{},
	}
}

// close discards every spare.
func (s *spares) close() {
	if s != nil {
		s.pool.Close()
	}
}

// prepared is a created, not yet started sandbox with the per-environment
// values it was created with: its id and log stream name (in its
// environment variables) and its output, which goes nowhere until bound
// to the environment's log capture.
type prepared struct {
	// fingerprint is that of the configuration it was made for.
	fingerprint    string
	id             string
	stream         string
	sb             sandbox.Sandbox
	stdout, stderr *retarget
	digest         string
	images         RootFSProvider
	// extensions are the image's external extensions; when there are any,
	// Kappa's init runs them and the runtime (see package envinit).
	extensions []string
	// restoreFrom is the snapshot the sandbox starts from, or "", and
	// restoreStat that directory as it was when chosen (brokenSnapshot
	// drops only that one, not a newer one at the same path).
	restoreFrom string
	restoreStat os.FileInfo
}

// discard destroys a prepared sandbox that no environment took.
func (p *prepared) discard() {
	p.sb.Destroy(context.Background()) // the sandbox logs its own failures
	p.images.Release(p.digest)
}

// fingerprint identifies what a prepared sandbox of c is made of: c's
// configuration key, the init type and a digest of everything of c its
// sandbox spec is built from, so that a spare only ever serves a
// configuration that would have produced the same sandbox, even should a
// revision id be reused.
func fingerprint(c function.Config, region, initType string) string {
	h := sha256.New()
	field := func(s string) {
		h.Write([]byte(strconv.Itoa(len(s))))
		h.Write([]byte{':'})
		h.Write([]byte(s))
	}
	for _, a := range command(c) {
		field(a)
	}
	field("|")
	field(workingDir(c))
	env := environment(c, region, "", initType)
	slices.Sort(env)
	for _, kv := range env {
		field(kv)
	}
	field(strconv.Itoa(c.MemorySize))
	field(strconv.Itoa(c.EphemeralStorage))
	return configKey(c) + "#" + initType + "#" + hex.EncodeToString(h.Sum(nil)[:16])
}

// prepare returns a created sandbox for a cold start of c: a spare of c's
// configuration when the pool holds one, else a new one.
func (inv *Invoker) prepare(ctx context.Context, c function.Config, initType string) (*prepared, error) {
	if inv.spares != nil && initType == initOnDemand {
		if p, ok := inv.spares.pool.Take(configKey(c)); ok {
			select {
			case <-p.sb.Done():
				// Its init process died while waiting: never start it.
				inv.teardowns.run(p.discard)
			default:
				if fp := fingerprint(c, inv.opts.Region, initType); p.fingerprint == fp && p.restoreFrom == inv.snapshotFor(ctx, c) {
					inv.log.Debug("cold start from a spare", "function", c.Name, "version", c.Version, "env", p.id)
					return p, nil
				}
				// Same configuration key, other settings (a revision id
				// was reused), or made before or without the snapshot it
				// should restore. Never hand it out.
				inv.log.Warn("spare made from other settings of the same configuration key; discarding it",
					"function", c.Name, "version", c.Version)
				inv.teardowns.run(p.discard)
			}
		}
	}
	return inv.create(ctx, c, initType)
}

// create creates a new sandbox for c, generating its per-environment
// values. A missing command is reported as the function error Lambda
// gives.
func (inv *Invoker) create(ctx context.Context, c function.Config, initType string) (*prepared, error) {
	args := command(c)
	if len(args) == 0 {
		return nil, &functionError{Type: "Runtime.InvalidEntrypoint",
			Message: "the image has no ENTRYPOINT or CMD and ImageConfig sets neither"}
	}
	rootfs, err := inv.opts.Images.RootFS(ctx, c.Code.Digest)
	if err != nil {
		return nil, apierr.Wrap(apierr.Internal, err, "prepare root filesystem")
	}
	id := newID()
	p := &prepared{
		fingerprint: fingerprint(c, inv.opts.Region, initType),
		id:          id,
		stream:      streamName(inv.opts.Now(), c.Version, id),
		stdout:      &retarget{}, stderr: &retarget{},
		digest: c.Code.Digest, images: inv.opts.Images,
	}
	if initType == initOnDemand {
		p.restoreFrom = inv.snapshotFor(ctx, c)
	}
	if p.restoreFrom != "" {
		if p.restoreStat, err = os.Stat(p.restoreFrom); err != nil {
			p.restoreFrom = "" // gone meanwhile: start the ordinary way
		}
	}
	// A snapshot's environment, and every one restored from it, runs
	// Kappa's init, which relays the Runtime API.
	checkpointable := initType == initSnapStart || p.restoreFrom != ""
	var mounts []sandbox.Mount
	if inv.opts.InitBinary != "" {
		p.extensions = envinit.Extensions(rootfs)
		if len(p.extensions) > 0 || checkpointable {
			args = append([]string{envinit.Path}, args...)
			mounts = []sandbox.Mount{{Source: inv.opts.InitBinary, Destination: envinit.Path}}
		}
	}
	if initType == initSnapStart && len(p.extensions) > 0 {
		inv.opts.Images.Release(c.Code.Digest)
		return nil, &functionError{Type: "SnapStart.ExtensionsNotSupported",
			Message: "the image has external extensions (/opt/extensions), which Kappa does not snapshot yet"}
	}
	p.sb, err = inv.opts.Runtime.Create(ctx, sandbox.Spec{
		Checkpointable: checkpointable,
		RestoreFrom:    p.restoreFrom,
		Mounts:         mounts,
		ID:             "k" + id[:20],
		RootFS:         rootfs,
		Args:           args,
		Env:            environment(c, inv.opts.Region, p.stream, initType),
		Cwd:            workingDir(c),
		MemoryMB:       c.MemorySize,
		TmpMB:          c.EphemeralStorage,
		Hostname:       "localhost",
		Stdout:         p.stdout,
		Stderr:         p.stderr,
	})
	if err != nil {
		inv.opts.Images.Release(c.Code.Digest)
		if p.restoreFrom != "" {
			inv.log.Warn("cannot prepare a restore; starting the ordinary way", "function", c.Name, "version", c.Version, "err", err)
			return inv.create(withoutRestore(ctx), c, initType)
		}
		return nil, apierr.Wrap(apierr.Internal, err, "create execution environment")
	}
	return p, nil
}

// wantSpare notes that c was invoked, so that the pool keeps a spare of it.
// It runs on every invocation: keep it cheap.
func (inv *Invoker) wantSpare(c function.Config) {
	if inv.spares == nil {
		return
	}
	inv.spares.pool.Want(configKey(c), inv.spareBuild(c))
}

func (inv *Invoker) spareBuild(c function.Config) spare.Build[*prepared] {
	return func(ctx context.Context) (*prepared, error) {
		return inv.create(ctx, c, initOnDemand)
	}
}

// dropSpares discards the spares of function name's configurations not in
// keep, remembering when they were last wanted for Prewarm.
func (inv *Invoker) dropSpares(name string, keep map[string]bool) {
	if inv.spares == nil {
		return
	}
	prefix := name + "/"
	last := inv.spares.pool.Drop(func(key string) bool { return strings.HasPrefix(key, prefix) && !keep[key] })
	if last.IsZero() {
		return
	}
	s := inv.spares
	s.mu.Lock()
	defer s.mu.Unlock()
	if last.After(s.retired[name]) {
		s.retired[name] = last
	}
	// Forget functions retired long ago.
	idle := inv.opts.Spares.IdleTimeout
	if idle <= 0 {
		idle = 5 * time.Minute
	}
	now := inv.opts.Now()
	for fn, t := range s.retired {
		if now.Sub(t) >= idle {
			delete(s.retired, fn)
		}
	}
}

// Prewarm makes a spare of c, a function's new serving configuration (after
// a deploy or an update), so that its first cold start only starts one:
// the first invocation of a new function is the cold start its users meet
// first. A configuration replacing one in use within the spare idle timeout
// is wanted as of that use; any other as of now, so an unused one goes
// after the idle timeout. The pool's bound keeps a mass deploy from making
// more than a few. c must be Active. It returns at once.
func (inv *Invoker) Prewarm(c function.Config) {
	if inv.spares == nil {
		return
	}
	s := inv.spares
	s.mu.Lock()
	last, ok := s.retired[c.Name]
	s.mu.Unlock()
	if ok {
		s.pool.WantSince(configKey(c), inv.spareBuild(c), last)
		return
	}
	s.pool.Want(configKey(c), inv.spareBuild(c))
}

// retarget is the stdout or stderr of a prepared sandbox: output is held
// (up to retargetHold bytes; a created container writes none before it
// starts) until bind names the writer it belongs to, which then gets it
// all. Safe for concurrent use.
type retarget struct {
	mu   sync.Mutex
	w    io.Writer
	held []byte
}

const retargetHold = 64 << 10

func (r *retarget) Write(p []byte) (int, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.w != nil {
		return r.w.Write(p)
	}
	if len(r.held)+len(p) <= retargetHold {
		r.held = append(r.held, p...)
	}
	return len(p), nil
}

// bind sends the output to w from now on, after what was held.
func (r *retarget) bind(w io.Writer) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.held) > 0 {
		w.Write(r.held)
		r.held = nil
	}
	r.w = w
}
