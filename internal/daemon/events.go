package daemon

import (
	"context"
	"errors"
	"fmt"
	"net/http"

	"github.com/kappa-run/kappa/internal/apierr"
	"github.com/kappa-run/kappa/internal/async"
	"github.com/kappa-run/kappa/internal/eventsource"
	"github.com/kappa-run/kappa/internal/function"
	"github.com/kappa-run/kappa/internal/funcurl"
	"github.com/kappa-run/kappa/internal/schedule"
)

// events are the event sources of the server: asynchronous invocations
// (with Kappa's queues for their destinations), function URLs, schedules
// and event source mappings over the queues. Their state lives in the
// store: the KAPPA_ASYNC stream and KQ_* queue streams (with the mappings'
// consumers), and the "async", "funcurl", "schedules" and "esm" buckets.
type events struct {
	async     *async.Service
	urls      *funcurl.Configs
	urlServer *funcurl.Handler
	scheduler *schedule.Scheduler
	esm       *eventsource.Service
}

// startEvents opens the event sources and resumes their work: events left
// queued by the previous run are delivered, missed schedule ticks fired.
// inv is the invoker they run invocations with.
func (d *Daemon) startEvents(ctx context.Context, port int, inv async.Invoker) error {
	cfg := d.cfg
	ev := &events{}
	d.events = ev
	asyncBucket, err := d.store.Bucket(ctx, "async")
	if err != nil {
		return err
	}
	ev.async = async.New(async.Options{
		JetStream:           d.store.JetStream(),
		Bucket:              asyncBucket,
		Functions:           d.functions,
		Invoker:             inv,
		Region:              cfg.Region,
		Account:             cfg.Account,
		RetryDelay:          cfg.AsyncRetryDelay,
		BackoffMin:          cfg.AsyncBackoffMin,
		BackoffMax:          cfg.AsyncBackoffMax,
		AckWait:             cfg.AsyncAckWait,
		Concurrency:         cfg.AsyncConcurrency,
		FunctionConcurrency: cfg.AsyncFunctionConcurrency,
		Metrics:             d.asyncMetrics(),
		DeadLetter: func(ctx context.Context, fn, version string) string {
			// The DeadLetterConfig of the version that ran the event: a
			// published version keeps the one it was published with.
			c, err := d.functions.Config(ctx, function.Ref{Name: fn, Qualifier: version})
			if err != nil {
				return ""
			}
			return c.DeadLetterTarget
		},
		Logger: d.log.With("svc", "async"),
	})
	if err := ev.async.Start(ctx); err != nil {
		return err
	}
	urlBucket, err := d.store.Bucket(ctx, "funcurl")
	if err != nil {
		return err
	}
	ev.urls = funcurl.NewConfigs(urlBucket, d.functions, func(id string) string {
		return fmt.Sprintf("http://%s.lambda-url.%s.localhost:%d/", id, cfg.Region, port)
	}, nil)
	creds := map[string]string{}
	if cfg.IAMAccessKeyID != "" {
		creds[cfg.IAMAccessKeyID] = cfg.IAMSecretAccessKey
	}
	ev.urlServer = funcurl.NewHandler(funcurl.HandlerOptions{
		Configs: ev.urls, Functions: d.functions, Invoker: inv,
		Region: cfg.Region, Account: cfg.Account, Credentials: creds,
		Logger: d.log.With("svc", "funcurl"),
	})
	schedBucket, err := d.store.Bucket(ctx, "schedules")
	if err != nil {
		return err
	}
	ev.scheduler = schedule.New(schedule.Options{
		Bucket:     schedBucket,
		Invoker:    scheduleTarget{async: ev.async, region: cfg.Region, account: cfg.Account},
		Region:     cfg.Region,
		Account:    cfg.Account,
		MaxCatchUp: cfg.ScheduleCatchUp,
		Logger:     d.log.With("svc", "schedule"),
	})
	if err := ev.scheduler.Start(ctx); err != nil {
		return err
	}
	esmBucket, err := d.store.Bucket(ctx, "esm")
	if err != nil {
		return err
	}
	ev.esm = eventsource.New(eventsource.Options{
		Bucket:     esmBucket,
		JetStream:  d.store.JetStream(),
		Functions:  d.functions,
		Queues:     ev.async.Queues(),
		Invoker:    inv,
		Region:     cfg.Region,
		Account:    cfg.Account,
		RetryDelay: cfg.ESMRetryDelay,
		Metrics:    d.esmMetrics(),
		Logger:     d.log.With("svc", "esm"),
	})
	return ev.esm.Start(ctx)
}

// isFunctionURL reports whether r is addressed to a function URL.
func (ev *events) isFunctionURL(r *http.Request) bool {
	if ev == nil || ev.urlServer == nil {
		return false
	}
	_, _, ok := funcurl.Match(r)
	return ok
}

// stopEvents stops firing schedules and fetching events, and waits for the
// asynchronous invocations already running (up to ctx's end).
func (d *Daemon) stopEvents(ctx context.Context) {
	ev := d.events
	if ev == nil {
		return
	}
	if ev.scheduler != nil {
		ev.scheduler.Close()
	}
	if ev.esm != nil {
		ev.esm.Close(ctx)
	}
	if ev.async != nil {
		ev.async.Close(ctx)
	}
}

// eventsChanged forgets the event configuration of a deleted function:
// its event-invoke configurations, queued events and URLs.
func (d *Daemon) eventsChanged(name string) {
	ev := d.events
	if ev == nil || ev.async == nil || ev.urls == nil {
		return
	}
	ctx := context.Background()
	if _, err := d.functions.Get(ctx, name); !errors.Is(err, apierr.NotFound) {
		return
	}
	ev.async.FunctionDeleted(ctx, name)
	ev.urls.FunctionDeleted(ctx, name)
	if ev.esm != nil {
		ev.esm.FunctionDeleted(ctx, name)
	}
}

// scheduleTarget queues a schedule's invocations as Event invocations.
type scheduleTarget struct {
	async           *async.Service
	region, account string
}

func (t scheduleTarget) InvokeAsync(ctx context.Context, arn, requestID string, payload []byte) error {
	ref, err := function.ParseRef(arn, t.region, t.account)
	if err != nil {
		return err
	}
	return t.async.Enqueue(ctx, &async.Event{RequestID: requestID, Function: ref.Name, Qualifier: ref.Qualifier, Payload: payload})
}

// esmMetrics is where event source mappings report to; nil without
// metrics.
func (d *Daemon) esmMetrics() eventsource.Metrics {
	if d.obs == nil || d.obs.metrics == nil {
		return nil
	}
	return d.obs.metrics
}

// asyncMetrics is where the async queue reports to; nil without metrics.
func (d *Daemon) asyncMetrics() async.Metrics {
	if d.obs == nil || d.obs.metrics == nil {
		return nil
	}
	return d.obs.metrics
}
