// Command kernelchild installs a seccomp filter on one thread, makes the
// given x86-64 syscalls there and prints their errnos as JSON: the kernel
// side of seccompbpf's TestDispatchKernel. It is built without the race
// detector, whose runtime would make syscalls of its own on the filtered
// thread.
//
//	kernelchild <filter.bpf> <cases.json>
package main

import (
	"encoding/json"
	"fmt"
	"os"
	"runtime"
	"sync/atomic"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

type kernelCase struct {
	NR   uint64
	Args [6]uint64
}

func main() {
	if len(os.Args) != 3 {
		fmt.Fprintln(os.Stderr, "usage: kernelchild <filter.bpf> <cases.json>")
		os.Exit(2)
	}
	prog, err := os.ReadFile(os.Args[1])
	if err != nil || len(prog) == 0 || len(prog)%8 != 0 {
		fmt.Fprintln(os.Stderr, "filter:", err, len(prog))
		os.Exit(2)
	}
	data, err := os.ReadFile(os.Args[2])
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	var cases []kernelCase
	if err := json.Unmarshal(data, &cases); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	errnos := make([]uintptr, len(cases))
	var state atomic.Int32 // 1: done, 2: load failed
	var loadErr unix.Errno
	go func() {
		runtime.LockOSThread()
		if _, _, e := unix.RawSyscall6(unix.SYS_PRCTL, unix.PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0, 0); e != 0 {
			loadErr = e
			state.Store(2)
			return
		}
		fp := unix.SockFprog{Len: uint16(len(prog) / 8), Filter: (*unix.SockFilter)(unsafe.Pointer(&prog[0]))}
		if _, _, e := unix.RawSyscall(unix.SYS_SECCOMP, unix.SECCOMP_SET_MODE_FILTER, 0, uintptr(unsafe.Pointer(&fp))); e != 0 {
			loadErr = e
			state.Store(2)
			return
		}
		// Every action of the filter is an errno (the test maps them), so
		// none of these runs; no other syscall may follow on this thread.
		for i, c := range cases {
			_, _, e := unix.RawSyscall6(uintptr(c.NR), uintptr(c.Args[0]), uintptr(c.Args[1]), uintptr(c.Args[2]),
				uintptr(c.Args[3]), uintptr(c.Args[4]), uintptr(c.Args[5]))
			errnos[i] = uintptr(e)
		}
		state.Store(1)
		for {
			// Spin until the process exits from another thread (GC and
			// asynchronous preemption are off: nothing needs this one).
		}
	}()
	for state.Load() == 0 {
		time.Sleep(time.Millisecond)
	}
	if state.Load() == 2 {
		fmt.Fprintln(os.Stderr, "load filter:", loadErr)
		os.Exit(3)
	}
	if err := json.NewEncoder(os.Stdout).Encode(errnos); err != nil {
		os.Exit(4)
	}
	os.Exit(0)
}
