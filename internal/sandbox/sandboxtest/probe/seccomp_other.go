//go:build !linux

package main

import "errors"

func checkSeccompProfile() error { return errors.New("seccomp needs Linux") }
