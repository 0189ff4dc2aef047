package function

import (
	"context"

	"github.com/kappa-run/kappa/internal/apierr"
)

// A function's recursive loop detection setting (Put/GetFunctionRecursionConfig).
// In Kappa an environment has no network, so the only chains of
// invocations one event can cause are asynchronous invocations whose
// destination is a function: package async counts them and, past
// MaxChain, stops a chain at a function set to Terminate, as Lambda does.
const (
	RecursiveLoopAllow     = "Allow"
	RecursiveLoopTerminate = "Terminate"
	// MaxChain is how many invocations one event may cause in a chain
	// before the next is stopped (Lambda: "after exceeding 16").
	MaxChain = 16
)

// Recursion returns fn's setting (GetFunctionRecursionConfig).
func (fn *Function) Recursion() string {
	if fn.RecursiveLoop == "" {
		return RecursiveLoopTerminate
	}
	return fn.RecursiveLoop
}

// PutRecursion sets function name's recursive loop detection.
func (s *Service) PutRecursion(ctx context.Context, name string, loop *string) (string, error) {
	if loop == nil {
		return "", apierr.New(apierr.Validation,
			"1 validation error detected: Value null at 'recursiveLoop' failed to satisfy constraint: Member must not be null")
	}
	if *loop != RecursiveLoopAllow && *loop != RecursiveLoopTerminate {
		return "", apierr.New(apierr.Validation,
			"1 validation error detected: Value '%s' at 'recursiveLoop' failed to satisfy constraint: Member must satisfy enum value set: [Allow, Terminate]", *loop)
	}
	fn, err := s.mutate(ctx, name, func(fn *Function) error {
		fn.RecursiveLoop = *loop
		return nil
	})
	if err != nil {
		return "", err
	}
	return fn.Recursion(), nil
}
