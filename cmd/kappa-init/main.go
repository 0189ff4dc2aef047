// Command kappa-init is the init of execution environments that need one
// (images with external extensions, checkpointable environments): package
// envinit, without the rest of Kappa. The kappa binary can serve as the
// init too (run under the name kappa-init); this one is preferred when it
// sits next to it, because it is small: a snapshot holds, and every
// restore copies, the memory of every process of the environment, and the
// whole of kappa's package initialisation is ~5 MB of it.
package main

import (
	"os"

	"github.com/kappa-run/kappa/internal/envinit"
)

func main() {
	os.Exit(envinit.Main(os.Args[1:]))
}
