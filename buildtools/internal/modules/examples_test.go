package modules

import (
	"bytes"
	"context"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestExamples builds and runs every project under examples/ as a stranger would: from a
// file-system module proxy serving this tree's modules at their released versions, with
// GOWORK=off, no replace directive, and no network (third-party modules come from the local
// module cache's download directory, itself a valid file proxy; no checksum database). It also
// installs the commitlog binary with `go install …/server/cmd/commitlog@<version>` and runs the
// client example against it. It never skips.
func TestExamples(t *testing.T) {
	root, err := filepath.Abs(filepath.Join("..", "..", ".."))
	if err != nil {
		t.Fatal(err)
	}
	r, err := Load(root)
	if err != nil {
		t.Fatal(err)
	}
	if err := r.Check(); err != nil {
		t.Fatalf("the repository breaks the release rules: %v", err)
	}
	if len(r.Examples) == 0 {
		t.Fatal("no examples found under examples/")
	}
	work := t.TempDir()
	proxy := filepath.Join(work, "proxy")
	start := time.Now()
	if err := r.WriteProxy(proxy); err != nil {
		t.Fatal(err)
	}
	t.Logf("module proxy of %d modules written in %v", len(r.Modules), time.Since(start).Round(time.Millisecond))

	cacheOut, err := exec.Command("go", "env", "GOMODCACHE").Output()
	if err != nil {
		t.Fatalf("go env GOMODCACHE: %v", err)
	}
	downloads := filepath.Join(strings.TrimSpace(string(cacheOut)), "cache", "download")
	bin := filepath.Join(work, "bin")
	// A module cache of its own: this tree's modules, served as released versions, must not
	// land in the shared cache (where a later run would find a stale copy). -modcacherw lets
	// the test remove it; -trimpath keeps the build cache reusable across runs.
	// -mod=mod: the examples' go.sum lacks this tree's modules (see TidyExamples); the go
	// command adds their lines.
	env := GoEnv(
		"GOWORK=off",
		"GOFLAGS=-mod=mod -modcacherw -trimpath",
		"GOPROXY=file://"+filepath.ToSlash(proxy)+",file://"+filepath.ToSlash(downloads),
		"GOSUMDB=off",
		"GONOSUMDB=",
		"GOPRIVATE=",
		"GONOPROXY=",
		"GOTOOLCHAIN=local",
		"GOMODCACHE="+filepath.Join(work, "modcache"),
		"GOBIN="+bin,
		"CGO_ENABLED=0",
	)
	goCmd := func(t *testing.T, dir string, args ...string) {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
		defer cancel()
		cmd := exec.CommandContext(ctx, "go", args...)
		cmd.Dir, cmd.Env = dir, env
		start := time.Now()
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("go %s (in %s): %v\n%s", strings.Join(args, " "), dir, err, out)
		}
		t.Logf("go %s: %v", strings.Join(args, " "), time.Since(start).Round(time.Millisecond))
	}

	// The server binary, installed as the README tells strangers to install it.
	srv := r.Module(Prefix + "server")
	goCmd(t, work, "install", srv.Path+"/cmd/commitlog@"+srv.Latest())

	for _, e := range r.Examples {
		name := filepath.Base(e.Dir)
		t.Run(name, func(t *testing.T) {
			if _, err := os.Stat(filepath.Join(root, e.Dir, "README.md")); err != nil {
				t.Errorf("%s has no README.md", e.Dir)
			}
			// A copy: the go command adds this tree's modules to go.sum. No `go mod tidy`: it
			// would want the tests of every dependency, which a fresh CI module cache lacks
			// (make check-modules checks that the examples are tidy).
			dir := filepath.Join(work, "src", name)
			if err := os.CopyFS(dir, os.DirFS(filepath.Join(root, e.Dir))); err != nil {
				t.Fatal(err)
			}
			goCmd(t, dir, "vet", "./...")
			exe := filepath.Join(bin, name)
			goCmd(t, dir, "build", "-o", exe, ".")
			var args []string
			if name == "client-app" {
				args = []string{startServer(t, filepath.Join(bin, "commitlog"), work)}
			}
			out := runExample(t, exe, args...)
			if want := name + ": ok"; !strings.Contains(out, want) {
				t.Fatalf("%s printed no %q:\n%s", name, want, out)
			}
			t.Logf("%s:\n%s", name, out)
		})
	}
}

func runExample(t *testing.T, exe string, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, exe, args...)
	cmd.Dir = t.TempDir()
	start := time.Now()
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("%s: %v\n%s", filepath.Base(exe), err, out)
	}
	t.Logf("ran %s in %v", filepath.Base(exe), time.Since(start).Round(time.Millisecond))
	return string(out)
}

// freePort returns a loopback port that was free a moment ago.
func freePort(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// startServer runs `commitlog serve` (a single node, on loopback) until the test ends and
// returns its API address once it accepts connections.
func startServer(t *testing.T, exe, work string) string {
	t.Helper()
	rpc, gossip := freePort(t), freePort(t)
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(rpc))
	var logs bytes.Buffer
	cmd := exec.Command(exe, "serve", "--data-dir", filepath.Join(work, "data"), "--node-name", "n1",
		"--bind-addr", net.JoinHostPort("127.0.0.1", strconv.Itoa(gossip)), "--rpc-port", strconv.Itoa(rpc), "--bootstrap-wait", "0s")
	cmd.Stdout, cmd.Stderr = &logs, &logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(30 * time.Second):
			_ = cmd.Process.Kill()
			<-exited
			t.Errorf("commitlog serve did not stop on SIGTERM; its output:\n%s", logs.String())
		}
	})
	deadline := time.Now().Add(time.Minute)
	for {
		select {
		case err := <-exited:
			exited <- err
			t.Fatalf("commitlog serve exited: %v\n%s", err, logs.String())
		default:
		}
		if c, err := net.DialTimeout("tcp", addr, time.Second); err == nil {
			_ = c.Close()
			return addr
		}
		if time.Now().After(deadline) {
			t.Fatalf("commitlog serve does not accept connections on %s:\n%s", addr, logs.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
}
