// Package console owns Kappa's web console: a single-page application
// whose assets are embedded in the binary and served at "/" (the page) and
// "/console/…" (scripts and styles). The page reads the public Lambda API,
// the registry's catalog and the small /kappa/… JSON endpoints, and builds
// its DOM with text nodes only, so nothing it renders is interpreted as
// markup.
package console
