package bench

import (
	"context"
	"fmt"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/lambda"
	"github.com/aws/aws-sdk-go-v2/service/lambda/types"
)

// snapInit is how long the snapshot scenario's function sleeps in init.
const snapInit = time.Second

// snapshot measures the cold start of a published SnapStart version whose
// init sleeps snapInit, restored from its snapshot, next to the ordinary
// cold start of the same function ($LATEST, which runs init). Each sample
// follows an invocation that made the runtime exit, as in the cold
// scenario's "recent version".
func (r *run) snapshot(ctx context.Context) error {
	const fn = "bench-snap"
	n := min(r.opts.ColdSamples, 30)
	r.progress("snapshot: publishing a SnapStart version (init sleeps %s)", snapInit)
	ref, err := r.srv.push(r.rootfs, "bench/snap:v1")
	if err != nil {
		return err
	}
	err = r.srv.createFunction(ctx, fn, ref, 1769, func(in *lambda.CreateFunctionInput) {
		in.Environment = &types.Environment{Variables: map[string]string{"PROBE_INIT_SLEEP": snapInit.String()}}
		in.SnapStart = &types.SnapStart{ApplyOn: types.SnapStartApplyOnPublishedVersions}
	})
	if err != nil {
		return err
	}
	taken := time.Now()
	pub, err := r.srv.lambda.PublishVersion(ctx, &lambda.PublishVersionInput{FunctionName: aws.String(fn)})
	if err != nil {
		return err
	}
	w := lambda.NewPublishedVersionActiveWaiter(r.srv.lambda, func(o *lambda.PublishedVersionActiveWaiterOptions) {
		o.MinDelay, o.MaxDelay = 50*time.Millisecond, 200*time.Millisecond
	})
	if err := w.Wait(ctx, &lambda.GetFunctionConfigurationInput{FunctionName: aws.String(fn), Qualifier: pub.Version}, 3*time.Minute); err != nil {
		return fmt.Errorf("snapshot of %s:%s: %w", fn, aws.ToString(pub.Version), err)
	}
	r.progress("snapshot: taken in %s (publish to Active)", time.Since(taken).Round(time.Millisecond))

	r.progress("snapshot: %d cold starts from the snapshot", n)
	stopProfile := r.startProfile(ctx, "snapshot.pprof", time.Duration(n)*500*time.Millisecond)
	restored, err := r.afterExit(ctx, fn+":"+aws.ToString(pub.Version), n, true)
	stopProfile()
	if err != nil {
		return err
	}
	r.progress("snapshot: baseline, 5 ordinary cold starts of the same function")
	ordinary, err := r.afterExit(ctx, fn, 5, false)
	if err != nil {
		return err
	}
	r.report.Rows = append(r.report.Rows, Row{Scenario: "cold start from a snapshot (init sleeps 1 s)", Unit: Duration,
		Kappa: durations(restored), Baseline: "the same function's cold start (runs init)", Base: durations(ordinary),
		Target: "≤50ms p50"})
	return nil
}
