package e2e

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os/exec"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// cliTimeout bounds one client command of the binary.
const cliTimeout = 30 * time.Second

// cliResult is what one run of the binary printed and how it ended.
type cliResult struct {
	Stdout, Stderr string
	Code           int // exit code; -1 when a signal (or the timeout) ended it
}

func (r cliResult) String() string {
	return fmt.Sprintf("exit %d\nstdout:\n%s\nstderr:\n%s", r.Code, r.Stdout, r.Stderr)
}

// runCLI runs `commitlog args...` with stdin (may be empty) and waits for it, at most
// cliTimeout.
func runCLI(t testing.TB, stdin string, args ...string) cliResult {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), cliTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, binPath, args...)
	cmd.Stdin = strings.NewReader(stdin)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	res := cliResult{Stdout: stdout.String(), Stderr: stderr.String()}
	var exitErr *exec.ExitError
	switch {
	case err == nil:
	case errors.As(err, &exitErr):
		res.Code = exitErr.ExitCode()
	default:
		t.Fatalf("commitlog %s: %v", strings.Join(args, " "), err)
	}
	if ctx.Err() != nil {
		t.Fatalf("commitlog %s did not finish within %v\n%s", strings.Join(args, " "), cliTimeout, res)
	}
	return res
}

// mustCLI runs the binary and fails the test unless it exits 0.
func mustCLI(t testing.TB, stdin string, args ...string) cliResult {
	t.Helper()
	res := runCLI(t, stdin, args...)
	if res.Code != 0 {
		t.Fatalf("commitlog %s: %s", strings.Join(args, " "), res)
	}
	return res
}

// parseOffsets parses produce's output: one offset per line.
func parseOffsets(t testing.TB, out string) []uint64 {
	t.Helper()
	var offs []uint64
	for line := range strings.Lines(out) {
		line = strings.TrimSpace(line)
		if line == "" {
			continue
		}
		off, err := strconv.ParseUint(line, 10, 64)
		if err != nil {
			t.Fatalf("produce printed %q, want an offset per line", line)
		}
		offs = append(offs, off)
	}
	return offs
}

// offsetValue is one line of `consume --offsets`.
type offsetValue struct {
	Offset uint64
	Value  string
}

// parseOffsetLines parses `consume --offsets` output: offset, tab, value per line.
func parseOffsetLines(t testing.TB, out string) []offsetValue {
	t.Helper()
	var recs []offsetValue
	for line := range strings.Lines(out) {
		line = strings.TrimSuffix(line, "\n")
		off, val, ok := strings.Cut(line, "\t")
		if !ok {
			t.Fatalf("consume --offsets printed %q, want offset<TAB>value", line)
		}
		n, err := strconv.ParseUint(off, 10, 64)
		if err != nil {
			t.Fatalf("consume --offsets printed %q: bad offset: %v", line, err)
		}
		recs = append(recs, offsetValue{n, val})
	}
	return recs
}

// follower is a running `commitlog consume --follow` whose output lines arrive on lines.
type follower struct {
	cmd   *exec.Cmd
	lines chan string
	done  chan struct{} // closed when the reader goroutine and the process are finished
	err   error         // cmd.Wait's error, set before done is closed

	overflow atomic.Bool // lines were dropped because the test did not read them
}

// startFollow starts `commitlog consume --follow args...`; t.Cleanup kills it by its pid.
func startFollow(t testing.TB, args ...string) *follower {
	t.Helper()
	cmd := exec.Command(binPath, append([]string{"consume", "--follow"}, args...)...)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatalf("start consume --follow: %v", err)
	}
	f := &follower{cmd: cmd, lines: make(chan string, 1024), done: make(chan struct{})}
	go func() {
		defer close(f.done)
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			select {
			case f.lines <- sc.Text():
			default: // never block the reader: a test reads far fewer lines than the buffer
				f.overflow.Store(true)
			}
		}
		_, _ = io.Copy(io.Discard, out)
		f.err = cmd.Wait()
		close(f.lines)
	}()
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGKILL)
		select {
		case <-f.done:
		case <-time.After(killTimeout):
			t.Errorf("consume --follow (pid %d) not reaped", cmd.Process.Pid)
		}
		if t.Failed() {
			t.Logf("consume --follow stderr:\n%s", stderr.String())
		}
	})
	return f
}

// next returns the follower's next line, failing the test if none comes within d.
func (f *follower) next(t testing.TB, d time.Duration) string {
	t.Helper()
	select {
	case line, ok := <-f.lines:
		if !ok {
			t.Fatalf("consume --follow ended early: %v", f.err)
		}
		return line
	case <-time.After(d):
		t.Fatalf("consume --follow printed nothing within %v", d)
		return ""
	}
}

// interrupt sends SIGINT, as Ctrl-C would, and waits (bounded) for the process to end.
func (f *follower) interrupt(t testing.TB) {
	t.Helper()
	_ = f.cmd.Process.Signal(syscall.SIGINT)
	select {
	case <-f.done:
	case <-time.After(stopTimeout):
		t.Fatalf("consume --follow (pid %d) did not end within %v of SIGINT", f.cmd.Process.Pid, stopTimeout)
	}
}
