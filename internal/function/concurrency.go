package function

import (
	"context"

	"github.com/kappa-run/kappa/internal/apierr"
)

// MinUnreserved is how much of the account's concurrency must stay
// unreserved, as in Lambda.
const MinUnreserved = 100

// PutReservedConcurrency sets a function's reserved concurrency. 0
// throttles every invocation; the account must keep MinUnreserved
// unreserved.
func (s *Service) PutReservedConcurrency(ctx context.Context, name string, n int) (int, error) {
	if n < 0 {
		return 0, apierr.New(apierr.Validation,
			"1 validation error detected: Value '%d' at 'reservedConcurrentExecutions' failed to satisfy constraint: Member must have value greater than or equal to 0", n)
	}
	others, err := s.reservedExcept(ctx, name)
	if err != nil {
		return 0, err
	}
	if limit := s.opts.AccountConcurrency; limit-others-n < MinUnreserved {
		return 0, apierr.New(apierr.InvalidParameter,
			"Specified ReservedConcurrentExecutions for function decreases account's UnreservedConcurrentExecution below its minimum value of [%d].", MinUnreserved)
	}
	_, err = s.mutate(ctx, name, func(fn *Function) error {
		fn.ReservedConcurrency = &n
		return nil
	})
	if err != nil {
		return 0, err
	}
	s.refreshReserved(ctx)
	s.changed(name)
	return n, nil
}

// DeleteReservedConcurrency removes a function's reservation.
func (s *Service) DeleteReservedConcurrency(ctx context.Context, name string) error {
	_, err := s.mutate(ctx, name, func(fn *Function) error {
		fn.ReservedConcurrency = nil
		return nil
	})
	s.refreshReserved(ctx)
	return err
}

// refreshReserved recomputes the cached unreserved concurrency.
func (s *Service) refreshReserved(ctx context.Context) {
	if u, err := s.Unreserved(ctx); err == nil {
		s.unreserved.Store(int64(u))
	}
}

// UnreservedCached returns the account concurrency not reserved by any
// function, as of the last change; cheap enough for every invocation.
func (s *Service) UnreservedCached() int { return int(s.unreserved.Load()) }

// reservedExcept sums the reservations of every function but name.
func (s *Service) reservedExcept(ctx context.Context, name string) (int, error) {
	fns, err := s.List(ctx)
	if err != nil {
		return 0, err
	}
	sum := 0
	for _, fn := range fns {
		if fn.Latest.Name != name && fn.ReservedConcurrency != nil {
			sum += *fn.ReservedConcurrency
		}
	}
	return sum, nil
}

// Unreserved returns the account concurrency not reserved by any function.
func (s *Service) Unreserved(ctx context.Context) (int, error) {
	r, err := s.reservedExcept(ctx, "")
	if err != nil {
		return 0, err
	}
	return s.opts.AccountConcurrency - r, nil
}
