// Command commitlog runs a commitlog server or talks to one; `commitlog --help` lists the
// commands.
package main

import (
	"context"
	"os"

	"github.com/commitlog-go/commitlog/server/cli"
)

func main() {
	os.Exit(cli.Main(context.Background(), os.Args, os.Stdin, os.Stdout, os.Stderr))
}
