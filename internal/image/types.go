package image

import "errors"

// Config is the part of an image configuration a function runs with.
type Config struct {
	Entrypoint []string `json:"entrypoint,omitempty"`
	Cmd        []string `json:"cmd,omitempty"`
	Env        []string `json:"env,omitempty"`
	WorkingDir string   `json:"workingDir,omitempty"`
	User       string   `json:"user,omitempty"`
}

// Image is a pulled and unpacked image, held by the layer store.
type Image struct {
	// Digest is the manifest digest ("sha256:…"); its hex is CodeSha256.
	Digest string `json:"digest"`
	// Repository is the reference without tag or digest
	// ("localhost:9070/hello"); ResolvedURI is Repository + "@" + Digest.
	Repository  string `json:"repository"`
	ResolvedURI string `json:"resolvedUri"`
	// Architecture is the image's platform architecture ("amd64", "arm64").
	Architecture string `json:"architecture"`
	Config       Config `json:"config"`
	// DiffIDs lists the uncompressed layer digests, base layer first.
	DiffIDs []string `json:"diffIds"`
	// Size is the total uncompressed size of the layers in bytes.
	Size int64 `json:"size"`
}

// Errors Pull returns, wrapped, so the function service can choose a
// StateReasonCode.
var (
	// ErrNotFound: the repository, tag or digest does not exist (ImageDeleted).
	ErrNotFound = errors.New("image not found")
	// ErrAccessDenied: the registry refused our credentials (ImageAccessDenied).
	ErrAccessDenied = errors.New("image access denied")
	// ErrInvalid: the image is malformed, too large, of the wrong
	// architecture, or a layer is missing or corrupt (InvalidImage).
	ErrInvalid = errors.New("invalid image")
)
