package registry

import (
	"errors"
	"io/fs"
	"net/http"

	"github.com/opencontainers/image-spec/specs-go"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// getReferrers serves GET /v2/<name>/referrers/<digest>[?artifactType=]: an
// OCI index of the manifests in <name> whose subject is <digest>, filtered
// by artifact type when asked (and then says so in OCI-Filters-Applied). An
// unknown subject or repository yields an empty index, never a 404, since
// clients read a 404 as "referrers API unsupported".
func (r *Registry) getReferrers(w http.ResponseWriter, req *http.Request, rt route) error {
	descs, err := r.store.referrers(rt.name, rt.dgst)
	if err != nil {
		return err
	}
	filter := req.URL.Query().Get("artifactType")
	out := make([]ocispec.Descriptor, 0, len(descs))
	for _, d := range descs {
		if filter != "" && d.ArtifactType != filter {
			continue
		}
		// Skip an entry whose manifest a crash removed without it.
		if _, err := r.store.manifestLink(rt.name, d.Digest); err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				continue
			}
			return err
		}
		out = append(out, d)
	}
	if filter != "" {
		w.Header().Set("OCI-Filters-Applied", "artifactType")
	}
	return writeJSON(w, req, ocispec.MediaTypeImageIndex, ocispec.Index{
		Versioned: specs.Versioned{SchemaVersion: 2},
		MediaType: ocispec.MediaTypeImageIndex,
		Manifests: out,
	})
}
