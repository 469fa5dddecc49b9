package dockertest

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// imageUser is the user the image runs as (the Dockerfile's USER).
const imageUser = 65532

// TestComposeSecureRollingRestart runs the Helm chart's topology in Docker Compose
// (deploy/compose/docker-compose.yml): three servers with stable names, --bootstrap-expect 3,
// one join list naming every server, mutual TLS and gossip key from files, a casbin ACL, the
// image's non-root user and a read-only root file system. While a client keeps writing, each
// server is restarted in turn (SIGTERM: a graceful stop that hands leadership over), the next
// only once the restarted one is ready again, as a StatefulSet's rolling update does. Every
// acknowledged write must then be read back at its offset, from every server.
func TestComposeSecureRollingRestart(t *testing.T) {
	composeCmd := compose(t)
	ctxDir, image := buildImage(t)
	bin := filepath.Join(ctxDir, "bin", "commitlog")

	// The files the chart takes from Secrets and a ConfigMap: one server certificate naming
	// every node (and valid for their host names, and for 127.0.0.1 where the test reaches
	// them), a client certificate for root, a gossip key and the policy.
	secrets, data := t.TempDir(), t.TempDir()
	run(t, secrets, nil, bin, "tls", "ca", "create", "--dir", ".", "--name-prefix", "")
	run(t, secrets, nil, bin, "tls", "cert", "create", "--server", "--dir", ".", "--name-prefix", "",
		"--node-name", "node1", "--node-name", "node2", "--node-name", "node3",
		"--dns", "node1", "--dns", "node2", "--dns", "node3", "--dns", "localhost", "--ip", "127.0.0.1")
	run(t, secrets, nil, bin, "tls", "cert", "create", "--client", "--cn", "root", "--dir", ".", "--name-prefix", "")
	run(t, secrets, nil, bin, "tls", "gossip-key", "--out", "gossip.key")
	if err := os.WriteFile(filepath.Join(secrets, "policy.csv"), []byte("p, root, *, produce\np, root, *, consume\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, n := range []string{"node1", "node2", "node3"} {
		if err := os.Mkdir(filepath.Join(data, n), 0o700); err != nil {
			t.Fatal(err)
		}
	}
	// The containers run as the image's user. Root (CI) hands it the files; another user runs
	// the containers as itself instead (it cannot give files away).
	user := fmt.Sprintf("%d:%d", imageUser, imageUser)
	if os.Geteuid() == 0 {
		for _, dir := range []string{secrets, data} {
			if err := filepath.Walk(dir, func(p string, _ os.FileInfo, err error) error {
				if err != nil {
					return err
				}
				return os.Lchown(p, imageUser, imageUser)
			}); err != nil {
				t.Fatal(err)
			}
		}
	} else {
		user = fmt.Sprintf("%d:%d", os.Getuid(), os.Getgid())
		t.Logf("not root: the containers run as %s, not as the image's user", user)
	}
	// Docker Compose v1 names containers <project>_<service>_1: the project name is kept short.
	project := fmt.Sprintf("clsecure%d", os.Getpid())
	env := []string{"COMMITLOG_IMAGE=" + image, "COMMITLOG_USER=" + user, "COMMITLOG_SECRETS=" + secrets, "COMMITLOG_DATA=" + data}
	composeArgs := func(args ...string) []string {
		return append(append(append([]string{}, composeCmd[1:]...), "-f", "deploy/compose/docker-compose.yml", "-p", project), args...)
	}
	run(t, ctxDir, env, composeCmd[0], composeArgs("up", "-d", "--no-build")...)
	t.Cleanup(func() {
		cmd := exec.Command(composeCmd[0], composeArgs("down", "-v", "--timeout", "10")...)
		cmd.Dir = ctxDir
		cmd.Env = append(os.Environ(), env...)
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Logf("compose down: %v\n%s", err, out)
		}
	})
	logs := func() string {
		cmd := exec.Command(composeCmd[0], composeArgs("logs", "--no-color", "--tail", "60")...)
		cmd.Dir = ctxDir
		cmd.Env = append(os.Environ(), env...)
		out, _ := cmd.CombinedOutput()
		return string(out)
	}
	nodes := []string{"node1", "node2", "node3"}
	// port answers the host address compose published a container port on (it changes when a
	// container restarts).
	port := func(node string, p int) string {
		return strings.TrimSpace(run(t, ctxDir, env, composeCmd[0], composeArgs("port", node, strconv.Itoa(p))...))
	}

	// The containers run as asked: not root, read-only root file system.
	for _, n := range nodes {
		id := strings.TrimSpace(run(t, ctxDir, env, composeCmd[0], composeArgs("ps", "-q", n)...))
		got := strings.TrimSpace(run(t, ctxDir, nil, "docker", "inspect", "-f", "{{.Config.User}} {{.HostConfig.ReadonlyRootfs}}", id))
		if got != user+" true" {
			t.Fatalf("%s runs as %q, want %q and a read-only root", n, got, user+" true")
		}
	}

	// Clients: root's certificate, the cluster's CA; HTTP/1.1 JSON (Connect).
	ca, err := os.ReadFile(filepath.Join(secrets, "ca.pem"))
	if err != nil {
		t.Fatal(err)
	}
	roots := x509.NewCertPool()
	roots.AppendCertsFromPEM(ca)
	cert, err := tls.LoadX509KeyPair(filepath.Join(secrets, "root-client.pem"), filepath.Join(secrets, "root-client-key.pem"))
	if err != nil {
		t.Fatal(err)
	}
	hc := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{
		TLSClientConfig: &tls.Config{RootCAs: roots, Certificates: []tls.Certificate{cert}, ServerName: "localhost"},
	}}
	plain := &http.Client{Timeout: 2 * time.Second}
	var addrMu sync.Mutex
	apiAddr, metricsAddr := map[string]string{}, map[string]string{}
	lookup := func(n string) {
		a, m := port(n, 8400), port(n, 9400)
		addrMu.Lock()
		apiAddr[n], metricsAddr[n] = a, m
		addrMu.Unlock()
	}
	for _, n := range nodes {
		lookup(n)
	}
	post := func(node, method string, body any) (map[string]any, error) {
		addrMu.Lock()
		addr := apiAddr[node]
		addrMu.Unlock()
		b, _ := json.Marshal(body)
		res, err := hc.Post("https://"+addr+"/log.v1.Log/"+method, "application/json", bytes.NewReader(b))
		if err != nil {
			return nil, err
		}
		defer res.Body.Close()
		raw, _ := io.ReadAll(res.Body)
		if res.StatusCode != http.StatusOK {
			return nil, fmt.Errorf("%s on %s: %s %s", method, node, res.Status, raw)
		}
		var out map[string]any
		return out, json.Unmarshal(raw, &out)
	}
	ready := func(node string) error {
		addrMu.Lock()
		addr := metricsAddr[node]
		addrMu.Unlock()
		res, err := plain.Get("http://" + addr + "/readyz")
		if err != nil {
			return err
		}
		defer res.Body.Close()
		body, _ := io.ReadAll(res.Body)
		if res.StatusCode != http.StatusOK {
			return fmt.Errorf("%s", strings.TrimSpace(string(body)))
		}
		return nil
	}
	waitReady := func(node string, timeout time.Duration) {
		t.Helper()
		deadline := time.Now().Add(timeout)
		for {
			err := ready(node)
			if err == nil {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s not ready after %s: %v\n%s", node, timeout, err, logs())
			}
			time.Sleep(300 * time.Millisecond)
		}
	}
	// --bootstrap-expect 3: a leader exists only once all three found each other.
	for _, n := range nodes {
		waitReady(n, 90*time.Second)
	}
	// The CLI in a server's container needs no flags, as `kubectl exec <pod> -- /commitlog
	// cluster status` in the chart's pods: its environment names the server's own address and
	// certificate (the compose file's header documents it).
	for _, n := range nodes {
		out := run(t, ctxDir, env, composeCmd[0], composeArgs("exec", "-T", n, "/commitlog", "cluster", "status")...)
		for _, want := range nodes {
			if !strings.Contains(out, want+":8400") {
				t.Fatalf("cluster status in %s does not list %s:\n%s", n, want, out)
			}
		}
	}
	// Every server takes a write, the followers by forwarding it to the leader over mutual TLS:
	// they dial the leader at its address in Raft's configuration (its name, which its
	// certificate carries), not at the IP Raft learned from its messages.
	for _, n := range nodes {
		value := base64.StdEncoding.EncodeToString([]byte("through " + n))
		if _, err := post(n, "Produce", map[string]any{"record": map[string]any{"value": value}}); err != nil {
			t.Fatalf("a write through %s: %v\n%s", n, err, logs())
		}
	}

	// The writer: one record at a time, to the servers in turn (any server forwards writes to
	// the leader); a failed write is retried on the next server. It keeps what was acknowledged.
	type ack struct {
		offset int
		value  string
	}
	var (
		mu    sync.Mutex
		acked []ack
		fails int
	)
	ctx, stop := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i := 0; ctx.Err() == nil; i++ {
			value := base64.StdEncoding.EncodeToString([]byte("record-" + strconv.Itoa(i)))
			out, err := post(nodes[i%len(nodes)], "Produce", map[string]any{"record": map[string]any{"value": value}})
			if err != nil {
				mu.Lock()
				fails++
				mu.Unlock()
				time.Sleep(50 * time.Millisecond)
				continue
			}
			off, err := strconv.Atoi(fmt.Sprint(out["offset"]))
			if out["offset"] == nil {
				off, err = 0, nil // proto3 JSON leaves out a zero offset
			}
			if err != nil {
				t.Errorf("Produce answered offset %v", out["offset"])
				return
			}
			mu.Lock()
			acked = append(acked, ack{off, value})
			mu.Unlock()
		}
	}()
	acks := func() int {
		mu.Lock()
		defer mu.Unlock()
		return len(acked)
	}
	waitAcks := func(n int, what string) {
		t.Helper()
		deadline := time.Now().Add(30 * time.Second)
		for acks() < n {
			if time.Now().After(deadline) {
				stop()
				t.Fatalf("the writer stalled %s: %d acknowledged, want %d\n%s", what, acks(), n, logs())
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	waitAcks(20, "before the restarts")

	// The rolling restart, one server at a time, each stopped gracefully (SIGTERM).
	for _, n := range nodes {
		before := acks()
		start := time.Now()
		run(t, ctxDir, env, composeCmd[0], composeArgs("restart", "-t", "60", n)...)
		lookup(n)
		waitReady(n, 60*time.Second)
		t.Logf("%s restarted and ready in %s; %d writes acknowledged meanwhile", n, time.Since(start).Round(time.Millisecond), acks()-before)
		waitAcks(acks()+20, "after restarting "+n)
	}
	stop()
	wg.Wait()
	mu.Lock()
	defer mu.Unlock()
	t.Logf("%d writes acknowledged, %d attempts failed (retried on another server)", len(acked), fails)

	// Nothing acknowledged was lost, on any server.
	for _, n := range nodes {
		for _, a := range acked {
			out, err := post(n, "Consume", map[string]any{"offset": strconv.Itoa(a.offset)})
			if err != nil {
				t.Fatalf("Consume %d on %s: %v", a.offset, n, err)
			}
			rec, _ := out["record"].(map[string]any)
			if rec["value"] != a.value {
				t.Fatalf("%s: offset %d holds %v, want the acknowledged %s", n, a.offset, out, a.value)
			}
		}
	}
}
