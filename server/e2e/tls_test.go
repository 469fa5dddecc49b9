package e2e

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/commitlog-go/commitlog/server/tlsutil"
)

// TestTLSCluster forms a 3-node cluster of real processes with mutual TLS on the API and
// between peers, encrypted gossip and the seed's ACL files, everything made with the binary's
// own `commitlog tls` commands (the seed could never form a TLS cluster from its CLI). root
// produces through a follower (forwarded under root's identity) and consumes; nobody is denied;
// after kill -9 of the leader the cluster continues and every acknowledged record is on every
// node.
func TestTLSCluster(t *testing.T) {
	dir := t.TempDir()
	mustCLI(t, "", "tls", "ca", "create", "--dir", dir)
	mustCLI(t, "", "tls", "cert", "create", "--server", "--dir", dir)
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
		"--peer-tls-cert-file", f("commitlog-server.pem"), "--peer-tls-key-file", f("commitlog-server-key.pem"),
		"--peer-tls-ca-file", f("commitlog-ca.pem"), "--peer-tls-server-name", "server.commitlog",
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

	leader.Kill()
	next := c.waitNewLeader(leader)
	produce(next, "d", "e")
	leader.Start()
	leader.WaitReady()
	requireInvariants(t, led, readAllLogs(t, nodes, led.nextAfterAcked()))
}
