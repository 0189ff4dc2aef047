// Package oci owns execution environments run by an OCI runtime, crun or
// runc, from a generated runtime-spec bundle.
//
// Each environment gets:
//
//   - a network namespace that Kappa creates itself, holding only an up
//     loopback interface and the environment's Runtime API listener
//     (127.0.0.1:9001), held by an open descriptor that the runtime joins
//     through /proc/<kappa pid>/fd/<n> (no mount: the host's mount table,
//     which every new mount namespace copies, does not grow with the
//     environments);
//   - new mount, PID, IPC, UTS and (where the kernel has it) cgroup
//     namespaces; the image's root filesystem read-only; a sized tmpfs at
//     /tmp (mode 1777, nosuid, nodev); a generated, read-only /etc/hosts;
//   - uid 993 / gid 990, no capabilities, no_new_privs, the moby default
//     seccomp profile, masked and read-only /proc and /sys paths, a nofile
//     limit of 1024 (no RLIMIT_NPROC: it is per uid host-wide, and every
//     environment runs as uid 993; pids.max bounds processes instead);
//   - a cgroup <CgroupParent>/<id> limiting memory (no swap), CPU (in
//     proportion to memory, see cpuQuota) and pids.
//
// # Process model
//
// Create runs `<runtime> create`, which leaves the container's init process
// set up and blocked before exec; Start releases it and waits until the init
// process has executed the function's program (its comm changes) or died
// trying. With crun, Start does what `crun start` does without starting a
// crun process: it writes to the created container's exec fifo in crun's
// state directory (see releaseInit); New proves that this works with the
// installed crun and otherwise, and with runc or Options.ExecStart, Start
// runs `<runtime> start`. The runtime process exits after create, so New
// makes the Kappa process a child subreaper (PR_SET_CHILD_SUBREAPER): the
// orphaned init process is re-parented to Kappa, which reaps it and learns
// its exit status without a resident runtime process per environment. Exit
// is noticed through a pidfd parked in the Go runtime's poller, so a
// waiting environment costs a goroutine, not an OS thread. Per environment
// there are three goroutines: the waiter and one copier each for stdout and
// stderr.
//
// The container's stdout and stderr are pipes handed to `<runtime> create`,
// which the init process inherits. The runtime writes its own diagnostics
// to a per-environment JSON log (--log) and, when create fails, to the same
// stderr pipe; the copiers start only after a successful create, so that
// text is used to classify the failure and never reaches the function's
// output. A failed exec after start (missing interpreter or dynamic
// loader) is printed by the runtime on the function's stderr, as on
// Lambda.
//
// Problems of the image (missing or non-executable entrypoint, missing
// working directory) do not fail Create: Start reports them wrapped in
// sandbox.ErrInvalidEntrypoint or sandbox.ErrInvalidWorkingDir. The working
// directory is checked in the image before the runtime runs, because both
// runtimes would otherwise try to create it.
//
// Freeze and Thaw write the freezer cgroup directly (v1 freezer.state or v2
// cgroup.freeze) instead of running `<runtime> pause`, which costs a process
// start. The cgroup files used on every invocation (the freezer's, and peak
// memory for Stats) are held open for the environment's life and accessed
// with pread/pwrite.
//
// # Ahead of time
//
// With Options.NetNSPool, network namespaces are created ahead, each with
// its loopback up, its Runtime API listener bound and its pin mounted, and
// Create takes one instead of making its own. A pooled namespace is as new
// as one made by Create: it serves one environment and is destroyed with it. Shutdown and Destroy signal the init process through its pidfd;
// as PID 1 of the environment's PID namespace its death kills every other
// process of the environment.
//
// With crun, the seccomp filter crun compiled for the first container is
// passed to the later ones (crun's run.oci.seccomp_bpf_data annotation),
// which saves the ~25 ms libseccomp needs per create. New proves crun
// accepts it and does without otherwise.
//
// # Host requirements
//
// Root, Linux 5.6 or later (openat2; pidfds with PIDFD_NONBLOCK from 5.10,
// a blocked thread per waiting environment before), crun or runc in PATH,
// and a cgroup v1, v2 or hybrid hierarchy. crun 1.8 refuses hybrid hosts
// whose hugetlb controller sits on the v2 hierarchy; mounting a v1 hugetlb
// hierarchy at /sys/fs/cgroup/hugetlb fixes that, and New otherwise falls
// back to runc. Stats needs memory.peak (Linux 5.19) on cgroup v2.
//
// Cgroups are managed by the runtime's cgroupfs driver at
// /<CgroupParent>/<id> in every hierarchy. On systemd hosts that is outside
// the tree systemd manages: run Kappa in a unit with Delegate=yes, or accept
// that systemd does not account for the sandboxes. On cgroup v2 the runtime
// enables the controllers it needs in the parents' cgroup.subtree_control.
//
// The subreaper flag is process-wide: orphaned grandchildren of other
// packages' subprocesses are re-parented to Kappa as well and stay zombies
// unless someone waits for them.
package oci
