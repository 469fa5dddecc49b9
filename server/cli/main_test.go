package cli

import (
	"context"
	"os"
	"os/signal"
	"syscall"
	"testing"

	"go.uber.org/goleak"
)

// asCommitlog, set to 1 in its environment, makes the test binary run as the commitlog binary
// (cmd/commitlog's main: Main under a context that SIGINT and SIGTERM end, then exit with its
// status), with its arguments: tests that need a process of their own, to send it signals,
// run it so.
const asCommitlog = "COMMITLOG_CLI_TEST_AS_COMMITLOG"

func TestMain(m *testing.M) {
	if os.Getenv(asCommitlog) == "1" {
		ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
		code := Main(ctx, append([]string{"commitlog"}, os.Args[1:]...), os.Stdin, os.Stdout, os.Stderr)
		stop()
		os.Exit(code)
	}
	goleak.VerifyTestMain(m)
}
