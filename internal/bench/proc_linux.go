package bench

import (
	"bytes"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"
)

// rss returns the resident set size of pid in bytes.
func rss(pid int) (uint64, error) {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	for _, line := range bytes.Split(data, []byte("\n")) {
		if v, ok := bytes.CutPrefix(line, []byte("VmRSS:")); ok {
			f := strings.Fields(string(v))
			if len(f) == 0 {
				break
			}
			kb, err := strconv.ParseUint(f[0], 10, 64)
			return kb << 10, err
		}
	}
	return 0, fmt.Errorf("no VmRSS in /proc/%d/status", pid)
}

// clockTick is USER_HZ, the unit of /proc/<pid>/stat times (100 on every
// Linux architecture Kappa runs on).
const clockTick = 100

// procStat returns the parent pid and the CPU time (user+system) of pid.
func procStat(pid int) (ppid int, cpu time.Duration, err error) {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, 0, err
	}
	s := string(data)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return 0, 0, fmt.Errorf("parse /proc/%d/stat", pid)
	}
	// Fields after "comm)": state ppid ... utime(12th) stime(13th).
	f := strings.Fields(s[i+1:])
	if len(f) < 13 {
		return 0, 0, fmt.Errorf("parse /proc/%d/stat", pid)
	}
	ppid, _ = strconv.Atoi(f[1])
	ut, _ := strconv.ParseUint(f[11], 10, 64)
	st, _ := strconv.ParseUint(f[12], 10, 64)
	return ppid, time.Duration(ut+st) * time.Second / clockTick, nil
}

// childrenCPU returns the summed CPU time of pid's direct children (the
// Kappa server's children are the environments' init processes, re-parented
// to it) and how many there are.
func childrenCPU(pid int) (time.Duration, int) {
	ents, err := os.ReadDir("/proc")
	if err != nil {
		return 0, 0
	}
	var total time.Duration
	n := 0
	for _, e := range ents {
		p, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		ppid, cpu, err := procStat(p)
		if err != nil || ppid != pid {
			continue
		}
		total += cpu
		n++
	}
	return total, n
}
