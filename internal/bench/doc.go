// Package bench owns Kappa's performance scenarios: it starts a `kappa
// server`, deploys the probe function and measures each scenario next to a
// baseline run on the same host in the same run — cold start against a raw
// `crun run` (and `podman run`) of the same root filesystem, warm invoke and
// throughput against a bare Go HTTP echo server, scale-out against as many
// concurrent `crun run`s, and density against a bare server holding idle
// long-poll requests — and prints one table.
//
// `kappa bench` and the end-to-end suite's BenchmarkScenarios both run it;
// the package holds no timing assertions, only measurements.
package bench
