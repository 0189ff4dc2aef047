// Package e2e runs the real kappa binary on a loopback port with a temporary
// data directory, pushes images of the Go test functions under testdata/,
// and drives it with aws-sdk-go-v2 exactly as a user's code would. The tests
// need root, Go, and crun or runc; without them they skip and say so.
package e2e
