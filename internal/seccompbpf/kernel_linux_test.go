package seccompbpf

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"testing"
)

type kernelCase struct {
	NR   uint64
	Args [6]uint64
}

// kernelCases are x86-64 syscalls: every number below 1,100, x32 and
// out-of-range numbers, with arguments that hit the profile's checks.
func kernelCases() []kernelCase {
	args := [][6]uint64{
		{},
		{0xffffffff},
		{0x12345, 1, 2},
		{0x7E020000, 0x10000000},
		{^uint64(0), ^uint64(0), ^uint64(0), ^uint64(0), ^uint64(0), ^uint64(0)},
	}
	nrs := []uint64{0x40000000, 0x40000001, 0x400000c8, 0xffffffff, 0xfffffffffffffffe}
	for nr := range uint64(1100) {
		// 335 and 336 are unassigned on x86-64; a kernel seen here acts
		// on them before seccomp does (the child dies of SIGTRAP).
		if nr != 335 && nr != 336 {
			nrs = append(nrs, nr)
		}
	}
	var out []kernelCase
	for _, nr := range nrs {
		for _, a := range args {
			out = append(out, kernelCase{nr, a})
		}
	}
	return out
}

// errnoActions rewrites every RET K of p to SECCOMP_RET_ERRNO with a code
// naming the original action, so that a filtered thread can make any
// syscall without it running; ok is false for programs with RET A.
func errnoActions(t *testing.T, p []insn, codes map[uint32]uint32) []byte {
	t.Helper()
	q := append([]insn(nil), p...)
	for i, in := range q {
		switch in.code {
		case retA:
			t.Fatal("program returns A; cannot map its actions")
		case retK:
			c, ok := codes[in.k]
			if !ok {
				c = uint32(len(codes) + 1)
				codes[in.k] = c
			}
			q[i].k = 0x00050000 | c // SECCOMP_RET_ERRNO
		}
	}
	return encode(q)
}

// runKernel loads prog in testdata/kernelchild, built without the race
// detector, and returns the errno of every kernel case.
func runKernel(t *testing.T, child string, prog []byte) []uintptr {
	t.Helper()
	dir := t.TempDir()
	filter, cases := filepath.Join(dir, "filter.bpf"), filepath.Join(dir, "cases.json")
	data, _ := json.Marshal(kernelCases())
	if err := os.WriteFile(filter, prog, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(cases, data, 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(child, filter, cases)
	cmd.Env = append(os.Environ(), "GOGC=off", "GODEBUG=asyncpreemptoff=1")
	cmd.Stderr = os.Stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("kernelchild: %v", err)
	}
	var errnos []uintptr
	if err := json.Unmarshal(out, &errnos); err != nil {
		t.Fatalf("kernelchild output: %v", err)
	}
	return errnos
}

// buildChild builds testdata/kernelchild with the go command that runs the
// test.
func buildChild(t *testing.T) string {
	t.Helper()
	goBin := filepath.Join(runtime.GOROOT(), "bin", "go")
	out := filepath.Join(t.TempDir(), "kernelchild")
	cmd := exec.Command(goBin, "build", "-o", out, "./testdata/kernelchild")
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("build kernelchild: %v\n%s", err, b)
	}
	return out
}

// TestDispatchKernel loads the moby filter and its dispatched form into
// the running kernel (seccomp needs no privilege with no_new_privs) and
// compares what the kernel answers for each x86-64 case: the same action,
// every time.
func TestDispatchKernel(t *testing.T) {
	if runtime.GOARCH != "amd64" {
		t.Skip("the testdata filter and the cases are x86-64's")
	}
	orig, opt := mobyDefault(t)
	p, _ := decode(orig)
	q, _ := decode(opt)
	child := buildChild(t)
	codes := map[uint32]uint32{}
	a := runKernel(t, child, errnoActions(t, p, codes))
	b := runKernel(t, child, errnoActions(t, q, codes))
	cases := kernelCases()
	if len(a) != len(cases) || len(b) != len(cases) {
		t.Fatalf("%d and %d answers for %d cases", len(a), len(b), len(cases))
	}
	diffs := 0
	for i, c := range cases {
		if a[i] != b[i] {
			if diffs++; diffs <= 10 {
				t.Errorf("syscall %#x args %x: original errno %d, dispatched %d", c.NR, c.Args, a[i], b[i])
			}
		}
	}
	t.Logf("%d syscalls compared in the kernel, %d distinct actions", len(cases), len(codes))
}
