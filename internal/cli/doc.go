// Package cli holds the cobra commands of the kappa binary. It is the only
// place that reads flags and the environment; everything below receives
// values.
package cli
