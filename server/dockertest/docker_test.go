// Package dockertest proves that the repository's Dockerfile and docker-compose.yml run a
// working 3-node cluster: it builds the static binary and the FROM-scratch image, starts the
// compose project, produces through node1's published port (whichever node leads, followers
// forward), reads the records back, and removes everything it created. Where no Docker engine
// (or no compose tool) is available the test is skipped with a message saying so, or fails when
// COMMITLOG_STRICT is set (CI sets it).
package dockertest

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// compose returns the command that runs Docker Compose here (the plugin or docker-compose).
func compose(t *testing.T) []string {
	t.Helper()
	if _, err := exec.LookPath("docker"); err != nil {
		skipOrFail(t, "docker is not installed: skipping the docker compose test")
	}
	if out, err := exec.Command("docker", "info").CombinedOutput(); err != nil {
		skipOrFail(t, fmt.Sprintf("no Docker engine answers (docker info: %v): skipping the docker compose test\n%s", err, out))
	}
	if err := exec.Command("docker", "compose", "version").Run(); err == nil {
		return []string{"docker", "compose"}
	}
	if _, err := exec.LookPath("docker-compose"); err == nil {
		return []string{"docker-compose"}
	}
	skipOrFail(t, "neither `docker compose` nor docker-compose is installed (`make test-deps` installs it): skipping the docker compose test")
	return nil
}

// skipOrFail skips the test with reason, or fails it when COMMITLOG_STRICT is set: CI sets it,
// so that a test that could not run there is a failure, not a quiet "ok".
func skipOrFail(t testing.TB, reason string) {
	t.Helper()
	if os.Getenv("COMMITLOG_STRICT") != "" {
		t.Fatalf("COMMITLOG_STRICT is set, so this cannot be skipped: %s", reason)
	}
	t.Skip(reason)
}

func run(t *testing.T, dir string, env []string, name string, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), env...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	return string(out)
}

// buildImage builds the static binary and the image from the repository's Dockerfile, in a build
// context of its own holding what the Dockerfile copies and the compose files, and returns that
// directory and the image's tag (removed when the test ends).
func buildImage(t *testing.T) (ctxDir, image string) {
	t.Helper()
	root, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	ctxDir = t.TempDir()
	run(t, filepath.Join(root, "server"), []string{"CGO_ENABLED=0"}, "go", "build", "-trimpath", "-o", filepath.Join(ctxDir, "bin", "commitlog"), "./cmd/commitlog")
	for _, f := range []string{"Dockerfile", "docker-compose.yml", ".dockerignore", "deploy/docker/data/README", "deploy/compose/docker-compose.yml"} {
		b, err := os.ReadFile(filepath.Join(root, f))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.MkdirAll(filepath.Dir(filepath.Join(ctxDir, f)), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(ctxDir, f), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	image = fmt.Sprintf("commitlog:test%d-%s", os.Getpid(), strings.ToLower(t.Name()))
	run(t, ctxDir, nil, "docker", "build", "-t", image, ".")
	t.Cleanup(func() { _ = exec.Command("docker", "rmi", "-f", image).Run() })
	return ctxDir, image
}

func TestComposeCluster(t *testing.T) {
	composeCmd := compose(t)
	if ln, err := net.Listen("tcp", "127.0.0.1:8400"); err != nil {
		skipOrFail(t, fmt.Sprintf("127.0.0.1:8400 is in use (compose publishes node1's API there): %v", err))
	} else {
		ln.Close()
	}
	ctxDir, image := buildImage(t)
	env := []string{"COMMITLOG_IMAGE=" + image}
	project := fmt.Sprintf("commitlogtest%d", os.Getpid())

	up := append(append([]string{}, composeCmd[1:]...), "-p", project, "up", "-d", "--no-build")
	run(t, ctxDir, env, composeCmd[0], up...)
	t.Cleanup(func() {
		down := append(append([]string{}, composeCmd[1:]...), "-p", project, "down", "-v", "--timeout", "10")
		cmd := exec.Command(composeCmd[0], down...)
		cmd.Dir = ctxDir
		cmd.Env = append(os.Environ(), env...)
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Logf("compose down: %v\n%s", err, out)
		}
	})
	logs := func() string {
		cmd := exec.Command(composeCmd[0], append(append([]string{}, composeCmd[1:]...), "-p", project, "logs", "--no-color")...)
		cmd.Dir = ctxDir
		cmd.Env = append(os.Environ(), env...)
		out, _ := cmd.CombinedOutput()
		return string(out)
	}

	hc := &http.Client{Timeout: 5 * time.Second}
	post := func(method string, body any) (map[string]any, int, error) {
		b, _ := json.Marshal(body)
		res, err := hc.Post("http://127.0.0.1:8400/log.v1.Log/"+method, "application/json", bytes.NewReader(b))
		if err != nil {
			return nil, 0, err
		}
		defer res.Body.Close()
		raw, _ := io.ReadAll(res.Body)
		var out map[string]any
		_ = json.Unmarshal(raw, &out)
		return out, res.StatusCode, nil
	}

	// Wait until the three nodes formed one cluster.
	deadline := time.Now().Add(90 * time.Second)
	for {
		out, code, err := post("GetServers", map[string]any{})
		if err == nil && code == 200 {
			if servers, _ := out["servers"].([]any); len(servers) == 3 {
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("no 3-node cluster after 90s (last: %v %d %v)\n%s", out, code, err, logs())
		}
		time.Sleep(500 * time.Millisecond)
	}

	values := []string{"aGk=", "dGhlcmU=", "Y29tbWl0bG9n"} // "hi", "there", "commitlog"
	for i, v := range values {
		var out map[string]any
		var code int
		var err error
		for range 20 { // an election may still be settling: Unavailable is retried (nothing was appended)
			out, code, err = post("Produce", map[string]any{"record": map[string]any{"value": v}})
			if err == nil && code == 200 {
				break
			}
			time.Sleep(500 * time.Millisecond)
		}
		if err != nil || code != 200 {
			t.Fatalf("Produce %d: %v %d %v\n%s", i, out, code, err, logs())
		}
		if got := fmt.Sprint(out["offset"]); i > 0 && got != fmt.Sprint(i) {
			t.Fatalf("Produce %d answered offset %v", i, out["offset"])
		}
	}
	for i, v := range values {
		out, code, err := post("Consume", map[string]any{"offset": i})
		if err != nil || code != 200 {
			t.Fatalf("Consume %d: %v %d %v", i, out, code, err)
		}
		rec, _ := out["record"].(map[string]any)
		if rec["value"] != v {
			t.Fatalf("Consume %d = %v, want value %s", i, out, v)
		}
	}
}

// TestImageDefaultCommandKeepsItsData: the image's default command, run again in a new container
// on the same data volume (how a container is upgraded), is the same node: it leads its
// single-node cluster again and serves what the first container stored. The default node name,
// the host name, would be the new container's ID, absent from the cluster its data holds.
func TestImageDefaultCommandKeepsItsData(t *testing.T) {
	if _, err := exec.LookPath("docker"); err != nil {
		skipOrFail(t, "docker is not installed (`make test-deps` installs it)")
	}
	_, image := buildImage(t)
	name := fmt.Sprintf("commitlogtest%d-data", os.Getpid())
	volume := name + "-vol"
	t.Cleanup(func() {
		_ = exec.Command("docker", "rm", "-f", name).Run()
		_ = exec.Command("docker", "volume", "rm", "-f", volume).Run()
	})
	start := func() string {
		t.Helper()
		run(t, ".", nil, "docker", "run", "-d", "--name", name, "-v", volume+":/data", "-p", "127.0.0.1::8400",
			"-e", "COMMITLOG_BOOTSTRAP_WAIT=0s", image)
		out := strings.TrimSpace(run(t, ".", nil, "docker", "port", name, "8400/tcp"))
		return strings.Split(out, "\n")[0]
	}
	hc := &http.Client{Timeout: 5 * time.Second}
	call := func(addr, method string, body any) (map[string]any, error) {
		b, _ := json.Marshal(body)
		var last error
		for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(500 * time.Millisecond) {
			res, err := hc.Post("http://"+addr+"/log.v1.Log/"+method, "application/json", bytes.NewReader(b))
			if err != nil {
				last = err
				continue
			}
			raw, _ := io.ReadAll(res.Body)
			res.Body.Close()
			if res.StatusCode != 200 {
				last = fmt.Errorf("HTTP %d: %s", res.StatusCode, raw)
				continue
			}
			var out map[string]any
			if err := json.Unmarshal(raw, &out); err != nil {
				return nil, err
			}
			return out, nil
		}
		logs, _ := exec.Command("docker", "logs", name).CombinedOutput()
		return nil, fmt.Errorf("%s: %w\n%s", method, last, logs)
	}
	addr := start()
	if _, err := call(addr, "Produce", map[string]any{"record": map[string]any{"value": "aGk="}}); err != nil {
		t.Fatal(err)
	}
	run(t, ".", nil, "docker", "rm", "-f", name)
	addr = start()
	out, err := call(addr, "Consume", map[string]any{"offset": 0})
	if err != nil {
		t.Fatalf("the new container on the same volume: %v", err)
	}
	if rec, _ := out["record"].(map[string]any); rec["value"] != "aGk=" {
		t.Fatalf("Consume 0 = %v, want the record the first container stored", out)
	}
	// It leads again: a write is acknowledged, after the first.
	out, err = call(addr, "Produce", map[string]any{"record": map[string]any{"value": "dGhlcmU="}})
	if err != nil {
		t.Fatalf("a write to the new container: %v", err)
	}
	if fmt.Sprint(out["offset"]) != "1" {
		t.Fatalf("Produce answered %v, want offset 1", out)
	}
}
