package cli

import (
	"errors"
	"io"
	"net"
	"net/http"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestServeSecondSignalExitsAtOnce: while `commitlog serve` stops gracefully after SIGINT (a
// leadership transfer, leaving Serf, draining calls: each step may take seconds), a second
// SIGINT did nothing, and an operator's second Ctrl-C was ignored. It exits at once, with
// status 1 and a line saying why. The test holds the graceful stop up with a metrics
// connection whose request body never ends (the endpoint's shutdown waits up to 5 s for it).
func TestServeSecondSignalExitsAtOnce(t *testing.T) {
	metrics := "127.0.0.1:" + strconv.Itoa(freePort(t))
	p := startServeProcess(t, "--node-name", "n0", "--data-dir", filepath.Join(t.TempDir(), "data"),
		"--rpc-port", "0", "--bind-addr", "127.0.0.1:0", "--bootstrap-wait", "0s", "--gossip-profile", "test",
		"--metrics-addr", metrics, "--log-level", "info")
	cmd, errOut, exited := p.cmd, p.errOut, p.exited
	get := func(path string) (int, string) {
		res, err := (&http.Client{Timeout: 5 * time.Second}).Get("http://" + metrics + path)
		if err != nil {
			return 0, err.Error()
		}
		defer res.Body.Close()
		body, _ := io.ReadAll(res.Body)
		return res.StatusCode, string(body)
	}
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
	waitFor("readiness", func() bool { code, _ := get("/readyz"); return code == http.StatusOK })

	// A request whose body never comes: the metrics endpoint's graceful shutdown waits for it.
	hold, err := net.Dial("tcp", metrics)
	if err != nil {
		t.Fatal(err)
	}
	defer hold.Close()
	if _, err := io.WriteString(hold, "GET /healthz HTTP/1.1\r\nHost: metrics\r\nContent-Length: 1000\r\n\r\nabc"); err != nil {
		t.Fatal(err)
	}
	// A request on a new connection answered: the server accepted hold before it (it accepts in
	// turn). Unaccepted when the shutdown closes the listener, hold would hold nothing up, and
	// the graceful stop could end before the second signal.
	fresh := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
	if res, err := fresh.Get("http://" + metrics + "/healthz"); err != nil {
		t.Fatal(err)
	} else {
		_ = res.Body.Close()
	}

	if err := cmd.Process.Signal(syscall.SIGINT); err != nil {
		t.Fatal(err)
	}
	// The graceful stop has begun: the node is no longer ready, or already the metrics
	// endpoint takes no new connection (its shutdown is then held up by hold).
	waitFor("graceful stop", func() bool {
		code, body := get("/readyz")
		return (code == http.StatusServiceUnavailable && strings.Contains(body, "shutting down")) || code == 0
	})
	if err := cmd.Process.Signal(syscall.SIGINT); err != nil {
		t.Fatal(err)
	}
	var exitErr *exec.ExitError
	select {
	case err := <-exited:
		exited <- err
		if !errors.As(err, &exitErr) || exitErr.ExitCode() != 1 {
			t.Fatalf("after a second SIGINT serve exited with %v, want status 1; stderr:\n%s", err, errOut.String())
		}
	case <-time.After(60 * time.Second):
		t.Fatalf("serve still running 60s after a second SIGINT; stderr:\n%s", errOut.String())
	}
	if e := errOut.String(); !strings.Contains(e, "received again while stopping gracefully") || !strings.Contains(e, "send the signal again to exit at once") {
		t.Errorf("stderr does not say that the first signal began a graceful stop and the second one cut it short:\n%s", e)
	}
}
