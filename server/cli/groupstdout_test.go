package cli

import (
	"bufio"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"
)

// TestConsumeGroupLeavesWhenStdoutCloses: `commitlog consume --group g | head -n 1` — once the
// reader of its standard output is gone, the next record it prints fails. The write raised
// SIGPIPE, which killed the process (status 141) without committing what it had printed and
// without leaving the group: the group kept a member holding every partition, and the other
// members got none of them until the session timeout (45 s by default). Found by killing
// consumers by hand in a 3-node audit of consumer groups. Now the write fails with EPIPE and
// the member commits what it printed and leaves, as Kafka's console consumer closes its
// consumer when standard output fails.
func TestConsumeGroupLeavesWhenStdoutCloses(t *testing.T) {
	addr := startServe(t, "--node-name", "p0", "--data-dir", t.TempDir(), "--rpc-port", "-1", "--bind-addr", "127.0.0.1:0",
		"--log-level", "error", "--bootstrap-wait", "0s")
	mustRun(t, "produce", "--addr", addr, "a", "b")

	pr, pw, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(os.Args[0], "consume", "--addr", addr, "--group", "pg", "--auto-commit", "0")
	cmd.Env = append(os.Environ(), asCommitlog+"=1")
	errOut := &syncBuffer{}
	cmd.Stdout, cmd.Stderr = pw, errOut
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	pw.Close() // the child has its own copy
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
	lines := bufio.NewReader(pr)
	for range 2 {
		if _, err := lines.ReadString('\n'); err != nil {
			t.Fatalf("reading the consumer's output: %v; stderr:\n%s", err, errOut.String())
		}
	}
	pr.Close()                                 // head exits
	mustRun(t, "produce", "--addr", addr, "c") // the consumer's next write fails
	select {
	case err := <-exited:
		exited <- err
		t.Logf("consume exited: %v; stderr: %s", err, errOut.String())
	case <-time.After(30 * time.Second):
		t.Fatalf("consume did not exit once its standard output was closed; stderr:\n%s", errOut.String())
	}
	// It committed the two records it printed and left: the group has no member.
	out := mustRun(t, "group", "describe", "--addr", addr, "pg")
	if !strings.Contains(out, "group pg: empty") || !strings.Contains(out, "default  0          2          3        1    -") {
		t.Fatalf("group describe after the consumer's output was closed:\n%s", out)
	}
}
