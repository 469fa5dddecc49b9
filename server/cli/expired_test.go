package cli

import (
	"context"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/commitlog-go/commitlog/server/tlsutil/certgen"
)

// TestServeRefusesExpiredCertificate: serve started with an expired server certificate, logged
// the expiry and served, failing every TLS handshake (clients' and peers') while its process
// looked healthy. It refuses to start, naming the flag, the file and when the certificate
// expired, before it makes its data dir. (A SIGHUP reload already refused such a file.)
func TestServeRefusesExpiredCertificate(t *testing.T) {
	dir := t.TempDir()
	f := func(name string) string { return filepath.Join(dir, name) }
	past := func() time.Time { return time.Now().AddDate(0, 0, -30) }
	ca, err := certgen.CreateCA(certgen.Options{CommonName: "test CA", Now: past})
	if err != nil {
		t.Fatal(err)
	}
	if err := ca.WriteFiles(f("ca.pem"), f("ca-key.pem"), false); err != nil {
		t.Fatal(err)
	}
	srvCert, err := certgen.CreateServerCert(ca, certgen.Options{CommonName: "n0", DNSNames: []string{"localhost", DefaultPeerServerName, "n0.node.commitlog"}, Days: 7, Now: past})
	if err != nil {
		t.Fatal(err)
	}
	if err := srvCert.WriteFiles(f("server.pem"), f("server-key.pem"), false); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(f("gossip.key"), []byte(mustRun(t, "tls", "gossip-key")), 0o600); err != nil {
		t.Fatal(err)
	}

	ctx, cancel := context.WithTimeout(t.Context(), 15*time.Second) // a server that starts stops then
	defer cancel()
	code, out, errOut := run(t, ctx, "serve", "--node-name", "n0", "--data-dir", f("data"), "--rpc-port", "-1",
		"--bind-addr", "127.0.0.1:0", "--bootstrap-wait", "0s", "--gossip-profile", "test", "--log-level", "error",
		"--gossip-key-file", f("gossip.key"),
		"--server-tls-cert-file", f("server.pem"), "--server-tls-key-file", f("server-key.pem"), "--server-tls-ca-file", f("ca.pem"))
	notAfter := srvCert.Cert.NotAfter.UTC().Format(time.RFC3339)
	if code == 0 || strings.Contains(out, "serving") || !strings.Contains(errOut, "--server-tls-") ||
		!strings.Contains(errOut, "expired") || !strings.Contains(errOut, f("server.pem")) || !strings.Contains(errOut, notAfter) {
		t.Errorf("serve with an expired certificate: exit %d, stdout %q, stderr %q; want a refusal naming --server-tls-*, %s and its expiry %s",
			code, out, errOut, f("server.pem"), notAfter)
	}
	if _, err := os.Stat(f("data")); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("serve made its data dir before refusing the certificate (%v)", err)
	}
}
