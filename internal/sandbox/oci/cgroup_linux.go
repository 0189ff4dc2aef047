package oci

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// hierarchy is one mounted cgroup hierarchy.
type hierarchy struct {
	mountpoint string
	v2         bool
	// options are the v1 super options: controller names and name=...;
	// order has them in the kernel's order.
	options map[string]bool
	order   []string
}

// cgroupHost is the set of cgroup hierarchies mounted on the host, read
// once from /proc/self/mountinfo.
type cgroupHost struct {
	hierarchies []hierarchy
	memoryV1    *hierarchy // the v1 memory hierarchy, if any
	freezerV1   *hierarchy // the v1 freezer hierarchy, if any
	v2          *hierarchy // the unified hierarchy, if any
}

func detectCgroups() (*cgroupHost, error) {
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		return nil, err
	}
	defer f.Close()
	h, err := parseCgroupMounts(f)
	if err != nil {
		return nil, fmt.Errorf("read cgroup mounts: %w", err)
	}
	if h.memoryV1 == nil && h.v2 == nil {
		return nil, errors.New("no cgroup v1 memory or cgroup v2 hierarchy mounted")
	}
	return h, nil
}

// parseCgroupMounts reads mountinfo lines and keeps one mount per cgroup
// hierarchy (the first one seen).
func parseCgroupMounts(f io.Reader) (*cgroupHost, error) {
	h := &cgroupHost{}
	seen := map[string]bool{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		m, ok := parseMountinfoLine(sc.Text())
		if !ok || m.fstype != "cgroup" && m.fstype != "cgroup2" {
			continue
		}
		if seen[m.device] {
			continue
		}
		seen[m.device] = true
		hr := hierarchy{mountpoint: m.mountpoint, v2: m.fstype == "cgroup2", options: map[string]bool{}}
		for _, o := range strings.Split(m.superopts, ",") {
			hr.options[o] = true
			hr.order = append(hr.order, o)
		}
		h.hierarchies = append(h.hierarchies, hr)
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	for i := range h.hierarchies {
		hr := &h.hierarchies[i]
		switch {
		case hr.v2:
			h.v2 = hr
		case hr.options["memory"]:
			h.memoryV1 = hr
		case hr.options["freezer"]:
			h.freezerV1 = hr
		}
	}
	return h, nil
}

// mountinfoLine is what Kappa reads of a /proc/self/mountinfo line.
type mountinfoLine struct {
	device                    string // major:minor
	mountpoint                string // unescaped
	fstype, source, superopts string
}

// parseMountinfoLine splits a mountinfo line, "id parent major:minor root
// mountpoint opts [optional...] - fstype source superopts"; false for a
// line of another shape.
func parseMountinfoLine(line string) (mountinfoLine, bool) {
	fields := strings.Fields(line)
	sep := slices.Index(fields, "-")
	if sep < 5 || len(fields) < sep+4 {
		return mountinfoLine{}, false
	}
	return mountinfoLine{device: fields[2], mountpoint: unescapeMountinfo(fields[4]),
		fstype: fields[sep+1], source: fields[sep+2], superopts: fields[sep+3]}, true
}

// unescapeMountinfo undoes the octal escapes (\040 for space, ...) of
// mountinfo paths.
func unescapeMountinfo(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+3 < len(s) {
			if n, err := strconv.ParseUint(s[i+1:i+4], 8, 8); err == nil {
				b.WriteByte(byte(n))
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

// dirs returns the directory of cgroup path (e.g. "/kappa/id") in every
// hierarchy. The runtimes' cgroupfs drivers resolve an absolute
// cgroupsPath against each hierarchy's mount point the same way.
func (h *cgroupHost) dirs(path string) []string {
	out := make([]string, 0, len(h.hierarchies))
	for _, hr := range h.hierarchies {
		out = append(out, filepath.Join(hr.mountpoint, path))
	}
	return out
}

// envCgroup reads and controls the cgroup of one environment.
type envCgroup struct {
	memory    string // directory with the memory controller's files
	memoryV2  bool
	freezer   string // directory with the freezer's files
	freezerV2 bool
	// files, once the cgroup exists, holds the files used on every
	// invocation open; nil reads and writes them by path.
	files *cgroupFiles
}

func (h *cgroupHost) env(path string) envCgroup {
	var c envCgroup
	if h.memoryV1 != nil {
		c.memory = filepath.Join(h.memoryV1.mountpoint, path)
	} else {
		c.memory, c.memoryV2 = filepath.Join(h.v2.mountpoint, path), true
	}
	switch {
	case h.freezerV1 != nil:
		c.freezer = filepath.Join(h.freezerV1.mountpoint, path)
	case h.v2 != nil:
		c.freezer, c.freezerV2 = filepath.Join(h.v2.mountpoint, path), true
	}
	return c
}

// oomKills returns the number of processes the memory limit killed.
func (c envCgroup) oomKills() (uint64, error) {
	file, key := "memory.oom_control", "oom_kill"
	if c.memoryV2 {
		file = "memory.events"
	}
	data, err := os.ReadFile(filepath.Join(c.memory, file))
	if err != nil {
		return 0, err
	}
	return flatKey(data, key)
}

// maxMemory returns the peak memory use of the cgroup in bytes.
func (c envCgroup) maxMemory() (uint64, error) {
	file := "memory.max_usage_in_bytes"
	if c.memoryV2 {
		file = "memory.peak"
	}
	data, err := c.files.read(peakFD, filepath.Join(c.memory, file))
	if err != nil {
		return 0, err
	}
	return strconv.ParseUint(string(bytes.TrimSpace(data)), 10, 64)
}

// flatKey finds "key value" in a flat-keyed cgroup file.
func flatKey(data []byte, key string) (uint64, error) {
	for _, line := range bytes.Split(data, []byte("\n")) {
		k, v, ok := bytes.Cut(line, []byte(" "))
		if ok && string(k) == key {
			return strconv.ParseUint(string(bytes.TrimSpace(v)), 10, 64)
		}
	}
	return 0, fmt.Errorf("no %s key", key)
}

// freeze freezes (or thaws) every process of the cgroup and waits until
// the kernel reports the new state.
func (c envCgroup) freeze(ctx context.Context, frozen bool) error {
	if c.freezer == "" {
		return nil
	}
	file, value, stateFile := "freezer.state", "THAWED", "freezer.state"
	if frozen {
		value = "FROZEN"
	}
	want := func(b []byte) bool { return string(bytes.TrimSpace(b)) == value }
	if c.freezerV2 {
		file, value, stateFile = "cgroup.freeze", "0", "cgroup.events"
		wantFrozen := uint64(0)
		if frozen {
			value, wantFrozen = "1", 1
		}
		want = func(b []byte) bool { n, err := flatKey(b, "frozen"); return err == nil && n == wantFrozen }
	}
	stateFD := freezeFD
	if c.freezerV2 {
		stateFD = eventsFD
	}
	// Idle tasks freeze within microseconds: poll closely first (an
	// invocation arriving meanwhile waits for the freeze to finish).
	delay := 20 * time.Microsecond
	for {
		// v1 may stay FREEZING while a task is in an uninterruptible
		// sleep; writing again retries the freeze.
		if err := c.files.write(freezeFD, filepath.Join(c.freezer, file), value); err != nil {
			return err
		}
		state, err := c.files.read(stateFD, filepath.Join(c.freezer, stateFile))
		if err != nil {
			return err
		}
		if want(state) {
			return nil
		}
		if err := pause(ctx, delay); err != nil {
			return err
		}
		delay = min(2*delay, 10*time.Millisecond)
	}
}

// removeCgroupTree kills every process left in dir and its descendants and
// removes the directories, deepest first. A missing dir is not an error.
func removeCgroupTree(ctx context.Context, dir string) error {
	entries, err := os.ReadDir(dir)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	var errs []error
	for _, e := range entries {
		if e.IsDir() {
			errs = append(errs, removeCgroupTree(ctx, filepath.Join(dir, e.Name())))
		}
	}
	delay := time.Millisecond
	for attempt := 0; ; attempt++ {
		err := unix.Rmdir(dir)
		if err == nil || errors.Is(err, unix.ENOENT) {
			break
		}
		if !errors.Is(err, unix.EBUSY) || attempt == 50 {
			errs = append(errs, fmt.Errorf("remove cgroup %s: %w", dir, err))
			break
		}
		killCgroup(dir)
		select {
		case <-ctx.Done():
			return errors.Join(append(errs, ctx.Err())...)
		case <-time.After(delay):
		}
		delay = min(2*delay, 50*time.Millisecond)
	}
	return errors.Join(errs...)
}

// killCgroup thaws dir and sends SIGKILL to every process in it. Only
// used on cgroups under our parent, which hold nothing but sandboxes.
func killCgroup(dir string) {
	if _, err := os.Stat(filepath.Join(dir, "freezer.state")); err == nil {
		_ = os.WriteFile(filepath.Join(dir, "freezer.state"), []byte("THAWED"), 0)
	}
	if _, err := os.Stat(filepath.Join(dir, "cgroup.freeze")); err == nil {
		_ = os.WriteFile(filepath.Join(dir, "cgroup.freeze"), []byte("0"), 0)
	}
	if err := os.WriteFile(filepath.Join(dir, "cgroup.kill"), []byte("1"), 0); err == nil {
		return
	}
	data, err := os.ReadFile(filepath.Join(dir, "cgroup.procs"))
	if err != nil {
		return
	}
	for _, f := range strings.Fields(string(data)) {
		if pid, err := strconv.Atoi(f); err == nil && pid > 0 {
			_ = unix.Kill(pid, unix.SIGKILL)
		}
	}
}
