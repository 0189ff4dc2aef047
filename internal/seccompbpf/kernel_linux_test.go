package seccompbpf

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"sync/atomic"
	"testing"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// kernelChildEnv names the filter a re-executed test binary installs on one
// thread before it makes kernelCases' syscalls and prints their errnos.
const kernelChildEnv = "SECCOMPBPF_KERNEL_CHILD"

func TestMain(m *testing.M) {
	if path := os.Getenv(kernelChildEnv); path != "" {
		os.Exit(kernelChild(path))
	}
	os.Exit(m.Run())
}

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

// kernelChild installs the filter at path on a locked thread, makes every
// kernel case's syscall there and prints the errnos as JSON. Every action of
// the filter is an errno (see errnoActions), so no syscall runs; the thread
// never makes another call into the kernel and the process exits from
// another one.
func kernelChild(path string) int {
	prog, err := os.ReadFile(path)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	cases := kernelCases()
	errnos := make([]uintptr, len(cases))
	var state atomic.Int32 // 1: done, 2: load failed
	var loadErr unix.Errno
	go func() {
		runtime.LockOSThread()
		if err := unix.Prctl(unix.PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0); err != nil {
			loadErr = err.(unix.Errno)
			state.Store(2)
			return
		}
		fp := unix.SockFprog{Len: uint16(len(prog) / 8), Filter: (*unix.SockFilter)(unsafe.Pointer(&prog[0]))}
		if _, _, e := unix.RawSyscall(unix.SYS_SECCOMP, unix.SECCOMP_SET_MODE_FILTER, 0, uintptr(unsafe.Pointer(&fp))); e != 0 {
			loadErr = e
			state.Store(2)
			return
		}
		for i, c := range cases {
			_, _, e := unix.RawSyscall6(uintptr(c.NR), uintptr(c.Args[0]), uintptr(c.Args[1]), uintptr(c.Args[2]),
				uintptr(c.Args[3]), uintptr(c.Args[4]), uintptr(c.Args[5]))
			errnos[i] = uintptr(e)
		}
		state.Store(1)
		for {
			// No syscall may follow on this thread: spin until the
			// process exits (the child runs with GC and asynchronous
			// preemption off, so nothing needs this thread to stop).
		}
	}()
	for state.Load() == 0 {
		time.Sleep(time.Millisecond)
	}
	if state.Load() == 2 {
		fmt.Fprintln(os.Stderr, "load filter:", loadErr)
		return 3
	}
	if err := json.NewEncoder(os.Stdout).Encode(errnos); err != nil {
		return 4
	}
	return 0
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

// runKernel loads prog in a child process and returns the errno of every
// kernel case.
func runKernel(t *testing.T, prog []byte) []uintptr {
	t.Helper()
	path := t.TempDir() + "/filter.bpf"
	if err := os.WriteFile(path, prog, 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), kernelChildEnv+"="+path, "GOGC=off", "GODEBUG=asyncpreemptoff=1")
	cmd.Stderr = os.Stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("child: %v", err)
	}
	var errnos []uintptr
	if err := json.Unmarshal(out, &errnos); err != nil {
		t.Fatalf("child output: %v", err)
	}
	return errnos
}

// TestDispatchKernel loads the moby filter and its dispatched form into
// the running kernel (seccomp needs no privilege with no_new_privs) and
// compares what the kernel answers for each x86-64 case: the same action,
// every time.
func TestDispatchKernel(t *testing.T) {
	if runtime.GOARCH != "amd64" {
		t.Skip("the testdata filter and the cases are x86-64's")
	}
	orig, err := os.ReadFile("testdata/moby-default-amd64.bpf")
	if err != nil {
		t.Fatal(err)
	}
	opt, err := Dispatch(orig, []uint32{archX8664, archI386}, 1024)
	if err != nil {
		t.Fatal(err)
	}
	p, _ := decode(orig)
	q, _ := decode(opt)
	codes := map[uint32]uint32{}
	a := runKernel(t, errnoActions(t, p, codes))
	b := runKernel(t, errnoActions(t, q, codes))
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
