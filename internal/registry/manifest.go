package registry

import (
	"encoding/json"
	"fmt"
	"mime"
	"net/http"
	"regexp"
	"strings"

	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// Manifest media types the registry accepts.
const (
	mediaTypeDockerManifest     = "application/vnd.docker.distribution.manifest.v2+json"
	mediaTypeDockerManifestList = "application/vnd.docker.distribution.manifest.list.v2+json"
)

// maxManifestSize is the largest manifest body accepted, the 4 MiB the spec
// says registries should accept at least.
const maxManifestSize = 4 << 20

// mediaTypeRE is RFC 6838's type/subtype grammar (no parameters).
var mediaTypeRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9!#$&^_.+-]{0,126}/[A-Za-z0-9][A-Za-z0-9!#$&^_.+-]{0,126}$`)

// manifest is what the registry needs to know of a valid manifest.
type manifest struct {
	// mediaType is the type the manifest is stored and served as.
	mediaType string
	// artifactType is the type a referrers listing reports: the manifest's
	// artifactType, else for an image manifest its config's media type.
	artifactType string
	subject      *ocispec.Descriptor
	annotations  map[string]string
	// blobs are the config and layers of an image manifest that must be in
	// the repository (non-distributable layers excluded).
	blobs []ocispec.Descriptor
	// children are the manifests an index references.
	children []ocispec.Descriptor
}

// manifestJSON is the union of the fields of image manifests and indexes,
// OCI and Docker alike; unknown fields are ignored (and kept, since the
// registry stores the body as sent).
type manifestJSON struct {
	SchemaVersion *int                 `json:"schemaVersion"`
	MediaType     string               `json:"mediaType"`
	ArtifactType  string               `json:"artifactType"`
	Config        *ocispec.Descriptor  `json:"config"`
	Layers        []ocispec.Descriptor `json:"layers"`
	Manifests     []ocispec.Descriptor `json:"manifests"`
	Subject       *ocispec.Descriptor  `json:"subject"`
	Annotations   map[string]string    `json:"annotations"`
}

// parseManifest validates body as a manifest uploaded with the Content-Type
// contentType and returns what the registry needs of it. The media type is
// the body's mediaType field, else the Content-Type, else inferred from the
// shape (OCI manifest or index); the two must agree when both are given.
// Errors are 400 MANIFEST_INVALID.
func parseManifest(body []byte, contentType string) (*manifest, error) {
	var mj manifestJSON
	if err := json.Unmarshal(body, &mj); err != nil {
		return nil, invalidManifest("manifest is not valid JSON: %v", err)
	}
	hdr, err := manifestContentType(contentType)
	if err != nil {
		return nil, err
	}
	mt := mj.MediaType
	switch {
	case mt != "" && hdr != "" && mt != hdr:
		return nil, invalidManifest("Content-Type %q does not match the manifest's mediaType %q", hdr, mt)
	case mt == "":
		mt = hdr
	}
	if mt == "" {
		switch {
		case mj.Config != nil && mj.Manifests == nil:
			mt = ocispec.MediaTypeImageManifest
		case mj.Manifests != nil && mj.Config == nil:
			mt = ocispec.MediaTypeImageIndex
		default:
			return nil, invalidManifest("manifest has no media type")
		}
	}
	if mj.SchemaVersion == nil || *mj.SchemaVersion != 2 {
		return nil, invalidManifest("schemaVersion must be 2")
	}
	m := &manifest{mediaType: mt, artifactType: mj.ArtifactType, annotations: mj.Annotations}
	if mj.ArtifactType != "" && !mediaTypeRE.MatchString(mj.ArtifactType) {
		return nil, invalidManifest("invalid artifactType %q", mj.ArtifactType)
	}
	switch mt {
	case ocispec.MediaTypeImageManifest, mediaTypeDockerManifest:
		if mj.Config == nil {
			return nil, invalidManifest("image manifest has no config")
		}
		if mj.Manifests != nil {
			return nil, invalidManifest("image manifest has a manifests field")
		}
		if err := checkDescriptor(*mj.Config, "config"); err != nil {
			return nil, err
		}
		if m.artifactType == "" {
			m.artifactType = mj.Config.MediaType
		}
		m.blobs = append(m.blobs, *mj.Config)
		for i, l := range mj.Layers {
			if err := checkDescriptor(l, fmt.Sprintf("layers[%d]", i)); err != nil {
				return nil, err
			}
			if !nonDistributable(l.MediaType) {
				m.blobs = append(m.blobs, l)
			}
		}
	case ocispec.MediaTypeImageIndex, mediaTypeDockerManifestList:
		if mj.Config != nil || mj.Layers != nil {
			return nil, invalidManifest("index has a config or layers field")
		}
		for i, c := range mj.Manifests {
			if err := checkDescriptor(c, fmt.Sprintf("manifests[%d]", i)); err != nil {
				return nil, err
			}
		}
		m.children = mj.Manifests
	default:
		return nil, invalidManifest("unsupported manifest media type %q", mt)
	}
	if mj.Subject != nil {
		if err := checkDescriptor(*mj.Subject, "subject"); err != nil {
			return nil, err
		}
		m.subject = mj.Subject
	}
	return m, nil
}

// manifestContentType returns the media type of a manifest upload's
// Content-Type, or "" when it says nothing about the manifest (absent, or a
// generic type some clients send).
func manifestContentType(ct string) (string, error) {
	if strings.TrimSpace(ct) == "" {
		return "", nil
	}
	mt, _, err := mime.ParseMediaType(ct)
	if err != nil {
		return "", invalidManifest("invalid Content-Type %q", ct)
	}
	switch mt {
	case "application/json", "application/octet-stream", "text/plain":
		return "", nil
	}
	return mt, nil
}

// checkDescriptor validates a descriptor of a manifest: a well-formed media
// type, a supported digest, a non-negative size, and embedded data, when
// present, matching both.
func checkDescriptor(d ocispec.Descriptor, field string) error {
	if !mediaTypeRE.MatchString(d.MediaType) {
		return invalidManifest("%s: invalid mediaType %q", field, d.MediaType)
	}
	dg, err := parseDigest(string(d.Digest))
	if err != nil {
		return invalidManifest("%s: invalid digest %q", field, d.Digest)
	}
	if d.Size < 0 {
		return invalidManifest("%s: negative size", field)
	}
	if d.Data != nil {
		if int64(len(d.Data)) != d.Size || dg.Algorithm().FromBytes(d.Data) != dg {
			return invalidManifest("%s: data does not match digest and size", field)
		}
	}
	return nil
}

// nonDistributable reports whether a layer media type marks content that is
// not pushed to registries (OCI non-distributable, Docker foreign layers).
func nonDistributable(mediaType string) bool {
	return strings.Contains(mediaType, ".nondistributable.") || strings.Contains(mediaType, ".foreign.")
}

func invalidManifest(format string, args ...any) *regError {
	return errorf(http.StatusBadRequest, codeManifestInvalid, format, args...)
}
