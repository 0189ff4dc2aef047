// Package oci owns execution environments run by an OCI runtime, crun or
// runc, from a generated runtime-spec bundle.
//
// Each environment gets:
//
//   - a network namespace that Kappa creates itself, holding only a loopback
//     interface and the environment's Runtime API listener (127.0.0.1:9001),
//     pinned by a bind mount at <RunDir>/netns/<id> that the runtime joins;
//   - new mount, PID, IPC, UTS and (where the kernel has it) cgroup
//     namespaces, the image's root filesystem read-only, a sized tmpfs at
//     /tmp and a generated /etc/hosts;
//   - uid 993 / gid 990, no capabilities, no_new_privs, the moby default
//     seccomp profile, masked and read-only /proc paths;
//   - a cgroup <CgroupParent>/<id> limiting memory (no swap), CPU (in
//     proportion to memory) and pids.
//
// # Process model
//
// Create runs `<runtime> create`, which leaves the container's init process
// set up but blocked before exec; Start runs `<runtime> start`. The runtime
// process exits after create, so the init process would be orphaned: New
// makes the Kappa process a child subreaper (PR_SET_CHILD_SUBREAPER) so that
// init is re-parented to Kappa, which then reaps it and learns its exit
// status without a resident runtime process per environment. Exit is
// noticed through a pidfd polled by the Go runtime's network poller, so a
// waiting environment holds no OS thread. The container's stdout and stderr
// are pipes handed to `<runtime> create`, which the init process inherits;
// the runtime's own diagnostics go to a per-environment log file
// (--log, JSON) and, on failure, to the same stderr pipe, whose contents are
// then only used to classify the error, never forwarded as function output.
//
// Freeze and Thaw write the freezer cgroup directly (v1 freezer.state or v2
// cgroup.freeze), which costs microseconds where `<runtime> pause` costs a
// process start.
//
// # Host requirements
//
// Root (CAP_SYS_ADMIN, CAP_NET_ADMIN), crun or runc in PATH, and a cgroup v1,
// v2 or hybrid hierarchy. crun 1.8 refuses hybrid hosts whose hugetlb
// controller sits on the v2 hierarchy; mounting a v1 hugetlb hierarchy at
// /sys/fs/cgroup/hugetlb fixes that, and New otherwise falls back to runc.
//
// Cgroups are managed by the runtime's cgroupfs driver at
// /<CgroupParent>/<id> in every hierarchy. On systemd hosts that is outside
// systemd's tree: run Kappa in a unit with Delegate=yes, or accept that
// systemd does not account for the sandboxes. On a pure cgroup v2 host the
// runtime enables the controllers it needs in the parents' subtree_control.
//
// Setting the subreaper flag is process-wide: orphaned grandchildren of
// other packages' subprocesses are re-parented to Kappa as well and stay
// zombies until their parent package waits for them (none does today).
package oci
