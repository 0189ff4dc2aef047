package oci

import (
	"fmt"
	"slices"
	"strconv"

	"github.com/kappa-run/kappa/internal/sandbox"
	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// The identity the runtime process runs as: Lambda's sbx_user.
const (
	sandboxUID = 993
	sandboxGID = 990
)

// Resource limits of every environment.
const (
	// cpuPeriod is the CFS period in microseconds.
	cpuPeriod = 100_000
	// mbPerCPU is the memory size that buys one full CPU.
	mbPerCPU = 1769
	// minCPUQuota is the floor of the CFS quota in microseconds: a tenth
	// of a CPU. Strictly proportional quotas would give a 128 MB function
	// 0.07 CPU, which stretches a cold start of a few tens of
	// milliseconds of CPU to half a second; the floor applies below
	// 177 MB only.
	minCPUQuota = cpuPeriod / 10
	pidsLimit   = 1024
	nofileLimit = 1024
	// shmSizeKB is the size of /dev/shm.
	shmSizeKB = 65536
)

// cpuQuota returns the CFS quota in microseconds per cpuPeriod for an
// environment of memoryMB.
func cpuQuota(memoryMB int) int64 {
	q := int64(cpuPeriod) * int64(memoryMB) / mbPerCPU
	return max(q, minCPUQuota)
}

// bundleSpec describes the host side of one environment's bundle.
type bundleSpec struct {
	spec      sandbox.Spec
	netnsPath string
	hostsPath string // "" skips the /etc/hosts bind mount
	cgroup    string // cgroupsPath
	cgroupNS  bool
	seccomp   *specs.LinuxSeccomp
	// seccompBPF, for crun, is the filter crun compiled from seccomp
	// for an earlier container, base64-encoded (see Runtime.seccompBPF).
	seccompBPF string
	// criuConfig, for a checkpointable environment, is the CRIU
	// configuration file runc gives CRIU.
	criuConfig string
}

// crunSeccompBPF is crun's annotation carrying a precompiled seccomp
// filter, which it then loads instead of compiling the seccomp section.
const crunSeccompBPF = "run.oci.seccomp_bpf_data"

// runtimeAPIAddr is where every environment reaches its Runtime API.
const runtimeAPIAddr = "127.0.0.1:9001"

// maskedPaths are hidden from the environment (bind-mounted over with
// /dev/null or an empty read-only tmpfs), as the runtime-spec and moby do.
var maskedPaths = []string{
	"/proc/acpi",
	"/proc/asound",
	"/proc/interrupts",
	"/proc/kcore",
	"/proc/keys",
	"/proc/latency_stats",
	"/proc/sched_debug",
	"/proc/scsi",
	"/proc/timer_list",
	"/proc/timer_stats",
	"/sys/devices/virtual/powercap",
	"/sys/firmware",
}

// readonlyPaths are remounted read-only inside the environment.
var readonlyPaths = []string{
	"/proc/bus",
	"/proc/fs",
	"/proc/irq",
	"/proc/sys",
	"/proc/sysrq-trigger",
}

// newSpec renders the runtime-spec configuration of one environment.
func newSpec(b bundleSpec) *specs.Spec {
	s := b.spec
	env := make([]string, 0, len(s.Env)+1)
	env = append(env, s.Env...)
	env = append(env, "AWS_LAMBDA_RUNTIME_API="+runtimeAPIAddr)
	if s.Checkpointable {
		env = append(env, sandbox.RelayEnv+"="+sandbox.RelayAddr)
	}

	memory := int64(s.MemoryMB) << 20
	quota := cpuQuota(s.MemoryMB)
	period := uint64(cpuPeriod)
	pids := int64(pidsLimit)

	nsTypes := []specs.LinuxNamespace{
		{Type: specs.MountNamespace},
		{Type: specs.PIDNamespace},
		{Type: specs.IPCNamespace},
		{Type: specs.UTSNamespace},
		{Type: specs.NetworkNamespace, Path: b.netnsPath},
	}
	if b.cgroupNS {
		nsTypes = append(nsTypes, specs.LinuxNamespace{Type: specs.CgroupNamespace})
	}

	mounts := []specs.Mount{
		{Destination: "/proc", Type: "proc", Source: "proc", Options: []string{"nosuid", "noexec", "nodev"}},
		{Destination: "/dev", Type: "tmpfs", Source: "tmpfs", Options: []string{"nosuid", "strictatime", "mode=755", "size=65536k"}},
		{Destination: "/dev/pts", Type: "devpts", Source: "devpts", Options: []string{"nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620"}},
		{Destination: "/dev/mqueue", Type: "mqueue", Source: "mqueue", Options: []string{"nosuid", "noexec", "nodev"}},
		{Destination: "/sys", Type: "sysfs", Source: "sysfs", Options: []string{"nosuid", "noexec", "nodev", "ro"}},
		{Destination: "/tmp", Type: "tmpfs", Source: "tmpfs", Options: []string{"nosuid", "nodev", "mode=1777", fmt.Sprintf("size=%dm", s.TmpMB)}},
	}
	if !s.Checkpointable {
		// Lambda has no /dev/shm. Kappa's environments have one, except
		// checkpointable ones: CRIU archives and unpacks every tmpfs
		// with tar on each restore (~5 ms apiece here).
		mounts = slices.Insert(mounts, 3, specs.Mount{Destination: "/dev/shm", Type: "tmpfs", Source: "shm",
			Options: []string{"nosuid", "noexec", "nodev", "mode=1777", "size=" + strconv.Itoa(shmSizeKB) + "k"}})
	}
	if b.hostsPath != "" {
		mounts = append(mounts, specs.Mount{
			Destination: "/etc/hosts", Type: "bind", Source: b.hostsPath,
			Options: []string{"bind", "ro", "nosuid", "nodev", "noexec"},
		})
	}
	for _, m := range s.Mounts {
		// Read-only, and nosuid: an executable may be mounted (Kappa's init),
		// never with privileges.
		mounts = append(mounts, specs.Mount{
			Destination: m.Destination, Type: "bind", Source: m.Source,
			Options: []string{"bind", "ro", "nosuid", "nodev"},
		})
	}

	var annotations map[string]string
	if b.seccompBPF != "" {
		annotations = map[string]string{crunSeccompBPF: b.seccompBPF}
	}
	if b.criuConfig != "" {
		annotations = map[string]string{criuConfigAnnotation: b.criuConfig}
	}
	return &specs.Spec{
		Version:     "1.0.2",
		Annotations: annotations,
		Process: &specs.Process{
			Args: s.Args,
			Env:  env,
			Cwd:  s.Cwd,
			User: specs.User{UID: sandboxUID, GID: sandboxGID},
			// Present and empty: every set is cleared. (Empty sets are
			// omitted from the JSON; a missing capabilities object would
			// leave the bounding set untouched.)
			Capabilities: &specs.LinuxCapabilities{
				Bounding:    []string{},
				Effective:   []string{},
				Inheritable: []string{},
				Permitted:   []string{},
				Ambient:     []string{},
			},
			Rlimits: []specs.POSIXRlimit{
				// No RLIMIT_NPROC: it counts every process of the uid on the
				// whole host, and all environments share uid 993, so it would
				// let one environment starve the others. Lambda's limit of
				// 1,024 processes and threads per environment is pids.max.
				{Type: "RLIMIT_NOFILE", Hard: nofileLimit, Soft: nofileLimit},
				// No core dumps, hard limit included: a host whose
				// core_pattern pipes dumps to a helper (systemd-coredump,
				// apport) runs it as root in the host's namespaces, and a
				// function could crash on purpose to feed it. Lambda keeps
				// no core files either.
				{Type: "RLIMIT_CORE", Hard: 0, Soft: 0},
			},
			NoNewPrivileges: true,
		},
		Root:     &specs.Root{Path: s.RootFS, Readonly: true},
		Hostname: s.Hostname,
		Mounts:   mounts,
		Linux: &specs.Linux{
			CgroupsPath: b.cgroup,
			Namespaces:  nsTypes,
			Resources: &specs.LinuxResources{
				Devices: []specs.LinuxDeviceCgroup{{Allow: false, Access: "rwm"}},
				Memory:  &specs.LinuxMemory{Limit: &memory, Swap: &memory},
				CPU:     &specs.LinuxCPU{Quota: &quota, Period: &period},
				Pids:    &specs.LinuxPids{Limit: &pids},
			},
			Seccomp:       b.seccomp,
			MaskedPaths:   maskedPaths,
			ReadonlyPaths: readonlyPaths,
		},
	}
}
