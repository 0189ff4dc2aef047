package daemon

import (
	"bufio"
	"bytes"
	"debug/elf"
	"fmt"
	"os"
	"path/filepath"
	"strconv"

	"github.com/kappa-run/kappa/internal/envinit"
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

// initBinary returns the static executable environments that need an
// init run as theirs (package envinit): kappa-init next to this
// executable when there is one (cmd/kappa-init, built by `make build`:
// small, so snapshots hold less of it), else this executable when it is
// statically linked; "" when neither is.
func initBinary() string {
	self, err := os.Executable()
	if err != nil {
		return ""
	}
	if sibling := filepath.Join(filepath.Dir(self), envinit.InitName); isStatic(sibling) {
		return sibling
	}
	if isStatic(self) {
		return self
	}
	return ""
}

// isStatic reports whether path is an executable ELF file without an
// interpreter (so it runs inside any image).
func isStatic(path string) bool {
	fi, err := os.Stat(path)
	if err != nil || !fi.Mode().IsRegular() || fi.Mode().Perm()&0o111 == 0 {
		return false
	}
	f, err := elf.Open(path)
	if err != nil {
		return false
	}
	defer f.Close()
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP {
			return false
		}
	}
	return true
}
