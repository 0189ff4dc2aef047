// Package image turns an ImageUri into a root filesystem: it resolves the
// reference to a digest, pulls the manifest, config and layers from any
// registry, unpacks each layer once (by diffID) into a shared
// content-addressed layer store, and assembles a function's read-only root
// filesystem as an overlay of its layers. Unpacking treats every layer as
// hostile: nothing it contains can write outside the layer's directory.
package image
