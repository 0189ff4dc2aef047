// Package image turns an ImageUri into a root filesystem: it resolves the
// reference to a digest, pulls the manifest, config and layers from any
// registry, unpacks each layer once (by diffID) into a shared
// content-addressed layer store, and assembles a function's read-only root
// filesystem as an overlay of its layers. Unpacking treats every layer as
// hostile: nothing it contains can write outside the layer's directory.
//
// Store is the entry point: Pull (network), Lookup, RootFS/Release (overlay
// mounts, root only), ResolveEntrypoint and ValidateWorkingDir (read the
// layer store, no mount needed). Unpack is the layer extractor on its own,
// so that it can be fuzzed and reused.
//
// Limits: at most 128 layers per image and Options.MaxImageBytes (10 GiB)
// uncompressed; layer names at most 4,095 bytes and 256 components deep;
// zstd windows up to 128 MiB. Extended attributes and device nodes in
// layers are dropped, setuid/setgid bits cleared. Layers are fetched one
// after another. One Store at a time may use a directory; GC removes the
// images and layers the caller no longer needs, never while mounted.
// RootFS needs root and overlayfs; with Linux 6.8 or later each layer is
// passed to the kernel on its own ("lowerdir+"), before that the lowerdir
// option must fit a page, which the layer cap keeps true.
package image
