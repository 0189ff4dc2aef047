package image

import (
	"context"
	"errors"
	"fmt"

	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// CheckPlatform reports, before any layer is pulled, whether imageURI can
// run on arch ("amd64" or "arm64"): an image index without a linux/<arch>
// image and a schema-1 manifest give an error wrapping ErrInvalid that says
// why, and a repository or tag the registry does not have one wrapping
// ErrNotFound. CreateFunction and UpdateFunctionCode use it to refuse at
// once what Lambda refuses at once. Every other outcome — a registry that
// cannot be reached, or refuses Kappa's credentials — returns nil:
// deploying reports those as the function's state.
func (s *Store) CheckPlatform(ctx context.Context, imageURI, arch string) error {
	platformArch, err := goArch(arch)
	if err != nil {
		return err
	}
	ref, err := s.parseReference(imageURI)
	if err != nil {
		return nil // Pull reports it
	}
	desc, err := remote.Get(ref, remote.WithContext(ctx), remote.WithAuthFromKeychain(s.keychain),
		remote.WithTransport(s.transport), remote.WithUserAgent("kappa"))
	if err != nil {
		if err := classifyRegistryError(ctx, err, ErrNotFound); errors.Is(err, ErrNotFound) {
			return err
		}
		return nil
	}
	switch desc.MediaType {
	case types.OCIImageIndex, types.DockerManifestList:
		_, err := pickPlatform(desc, platformArch)
		return err
	case types.DockerManifestSchema1, types.DockerManifestSchema1Signed:
		return fmt.Errorf("%w: Docker image manifest schema 1 is not supported; push with a current client", ErrInvalid)
	}
	return nil
}
