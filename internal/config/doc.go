// Package config holds the configuration of `kappa server`, read once from
// flags and environment in package cli, validated here, and passed down as
// values. Nothing below cli reads the environment.
package config
