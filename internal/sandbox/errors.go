package sandbox

import "errors"

// Errors a Sandbox returns from Start, to be reported with the platform error
// types Runtime.InvalidEntrypoint and Runtime.InvalidWorkingDir.
var (
	ErrInvalidEntrypoint = errors.New("invalid entrypoint")
	ErrInvalidWorkingDir = errors.New("invalid working directory")
)
