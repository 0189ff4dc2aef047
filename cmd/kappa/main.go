// Command kappa is the Kappa serverless platform: server, emulator and CLI.
package main

import (
	"os"

	"github.com/kappa-run/kappa/internal/cli"
)

func main() {
	os.Exit(cli.Main(os.Args[1:]))
}
