package cli

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestServeStopSignalWhileStarting: `commitlog serve` waits at start for an advertised host
// name that does not resolve yet (a Kubernetes pod's own DNS name; up to 2 minutes). A SIGTERM
// (Kubernetes deleting the pod) or a Ctrl-C (an operator who mistyped --advertise-host) then
// did nothing: serve had taken the stop signals over, nothing watched them before the server
// started, and the wait ran its whole course. It stops at once, with status 1, saying so.
func TestServeStopSignalWhileStarting(t *testing.T) {
	gossip := "127.0.0.1:" + strconv.Itoa(freePort(t))
	p := startServeProcess(t, "--node-name", "n0", "--data-dir", filepath.Join(t.TempDir(), "data"),
		"--rpc-port", "0", "--bind-addr", gossip, "--bootstrap-wait", "0s", "--gossip-profile", "test",
		"--advertise-host", "commitlog-0.commitlog-headless.prod.svc.invalid", "--log-level", "info")
	cmd, errOut, exited := p.cmd, p.errOut, p.exited
	for deadline := time.Now().Add(60 * time.Second); !strings.Contains(errOut.String(), "does not resolve yet"); time.Sleep(20 * time.Millisecond) {
		select {
		case err := <-exited:
			exited <- err
			t.Fatalf("serve exited (%v) before waiting for its advertised host; stderr:\n%s", err, errOut.String())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("serve does not say it waits for its advertised host within 60s; stderr:\n%s", errOut.String())
		}
	}
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	// Well within the 2 minutes the wait would otherwise last.
	select {
	case err := <-exited:
		exited <- err
		var exitErr *exec.ExitError
		if !errors.As(err, &exitErr) || exitErr.ExitCode() != 1 {
			t.Errorf("after SIGTERM while starting serve exited with %v, want status 1; stderr:\n%s", err, errOut.String())
		}
		if e := errOut.String(); !strings.Contains(e, "stopped while starting") {
			t.Errorf("stderr does not say that serve stopped while starting:\n%s", e)
		}
	case <-time.After(60 * time.Second):
		t.Fatalf("serve still starting 60s after SIGTERM; stderr:\n%s", errOut.String())
	}
}

// TestServeSecondSignalWhileStuckStarting: a start step that does not watch the start's
// context (opening a data dir or Raft's log on a hung disk or NFS mount) held `commitlog serve`
// up whatever signals came: the first SIGTERM cancelled the context, which that step ignores,
// and the second one, which exits at once during a graceful stop, waited for the step too, as
// did an operator's second Ctrl-C. It exits at once, with status 1, saying so. The ACL policy
// file, read inside the start (the authorizer step, after Raft's), is a named pipe that the
// test opens for writing and never writes to nor closes: the server's read of it never ends,
// as a read of a hung disk does not.
func TestServeSecondSignalWhileStuckStarting(t *testing.T) {
	dir := t.TempDir()
	policy := filepath.Join(dir, "policy.csv")
	if err := syscall.Mkfifo(policy, 0o600); err != nil {
		t.Skipf("no named pipe: %v", err)
	}
	// An ACL policy takes mutual TLS (whose files serve reads before the start) and a gossip key.
	f := func(name string) string { return filepath.Join(dir, name) }
	mustRun(t, "tls", "ca", "create", "--dir", dir)
	mustRun(t, "tls", "cert", "create", "--server", "--dir", dir, "--node-name", "n0")
	if err := os.WriteFile(f("gossip.key"), []byte(mustRun(t, "tls", "gossip-key")), 0o600); err != nil {
		t.Fatal(err)
	}
	p := startServeProcess(t, "--node-name", "n0", "--data-dir", f("data"),
		"--rpc-port", "0", "--bind-addr", "127.0.0.1:0", "--bootstrap-wait", "0s", "--gossip-profile", "test",
		"--server-tls-cert-file", f("commitlog-server.pem"), "--server-tls-key-file", f("commitlog-server-key.pem"),
		"--server-tls-ca-file", f("commitlog-ca.pem"), "--gossip-key-file", f("gossip.key"),
		"--acl-policy-file", policy, "--log-level", "info")
	cmd, errOut, exited := p.cmd, p.errOut, p.exited
	waitFor := func(what string, cond func() bool) {
		t.Helper()
		for deadline := time.Now().Add(60 * time.Second); !cond(); time.Sleep(20 * time.Millisecond) {
			select {
			case err := <-exited:
				exited <- err
				t.Fatalf("serve exited (%v) before %s; stderr:\n%s", err, what, errOut.String())
			default:
			}
			if time.Now().After(deadline) {
				t.Fatalf("serve: no %s within 60s; stderr:\n%s", what, errOut.String())
			}
		}
	}
	// Opening a pipe for writing without blocking fails (ENXIO) until a reader has it open:
	// once it succeeds, the server is reading the policy, and waits for the end of a file
	// that never comes (the write end stays open until the test ends).
	var writer *os.File
	waitFor("read of the ACL policy", func() bool {
		f, err := os.OpenFile(policy, os.O_WRONLY|syscall.O_NONBLOCK, 0)
		if err != nil {
			return false
		}
		writer = f
		return true
	})
	t.Cleanup(func() { writer.Close() })

	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	// The first signal was seen (two signals sent at once may be delivered as one).
	waitFor("answer to the first SIGTERM", func() bool { return strings.Contains(errOut.String(), "send the signal again to exit at once") })
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-exited:
		exited <- err
		var exitErr *exec.ExitError
		if !errors.As(err, &exitErr) || exitErr.ExitCode() != 1 {
			t.Fatalf("after a second SIGTERM while starting serve exited with %v, want status 1; stderr:\n%s", err, errOut.String())
		}
	case <-time.After(20 * time.Second):
		t.Fatalf("serve still starting 20s after a second SIGTERM, held up by a start step that ignores the signals; stderr:\n%s", errOut.String())
	}
	e := errOut.String()
	if !strings.Contains(e, "SIGTERM received again while starting") {
		t.Errorf("stderr does not say that a second SIGTERM cut the start short:\n%s", e)
	}
	if !strings.Contains(e, "stopping while starting") || strings.Contains(e, "stopping gracefully") {
		t.Errorf("stderr does not say that the first SIGTERM stopped the start (and no graceful stop):\n%s", e)
	}
}
