package main

import (
	"fmt"
	"syscall"
)

// checkSeccompProfile: keyctl needs no privilege, but the default seccomp
// profile refuses it, which proves the filter loaded is that profile.
func checkSeccompProfile() error {
	const keyctlGetKeyringID, keySpecSessionKeyring = 0, -3
	ring := keySpecSessionKeyring
	if _, _, errno := syscall.Syscall(syscall.SYS_KEYCTL, keyctlGetKeyringID, uintptr(ring), 1); errno != syscall.EPERM {
		return fmt.Errorf("keyctl: got errno %v, want EPERM from seccomp", errno)
	}
	return nil
}
