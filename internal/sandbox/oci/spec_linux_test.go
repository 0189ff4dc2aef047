package oci

import (
	"encoding/json"
	"slices"
	"strings"
	"testing"

	"github.com/kappa-run/kappa/internal/sandbox"
	specs "github.com/opencontainers/runtime-spec/specs-go"
)

func TestCPUQuota(t *testing.T) {
	tests := []struct {
		name     string
		memoryMB int
		want     int64
	}{
		{"floor", 128, 10_000},
		{"just above the floor", 177, 10_005},
		{"one vCPU", 1769, 100_000},
		{"two vCPUs", 3538, 200_000},
		{"maximum", 10240, 578_858},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := cpuQuota(tt.memoryMB); got != tt.want {
				t.Errorf("cpuQuota(%d) = %d, want %d", tt.memoryMB, got, tt.want)
			}
		})
	}
}

func TestNewSpec(t *testing.T) {
	b := bundleSpec{
		spec: sandbox.Spec{
			ID: "env1", RootFS: "/images/x", Args: []string{"/var/runtime/bootstrap", "a"},
			Env: []string{"A=1"}, Cwd: "/var/task", MemoryMB: 512, TmpMB: 64, Hostname: "h1",
		},
		netnsPath: "/run/kappa/netns/env1",
		hostsPath: "/state/env1/hosts",
		cgroup:    "/kappa/env1",
		cgroupNS:  true,
		seccomp:   &specs.LinuxSeccomp{DefaultAction: specs.ActErrno},
	}
	s := newSpec(b)
	if !s.Root.Readonly || s.Root.Path != "/images/x" {
		t.Errorf("root = %+v", s.Root)
	}
	p := s.Process
	if p.User.UID != 993 || p.User.GID != 990 || !p.NoNewPrivileges || p.Terminal {
		t.Errorf("process = %+v", p)
	}
	if want := []string{"A=1", "AWS_LAMBDA_RUNTIME_API=127.0.0.1:9001"}; !slices.Equal(p.Env, want) {
		t.Errorf("env = %v, want %v", p.Env, want)
	}
	if want := []specs.POSIXRlimit{{Type: "RLIMIT_NOFILE", Hard: 1024, Soft: 1024}, {Type: "RLIMIT_CORE"}}; !slices.Equal(p.Rlimits, want) {
		t.Errorf("rlimits = %v", p.Rlimits)
	}
	// A present, empty capabilities object drops every capability; a
	// missing one would leave runc's bounding set alone.
	data, err := json.Marshal(s)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(data), `"capabilities":{}`) {
		t.Errorf("config.json lacks an empty capabilities object")
	}
	r := s.Linux.Resources
	if *r.Memory.Limit != 512<<20 || *r.Memory.Swap != 512<<20 {
		t.Errorf("memory = %d swap %d", *r.Memory.Limit, *r.Memory.Swap)
	}
	if *r.CPU.Quota != 28_942 || *r.CPU.Period != 100_000 || *r.Pids.Limit != 1024 {
		t.Errorf("cpu %d/%d pids %d", *r.CPU.Quota, *r.CPU.Period, *r.Pids.Limit)
	}
	var nsTypes []specs.LinuxNamespaceType
	for _, ns := range s.Linux.Namespaces {
		nsTypes = append(nsTypes, ns.Type)
		if ns.Type == specs.NetworkNamespace && ns.Path != b.netnsPath {
			t.Errorf("network namespace path = %q", ns.Path)
		}
	}
	for _, want := range []specs.LinuxNamespaceType{specs.MountNamespace, specs.PIDNamespace, specs.IPCNamespace, specs.UTSNamespace, specs.NetworkNamespace, specs.CgroupNamespace} {
		if !slices.Contains(nsTypes, want) {
			t.Errorf("namespaces %v lack %s", nsTypes, want)
		}
	}
	mounts := map[string]specs.Mount{}
	for _, m := range s.Mounts {
		mounts[m.Destination] = m
	}
	for _, want := range []string{"/proc", "/dev", "/dev/pts", "/dev/shm", "/dev/mqueue", "/sys", "/tmp", "/etc/hosts"} {
		if _, ok := mounts[want]; !ok {
			t.Errorf("no %s mount", want)
		}
	}
	if tmp := mounts["/tmp"].Options; !slices.Contains(tmp, "size=64m") || !slices.Contains(tmp, "mode=1777") || !slices.Contains(tmp, "nosuid") || !slices.Contains(tmp, "nodev") {
		t.Errorf("/tmp options %v", tmp)
	}
	if hosts := mounts["/etc/hosts"]; hosts.Source != b.hostsPath || !slices.Contains(hosts.Options, "ro") {
		t.Errorf("/etc/hosts mount %+v", hosts)
	}
	if !slices.Contains(mounts["/sys"].Options, "ro") {
		t.Error("/sys is not read-only")
	}
	if !slices.Contains(s.Linux.MaskedPaths, "/proc/kcore") || !slices.Contains(s.Linux.ReadonlyPaths, "/proc/sys") {
		t.Error("masked or read-only paths missing")
	}
	if s.Linux.Seccomp != b.seccomp || s.Annotations != nil || s.Hostname != "h1" || s.Linux.CgroupsPath != "/kappa/env1" {
		t.Errorf("seccomp %p annotations %v hostname %q cgroupsPath %q", s.Linux.Seccomp, s.Annotations, s.Hostname, s.Linux.CgroupsPath)
	}

	b.hostsPath, b.seccompBPF = "", "AAAA"
	s = newSpec(b)
	for _, m := range s.Mounts {
		if m.Destination == "/etc/hosts" {
			t.Error("/etc/hosts mounted without a hosts file")
		}
	}
	if s.Annotations[crunSeccompBPF] != "AAAA" {
		t.Errorf("annotations = %v", s.Annotations)
	}
}
