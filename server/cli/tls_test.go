package cli

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/commitlog-go/commitlog/server/tlsutil/certgen"
	"github.com/commitlog-go/commitlog/transport/mux"
)

// seedACLDir holds the seed's model.conf and policy.csv (root may produce and consume).
const seedACLDir = "../../authz/casbin/testdata/seed"

// run runs the commitlog program in-process and returns its exit code, stdout and stderr.
func run(t *testing.T, ctx context.Context, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errOut bytes.Buffer
	code = Main(ctx, append([]string{"commitlog"}, args...), strings.NewReader(""), &out, &errOut)
	return code, out.String(), errOut.String()
}

// mustRun runs the program and fails the test unless it exits 0.
func mustRun(t *testing.T, args ...string) string {
	t.Helper()
	code, out, errOut := run(t, t.Context(), args...)
	if code != 0 {
		t.Fatalf("commitlog %s: exit %d\nstdout: %s\nstderr: %s", strings.Join(args, " "), code, out, errOut)
	}
	return out
}

// checkFile asserts that path exists with mode and holds one PEM block of type typ.
func checkFile(t *testing.T, path string, mode fs.FileMode, typ string) []byte {
	t.Helper()
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	if fi.Mode().Perm() != mode {
		t.Errorf("%s: mode %v, want %v", path, fi.Mode().Perm(), mode)
	}
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := pem.Decode(data)
	if b == nil || b.Type != typ {
		t.Fatalf("%s: want a PEM %s block, got %q", path, typ, data)
	}
	return b.Bytes
}

func parseCert(t *testing.T, path string) *x509.Certificate {
	t.Helper()
	c, err := x509.ParseCertificate(checkFile(t, path, 0o644, "CERTIFICATE"))
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	return c
}

func TestTLSCreateWritesFilesInTheCurrentDirectory(t *testing.T) {
	dir := t.TempDir()
	t.Chdir(dir)

	out := mustRun(t, "tls", "ca", "create")
	if !strings.Contains(out, "commitlog-ca.pem") || !strings.Contains(out, "commitlog-ca-key.pem") {
		t.Errorf("ca create output does not name the files it wrote:\n%s", out)
	}
	mustRun(t, "tls", "cert", "create", "--server")
	mustRun(t, "tls", "cert", "create", "--server", "--cn", "node-1", "--dns", "node-1.example", "--ip", "10.0.0.1", "--node-name", "node-1")
	mustRun(t, "tls", "cert", "create", "--client", "--cn", "root")
	host, err := os.Hostname()
	if err != nil {
		t.Fatal(err)
	}

	ca := parseCert(t, filepath.Join(dir, "commitlog-ca.pem"))
	if !ca.IsCA || ca.Subject.CommonName != DefaultCACommonName {
		t.Errorf("CA: IsCA %t, CN %q", ca.IsCA, ca.Subject.CommonName)
	}
	pool := x509.NewCertPool()
	pool.AddCert(ca)
	for _, tc := range []struct {
		file     string
		cn       string
		usage    x509.ExtKeyUsage
		dnsNames []string
		ips      []string
	}{
		// Without --node-name, a server certificate names the node serve runs by default: the host.
		{"commitlog-server", "server", x509.ExtKeyUsageServerAuth, []string{"localhost", DefaultPeerServerName, host + ".node.commitlog"}, []string{"127.0.0.1", "::1"}},
		{"commitlog-node-1-server", "node-1", x509.ExtKeyUsageServerAuth, []string{"node-1.example", "node-1.node.commitlog"}, []string{"10.0.0.1"}},
		{"commitlog-server", "server", x509.ExtKeyUsageClientAuth, nil, nil}, // peers dial with it
		{"commitlog-root-client", "root", x509.ExtKeyUsageClientAuth, nil, nil},
	} {
		c := parseCert(t, filepath.Join(dir, tc.file+".pem"))
		checkFile(t, filepath.Join(dir, tc.file+"-key.pem"), 0o600, "PRIVATE KEY")
		if c.Subject.CommonName != tc.cn {
			t.Errorf("%s: CN %q, want %q", tc.file, c.Subject.CommonName, tc.cn)
		}
		if _, err := c.Verify(x509.VerifyOptions{Roots: pool, KeyUsages: []x509.ExtKeyUsage{tc.usage}}); err != nil {
			t.Errorf("%s: does not verify for %v: %v", tc.file, tc.usage, err)
		}
		var ips []string
		for _, ip := range c.IPAddresses {
			ips = append(ips, ip.String())
		}
		if tc.dnsNames != nil && (!slices.Equal(c.DNSNames, tc.dnsNames) || !slices.Equal(ips, tc.ips)) {
			t.Errorf("%s: SANs %v %v, want %v %v", tc.file, c.DNSNames, ips, tc.dnsNames, tc.ips)
		}
	}
	root := parseCert(t, filepath.Join(dir, "commitlog-root-client.pem"))
	if _, err := root.Verify(x509.VerifyOptions{Roots: pool, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}); err == nil {
		t.Error("a client certificate verifies for server authentication")
	}
}

func TestTLSCreateRefusesToOverwriteWithoutForce(t *testing.T) {
	dir := t.TempDir()
	mustRun(t, "tls", "ca", "create", "--dir", dir)
	mustRun(t, "tls", "cert", "create", "--client", "--cn", "root", "--dir", dir)
	files := []string{"commitlog-ca.pem", "commitlog-ca-key.pem", "commitlog-root-client.pem", "commitlog-root-client-key.pem"}
	before := map[string][]byte{}
	for _, f := range files {
		before[f], _ = os.ReadFile(filepath.Join(dir, f))
	}

	for _, args := range [][]string{
		{"tls", "ca", "create", "--dir", dir},
		{"tls", "cert", "create", "--client", "--cn", "root", "--dir", dir},
	} {
		code, _, errOut := run(t, t.Context(), args...)
		if code == 0 || !strings.Contains(errOut, "--force") {
			t.Errorf("%v: exit %d, stderr %q; want a failure naming --force", args, code, errOut)
		}
	}
	for _, f := range files {
		if now, _ := os.ReadFile(filepath.Join(dir, f)); !bytes.Equal(now, before[f]) {
			t.Errorf("%s changed without --force", f)
		}
	}

	// With --force the client certificate is replaced, still signed by the same CA.
	mustRun(t, "tls", "cert", "create", "--client", "--cn", "root", "--dir", dir, "--force")
	if now, _ := os.ReadFile(filepath.Join(dir, "commitlog-root-client.pem")); bytes.Equal(now, before["commitlog-root-client.pem"]) {
		t.Error("--force did not replace the certificate")
	}
	checkFile(t, filepath.Join(dir, "commitlog-root-client-key.pem"), 0o600, "PRIVATE KEY")
}

func TestTLSCreateSeedNames(t *testing.T) {
	dir := t.TempDir()
	mustRun(t, "tls", "ca", "create", "--dir", dir, "--name-prefix", "")
	mustRun(t, "tls", "cert", "create", "--server", "--dir", dir, "--name-prefix", "")
	mustRun(t, "tls", "cert", "create", "--client", "--cn", "nobody", "--dir", dir, "--name-prefix", "")
	for _, f := range []string{"ca.pem", "server.pem", "nobody-client.pem"} {
		parseCert(t, filepath.Join(dir, f))
		checkFile(t, filepath.Join(dir, strings.TrimSuffix(f, ".pem")+"-key.pem"), 0o600, "PRIVATE KEY")
	}
}

func TestTLSCreateErrors(t *testing.T) {
	dir := t.TempDir()
	mustRun(t, "tls", "ca", "create", "--dir", dir, "--days", "30")
	empty := t.TempDir()
	for _, tc := range []struct {
		name string
		args []string
		want string
	}{
		{"neither kind", []string{"tls", "cert", "create", "--dir", dir}, "exactly one of --server and --client"},
		{"both kinds", []string{"tls", "cert", "create", "--server", "--client", "--cn", "x", "--dir", dir}, "exactly one of --server and --client"},
		{"client without cn", []string{"tls", "cert", "create", "--client", "--dir", dir}, "--client needs --cn"},
		{"client with SANs", []string{"tls", "cert", "create", "--client", "--cn", "root", "--dns", "x", "--dir", dir}, "server certificates only"},
		{"cn leaves the directory", []string{"tls", "cert", "create", "--client", "--cn", "../root", "--dir", dir}, "--cn"},
		{"hidden prefix", []string{"tls", "cert", "create", "--client", "--cn", "root", "--name-prefix", ".x", "--dir", dir}, "--name-prefix"},
		{"bad ip", []string{"tls", "cert", "create", "--server", "--ip", "not-an-ip", "--dir", dir}, `--ip "not-an-ip"`},
		{"bad node name", []string{"tls", "cert", "create", "--server", "--node-name", "a b", "--dir", dir}, `--node-name: tlsutil: node name "a b"`},
		{"client with a node name", []string{"tls", "cert", "create", "--client", "--cn", "x", "--node-name", "n1", "--dir", dir}, "--node-name are for server certificates only"},
		{"no CA", []string{"tls", "cert", "create", "--server", "--dir", empty}, "tls ca create"},
		{"outlives the CA", []string{"tls", "cert", "create", "--server", "--days", "365", "--dir", dir}, "outlive"},
		{"CA days out of range", []string{"tls", "ca", "create", "--days", "-1", "--dir", empty}, "days"},
		{"arguments", []string{"tls", "ca", "create", "--dir", empty, "extra"}, "no arguments"},
		{"no such dir", []string{"tls", "ca", "create", "--dir", filepath.Join(empty, "missing")}, "--dir " + filepath.Join(empty, "missing") + " does not exist"},
		{"dir is a file", []string{"tls", "ca", "create", "--dir", filepath.Join(dir, "commitlog-ca.pem")}, "is not a directory"},
		// A stat that fails otherwise than "does not exist" (ENOTDIR: a path through a file).
		{"dir under a file", []string{"tls", "ca", "create", "--dir", filepath.Join(dir, "commitlog-ca.pem", "sub")},
			"--dir: stat " + filepath.Join(dir, "commitlog-ca.pem", "sub") + ": not a directory"},
		{"cert dir under a file", []string{"tls", "cert", "create", "--server", "--dir", filepath.Join(dir, "commitlog-ca.pem", "sub")},
			"--dir: stat " + filepath.Join(dir, "commitlog-ca.pem", "sub") + ": not a directory"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, _, errOut := run(t, t.Context(), tc.args...)
			if code == 0 || !strings.Contains(errOut, tc.want) {
				t.Errorf("exit %d, stderr %q; want a failure containing %q", code, errOut, tc.want)
			}
		})
	}
	if entries, _ := os.ReadDir(empty); len(entries) != 0 {
		t.Errorf("failed commands wrote files: %v", entries)
	}
}

func TestTLSGossipKey(t *testing.T) {
	a, b := strings.TrimSpace(mustRun(t, "tls", "gossip-key")), strings.TrimSpace(mustRun(t, "tls", "gossip-key"))
	for _, k := range []string{a, b} {
		raw, err := base64.StdEncoding.DecodeString(k)
		if err != nil || len(raw) != 32 {
			t.Errorf("gossip key %q: %d bytes, %v; want 32 bytes of base64", k, len(raw), err)
		}
	}
	if a == b {
		t.Error("two gossip keys are equal")
	}
}

// TestTLSGossipKeyOut checks that `tls gossip-key --out` writes the key to a mode 0600 file
// whatever the umask, refuses to overwrite it without --force, and replaces it with --force.
func TestTLSGossipKeyOut(t *testing.T) {
	old := syscall.Umask(0)
	t.Cleanup(func() { syscall.Umask(old) })
	path := filepath.Join(t.TempDir(), "gossip.key")

	out := mustRun(t, "tls", "gossip-key", "--out", path)
	if strings.Contains(out, "=") || !strings.Contains(out, path) {
		t.Errorf("stdout %q: want the file named and the key not printed", out)
	}
	checkKeyFile := func() string {
		t.Helper()
		fi, err := os.Stat(path)
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode().Perm() != 0o600 {
			t.Errorf("%s: mode %#o, want 0600", path, fi.Mode().Perm())
		}
		data, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		key := strings.TrimSpace(string(data))
		if raw, err := base64.StdEncoding.DecodeString(key); err != nil || len(raw) != 32 {
			t.Errorf("key file holds %q: %v; want 32 bytes of base64", data, err)
		}
		return key
	}
	first := checkKeyFile()

	code, _, errOut := run(t, t.Context(), "tls", "gossip-key", "--out", path)
	if code == 0 || !strings.Contains(errOut, "--force") {
		t.Errorf("second --out without --force: exit %d, stderr %q; want a refusal naming --force", code, errOut)
	}
	if again := checkKeyFile(); again != first {
		t.Error("the refused command changed the key file")
	}

	if err := os.Chmod(path, 0o644); err != nil {
		t.Fatal(err)
	}
	mustRun(t, "tls", "gossip-key", "--out", path, "--force")
	if replaced := checkKeyFile(); replaced == first {
		t.Error("--force did not write a new key")
	}
	if code, _, _ := run(t, t.Context(), "tls", "gossip-key", "--force"); code == 0 {
		t.Error("--force without --out was accepted")
	}
}

// syncBuffer is a bytes.Buffer safe for a writer and a poller.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

var servingRE = regexp.MustCompile(`serving the API on (\S+) `)

// startServe runs `commitlog serve args...` until the test ends and returns the API address.
func startServe(t *testing.T, args ...string) string {
	t.Helper()
	return startServeTo(t, &syncBuffer{}, args...)
}

// startServeTo is startServe writing serve's standard output to out.
func startServeTo(t *testing.T, out *syncBuffer, args ...string) string {
	t.Helper()
	return startServeOutErr(t, out, &syncBuffer{}, args...)
}

// startServeOutErr is startServe writing serve's standard output to out and its standard error
// (the logs) to errOut.
func startServeOutErr(t *testing.T, out, errOut *syncBuffer, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan int, 1)
	go func() {
		done <- Main(ctx, append([]string{"commitlog", "serve", "--bootstrap-wait", "0s"}, args...), strings.NewReader(""), out, errOut)
	}()
	t.Cleanup(func() {
		cancel()
		select {
		case code := <-done:
			if code != 0 {
				t.Errorf("serve exited %d: %s", code, errOut.String())
			}
		case <-time.After(30 * time.Second):
			t.Error("serve did not stop within 30s of its context ending")
		}
	})
	deadline := time.Now().Add(30 * time.Second)
	for {
		if m := servingRE.FindStringSubmatch(out.String()); m != nil {
			return m[1]
		}
		select {
		case code := <-done:
			done <- code
			t.Fatalf("serve exited %d before serving: %s", code, errOut.String())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("serve did not report its address within 30s: %s", errOut.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestServeWithGeneratedCertificates creates a CA, a server certificate, root and nobody
// client certificates and a gossip key with `commitlog tls`, starts `commitlog serve` with
// them and the seed's ACL files, and checks that root's produce and consume succeed, nobody is
// denied, and clients without a certificate or without TLS are refused.
func TestServeWithGeneratedCertificates(t *testing.T) {
	dir := t.TempDir()
	f := func(name string) string { return filepath.Join(dir, name) }
	mustRun(t, "tls", "ca", "create", "--dir", dir)
	mustRun(t, "tls", "cert", "create", "--server", "--dir", dir, "--node-name", "tls-node")
	mustRun(t, "tls", "cert", "create", "--client", "--cn", "root", "--dir", dir)
	mustRun(t, "tls", "cert", "create", "--client", "--cn", "nobody", "--dir", dir)
	if err := os.WriteFile(f("gossip.key"), []byte(mustRun(t, "tls", "gossip-key")), 0o600); err != nil {
		t.Fatal(err)
	}

	addr := startServe(t,
		"--data-dir", f("data"), "--node-name", "tls-node", "--bind-addr", "127.0.0.1:0", "--rpc-port", "-1",
		"--log-level", "error", "--gossip-key-file", f("gossip.key"),
		"--server-tls-cert-file", f("commitlog-server.pem"), "--server-tls-key-file", f("commitlog-server-key.pem"),
		"--server-tls-ca-file", f("commitlog-ca.pem"),
		"--peer-tls-cert-file", f("commitlog-server.pem"), "--peer-tls-key-file", f("commitlog-server-key.pem"),
		"--peer-tls-ca-file", f("commitlog-ca.pem"), "--peer-tls-server-name", DefaultPeerServerName,
		"--acl-model-file", filepath.Join(seedACLDir, "model.conf"), "--acl-policy-file", filepath.Join(seedACLDir, "policy.csv"),
	)
	as := func(who string) []string {
		return []string{"--addr", addr, "--timeout", "10s", "--tls-ca-file", f("commitlog-ca.pem"),
			"--tls-cert-file", f("commitlog-" + who + "-client.pem"), "--tls-key-file", f("commitlog-" + who + "-client-key.pem")}
	}

	if out := mustRun(t, append([]string{"produce"}, append(as("root"), "first", "second")...)...); out != "0\n1\n" {
		t.Errorf("produce as root printed %q, want the offsets 0 and 1", out)
	}
	if out := mustRun(t, append([]string{"consume"}, as("root")...)...); out != "first\nsecond\n" {
		t.Errorf("consume as root printed %q", out)
	}
	for _, tc := range []struct {
		name string
		args []string
		want string
	}{
		{"produce as nobody", append([]string{"produce"}, append(as("nobody"), "x")...), "permission"},
		{"consume as nobody", append([]string{"consume"}, as("nobody")...), "permission"},
		{"admin as root", append([]string{"cluster", "remove"}, append(as("root"), "tls-node")...), "permission"},
		{"no client certificate", []string{"produce", "--addr", addr, "--timeout", "5s", "--tls-ca-file", f("commitlog-ca.pem"), "x"}, ""},
		{"plaintext", []string{"produce", "--addr", addr, "--timeout", "5s", "x"}, ""},
		{"server name mismatch", append([]string{"produce", "--tls-server-name", "elsewhere.example"}, append(as("root"), "x")...), ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, out, errOut := run(t, t.Context(), tc.args...)
			if code == 0 || !strings.Contains(strings.ToLower(errOut), tc.want) {
				t.Errorf("exit %d, stdout %q, stderr %q; want a failure mentioning %q", code, out, errOut, tc.want)
			}
		})
	}
	// Nothing but root's records was written.
	if out := mustRun(t, append([]string{"consume"}, as("root")...)...); out != "first\nsecond\n" {
		t.Errorf("after the refused calls, consume printed %q", out)
	}
}

func TestServeSecurityFlagErrors(t *testing.T) {
	dir := t.TempDir()
	f := func(name string) string { return filepath.Join(dir, name) }
	mustRun(t, "tls", "ca", "create", "--dir", dir)
	mustRun(t, "tls", "cert", "create", "--server", "--dir", dir)
	if err := os.WriteFile(f("empty.key"), []byte("\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	gossipKey := mustRun(t, "tls", "gossip-key")
	for name, mode := range map[string]os.FileMode{"gossip.key": 0o600, "world.key": 0o644, "group.key": 0o640} {
		if err := os.WriteFile(f(name), []byte(gossipKey), 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(f(name), mode); err != nil {
			t.Fatal(err)
		}
	}
	cert, key, ca := f("commitlog-server.pem"), f("commitlog-server-key.pem"), f("commitlog-ca.pem")
	gossip := []string{"--gossip-key-file", f("gossip.key")}
	for _, tc := range []struct {
		name string
		args []string
		want string
	}{
		{"server cert without key", []string{"--server-tls-cert-file", cert}, "--server-tls-cert-file needs --server-tls-key-file"},
		{"server key without cert", []string{"--server-tls-key-file", key}, "--server-tls-key-file needs --server-tls-cert-file"},
		{"server CA alone", []string{"--server-tls-ca-file", ca}, "--server-tls-ca-file needs --server-tls-cert-file"},
		{"peer cert alone", []string{"--peer-tls-cert-file", cert}, "--peer-tls-cert-file needs --peer-tls-key-file and --peer-tls-ca-file"},
		{"peer without CA", []string{"--peer-tls-cert-file", cert, "--peer-tls-key-file", key}, "needs --peer-tls-ca-file"},
		{"peer server name alone", []string{"--peer-tls-server-name", DefaultPeerServerName}, "--peer-tls-server-name needs"},
		{"ACL without mTLS", []string{"--acl-policy-file", filepath.Join(seedACLDir, "policy.csv"), "--server-tls-cert-file", cert, "--server-tls-key-file", key},
			"--acl-policy-file needs mutual TLS"},
		{"missing certificate file", append([]string{"--server-tls-cert-file", f("nope.pem"), "--server-tls-key-file", key, "--server-tls-ca-file", ca}, gossip...), "nope.pem"},
		{"CA file without certificates", append([]string{"--server-tls-cert-file", cert, "--server-tls-key-file", key, "--server-tls-ca-file", key}, gossip...), "no certificates"},
		{"API TLS with plaintext Raft", append([]string{"--server-tls-cert-file", cert, "--server-tls-key-file", key}, gossip...),
			"Raft, on the same port, would be plaintext"},
		{"API TLS without a gossip key", []string{"--server-tls-cert-file", cert, "--server-tls-key-file", key, "--server-tls-ca-file", ca}, "TLS needs encrypted gossip: add --gossip-key-file"},
		{"peer TLS without a gossip key", []string{"--peer-tls-cert-file", cert, "--peer-tls-key-file", key, "--peer-tls-ca-file", ca}, "TLS needs encrypted gossip"},
		{"world-readable gossip key", []string{"--gossip-key-file", f("world.key")}, "accessible by group or others (mode 0644)"},
		{"group-readable gossip key", []string{"--gossip-key-file", f("group.key")}, "accessible by group or others (mode 0640)"},
		{"insecure peers and peer TLS", append([]string{"--insecure-plaintext-peers", "--peer-tls-cert-file", cert, "--peer-tls-key-file", key, "--peer-tls-ca-file", ca}, gossip...),
			"--insecure-plaintext-peers contradicts"},
		// The message named the Config field ("PeerServerTLS certificate ..."), not the flags.
		{"server certificate not naming the node", append([]string{"--node-name", "elsewhere", "--server-tls-cert-file", cert, "--server-tls-key-file", key, "--server-tls-ca-file", ca}, gossip...),
			`invalid config: peer TLS (--peer-tls-*, else --server-tls-*) certificate "server" does not name node "elsewhere"`},
		{"empty gossip key file", []string{"--gossip-key-file", f("empty.key")}, "is empty"},
		{"missing gossip key file", []string{"--gossip-key-file", f("nope.key")}, "--gossip-key-file"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			args := append([]string{"serve", "--data-dir", f("data-" + tc.name), "--bind-addr", "127.0.0.1:0", "--rpc-port", "-1"}, tc.args...)
			// A serve that wrongly starts is stopped after a while, and fails the test.
			ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
			defer cancel()
			code, _, errOut := run(t, ctx, args...)
			if code == 0 || !strings.Contains(errOut, tc.want) {
				t.Errorf("exit %d, stderr %q; want a failure containing %q", code, errOut, tc.want)
			}
			if _, err := os.Stat(f("data-" + tc.name)); err == nil {
				t.Error("serve created its data directory despite the invalid flags")
			}
		})
	}
}

// TestServeRefusesClientCertificateAsPeer dials the Raft side of a TLS node's port with
// certificates from the cluster's CA: a server certificate is accepted as a peer, a client
// certificate (root's, which the API accepts) is refused.
func TestServeRefusesClientCertificateAsPeer(t *testing.T) {
	dir := t.TempDir()
	f := func(name string) string { return filepath.Join(dir, name) }
	mustRun(t, "tls", "ca", "create", "--dir", dir)
	mustRun(t, "tls", "cert", "create", "--server", "--dir", dir, "--node-name", "peer-node")
	// A certificate of both usages from the cluster's CA that names no node, as another PKI
	// might issue to a client.
	ca, err := certgen.LoadKeyPair(f("commitlog-ca.pem"), f("commitlog-ca-key.pem"))
	if err != nil {
		t.Fatal(err)
	}
	unnamed, err := certgen.CreateServerCert(ca, certgen.Options{CommonName: "unnamed", DNSNames: []string{DefaultPeerServerName}})
	if err != nil {
		t.Fatal(err)
	}
	if err := unnamed.WriteFiles(f("unnamed.pem"), f("unnamed-key.pem"), false); err != nil {
		t.Fatal(err)
	}
	mustRun(t, "tls", "cert", "create", "--client", "--cn", "root", "--dir", dir)
	if err := os.WriteFile(f("gossip.key"), []byte(mustRun(t, "tls", "gossip-key")), 0o600); err != nil {
		t.Fatal(err)
	}
	addr := startServe(t,
		"--data-dir", f("data"), "--node-name", "peer-node", "--bind-addr", "127.0.0.1:0", "--rpc-port", "-1", "--log-level", "error",
		"--gossip-key-file", f("gossip.key"),
		"--server-tls-cert-file", f("commitlog-server.pem"), "--server-tls-key-file", f("commitlog-server-key.pem"),
		"--server-tls-ca-file", f("commitlog-ca.pem"),
		"--peer-tls-cert-file", f("commitlog-server.pem"), "--peer-tls-key-file", f("commitlog-server-key.pem"),
		"--peer-tls-ca-file", f("commitlog-ca.pem"), "--peer-tls-server-name", DefaultPeerServerName,
	)
	dialRaft := func(certFile, keyFile string) (bool, error) {
		return dialRaftPeer(t, addr, f("commitlog-ca.pem"), certFile, keyFile)
	}
	if accepted, err := dialRaft(f("commitlog-server.pem"), f("commitlog-server-key.pem")); !accepted {
		t.Errorf("a server certificate was refused as a peer: %v", err)
	}
	if accepted, _ := dialRaft(f("commitlog-root-client.pem"), f("commitlog-root-client-key.pem")); accepted {
		t.Error("a client certificate was accepted as a Raft peer")
	}
	if accepted, _ := dialRaft(f("unnamed.pem"), f("unnamed-key.pem")); accepted {
		t.Error("a certificate of both usages naming no node was accepted as a Raft peer")
	}
}

// TestServePeerCADefaultsToServerCA: --peer-tls-ca-file says it defaults to
// --server-tls-ca-file, but a node given its peer certificate and key next to mutual TLS on the
// API refused to start ("--peer-tls-cert-file and --peer-tls-key-file needs
// --peer-tls-ca-file"). It starts, and its Raft side takes a peer of that CA.
func TestServePeerCADefaultsToServerCA(t *testing.T) {
	dir := t.TempDir()
	f := func(name string) string { return filepath.Join(dir, name) }
	mustRun(t, "tls", "ca", "create", "--dir", dir)
	mustRun(t, "tls", "cert", "create", "--server", "--dir", dir, "--node-name", "peer-node")
	if err := os.WriteFile(f("gossip.key"), []byte(mustRun(t, "tls", "gossip-key")), 0o600); err != nil {
		t.Fatal(err)
	}
	addr := startServe(t,
		"--data-dir", f("data"), "--node-name", "peer-node", "--bind-addr", "127.0.0.1:0", "--rpc-port", "-1", "--log-level", "error",
		"--gossip-key-file", f("gossip.key"),
		"--server-tls-cert-file", f("commitlog-server.pem"), "--server-tls-key-file", f("commitlog-server-key.pem"),
		"--server-tls-ca-file", f("commitlog-ca.pem"),
		"--peer-tls-cert-file", f("commitlog-server.pem"), "--peer-tls-key-file", f("commitlog-server-key.pem"),
	)
	if accepted, err := dialRaftPeer(t, addr, f("commitlog-ca.pem"), f("commitlog-server.pem"), f("commitlog-server-key.pem")); !accepted {
		t.Fatalf("a peer certificate of the server CA was refused on Raft's side: %v", err)
	}
}

// dialRaftPeer opens a Raft connection to addr presenting the given certificate (verifying the
// node against caFile, as DefaultPeerServerName) and reports whether the node kept it open (a
// Raft server waits for the dialer to speak first) or refused it, with the refusal.
func dialRaftPeer(t *testing.T, addr, caFile, certFile, keyFile string) (accepted bool, err error) {
	t.Helper()
	cert, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(parseCert(t, caFile))
	conn, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if _, err := conn.Write([]byte{mux.RaftByte}); err != nil {
		t.Fatal(err)
	}
	tc := tls.Client(conn, &tls.Config{Certificates: []tls.Certificate{cert}, RootCAs: pool, ServerName: DefaultPeerServerName, MinVersion: tls.VersionTLS12})
	_ = tc.SetDeadline(time.Now().Add(5 * time.Second))
	if err := tc.Handshake(); err != nil {
		return false, err
	}
	// TLS 1.3: the server verifies the client's certificate after the client's side of the
	// handshake is done; its verdict arrives as an alert on the first read, and a Raft server
	// kept waiting for the dialer to speak times the read out.
	_ = tc.SetReadDeadline(time.Now().Add(2 * time.Second))
	_, err = tc.Read(make([]byte, 1))
	if ne, ok := errors.AsType[net.Error](err); ok && ne.Timeout() {
		return true, nil
	}
	return false, err
}

// TestServeInsecurePlaintextPeersWarns starts a node with API TLS and plaintext Raft, asked for
// with --insecure-plaintext-peers: it serves, and its start logs a warning naming the flag.
func TestServeInsecurePlaintextPeersWarns(t *testing.T) {
	dir := t.TempDir()
	f := func(name string) string { return filepath.Join(dir, name) }
	mustRun(t, "tls", "ca", "create", "--dir", dir)
	mustRun(t, "tls", "cert", "create", "--server", "--dir", dir, "--node-name", "plain-peers")
	if err := os.WriteFile(f("gossip.key"), []byte(mustRun(t, "tls", "gossip-key")), 0o600); err != nil {
		t.Fatal(err)
	}
	var out, errOut syncBuffer
	startServeOutErr(t, &out, &errOut,
		"--data-dir", f("data"), "--node-name", "plain-peers", "--bind-addr", "127.0.0.1:0", "--rpc-port", "-1",
		"--gossip-key-file", f("gossip.key"), "--insecure-plaintext-peers",
		"--server-tls-cert-file", f("commitlog-server.pem"), "--server-tls-key-file", f("commitlog-server-key.pem"))
	if logs := errOut.String(); !strings.Contains(logs, "INSECURE") || !strings.Contains(logs, "--insecure-plaintext-peers") {
		t.Errorf("no warning about plaintext peers at start; logs:\n%s", logs)
	}
}

// A Kubernetes Secret mounted into a non-root pod with an fsGroup is root-owned, mode 0440:
// accepted for a non-root process, as PostgreSQL accepts its key files. Everything else that
// group or others may access is refused.
func TestGossipKeyModeSafe(t *testing.T) {
	for _, tc := range []struct {
		perm        os.FileMode
		owner, euid int
		want        bool
	}{
		{0o600, 1000, 1000, true},
		{0o400, 65532, 65532, true},
		{0o600, 0, 0, true},
		{0o440, 0, 65532, true}, // Secret volume with fsGroup
		{0o640, 0, 65532, true}, // root-owned, group-readable
		{0o640, 0, 0, false},    // root's own key left at its umask
		{0o640, 1000, 1000, false},
		{0o440, 1000, 65532, false},
		{0o460, 0, 65532, false}, // group may write
		{0o444, 0, 65532, false}, // others may read
		{0o450, 0, 65532, false},
		{0o440, -1, 65532, false}, // owner unknown
	} {
		if got := gossipKeyModeSafe(tc.perm, tc.owner, tc.euid); got != tc.want {
			t.Errorf("gossipKeyModeSafe(%#o, owner %d, euid %d) = %v, want %v", tc.perm, tc.owner, tc.euid, got, tc.want)
		}
	}
}

// TestClientTLSFlagErrors: the client commands' --tls-* flags are loaded by client.LoadTLS;
// a bad file fails the command before any connection, naming the file.
func TestClientTLSFlagErrors(t *testing.T) {
	dir := t.TempDir()
	f := func(name string) string { return filepath.Join(dir, name) }
	mustRun(t, "tls", "ca", "create", "--dir", dir)
	mustRun(t, "tls", "cert", "create", "--client", "--cn", "root", "--dir", dir)
	if err := os.WriteFile(f("empty.pem"), nil, 0o600); err != nil {
		t.Fatal(err)
	}
	// No server listens at --addr: every case must fail on its files, not on dialling.
	for _, tc := range []struct {
		name string
		args []string
		want string
	}{
		{"empty CA file", []string{"--tls-ca-file", f("empty.pem")}, "no certificates in CA file"},
		{"missing CA file", []string{"--tls-ca-file", f("missing.pem")}, "missing.pem"},
		{"certificate without key", []string{"--tls-cert-file", f("commitlog-root-client.pem")}, "--tls-cert-file needs --tls-key-file"},
		{"key for the wrong certificate", []string{"--tls-cert-file", f("commitlog-ca.pem"), "--tls-key-file", f("commitlog-root-client-key.pem")}, "client certificate"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			args := append([]string{"produce", "--addr", "127.0.0.1:1", "--timeout", "5s"}, tc.args...)
			code, out, errOut := run(t, t.Context(), append(args, "x")...)
			if code == 0 || !strings.Contains(errOut, tc.want) {
				t.Errorf("exit %d, stdout %q, stderr %q; want a failure mentioning %q", code, out, errOut, tc.want)
			}
		})
	}
}

// TestTLSCertCreateDNSNameThatIsAnIP: an IP address given as --dns made a certificate that no
// client dialing that address accepts (TLS clients match an IP address against the IP
// addresses of a certificate only, never its DNS names), and the command said it was created
// "for 10.1.2.3". It is refused, pointing at --ip, and nothing is written.
func TestTLSCertCreateDNSNameThatIsAnIP(t *testing.T) {
	dir := t.TempDir()
	mustRun(t, "tls", "ca", "create", "--dir", dir)
	for _, addr := range []string{"10.1.2.3", "::1"} {
		code, _, errOut := run(t, t.Context(), "tls", "cert", "create", "--server", "--node-name", "n1", "--dns", "node1.example", "--dns", addr, "--dir", dir)
		if code == 0 || !strings.Contains(errOut, "--ip") || !strings.Contains(errOut, addr) {
			t.Errorf("--dns %s: exit %d, stderr %q; want a failure naming it and --ip", addr, code, errOut)
		}
		if _, err := os.Stat(filepath.Join(dir, "commitlog-server.pem")); err == nil {
			t.Fatalf("--dns %s: the certificate was written", addr)
		}
	}
	mustRun(t, "tls", "cert", "create", "--server", "--node-name", "n1", "--dns", "node1.example", "--ip", "10.1.2.3", "--dir", dir)
	cert := parseCert(t, filepath.Join(dir, "commitlog-server.pem"))
	if err := cert.VerifyHostname("10.1.2.3"); err != nil {
		t.Errorf("with --ip: %v", err)
	}
}
