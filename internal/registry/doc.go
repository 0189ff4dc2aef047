// Package registry owns Kappa's embedded OCI registry: the Distribution
// spec v1.1 API served under /v2/ and the durable, content-addressed store
// behind it.
//
// All state lives in one directory (see storage.go for the layout): blobs by
// digest, upload sessions that survive a restart, and per-repository links
// (blobs, manifests, tags, referrers), so that content pushed to one
// repository is visible through another only once pushed or mounted there.
// Every file is written to a temporary sibling, fsynced and renamed into
// place; content is verified against its digest before it becomes visible.
//
// Besides the HTTP Handler, Resolve and OpenBlob give the image package (and
// garbage collection) read access without going through HTTP. Authentication
// is not handled here yet: every client may read and write everything.
package registry
