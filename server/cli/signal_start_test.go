package cli

import (
	"errors"
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
