package cli

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestClusterStatusShowsDeniedNotUnreachable: `cluster status` run by an identity the policy
// allows admin alone (the one that runs cluster remove) asks each server for its bounds, which
// needs consume: every server refused, and the table showed each one "unreachable", as if it
// were down, just before the operator chooses which to remove. A refusal now shows "denied",
// with the server's error below the table.
func TestClusterStatusShowsDeniedNotUnreachable(t *testing.T) {
	dir := t.TempDir()
	f := func(name string) string { return filepath.Join(dir, name) }
	mustRun(t, "tls", "ca", "create", "--dir", dir)
	mustRun(t, "tls", "cert", "create", "--server", "--dir", dir, "--node-name", "status-node")
	mustRun(t, "tls", "cert", "create", "--client", "--cn", "ops", "--dir", dir)
	if err := os.WriteFile(f("gossip.key"), []byte(mustRun(t, "tls", "gossip-key")), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(f("policy.csv"), []byte("p, ops, *, admin\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	addr := startServe(t,
		"--data-dir", f("data"), "--node-name", "status-node", "--bind-addr", "127.0.0.1:0", "--rpc-port", "-1",
		"--log-level", "error", "--gossip-key-file", f("gossip.key"),
		"--server-tls-cert-file", f("commitlog-server.pem"), "--server-tls-key-file", f("commitlog-server-key.pem"),
		"--server-tls-ca-file", f("commitlog-ca.pem"), "--peer-tls-server-name", DefaultPeerServerName,
		"--acl-policy-file", f("policy.csv"),
	)
	out := mustRun(t, "cluster", "status", "--addr", addr, "--timeout", "10s", "--tls-ca-file", f("commitlog-ca.pem"),
		"--tls-cert-file", f("commitlog-ops-client.pem"), "--tls-key-file", f("commitlog-ops-client-key.pem"))
	if strings.Contains(out, "unreachable") || !strings.Contains(out, "denied") || !strings.Contains(out, "permission denied") {
		t.Errorf("cluster status as an admin-only identity printed\n%s\nwant the server shown denied (not unreachable), with the refusal", out)
	}
}
