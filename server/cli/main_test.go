package cli

import (
	"context"
	"os"
	"os/exec"
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
	goleak.VerifyTestMain(m,
		// As in package server: memberlist's Shutdown does not wait for a probe already under
		// way (a peer stopped without leaving: the cluster remove tests stop servers they
		// removed, others keep probing); it ends on its own timeout, sometimes after the last
		// test. The package then failed after every test passed, printing only FAIL.
		goleak.IgnoreAnyFunction("github.com/hashicorp/memberlist.(*Memberlist).probeNode"),
		// As in package server: consensus/raft's Node.await waiting on a future hashicorp/raft
		// v1.8.0 never resolves (see await's doc comment).
		goleak.IgnoreAnyFunction("github.com/commitlog-go/commitlog/consensus/raft.(*Node).await.func1"),
	)
}

// serveProcess is `commitlog serve` run as a process of its own (the test binary, asCommitlog),
// for tests that send it signals. It is killed, if still running, when the test ends.
type serveProcess struct {
	cmd    *exec.Cmd
	errOut *syncBuffer
	// exited receives Wait's result once; whoever takes it puts it back.
	exited chan error
}

func startServeProcess(t *testing.T, args ...string) *serveProcess {
	t.Helper()
	p := &serveProcess{cmd: exec.Command(os.Args[0], append([]string{"serve"}, args...)...), errOut: &syncBuffer{}, exited: make(chan error, 1)}
	p.cmd.Env = append(os.Environ(), asCommitlog+"=1")
	p.cmd.Stdout, p.cmd.Stderr = &syncBuffer{}, p.errOut
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { p.exited <- p.cmd.Wait() }()
	t.Cleanup(func() {
		select {
		case <-p.exited:
		default:
			_ = p.cmd.Process.Kill()
			<-p.exited
		}
	})
	return p
}
