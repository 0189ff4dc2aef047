// Package daemon wires every service of `kappa server` into one typed struct
// and owns their start and stop order.
package daemon
