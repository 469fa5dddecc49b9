package cli

import (
	"crypto/tls"
	"crypto/x509"
	"net"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// replaceFile writes data to path atomically, as an operator replacing a file should.
func replaceFile(t *testing.T, path string, data []byte) {
	t.Helper()
	tmp := path + ".new"
	if err := os.WriteFile(tmp, data, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
}

// poll calls cond until it holds, failing t after 30 s.
func poll(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting until %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestServeSIGHUPReloads sends SIGHUP to a TLS + ACL `commitlog serve`: a good policy file
// takes effect, a bad one is logged and the previous policy kept; a rotated server certificate
// is what the next handshake sees, and a broken one keeps the previous certificate.
func TestServeSIGHUPReloads(t *testing.T) {
	dir := t.TempDir()
	f := func(name string) string { return filepath.Join(dir, name) }
	mustRun(t, "tls", "ca", "create", "--dir", dir)
	mustRun(t, "tls", "cert", "create", "--server", "--node-name", "hup-node", "--dir", dir)
	mustRun(t, "tls", "cert", "create", "--server", "--node-name", "hup-node", "--cn", "rotated", "--dir", dir)
	mustRun(t, "tls", "gossip-key", "--out", f("gossip.key"))
	mustRun(t, "tls", "cert", "create", "--client", "--cn", "root", "--dir", dir)
	mustRun(t, "tls", "cert", "create", "--client", "--cn", "nobody", "--dir", dir)
	if err := os.MkdirAll(f("live"), 0o700); err != nil {
		t.Fatal(err)
	}
	copyTo := func(src, dst string) {
		t.Helper()
		data, err := os.ReadFile(src)
		if err != nil {
			t.Fatal(err)
		}
		replaceFile(t, dst, data)
	}
	copyTo(f("commitlog-server.pem"), f("live/server.pem"))
	copyTo(f("commitlog-server-key.pem"), f("live/server-key.pem"))
	policy := f("live/policy.csv")
	replaceFile(t, policy, []byte("p, root, *, produce\np, root, *, consume\n"))

	var logs syncBuffer
	addr := startServeOutErr(t, &syncBuffer{}, &logs,
		"--data-dir", f("data"), "--node-name", "hup-node", "--bind-addr", "127.0.0.1:0", "--rpc-port", "-1",
		"--server-tls-cert-file", f("live/server.pem"), "--server-tls-key-file", f("live/server-key.pem"),
		"--server-tls-ca-file", f("commitlog-ca.pem"),
		"--peer-tls-cert-file", f("commitlog-server.pem"), "--peer-tls-key-file", f("commitlog-server-key.pem"),
		"--peer-tls-ca-file", f("commitlog-ca.pem"), "--peer-tls-server-name", DefaultPeerServerName,
		"--acl-model-file", filepath.Join(seedACLDir, "model.conf"), "--acl-policy-file", policy,
		"--gossip-key-file", f("gossip.key"),
	)
	as := func(who string) []string {
		return []string{"--addr", addr, "--timeout", "10s", "--tls-ca-file", f("commitlog-ca.pem"),
			"--tls-cert-file", f("commitlog-" + who + "-client.pem"), "--tls-key-file", f("commitlog-" + who + "-client-key.pem")}
	}
	mustRun(t, append([]string{"produce"}, append(as("root"), "r0")...)...)
	nobodyConsumes := func() bool {
		code, _, _ := run(t, t.Context(), append([]string{"consume"}, as("nobody")...)...)
		return code == 0
	}
	if nobodyConsumes() {
		t.Fatal("nobody may consume before the policy grants it")
	}
	hup := func() {
		t.Helper()
		if err := syscall.Kill(os.Getpid(), syscall.SIGHUP); err != nil {
			t.Fatal(err)
		}
	}

	// A good policy: nobody may now consume.
	replaceFile(t, policy, []byte("p, root, *, produce\np, root, *, consume\np, nobody, *, consume\n"))
	hup()
	poll(t, "the new policy lets nobody consume", nobodyConsumes)

	// A bad policy: logged, the previous one kept.
	replaceFile(t, policy, []byte("p, nobody, *\n"))
	hup()
	poll(t, "the failed reload is logged", func() bool { return strings.Contains(logs.String(), "reload failed") })
	if !strings.Contains(logs.String(), "policy.csv") {
		t.Errorf("the reload error does not name the policy file:\n%s", logs.String())
	}
	if !nobodyConsumes() {
		t.Error("after a bad policy file, the previous policy (nobody may consume) was not kept")
	}
	if code, _, errOut := run(t, t.Context(), append([]string{"produce"}, append(as("nobody"), "x")...)...); code == 0 || !strings.Contains(strings.ToLower(errOut), "permission") {
		t.Errorf("nobody's produce after the bad policy: exit %d, %q; want permission denied", code, errOut)
	}

	// Certificate rotation: the next handshake presents the new certificate.
	pool := x509.NewCertPool()
	pool.AddCert(parseCert(t, f("commitlog-ca.pem")))
	client, err := tls.LoadX509KeyPair(f("commitlog-root-client.pem"), f("commitlog-root-client-key.pem"))
	if err != nil {
		t.Fatal(err)
	}
	presented := func() string {
		t.Helper()
		conn, err := tls.DialWithDialer(&net.Dialer{Timeout: 10 * time.Second}, "tcp", addr,
			&tls.Config{RootCAs: pool, Certificates: []tls.Certificate{client}, ServerName: "localhost", NextProtos: []string{"h2"}})
		if err != nil {
			t.Fatalf("TLS dial: %v", err)
		}
		defer conn.Close()
		return conn.ConnectionState().PeerCertificates[0].Subject.CommonName
	}
	if cn := presented(); cn != "server" {
		t.Fatalf("before rotation the server presented %q", cn)
	}
	copyTo(f("commitlog-rotated-server.pem"), f("live/server.pem"))
	copyTo(f("commitlog-rotated-server-key.pem"), f("live/server-key.pem"))
	before := strings.Count(logs.String(), "reload failed")
	hup()
	poll(t, "the rotated certificate is presented", func() bool { return presented() == "rotated" })
	// The policy file is still bad: that part of the reload fails again (logged once the whole
	// reload is done), while the certificates load.
	poll(t, "the still bad policy is logged again", func() bool { return strings.Count(logs.String(), "reload failed") == before+1 })

	// A broken certificate: logged, the rotated one kept.
	replaceFile(t, f("live/server.pem"), []byte("garbage"))
	hup()
	poll(t, "the broken certificate is logged", func() bool { return strings.Count(logs.String(), "reload failed") >= before+2 })
	if !strings.Contains(logs.String(), "server TLS credentials") {
		t.Errorf("the reload error does not say the server certificate failed:\n%s", logs.String())
	}
	if cn := presented(); cn != "rotated" {
		t.Errorf("after a broken certificate file the server presented %q, want the previous (rotated)", cn)
	}
	mustRun(t, append([]string{"consume"}, as("root")...)...)
}
