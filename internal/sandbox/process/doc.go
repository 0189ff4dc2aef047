// Package process owns execution environments that are plain child
// processes of Kappa, without any isolation: the runtime and the external
// extensions run in this process's namespaces, as its user, with its
// limits. It is what `kappa rie` uses, which itself usually runs inside a
// container that provides the isolation.
//
// Paths in a Spec are resolved under Spec.RootFS ("" or "/" means the host
// root): the runtime is RootFS+Args[0] (or looked up in the PATH of
// Spec.Env when Args[0] has no slash), started in RootFS+Cwd. Each
// environment's Runtime API listener is bound at Options.Addr (default
// 127.0.0.1:9001; port 0 picks a free one, so many environments can live
// side by side) and the processes get AWS_LAMBDA_RUNTIME_API set to it.
//
// External extensions are the executables in Options.ExtensionsDir
// (default RootFS/opt/extensions). Sandbox.Extensions lists them after
// Create; StartExtensions starts them, each as a process of its own, and
// must be called before Start so that, as in Lambda, they run before the
// runtime. Their output goes to Options.ExtensionOutput.
//
// Every process gets a process group of its own; Shutdown sends SIGTERM to
// the runtime's group, waits for all processes up to the grace period, then
// sends SIGKILL to every group; Destroy kills at once. Stats sums the peak
// resident set size (VmHWM) of every process of the environment's process
// trees, read from /proc, and keeps the highest sum seen. Freeze and Thaw
// do nothing.
package process
