package daemon

import (
	"bufio"
	"bytes"
	"debug/elf"
	"fmt"
	"os"
	"strconv"
)

// meminfo reads one field of /proc/meminfo in bytes.
func meminfo(field string) (uint64, error) {
	b, err := os.ReadFile("/proc/meminfo")
	if err != nil {
		return 0, err
	}
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		f := bytes.Fields(sc.Bytes())
		if len(f) >= 2 && string(f[0]) == field+":" {
			kb, err := strconv.ParseUint(string(f[1]), 10, 64)
			return kb * 1024, err
		}
	}
	return 0, fmt.Errorf("no %s in /proc/meminfo", field)
}

func memAvailable() (uint64, error) { return meminfo("MemAvailable") }

// minMemAvailable is the available-memory floor below which idle
// environments are reaped: 5% of the host's memory, at least 256 MiB.
func minMemAvailable() uint64 {
	total, err := meminfo("MemTotal")
	if err != nil {
		return 256 << 20
	}
	return max(total/20, 256<<20)
}

// staticSelf returns the path of this executable when it is statically
// linked (no ELF interpreter), so it can run inside any image as the init of
// environments with extensions; "" otherwise.
func staticSelf() string {
	path, err := os.Executable()
	if err != nil {
		return ""
	}
	f, err := elf.Open(path)
	if err != nil {
		return ""
	}
	defer f.Close()
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP {
			return ""
		}
	}
	return path
}
