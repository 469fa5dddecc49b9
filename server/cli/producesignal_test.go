package cli

import (
	"errors"
	"os"
	"os/exec"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/commitlog-go/commitlog/client/clienttest"
	"github.com/commitlog-go/commitlog/transport"
)

// TestProduceSecondSignalExitsAtOnce: after Ctrl-C, produce waits for the records it sent, up to
// the Producer's delivery timeout (2 min) while no server takes them (the server was stopped or
// paused). A second Ctrl-C or SIGTERM was ignored meanwhile: the user could only wait or kill -9
// it. The first one now says what produce waits for, and a second exits at once with status 1,
// saying which records' outcome is unknown. The server here refuses every write as a cluster
// without a leader does (retryable), so the record stays in flight.
func TestProduceSecondSignalExitsAtOnce(t *testing.T) {
	l := clienttest.New()
	var refused atomic.Int64
	l.RefuseProduce = func() error {
		refused.Add(1)
		return transport.Errorf(transport.Unavailable, "consensus: no leader").WithNotLeader(transport.NotLeader{}).WithNotProposed("no leader")
	}
	srv, err := l.Serve(clienttest.ServeOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()

	// Lines of standard input go through the idempotent Producer, which retries; the pipe stays
	// open, as a terminal's.
	cmd := exec.Command(os.Args[0], "produce", "--addr", srv.Addr())
	cmd.Env = append(os.Environ(), asCommitlog+"=1")
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	defer stdin.Close()
	errOut := &syncBuffer{}
	cmd.Stdout, cmd.Stderr = &syncBuffer{}, errOut
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	defer func() {
		select {
		case <-exited:
		default:
			_ = cmd.Process.Kill()
			<-exited
		}
	}()
	waitFor := func(what string, cond func() bool) {
		t.Helper()
		for !cond() {
			select {
			case err := <-exited:
				exited <- err
				t.Fatalf("produce exited (%v) before %s; stderr:\n%s", err, what, errOut.String())
			case <-time.After(10 * time.Millisecond):
			}
		}
	}
	if _, err := stdin.Write([]byte("hello\n")); err != nil {
		t.Fatal(err)
	}
	waitFor("its record was sent", func() bool { return refused.Load() > 0 })
	if err := cmd.Process.Signal(syscall.SIGINT); err != nil {
		t.Fatal(err)
	}
	waitFor("saying what it waits for", func() bool { return strings.Contains(errOut.String(), "SIGINT again exits at once") })
	if err := cmd.Process.Signal(syscall.SIGINT); err != nil {
		t.Fatal(err)
	}
	err = <-exited
	exited <- err
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != 1 {
		t.Fatalf("produce exited with %v, want status 1; stderr:\n%s", err, errOut.String())
	}
	got := errOut.String()
	if !strings.Contains(got, "SIGINT received again: exited without waiting for 1 line sent and not acknowledged (from line 1)") ||
		strings.Contains(got, "delivery timeout") {
		t.Fatalf("stderr does not say the second SIGINT ended it:\n%s", got)
	}
}
