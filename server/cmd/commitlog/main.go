// Command commitlog runs a commitlog server or talks to one; `commitlog --help` lists the
// commands.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"

	"github.com/commitlog-go/commitlog/server/cli"
)

func main() {
	// Ctrl-C or SIGTERM ends every command cleanly: serve stops gracefully, consume --follow
	// returns after flushing what it printed.
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := cli.Main(ctx, os.Args, os.Stdin, os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}
