package invoker

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"io"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/kappa-run/kappa/internal/apierr"
	"github.com/kappa-run/kappa/internal/function"
	"github.com/kappa-run/kappa/internal/sandbox"
	"github.com/kappa-run/kappa/internal/spare"
)

// SpareOptions configure the created-but-not-started environments (spares)
// the invoker keeps for recently used configurations: after an invocation
// of a configuration, one is created in the background, and the next cold
// start of that configuration only starts it. A spare is made for one
// configuration key (function, version, code, revision, and everything its
// sandbox is built from) and only ever handed to a cold start of that same
// key. Spares are not counted in MaxEnvironments. The zero value keeps
// none.
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

// newSpares returns the spare pool of opts, or nil when spares are off.
func newSpares(opts Options) *spare.Pool[*prepared] {
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
	return spare.New(spare.Options{
		Max:         opts.Spares.Max,
		PerKey:      opts.Spares.PerKey,
		IdleTimeout: opts.Spares.IdleTimeout,
		Room:        room,
		Now:         opts.Now,
		Logger:      opts.Logger.With("part", "spares"),
	}, (*prepared).discard)
}

// prepared is a created, not yet started sandbox with the per-environment
// values it was created with: its id and log stream name (in its
// environment variables) and its output, which goes nowhere until bound
// to the environment's log capture.
type prepared struct {
	key            string // spareKey of the configuration it was made for
	id             string
	stream         string
	sb             sandbox.Sandbox
	stdout, stderr *retarget
	digest         string
	images         RootFSProvider
}

// discard destroys a prepared sandbox that no environment took.
func (p *prepared) discard() {
	p.sb.Destroy(context.Background()) // the sandbox logs its own failures
	p.images.Release(p.digest)
}

// spareKey identifies what a prepared sandbox of c is made of: c's
// configuration key and a digest of everything of c its sandbox spec is
// built from, so that a spare can only ever serve a configuration that
// would have produced the same sandbox.
func spareKey(c function.Config, region, initType string) string {
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
// key when the pool holds one, else a new one.
func (inv *Invoker) prepare(ctx context.Context, c function.Config, initType string) (*prepared, error) {
	if inv.spares != nil {
		key := spareKey(c, inv.opts.Region, initType)
		if p, ok := inv.spares.Take(key); ok {
			select {
			case <-p.sb.Done():
				// Its init process died while waiting: never start it.
				go p.discard()
			default:
				if p.key == key {
					return p, nil
				}
				// Unreachable: the pool files spares by the key they
				// were made for. Refuse rather than trust it.
				inv.log.Error("spare of another configuration handed out; discarding it", "want", key, "got", p.key)
				go p.discard()
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
		key:    spareKey(c, inv.opts.Region, initType),
		id:     id,
		stream: streamName(inv.opts.Now(), c.Version, id),
		stdout: &retarget{}, stderr: &retarget{},
		digest: c.Code.Digest, images: inv.opts.Images,
	}
	p.sb, err = inv.opts.Runtime.Create(ctx, sandbox.Spec{
		ID:       "k" + id[:20],
		RootFS:   rootfs,
		Args:     args,
		Env:      environment(c, inv.opts.Region, p.stream, initType),
		Cwd:      workingDir(c),
		MemoryMB: c.MemorySize,
		TmpMB:    c.EphemeralStorage,
		Hostname: "localhost",
		Stdout:   p.stdout,
		Stderr:   p.stderr,
	})
	if err != nil {
		inv.opts.Images.Release(c.Code.Digest)
		return nil, apierr.Wrap(apierr.Internal, err, "create execution environment")
	}
	return p, nil
}

// wantSpare notes that c was invoked, so that the pool keeps a spare of it.
func (inv *Invoker) wantSpare(c function.Config) {
	if inv.spares == nil {
		return
	}
	inv.spares.Want(spareKey(c, inv.opts.Region, initOnDemand), func(ctx context.Context) (*prepared, error) {
		return inv.create(ctx, c, initOnDemand)
	})
}

// dropSpares discards the spares of every configuration of function name.
func (inv *Invoker) dropSpares(name string) {
	if inv.spares == nil {
		return
	}
	prefix := name + "/"
	inv.spares.Drop(func(key string) bool { return len(key) > len(prefix) && key[:len(prefix)] == prefix })
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
