// Package scripts tests the repository's shell scripts (scripts/*.sh) with stand-ins for the
// commitlog binary, so that no port is bound and no server runs.
package scripts

import (
	"bufio"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// fakeServe stands in for bin/commitlog: it records that it started and, when a SIGTERM stops
// it, that it was stopped; node-1 exits at once with status 3, as a node killed or failing would.
// The trap is set before "started" is written: the test sends its SIGTERM once it sees that file,
// and one that came before the trap killed the stand-in without a trace (seen in CI).
const fakeServe = `#!/usr/bin/env bash
name=
while [ $# -gt 0 ]; do
	if [ "$1" = --node-name ]; then name=$2; fi
	shift
done
if [ "$name" = node-1 ]; then echo "$$" > "$FAKE_DIR/$name.started"; exit 3; fi
trap 'echo stopped > "$FAKE_DIR/$name.stopped"; exit 0' TERM
echo "$$" > "$FAKE_DIR/$name.started"
while :; do sleep 0.05; done
`

// TestClusterKeepsRunningWhenANodeExits runs scripts/cluster.sh (make cluster) and lets node-1
// exit: the script reports it, with the command that starts it again, and leaves node-2 and
// node-3 running, so that a user who kills a node to watch the cluster fail over still has a
// cluster. Before, the first node to exit made the script stop the other two. A SIGTERM (as
// Ctrl-C) then stops the others, each by its pid.
func TestClusterKeepsRunningWhenANodeExits(t *testing.T) {
	root, err := filepath.Abs(filepath.Join("..", "..", ".."))
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	fake := filepath.Join(dir, "commitlog")
	if err := os.WriteFile(fake, []byte(fakeServe), 0o755); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("bash", filepath.Join(root, "scripts", "cluster.sh"))
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "BIN="+fake, "DATA_DIR="+filepath.Join(dir, "data"), "FAKE_DIR="+dir)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stdout = io.Discard
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	t.Cleanup(func() {
		// The script and its stand-ins are in a process group of their own.
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		select {
		case <-exited:
		default:
			_ = cmd.Wait()
		}
	})

	lines := make(chan string)
	go func() {
		defer close(lines)
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			lines <- sc.Text()
		}
	}()
	var report, restart string
	for report == "" || restart == "" {
		line, ok := <-lines
		if !ok {
			t.Fatalf("cluster.sh ended when node-1 exited (report %q); it must keep node-2 and node-3 running", report)
		}
		t.Log(line)
		switch {
		case strings.HasPrefix(line, "node-1 ") && strings.Contains(line, "exited with status 3"):
			report = line
		case report != "" && strings.Contains(line, "serve --node-name node-1 "):
			restart = line
		}
	}
	for _, arg := range []string{"--data-dir " + filepath.Join(dir, "data", "node-1"), "--rpc-port 8400", "--bootstrap-expect 3"} {
		if !strings.Contains(restart, arg) {
			t.Errorf("the restart command %q lacks %q", restart, arg)
		}
	}
	for _, name := range []string{"node-2", "node-3"} {
		waitFile(t, filepath.Join(dir, name+".started"))
		if _, err := os.Stat(filepath.Join(dir, name+".stopped")); err == nil {
			t.Fatalf("%s was stopped when node-1 exited", name)
		}
	}
	if err := syscall.Kill(cmd.Process.Pid, 0); err != nil {
		t.Fatalf("cluster.sh is gone after node-1 exited: %v", err)
	}

	// Ctrl-C (here SIGTERM, to the script alone) stops the two that run.
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	for range lines {
	}
	err = cmd.Wait()
	exited <- err
	if err != nil {
		var ee *exec.ExitError
		if !errors.As(err, &ee) {
			t.Fatal(err)
		}
		t.Fatalf("cluster.sh exited with %v after SIGTERM; want status 0", err)
	}
	for _, name := range []string{"node-2", "node-3"} {
		if _, err := os.Stat(filepath.Join(dir, name+".stopped")); err != nil {
			t.Errorf("%s was not stopped by the script's SIGTERM: %v", name, err)
		}
	}
}

// waitFile waits until path exists; the test's own timeout bounds it.
func waitFile(t *testing.T, path string) {
	t.Helper()
	for {
		if _, err := os.Stat(path); err == nil {
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
}
