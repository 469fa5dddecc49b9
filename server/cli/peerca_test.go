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

// TestServeRefusesPeerCertificateOfAnotherCA: serve started with a peer certificate issued by
// a CA that its own peer CA file does not hold; every peer refused it (the leader only logged
// "refusing server … unknown authority") and the node was silently cut off. serve exits 1,
// naming the certificate file, its issuer and the CA file, before it makes its data dir:
// with --peer-tls-*, and without them when the API's credentials secure Raft too.
func TestServeRefusesPeerCertificateOfAnotherCA(t *testing.T) {
	dir := t.TempDir()
	f := func(name string) string { return filepath.Join(dir, name) }
	for _, ca := range []struct{ cn, file string }{{"cluster CA", "ca"}, {"other CA", "other-ca"}} {
		kp, err := certgen.CreateCA(certgen.Options{CommonName: ca.cn})
		if err != nil {
			t.Fatal(err)
		}
		if err := kp.WriteFiles(f(ca.file+".pem"), f(ca.file+"-key.pem"), false); err != nil {
			t.Fatal(err)
		}
		cert, err := certgen.CreateServerCert(kp, certgen.Options{CommonName: "n0", DNSNames: []string{"localhost", DefaultPeerServerName, "n0.node.commitlog"}})
		if err != nil {
			t.Fatal(err)
		}
		if err := cert.WriteFiles(f(ca.file+"-n0.pem"), f(ca.file+"-n0-key.pem"), false); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(f("gossip.key"), []byte(mustRun(t, "tls", "gossip-key")), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		name string
		tls  []string
	}{
		{"peer flags", []string{
			"--server-tls-cert-file", f("ca-n0.pem"), "--server-tls-key-file", f("ca-n0-key.pem"), "--server-tls-ca-file", f("ca.pem"),
			"--peer-tls-cert-file", f("other-ca-n0.pem"), "--peer-tls-key-file", f("other-ca-n0-key.pem"), "--peer-tls-ca-file", f("ca.pem"),
		}},
		{"API credentials securing Raft", []string{
			"--server-tls-cert-file", f("other-ca-n0.pem"), "--server-tls-key-file", f("other-ca-n0-key.pem"), "--server-tls-ca-file", f("ca.pem"),
		}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			data := filepath.Join(t.TempDir(), "data")
			ctx, cancel := context.WithTimeout(t.Context(), 15*time.Second) // a server that starts stops then
			defer cancel()
			args := append([]string{"serve", "--node-name", "n0", "--data-dir", data, "--rpc-port", "-1",
				"--bind-addr", "127.0.0.1:0", "--bootstrap-wait", "0s", "--gossip-profile", "test", "--log-level", "error",
				"--gossip-key-file", f("gossip.key")}, tt.tls...)
			code, out, errOut := run(t, ctx, args...)
			if code != 1 || strings.Contains(out, "serving") || !strings.Contains(errOut, f("other-ca-n0.pem")) ||
				!strings.Contains(errOut, `"other CA"`) || !strings.Contains(errOut, f("ca.pem")) || !strings.Contains(errOut, "unknown authority") {
				t.Errorf("serve with a peer certificate of another CA: exit %d, stdout %q, stderr %q; want exit 1 and a refusal naming %s, its issuer (other CA) and %s",
					code, out, errOut, f("other-ca-n0.pem"), f("ca.pem"))
			}
			if _, err := os.Stat(data); !errors.Is(err, fs.ErrNotExist) {
				t.Errorf("serve made its data dir before refusing the certificate (%v)", err)
			}
		})
	}
}
