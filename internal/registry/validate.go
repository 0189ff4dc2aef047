package registry

import (
	_ "crypto/sha256" // register the digest algorithms go-digest checks for
	_ "crypto/sha512"
	"fmt"
	"net/http"
	"regexp"

	"github.com/google/uuid"
	"github.com/opencontainers/go-digest"
)

// maxNameLength bounds a repository name. The spec's grammar has no limit,
// but clients cap host+name at 255 characters, and the limit keeps every
// path component of the on-disk layout under NAME_MAX.
const maxNameLength = 255

var (
	// nameRE is the spec's <name> grammar, anchored.
	nameRE = regexp.MustCompile(`^[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*(/[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*)*$`)
	// tagRE is the spec's <reference> grammar for tags, anchored.
	tagRE = regexp.MustCompile(`^[a-zA-Z0-9_][a-zA-Z0-9._-]{0,127}$`)
)

// validName reports whether name is a repository name the registry accepts.
// A valid name never contains "..", an empty component or a component
// starting with "_", so it is safe to use as a relative path and cannot
// collide with the "_"-prefixed metadata directories of the layout.
func validName(name string) bool {
	return len(name) <= maxNameLength && nameRE.MatchString(name)
}

// validTag reports whether tag is a valid tag. A valid tag never starts with
// "." so it is a safe file name that cannot collide with temporary files.
func validTag(tag string) bool {
	return tagRE.MatchString(tag)
}

// parseDigest parses s as a sha256 or sha512 digest with a lower-case hex
// encoding of the right length. Other algorithms are rejected.
func parseDigest(s string) (digest.Digest, error) {
	d, err := digest.Parse(s)
	if err != nil {
		return "", fmt.Errorf("parse digest %q: %w", s, err)
	}
	switch d.Algorithm() {
	case digest.SHA256, digest.SHA512:
		return d, nil
	}
	return "", fmt.Errorf("parse digest %q: unsupported algorithm %s", s, d.Algorithm())
}

// digestParam parses a digest given by the client, returning a 400
// DIGEST_INVALID on failure.
func digestParam(s string) (digest.Digest, error) {
	d, err := parseDigest(s)
	if err != nil {
		return "", errorf(http.StatusBadRequest, codeDigestInvalid, "invalid digest %q", s).withCause(err)
	}
	return d, nil
}

// validUploadID reports whether id is an upload session id as the registry
// issues them: a canonical, lower-case, hyphenated UUID. Anything else (in
// particular "..", "/" or a UUID in another spelling) is rejected, so an id is
// always a single safe path component.
func validUploadID(id string) bool {
	u, err := uuid.Parse(id)
	return err == nil && u.String() == id
}
