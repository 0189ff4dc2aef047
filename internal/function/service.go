package function

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/google/uuid"

	"github.com/kappa-run/kappa/internal/apierr"
	"github.com/kappa-run/kappa/internal/image"
	"github.com/kappa-run/kappa/internal/store"
)

// Images pulls and unpacks images; *image.Store implements it.
type Images interface {
	Pull(ctx context.Context, imageURI, arch string) (*image.Image, error)
	// CheckPlatform refuses at once an image that cannot run on arch (an
	// index without it: image.ErrInvalid) or that the registry does not
	// have (image.ErrNotFound); every other problem is left to Pull.
	CheckPlatform(ctx context.Context, imageURI, arch string) error
}

// Options configure a Service.
type Options struct {
	Bucket  store.Bucket
	Images  Images
	Region  string
	Account string
	Logger  *slog.Logger
	Now     func() time.Time
	// AccountConcurrency is the account's concurrency limit (default 1,000).
	AccountConcurrency int
	// Changed, when set, is called after a function's serving configuration
	// changed or the function was deleted, so the invoker can retire its
	// environments.
	Changed func(name string)
	// Snapshots takes the snapshots of SnapStart versions; nil refuses
	// SnapStart.ApplyOn PublishedVersions.
	Snapshots Snapshotter
}

// Snapshotter takes and drops the snapshots of versions published with
// SnapStart.ApplyOn PublishedVersions; *invoker.Invoker implements it.
type Snapshotter interface {
	// Snapshots returns nil when snapshots can be taken, else why not.
	Snapshots() error
	// Snapshot takes the snapshot of a published version (Pending until
	// it returns).
	Snapshot(ctx context.Context, c Config) error
	// DropSnapshots removes a version's snapshot, or all of a
	// function's when version is "".
	DropSnapshots(name, version string)
}

// checkSnapStart refuses SnapStart.ApplyOn PublishedVersions when this
// server cannot take snapshots, rather than ignore it: a deployment asking
// for it (Terraform's snap_start block) learns it at once instead of
// seeing None come back.
func (s *Service) checkSnapStart(applyOn string) error {
	if applyOn != SnapStartPublished {
		return nil
	}
	var why error = errors.New("no snapshotter configured")
	if s.opts.Snapshots != nil {
		why = s.opts.Snapshots.Snapshots()
	}
	if why != nil {
		return apierr.New(apierr.InvalidParameter,
			"SnapStart is not available on this Kappa server (%v): set SnapStart.ApplyOn to None, or see docs/snapshot-restore.md", why)
	}
	return nil
}

// Service creates, reads, updates and deletes functions and deploys their
// images in the background. Safe for concurrent use.
type Service struct {
	opts   Options
	log    *slog.Logger
	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup
	// unreserved caches the account concurrency left unreserved.
	unreserved atomic.Int64

	cacheMu sync.Mutex
	cache   map[string]cached
	// forgets counts the records forgotten, so that a read that raced
	// one is not cached (see load).
	forgets uint64
}

// NewService returns a Service. Call Start to resume interrupted deploys.
func NewService(opts Options) *Service {
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.AccountConcurrency <= 0 {
		opts.AccountConcurrency = 1000
	}
	ctx, cancel := context.WithCancel(context.Background())
	s := &Service{opts: opts, log: opts.Logger, ctx: ctx, cancel: cancel, cache: map[string]cached{}}
	s.unreserved.Store(int64(opts.AccountConcurrency))
	return s
}

// Start resumes the deploys a previous process left Pending or InProgress.
func (s *Service) Start(ctx context.Context) error {
	fns, err := s.List(ctx)
	if err != nil {
		return err
	}
	s.refreshReserved(ctx)
	for _, fn := range fns {
		s.resumeSnapshots(ctx, fn.Latest.Name)
		switch {
		case fn.Latest.State == StatePending:
			s.deploy(fn.Latest.Name, fn.Latest.Code.ImageURI, fn.Generation, false)
		case fn.Pending != nil:
			s.deploy(fn.Latest.Name, fn.Pending.ImageURI, fn.Generation, true)
		case fn.Latest.LastUpdateStatus == UpdateInProgress && !fn.PublishPending:
			s.finishConfigUpdate(fn.Latest.Name)
		case fn.PublishPending:
			// Deployed, but stopped before the version it asked for.
			s.wg.Add(1)
			go func() {
				defer s.wg.Done()
				s.publishPending(fn.Latest.Name)
			}()
		}
	}
	return nil
}

// Close stops background deploys and waits for them.
func (s *Service) Close() {
	s.cancel()
	s.wg.Wait()
}

// ARN returns the function's ARN, qualified when qualifier is not empty.
func (s *Service) ARN(name, qualifier string) string {
	return ARN(s.opts.Region, s.opts.Account, name, qualifier)
}

func key(name string) string { return "fn." + name }

func (s *Service) notFound(name string) error {
	return apierr.New(apierr.NotFound, "Function not found: %s", s.ARN(name, ""))
}

// Get returns the stored function.
func (s *Service) Get(ctx context.Context, name string) (*Function, error) {
	fn, _, err := s.load(ctx, name)
	return fn, err
}

// load returns a function and its store revision. Records are cached in
// memory, written through on every change this Service makes and dropped
// when a write finds a newer revision; the returned value is a copy the
// caller may change (replacing, never mutating in place, its maps and
// slices).
func (s *Service) load(ctx context.Context, name string) (*Function, uint64, error) {
	s.cacheMu.Lock()
	c, ok := s.cache[name]
	forgets := s.forgets
	s.cacheMu.Unlock()
	if ok {
		fn := *c.fn
		return &fn, c.rev, nil
	}
	e, err := s.opts.Bucket.Get(ctx, key(name))
	if errors.Is(err, store.ErrNotFound) {
		return nil, 0, s.notFound(name)
	}
	if err != nil {
		return nil, 0, apierr.Wrap(apierr.Internal, err, "read function")
	}
	var fn Function
	if err := json.Unmarshal(e.Value, &fn); err != nil {
		return nil, 0, apierr.Wrap(apierr.Internal, err, "decode function")
	}
	// Not cached if a record was forgotten meanwhile (a Delete's, say):
	// what was read may be the deleted one.
	s.cacheMu.Lock()
	if s.forgets == forgets {
		s.rememberLocked(name, &fn, e.Revision)
	}
	s.cacheMu.Unlock()
	cp := fn
	return &cp, e.Revision, nil
}

type cached struct {
	fn  *Function
	rev uint64
}

// remember caches fn at rev (nil forgets name).
func (s *Service) remember(name string, fn *Function, rev uint64) {
	s.cacheMu.Lock()
	defer s.cacheMu.Unlock()
	s.rememberLocked(name, fn, rev)
}

func (s *Service) rememberLocked(name string, fn *Function, rev uint64) {
	if fn == nil {
		delete(s.cache, name)
		s.forgets++
		return
	}
	if c, ok := s.cache[name]; ok && c.rev > rev {
		return
	}
	cp := *fn
	s.cache[name] = cached{fn: &cp, rev: rev}
}

// List returns every function, sorted by name.
func (s *Service) List(ctx context.Context) ([]*Function, error) {
	keys, err := s.opts.Bucket.Keys(ctx, "fn")
	if err != nil {
		return nil, apierr.Wrap(apierr.Internal, err, "list functions")
	}
	sort.Strings(keys)
	var out []*Function
	for _, k := range keys {
		fn, _, err := s.load(ctx, k[len("fn."):])
		if apierr.As(err) != nil && errors.Is(err, apierr.NotFound) {
			continue // deleted meanwhile
		}
		if err != nil {
			return nil, err
		}
		out = append(out, fn)
	}
	return out, nil
}

// mutate applies f to the stored function under optimistic concurrency,
// retrying on a concurrent write. f returns an error to abort.
func (s *Service) mutate(ctx context.Context, name string, f func(fn *Function) error) (*Function, error) {
	for range 100 {
		fn, rev, err := s.load(ctx, name)
		if err != nil {
			return nil, err
		}
		if err := f(fn); err != nil {
			return nil, err
		}
		fn.Generation++
		b, _ := json.Marshal(fn)
		nrev, err := s.opts.Bucket.Update(ctx, key(name), b, rev)
		if errors.Is(err, store.ErrRevision) {
			s.remember(name, nil, 0)
			continue
		}
		if err != nil {
			s.remember(name, nil, 0)
			return nil, apierr.Wrap(apierr.Internal, err, "write function")
		}
		s.remember(name, fn, nrev)
		return fn, nil
	}
	return nil, apierr.New(apierr.Internal, "too much contention on function %s", name)
}

func (s *Service) stamp(c *Config) {
	c.RevisionID = uuid.NewString()
	c.LastModified = s.opts.Now().UTC()
}

func (s *Service) inProgress(name string) error {
	return apierr.New(apierr.Conflict,
		"The operation cannot be performed at this time. An update is in progress for resource: %s", s.ARN(name, ""))
}

func (s *Service) checkRevision(c *Config, want string) error {
	if want != "" && want != c.RevisionID {
		return apierr.New(apierr.PreconditionFailed,
			"The Revision Id provided does not match the latest Revision Id. Call the GetFunction/GetAlias API to retrieve the latest Revision Id")
	}
	return nil
}

// Create validates in, stores the function as Pending and starts deploying
// its image.
func (s *Service) Create(ctx context.Context, in CreateInput) (*Function, error) {
	cfg, err := in.config()
	if err != nil {
		return nil, err
	}
	if err := s.checkSnapStart(in.SnapStartApplyOn); err != nil {
		return nil, err
	}
	cfg.LoggingConfig.LogGroup = defaultLogGroup(cfg.LoggingConfig.LogGroup, cfg.Name)
	if err := s.checkPlatform(ctx, cfg.Code.ImageURI, cfg.Architectures); err != nil {
		return nil, err
	}
	cfg.State, cfg.StateReason, cfg.StateReasonCode = StatePending, "The function is being created.", ReasonCreating
	s.stamp(&cfg)
	fn := &Function{Latest: cfg, Tags: in.Tags, Generation: 1, PublishPending: in.Publish}
	b, _ := json.Marshal(fn)
	if _, err := s.opts.Bucket.Create(ctx, key(cfg.Name), b); err != nil {
		if errors.Is(err, store.ErrExists) {
			return nil, apierr.New(apierr.Conflict, "Function already exist: %s", cfg.Name)
		}
		return nil, apierr.Wrap(apierr.Internal, err, "store function")
	}
	s.log.Info("function created", "function", cfg.Name, "image", cfg.Code.ImageURI)
	s.deploy(cfg.Name, cfg.Code.ImageURI, fn.Generation, false)
	return fn, nil
}

// UpdateCode starts deploying a new image; the current image keeps serving
// until the new one is ready (LastUpdateStatus InProgress → Successful).
func (s *Service) UpdateCode(ctx context.Context, name string, in UpdateCodeInput) (*Function, error) {
	if in.ImageURI == "" {
		return nil, apierr.New(apierr.InvalidParameter, "Please provide ImageUri when updating a function with package type Image.")
	}
	if err := validateArchitectures(in.Architectures); err != nil {
		return nil, err
	}
	if !in.DryRun {
		// The function first (ResourceNotFoundException before anything
		// about the image), then the image, before the write below.
		cur, err := s.Get(ctx, name)
		if err != nil {
			return nil, err
		}
		archs := in.Architectures
		if archs == nil {
			archs = cur.Latest.Architectures
		}
		if err := s.checkPlatform(ctx, in.ImageURI, archs); err != nil {
			return nil, err
		}
	}
	fn, err := s.mutate(ctx, name, func(fn *Function) error {
		c := &fn.Latest
		if c.State == StatePending || fn.Pending != nil || c.LastUpdateStatus == UpdateInProgress {
			return s.inProgress(name)
		}
		if err := s.checkRevision(c, in.RevisionID); err != nil {
			return err
		}
		if in.DryRun {
			return errDryRun
		}
		if in.Architectures != nil {
			c.Architectures = in.Architectures
		}
		fn.Pending = &Code{ImageURI: in.ImageURI}
		fn.PublishPending = in.Publish
		c.LastUpdateStatus, c.LastUpdateStatusReason, c.LastUpdateStatusReasonCode = UpdateInProgress, "The function is being updated.", ""
		s.stamp(c)
		return nil
	})
	if errors.Is(err, errDryRun) {
		return s.Get(ctx, name)
	}
	if err != nil {
		return nil, err
	}
	s.deploy(name, in.ImageURI, fn.Generation, true)
	return fn, nil
}

var errDryRun = errors.New("dry run")

// UpdateConfig applies a configuration change. Like Lambda it answers with
// LastUpdateStatus InProgress; the change becomes Successful right after,
// and new invocations use fresh environments with the new configuration.
func (s *Service) UpdateConfig(ctx context.Context, name string, in UpdateConfigInput) (*Function, error) {
	if err := in.validate(); err != nil {
		return nil, err
	}
	if err := s.checkSnapStart(in.SnapStartApplyOn); err != nil {
		return nil, err
	}
	fn, err := s.mutate(ctx, name, func(fn *Function) error {
		c := &fn.Latest
		if c.State == StatePending || fn.Pending != nil || c.LastUpdateStatus == UpdateInProgress {
			return s.inProgress(name)
		}
		if err := s.checkRevision(c, in.RevisionID); err != nil {
			return err
		}
		next := *c
		in.apply(&next)
		if in.LoggingConfig != nil {
			if err := validateLogging(&next.LoggingConfig, false); err != nil {
				return err
			}
		}
		*c = next
		c.LastUpdateStatus, c.LastUpdateStatusReason, c.LastUpdateStatusReasonCode = UpdateInProgress, "The function is being updated.", ""
		s.stamp(c)
		return nil
	})
	if err != nil {
		return nil, err
	}
	s.finishConfigUpdate(name)
	return fn, nil
}

func (s *Service) finishConfigUpdate(name string) {
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		_, err := s.mutate(s.ctx, name, func(fn *Function) error {
			if fn.Latest.LastUpdateStatus != UpdateInProgress || fn.Pending != nil {
				return errSkip
			}
			fn.Latest.LastUpdateStatus, fn.Latest.LastUpdateStatusReason = UpdateSuccessful, ""
			return nil
		})
		if err == nil {
			s.changed(name)
		}
	}()
}

var errSkip = errors.New("skip")

// Delete removes the function.
func (s *Service) Delete(ctx context.Context, name string) error {
	if _, _, err := s.load(ctx, name); err != nil {
		return err
	}
	// Its versions, aliases and provisioned-concurrency configurations
	// first, the function last: a failure halfway leaves the function in
	// place, to be deleted again, rather than children nothing can reach
	// that a function made again under the name would inherit.
	for _, prefix := range []string{"ver." + name, "alias." + name, "pc." + name} {
		keys, err := s.opts.Bucket.Keys(ctx, prefix)
		if err != nil {
			return apierr.Wrap(apierr.Internal, err, "list function versions")
		}
		for _, k := range keys {
			if err := s.opts.Bucket.Delete(ctx, k); err != nil {
				return apierr.Wrap(apierr.Internal, err, "delete function version")
			}
		}
	}
	s.remember(name, nil, 0)
	if err := s.opts.Bucket.Delete(ctx, key(name)); err != nil {
		return apierr.Wrap(apierr.Internal, err, "delete function")
	}
	s.remember(name, nil, 0)
	s.refreshReserved(ctx)
	s.log.Info("function deleted", "function", name)
	if s.opts.Snapshots != nil {
		s.opts.Snapshots.DropSnapshots(name, "")
	}
	s.changed(name)
	return nil
}

func (s *Service) changed(name string) {
	if s.opts.Changed != nil {
		s.opts.Changed(name)
	}
}

// deployTimeout bounds a deploy's pull: a registry that stops sending
// fails the deploy (InternalError) instead of leaving the function Pending
// or InProgress for good. It allows a 10 GB image at ~3 MB/s.
const deployTimeout = time.Hour

// deploy pulls imageURI in the background and moves the function to Active
// or Failed (create), or swaps in the new code (update).
func (s *Service) deploy(name, imageURI string, gen uint64, update bool) {
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		fn, err := s.Get(s.ctx, name)
		if err != nil {
			return
		}
		arch := "x86_64"
		if len(fn.Latest.Architectures) == 1 {
			arch = fn.Latest.Architectures[0]
		}
		start := s.opts.Now()
		pullCtx, cancel := context.WithTimeout(s.ctx, deployTimeout)
		img, pullErr := s.opts.Images.Pull(pullCtx, imageURI, Arch(arch))
		cancel()
		if s.ctx.Err() != nil {
			return // shutting down; Start resumes it
		}
		if pullErr != nil && errors.Is(pullCtx.Err(), context.DeadlineExceeded) {
			pullErr = fmt.Errorf("the pull did not finish within %s: %w", deployTimeout, pullErr)
		}
		reasonCode, reason := "", ""
		if pullErr != nil {
			reasonCode, reason = failureReason(imageURI, pullErr)
			s.log.Warn("deploy failed", "function", name, "image", imageURI, "err", pullErr)
		} else {
			s.log.Info("deployed", "function", name, "image", imageURI, "digest", img.Digest,
				"took", s.opts.Now().Sub(start).Round(time.Millisecond))
		}
		_, err = s.mutate(s.ctx, name, func(fn *Function) error {
			c := &fn.Latest
			if update {
				if fn.Pending == nil || fn.Pending.ImageURI != imageURI {
					return errSkip
				}
				fn.Pending = nil
				if pullErr != nil {
					c.LastUpdateStatus, c.LastUpdateStatusReason, c.LastUpdateStatusReasonCode = UpdateFailed, reason, reasonCode
					fn.PublishPending = false // the code it asked a version of never came
					return nil
				}
				c.Code = codeOf(imageURI, img)
				if !fn.PublishPending {
					c.LastUpdateStatus, c.LastUpdateStatusReason, c.LastUpdateStatusReasonCode = UpdateSuccessful, "", ""
				} // else the write that records the version ends the update (publishPending)
				s.stamp(c)
				return nil
			}
			if c.State != StatePending || c.Code.ImageURI != imageURI {
				return errSkip
			}
			if pullErr != nil {
				c.State, c.StateReason, c.StateReasonCode = StateFailed, reason, reasonCode
				c.LastUpdateStatus, c.LastUpdateStatusReason, c.LastUpdateStatusReasonCode = UpdateFailed, reason, reasonCode
				fn.PublishPending = false
				return nil
			}
			c.Code = codeOf(imageURI, img)
			if !fn.PublishPending {
				c.State, c.StateReason, c.StateReasonCode = StateActive, "", ""
				c.LastUpdateStatus = UpdateSuccessful
			} // else the write that records the version makes it Active (publishPending)
			return nil
		})
		if err != nil {
			return
		}
		s.changed(name)
		if pullErr == nil {
			s.publishPending(name)
		}
	}()
}

// publishPending publishes a version after a deploy asked for with Publish.
// The deploy leaves $LATEST Pending (CreateFunction) or its update
// InProgress (UpdateFunctionCode) with its new code, and the write that
// records the version also ends the deploy: nobody sees the function Active,
// or its update Successful, before the version exists (Terraform looks the
// version up as soon as it does). The request is cleared only once the
// version exists, so that a crash (Start resumes it) does not lose it; a
// second Publish of the same state returns the same version. If the
// version cannot be written, the deploy still ends, without it.
func (s *Service) publishPending(name string) {
	for range 100 {
		fn, err := s.Get(s.ctx, name)
		if err != nil || !fn.PublishPending {
			return
		}
		if deploying(fn) {
			_, err := s.publish(s.ctx, name, PublishInput{}, true)
			if err != nil && s.ctx.Err() == nil {
				s.log.Warn("publish after deploy: ending the deploy without the version", "function", name, "err", err)
				s.mutate(s.ctx, name, func(fn *Function) error {
					if !fn.PublishPending || !deploying(fn) {
						return errSkip
					}
					endDeploy(&fn.Latest)
					fn.PublishPending = false
					return nil
				})
			}
			s.changed(name)
			return
		}
		_, err = s.Publish(s.ctx, name, PublishInput{})
		if errors.Is(err, apierr.Conflict) && s.ctx.Err() == nil {
			select {
			case <-time.After(100 * time.Millisecond):
				continue
			case <-s.ctx.Done():
				return
			}
		}
		if err != nil {
			s.log.Warn("publish after deploy", "function", name, "err", err)
			if s.ctx.Err() != nil {
				return // Start tries again
			}
		}
		s.mutate(s.ctx, name, func(fn *Function) error {
			if !fn.PublishPending {
				return errSkip
			}
			fn.PublishPending = false
			return nil
		})
		return
	}
	s.log.Warn("publish after deploy: the function stayed busy; not published", "function", name)
}

// deploying reports whether fn's deploy is done but for the version it
// asked for: its code is in place and $LATEST still Pending, or its update
// still InProgress.
func deploying(fn *Function) bool {
	return fn.PublishPending && fn.Pending == nil &&
		(fn.Latest.State == StatePending || fn.Latest.LastUpdateStatus == UpdateInProgress)
}

// endDeploy marks a deploy done: Active, its update Successful.
func endDeploy(c *Config) {
	if c.State == StatePending {
		c.State, c.StateReason, c.StateReasonCode = StateActive, "", ""
	}
	c.LastUpdateStatus, c.LastUpdateStatusReason, c.LastUpdateStatusReasonCode = UpdateSuccessful, "", ""
}

func codeOf(uri string, img *image.Image) Code {
	return Code{
		ImageURI:         uri,
		ResolvedImageURI: img.ResolvedURI,
		Digest:           img.Digest,
		Entrypoint:       img.Config.Entrypoint,
		Cmd:              img.Config.Cmd,
		Env:              img.Config.Env,
		WorkingDir:       img.Config.WorkingDir,
	}
}

func failureReason(uri string, err error) (code, reason string) {
	switch {
	case errors.Is(err, image.ErrNotFound):
		return ReasonImageDeleted, fmt.Sprintf("Source image %s does not exist. Provide a valid source image.", uri)
	case errors.Is(err, image.ErrAccessDenied):
		return ReasonImageAccessDenied, fmt.Sprintf("Lambda does not have permission to access the image %s: %v", uri, err)
	case errors.Is(err, image.ErrInvalid):
		return ReasonInvalidImage, fmt.Sprintf("The image %s is not valid: %v", uri, err)
	default:
		return ReasonInternalError, fmt.Sprintf("Kappa could not pull %s: %v", uri, err)
	}
}

// checkPlatform turns an image that cannot run on the function's
// architecture, or that its registry does not have, into an
// InvalidParameterValueException, as CreateFunction and UpdateFunctionCode
// answer in Lambda.
func (s *Service) checkPlatform(ctx context.Context, uri string, archs []string) error {
	arch := "x86_64"
	if len(archs) == 1 {
		arch = archs[0]
	}
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	switch err := s.opts.Images.CheckPlatform(ctx, uri, Arch(arch)); {
	case errors.Is(err, image.ErrInvalid):
		return apierr.New(apierr.InvalidParameter, "The image %s cannot run on architecture %s: %s", uri, arch, errorCause(err))
	case errors.Is(err, image.ErrNotFound):
		// As Lambda answers CreateFunction and UpdateFunctionCode; an image
		// that goes away later fails the deploy (ImageDeleted).
		return apierr.New(apierr.InvalidParameter, "Source image %s does not exist. Provide a valid source image.", uri)
	}
	return nil
}

// errorCause is an error's text without the "invalid image: " class prefix.
func errorCause(err error) string {
	msg := err.Error()
	if i := strings.Index(msg, image.ErrInvalid.Error()+": "); i >= 0 {
		return msg[i+len(image.ErrInvalid.Error())+2:]
	}
	return msg
}

func defaultLogGroup(group, name string) string {
	if group != "" {
		return group
	}
	return "/aws/lambda/" + name
}
