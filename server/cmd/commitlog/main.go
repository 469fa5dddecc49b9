// Command commitlog runs a commitlog server or talks to one; `commitlog --help` lists the
// commands.
package main

import (
	"context"
	"net/http"
	_ "net/http/pprof" // served only when COMMITLOG_PPROF_ADDR is set
	"os"
	"os/signal"
	"syscall"

	"github.com/commitlog-go/commitlog/server/cli"
)

func main() {
	// Ctrl-C or SIGTERM ends every command cleanly: serve stops gracefully, consume --follow
	// returns after flushing what it printed.
	// COMMITLOG_PPROF_ADDR (e.g. 127.0.0.1:6060) serves net/http/pprof, for profiling a real
	// process under load; unset (the default), nothing listens.
	if addr := os.Getenv("COMMITLOG_PPROF_ADDR"); addr != "" {
		go func() { _ = http.ListenAndServe(addr, nil) }() // best effort: a debugging aid
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := cli.Main(ctx, os.Args, os.Stdin, os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}
