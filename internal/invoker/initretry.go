package invoker

import (
	"context"
	"errors"
	"time"
)

// initFailure records consecutive init failures of one configuration.
type initFailure struct {
	count int
	until time.Time
	last  *functionError
}

// Init back-off bounds: after the second consecutive failure, cold starts
// of the configuration wait 250 ms, doubling up to 30 s; invocations that
// arrive meanwhile get the last init error at once, without a container.
const (
	backoffBase = 250 * time.Millisecond
	backoffMax  = 30 * time.Second
)

// isInitFailure reports whether fe is a failure of the init phase (as
// opposed to a platform error such as an invalid entrypoint).
func isInitFailure(fe *functionError) bool { return fe.initPhase }

// coldStartWithRetry starts a new environment. When its init phase fails or
// exceeds the init timeout, init is retried once in a fresh environment
// under the function's timeout, as Lambda's suppressed init does.
// Configurations that keep failing are backed off.
func (inv *Invoker) coldStartWithRetry(ctx context.Context, req Request) (*env, error) {
	key := configKey(req.Config)
	inv.mu.Lock()
	if f := inv.initFailures[key]; f != nil && inv.opts.Now().Before(f.until) {
		last := *f.last
		inv.mu.Unlock()
		return nil, &last
	}
	inv.mu.Unlock()

	e, err := inv.coldStart(ctx, req.Config, initOnDemand, inv.opts.InitTimeout)
	var fe *functionError
	if err != nil && errors.As(err, &fe) && isInitFailure(fe) {
		inv.log.Info("init failed; retrying init under the function timeout",
			"function", req.Config.Name, "type", fe.Type)
		// The retried init is part of the invocation: one function
		// timeout covers both (see env.timeoutFrom).
		retryStart := time.Now()
		e, err = inv.coldStart(ctx, req.Config, initOnDemand, time.Duration(req.Config.Timeout)*time.Second)
		if err == nil {
			e.timeoutFrom = retryStart
		}
	}
	inv.mu.Lock()
	defer inv.mu.Unlock()
	if err == nil {
		delete(inv.initFailures, key)
		return e, nil
	}
	if errors.As(err, &fe) && isInitFailure(fe) {
		f := inv.initFailures[key]
		if f == nil {
			f = &initFailure{}
			inv.initFailures[key] = f
		}
		f.count++
		f.last = fe
		if f.count >= 2 {
			f.until = inv.opts.Now().Add(min(backoffBase<<(f.count-2), backoffMax))
		}
	}
	return nil, err
}
