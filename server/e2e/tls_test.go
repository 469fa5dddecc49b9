package e2e

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/commitlog-go/commitlog/server/tlsutil"
)

// TestTLSCluster forms a 3-node cluster of real processes secured as the README shows: mutual
// TLS and the seed's ACL files on the API, encrypted gossip, and no --peer-tls-* flags (the
// server certificate, which names n1, n2 and n3, secures Raft too), everything made with the
// binary's own `commitlog tls` commands. root produces through a follower (forwarded under
// root's identity) and consumes; nobody is denied; a plaintext `commitlog serve` that knows the
// gossip key joins the gossip but never the Raft configuration, and no record reaches its data
// dir; after kill -9 of the leader the cluster continues and every acknowledged record is on
// every node.
func TestTLSCluster(t *testing.T) {
	dir := t.TempDir()
	mustCLI(t, "", "tls", "ca", "create", "--dir", dir)
	mustCLI(t, "", "tls", "cert", "create", "--server", "--dir", dir, "--node-name", "n1", "--node-name", "n2", "--node-name", "n3")
	mustCLI(t, "", "tls", "cert", "create", "--client", "--cn", "root", "--dir", dir)
	mustCLI(t, "", "tls", "cert", "create", "--client", "--cn", "nobody", "--dir", dir)
	key := mustCLI(t, "", "tls", "gossip-key").Stdout
	keyFile := filepath.Join(dir, "gossip.key")
	if err := os.WriteFile(keyFile, []byte(key), 0o600); err != nil {
		t.Fatal(err)
	}
	f := func(name string) string { return filepath.Join(dir, name) }
	aclDir := filepath.Join("..", "..", "authz", "casbin", "testdata", "seed")
	args := append([]string{
		"--server-tls-cert-file", f("commitlog-server.pem"), "--server-tls-key-file", f("commitlog-server-key.pem"),
		"--server-tls-ca-file", f("commitlog-ca.pem"),
		"--acl-model-file", filepath.Join(aclDir, "model.conf"), "--acl-policy-file", filepath.Join(aclDir, "policy.csv"),
		"--gossip-key-file", keyFile,
	}, clusterArgs...)
	rootTLS, err := tlsutil.ClientConfig(f("commitlog-root-client.pem"), f("commitlog-root-client-key.pem"), f("commitlog-ca.pem"), "")
	if err != nil {
		t.Fatal(err)
	}
	clientFlags := func(who string) []string {
		return []string{"--tls-cert-file", f("commitlog-" + who + "-client.pem"), "--tls-key-file", f("commitlog-" + who + "-client-key.pem"),
			"--tls-ca-file", f("commitlog-ca.pem")}
	}

	first := StartNode(t, NodeConfig{Name: "n1", Args: args, ClientTLS: rootTLS})
	waitLeader(t, first)
	nodes := []*Node{first}
	for i := 2; i <= 3; i++ {
		n := NewNode(t, NodeConfig{Name: fmt.Sprintf("n%d", i), Join: []string{first.BindAddr}, Args: args, ClientTLS: rootTLS})
		n.Start()
		nodes = append(nodes, n)
	}
	for _, n := range nodes[1:] {
		n.WaitReady()
	}
	c := &cluster{t: t, nodes: nodes}
	leader := c.waitVoters(3)
	follower := c.followers(leader)[0]

	led := newLedger()
	produce := func(at *Node, values ...string) {
		t.Helper()
		for _, v := range values {
			led.attempt(v)
		}
		out := mustCLI(t, "", append(append([]string{"produce", "--addr", at.Addr}, clientFlags("root")...), values...)...)
		offs := parseOffsets(t, out.Stdout)
		if len(offs) != len(values) {
			t.Fatalf("produce of %d values printed %d offsets: %q", len(values), len(offs), out.Stdout)
		}
		for i, off := range offs {
			led.ack(off, values[i])
		}
	}
	produce(follower, "a", "b", "c")
	if out := mustCLI(t, "", append([]string{"consume", "--addr", follower.Addr, "--from", "0"}, clientFlags("root")...)...); out.Stdout != "a\nb\nc\n" {
		t.Fatalf("consume as root = %q", out.Stdout)
	}
	denied := runCLI(t, "", append([]string{"produce", "--addr", follower.Addr, "--timeout", "3s"}, append(clientFlags("nobody"), "x")...)...)
	if denied.Code == 0 || !strings.Contains(strings.ToLower(denied.Stderr), "permission") {
		t.Fatalf("produce as nobody: %s", denied)
	}
	plain := runCLI(t, "", "produce", "--addr", follower.Addr, "--timeout", "3s", "x")
	if plain.Code == 0 {
		t.Fatalf("plaintext produce to a TLS cluster succeeded: %s", plain)
	}

	// A stranger with the gossip key but no peer certificate: the leader tries it and refuses.
	mallory := NewNode(t, NodeConfig{Name: "mallory", Join: []string{first.BindAddr}, Args: append([]string{"--gossip-key-file", keyFile}, clusterArgs...)})
	mallory.Start()
	refused := func(n *Node) bool {
		return strings.Contains(n.Log(), `msg="refusing server into the Raft configuration"`) && strings.Contains(n.Log(), "id=mallory")
	}
	waitUntil(t, readyTimeout, "the leader refuses mallory", func() bool { return refused(leader) })
	checkNotMember(t, leader, "mallory")
	const secret = "secret-after-mallory-joined"
	produce(follower, secret)

	leader.Kill()
	next := c.waitNewLeader(leader)
	produce(next, "d", "e")
	leader.Start()
	leader.WaitReady()
	requireInvariants(t, led, readAllLogs(t, nodes, led.nextAfterAcked()))
	waitUntil(t, readyTimeout, "the new leader refuses mallory", func() bool { return refused(next) })
	checkNotMember(t, next, "mallory")
	if exited, code := mallory.Exited(); exited {
		t.Fatalf("mallory exited %d: it should have kept trying", code)
	}
	err = filepath.WalkDir(mallory.DataDir(), func(path string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		data, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		if strings.Contains(string(data), secret) {
			t.Errorf("%s holds a record of the cluster", path)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// waitUntil polls cond until it holds, or fails the test after d.
func waitUntil(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting until %s", d, what)
		}
		time.Sleep(pollEvery)
	}
}

// checkNotMember fails if the leader n lists id among the servers of its Raft configuration.
func checkNotMember(t *testing.T, n *Node, id string) {
	t.Helper()
	resp, err := getServers(n)
	if err != nil {
		t.Fatalf("GetServers on %s: %v", n.Name(), err)
	}
	for _, s := range resp.GetServers() {
		if s.GetId() == id {
			t.Fatalf("%s lists %s in the Raft configuration: %v", n.Name(), id, resp.GetServers())
		}
	}
}
