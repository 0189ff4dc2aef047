//go:build !unix

package main

import "errors"

func checkRlimits() error { return errors.New("rlimits need Unix") }
