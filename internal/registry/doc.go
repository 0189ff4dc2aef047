// Package registry owns Kappa's embedded OCI registry: the Distribution
// spec v1.1 API served under /v2/, the durable, content-addressed store
// behind it, its authentication, and its garbage collection.
//
// All state lives in one directory (see storage.go for the layout): blobs by
// digest, upload sessions that survive a restart, and per-repository links
// (blobs, manifests, tags, referrers) and settings, so that content pushed
// to one repository is visible through another only once pushed or mounted
// there. Every file is written to a temporary sibling, fsynced and renamed
// into place; content is verified against its digest before it becomes
// visible.
//
// Without AuthOptions every client may read and write everything (the
// server then listens on loopback only). With them, every request needs a
// user's credentials, as Basic auth or as an HMAC-signed token from the
// registry's own token endpoint (/v2/token), the Docker token flow that
// docker, podman, skopeo and crane follow after a 401 Bearer challenge.
// InternalUser, with a password that exists only in the server's memory,
// lets Kappa pull from itself.
//
// GC is a mark and sweep from the manifests of every repository plus
// pinned manifests (the images function versions run); it is safe while
// clients push. Repositories may make their tags immutable, as ECR does.
//
// Besides the HTTP Handler, Resolve and OpenBlob give the image package read
// access without going through HTTP, and Guard protects Kappa's management
// API with the registry's credentials.
package registry
