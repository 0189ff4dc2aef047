// Package apierr is Kappa's error taxonomy: every error a client may see is
// an *Error carrying a Kind, and only package lambdaapi turns a Kind into an
// AWS wire error (status, X-Amzn-ErrorType, JSON body).
//
// Lower layers wrap causes with %w and test classes with errors.Is against
// the Kind sentinels (errors.Is(err, apierr.NotFound)).
package apierr
