// Package sandbox defines one execution environment: an isolated process
// tree running a function's image, with its own Runtime API listener. The
// interfaces live here; implementations live in subpackages: sandbox/oci
// (crun or runc, full isolation) and sandbox/process (a plain child process,
// for `kappa rie`).
package sandbox
