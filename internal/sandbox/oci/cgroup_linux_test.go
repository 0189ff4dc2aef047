package oci

import (
	"strings"
	"testing"
)

func TestParseCgroupMounts(t *testing.T) {
	tests := []struct {
		name                    string
		mountinfo               string
		memoryV1, freezerV1, v2 string
		hierarchies             int
	}{
		{
			name: "hybrid",
			mountinfo: `31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755
32 31 0:29 / /sys/fs/cgroup/cpu rw,relatime - cgroup cgroup rw,cpu
35 31 0:32 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory
37 31 0:34 / /sys/fs/cgroup/freezer rw,relatime - cgroup cgroup rw,freezer
40 31 0:37 / /sys/fs/cgroup/systemd rw,relatime shared:9 - cgroup cgroup rw,xattr,name=systemd
41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw
99 98 0:32 / /mnt/memory\040copy rw,relatime - cgroup cgroup rw,memory`,
			memoryV1: "/sys/fs/cgroup/memory", freezerV1: "/sys/fs/cgroup/freezer", v2: "/sys/fs/cgroup/unified",
			hierarchies: 5,
		},
		{
			name:      "unified",
			mountinfo: `28 22 0:25 / /sys/fs/cgroup rw,nosuid,nodev,noexec,relatime shared:4 - cgroup2 cgroup2 rw,nsdelegate,memory_recursiveprot`,
			v2:        "/sys/fs/cgroup", hierarchies: 1,
		},
		{name: "none", mountinfo: "22 1 0:21 / /proc rw - proc proc rw\ngarbage\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h, err := parseCgroupMounts(strings.NewReader(tt.mountinfo))
			if err != nil {
				t.Fatal(err)
			}
			mp := func(hr *hierarchy) string {
				if hr == nil {
					return ""
				}
				return hr.mountpoint
			}
			if mp(h.memoryV1) != tt.memoryV1 || mp(h.freezerV1) != tt.freezerV1 || mp(h.v2) != tt.v2 || len(h.hierarchies) != tt.hierarchies {
				t.Errorf("memory %q freezer %q v2 %q, %d hierarchies", mp(h.memoryV1), mp(h.freezerV1), mp(h.v2), len(h.hierarchies))
			}
			if tt.memoryV1 == "" && tt.v2 == "" {
				return // detectCgroups refuses such a host
			}
			env := h.env("/kappa/x")
			switch {
			case tt.memoryV1 != "" && (env.memory != tt.memoryV1+"/kappa/x" || env.memoryV2 || env.freezerV2):
				t.Errorf("env cgroup %+v", env)
			case tt.memoryV1 == "" && tt.v2 != "" && (env.memory != tt.v2+"/kappa/x" || !env.memoryV2 || !env.freezerV2):
				t.Errorf("env cgroup %+v", env)
			}
		})
	}
}

func TestFlatKey(t *testing.T) {
	data := []byte("low 0\nhigh 0\nmax 3\noom 2\noom_kill 1\n")
	if n, err := flatKey(data, "oom_kill"); err != nil || n != 1 {
		t.Errorf("oom_kill = %d, %v", n, err)
	}
	if _, err := flatKey(data, "missing"); err == nil {
		t.Error("missing key found")
	}
}

func TestUnescapeMountinfo(t *testing.T) {
	if got := unescapeMountinfo(`/a\040b\134c`); got != `/a b\c` {
		t.Errorf("got %q", got)
	}
}
