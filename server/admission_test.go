package server

import (
	"crypto/x509"
	"os"
	"path/filepath"
	"testing"

	"github.com/commitlog-go/commitlog/server/tlsutil"
	"github.com/commitlog-go/commitlog/server/tlsutil/certgen"
	"github.com/commitlog-go/commitlog/transport"
)

// TestPeerRuleFollowsReload: which API callers count as cluster peers (trusted with the
// forwarded-for header) follows a reload of the peer CA: after the peer CA file is replaced
// and reloaded (SIGHUP), a node certificate of the old CA is no longer a peer's, and one of the
// new CA is. A client certificate, or none, never is.
func TestPeerRuleFollowsReload(t *testing.T) {
	oldPKI, newPKI := newTestPKI(t), newTestPKI(t)
	leaf := func(p *testPKI, name string, nodes ...string) []*x509.Certificate {
		t.Helper()
		certFile, keyFile := p.nodeCert(name, nodes...)
		kp, err := certgen.LoadKeyPair(certFile, keyFile)
		if err != nil {
			t.Fatal(err)
		}
		return []*x509.Certificate{kp.Cert}
	}
	oldNode, newNode := leaf(oldPKI, "old", "node-1"), leaf(newPKI, "new", "node-1")
	clientFile, clientKey := oldPKI.cert("alice", certgen.Client, certgen.Options{CommonName: "alice"})
	alice, err := certgen.LoadKeyPair(clientFile, clientKey)
	if err != nil {
		t.Fatal(err)
	}

	// The node's own peer credentials, in files a reload re-reads.
	dir := t.TempDir()
	certFile, keyFile, caFile := filepath.Join(dir, "peer.pem"), filepath.Join(dir, "peer-key.pem"), filepath.Join(dir, "ca.pem")
	install := func(p *testPKI) {
		t.Helper()
		c, k := p.nodeCert("self", "node-0")
		for src, dst := range map[string]string{c: certFile, k: keyFile, p.caFile: caFile} {
			b, err := os.ReadFile(src)
			if err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(dst, b, 0o600); err != nil {
				t.Fatal(err)
			}
		}
	}
	install(oldPKI)
	src, err := tlsutil.NewSource(certFile, keyFile, caFile)
	if err != nil {
		t.Fatal(err)
	}
	peerTLS, err := src.PeerConfig("")
	if err != nil {
		t.Fatal(err)
	}
	isPeer := peerRule(peerTLS)
	check := func(when string, want map[string]bool) {
		t.Helper()
		for name, certs := range map[string][]*x509.Certificate{"old CA's node": oldNode, "new CA's node": newNode, "client": {alice.Cert}, "none": nil} {
			if got := isPeer(transport.Peer{Certificates: certs}); got != want[name] {
				t.Errorf("%s: %s is a peer: %v, want %v", when, name, got, want[name])
			}
		}
	}
	check("before the reload", map[string]bool{"old CA's node": true})
	install(newPKI)
	if err := src.Reload(); err != nil {
		t.Fatal(err)
	}
	check("after the peer CA was replaced", map[string]bool{"new CA's node": true})
	if peerRule(nil)(transport.Peer{Certificates: oldNode}) {
		t.Error("without peer TLS a caller is a peer")
	}
}
