//go:build unix

package main

import (
	"fmt"
	"syscall"
)

func checkRlimits() error {
	for _, l := range []struct {
		name string
		res  int
		want uint64
	}{
		{"nofile", syscall.RLIMIT_NOFILE, 1024},
	} {
		var r syscall.Rlimit
		if err := syscall.Getrlimit(l.res, &r); err != nil {
			return err
		}
		// Go raises the soft nofile limit at startup; the hard limit is
		// what the sandbox sets and cannot be raised back.
		if r.Max != l.want || r.Cur > l.want {
			return fmt.Errorf("%s limit %d/%d, want %d/%d", l.name, r.Cur, r.Max, l.want, l.want)
		}
	}
	return nil
}
