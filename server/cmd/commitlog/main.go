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
	"github.com/commitlog-go/commitlog/server/telemetry"
)

func main() {
	// Ctrl-C or SIGTERM ends every command cleanly: serve stops gracefully (a second one exits
	// at once: serve returns), consume --follow returns after flushing what it printed.
	// COMMITLOG_PPROF_ADDR (e.g. 127.0.0.1:6060) serves net/http/pprof, for profiling a real
	// process under load; unset (the default), nothing listens.
	// It has read and idle timeouts (a client that sends nothing does not hold a connection)
	// and no write timeout (a CPU profile or a trace takes the seconds asked for).
	if addr := os.Getenv("COMMITLOG_PPROF_ADDR"); addr != "" {
		srv := telemetry.NewDebugServer(addr, http.DefaultServeMux, nil)
		go func() { _ = srv.ListenAndServe() }() // best effort: a debugging aid
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := cli.Main(ctx, os.Args, os.Stdin, os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}
