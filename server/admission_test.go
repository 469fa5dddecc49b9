package server

import (
	"crypto/tls"
	"crypto/x509"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	hraft "github.com/hashicorp/raft"

	"github.com/commitlog-go/commitlog/server/tlsutil"
	"github.com/commitlog-go/commitlog/server/tlsutil/certgen"
	"github.com/commitlog-go/commitlog/transport"
	logv1 "github.com/commitlog-go/commitlog/transport/gen/log/v1"
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

// TestDerivedPeerCAFollowsReload: a node secured as the README shows (mutual TLS on the API, no
// --peer-tls-*: the server credentials are the peer credentials) reloads its CA file (SIGHUP)
// to replace a CA. From then on, Raft on the shared port refuses a node certificate of the
// removed CA and accepts one of the new CA, and on the API a node certificate of the new CA is
// a cluster peer (it may forward for root), as the API's own handshake already follows the
// reload.
func TestDerivedPeerCAFollowsReload(t *testing.T) {
	oldPKI, newPKI := newTestPKI(t), newTestPKI(t)
	dir := t.TempDir()
	certFile, keyFile, caFile := filepath.Join(dir, "server.pem"), filepath.Join(dir, "server-key.pem"), filepath.Join(dir, "ca.pem")
	install := func(p *testPKI) {
		t.Helper()
		c, k := p.nodeCert("server", "node-0")
		replaceFiles(t, map[string]string{c: certFile, k: keyFile, p.caFile: caFile})
	}
	install(oldPKI)
	srv, _ := startWithAPICredentials(t, certFile, keyFile, caFile, Config{
		NodeName:     "node-0",
		ACLModelFile: filepath.Join(seedACLDir, "model.conf"), ACLPolicyFile: filepath.Join(seedACLDir, "policy.csv"),
		GossipKey: oldPKI.gossipKey(),
	})

	// A node certificate (naming node-7) of each CA, as a Raft peer dialing the shared port.
	raftDial := func(p *testPKI, name string) error {
		t.Helper()
		kp, err := tls.LoadX509KeyPair(p.nodeCert(name, "node-7"))
		if err != nil {
			t.Fatal(err)
		}
		layer := &rawRaftLayer{tlsCfg: &tls.Config{Certificates: []tls.Certificate{kp}, InsecureSkipVerify: true, MinVersion: tls.VersionTLS12},
			closed: make(chan struct{})}
		defer layer.Close()
		conn, err := layer.Dial(hraft.ServerAddress(srv.Addr()), 10*time.Second)
		if err == nil {
			conn.Close()
		}
		return err
	}
	if err := raftDial(oldPKI, "old-node"); err != nil {
		t.Fatalf("before the reload, a node certificate of the CA was refused on Raft: %v", err)
	}

	install(newPKI)
	if err := srv.Reload(); err != nil {
		t.Fatalf("Reload: %v", err)
	}
	if err := raftDial(oldPKI, "old-node-2"); err == nil {
		t.Error("after the CA was replaced, a node certificate of the removed CA still speaks Raft")
	}
	if err := raftDial(newPKI, "new-node"); err != nil {
		t.Errorf("after the CA was replaced, a node certificate of the new CA was refused on Raft: %v", err)
	}
	ctx := ctxT(t, 30*time.Second)
	peer := tlsClient(t, TransportConnect, srv.Addr(), newPKI.client(newPKI.nodeCert("new-peer", "node-1")))
	_, err := peer.Produce(transport.ContextWithForwardedFor(ctx, "root"), &logv1.ProduceRequest{Record: &logv1.Record{Value: []byte("x")}})
	if err != nil {
		t.Errorf("after the CA was replaced, a node certificate of the new CA forwarding for root: %v", err)
	}
}

// TestReloadRefusesPeerCertificateNamingAnotherNode: New refuses a peer certificate that does
// not name the node, but a SIGHUP took one, so the node served it until its next start failed.
// Reload now keeps the previous certificate and says why.
func TestReloadRefusesPeerCertificateNamingAnotherNode(t *testing.T) {
	pki := newTestPKI(t)
	dir := t.TempDir()
	certFile, keyFile, caFile := filepath.Join(dir, "server.pem"), filepath.Join(dir, "server-key.pem"), filepath.Join(dir, "ca.pem")
	certs := map[string][2]string{}
	for _, node := range []string{"node-0", "node-7"} {
		c, k := pki.nodeCert("server-"+node, node)
		certs[node] = [2]string{c, k}
	}
	install := func(node string) {
		t.Helper()
		c, k := certs[node][0], certs[node][1]
		replaceFiles(t, map[string]string{c: certFile, k: keyFile, pki.caFile: caFile})
	}
	install("node-0")
	srv, src := startWithAPICredentials(t, certFile, keyFile, caFile, Config{NodeName: "node-0", GossipKey: pki.gossipKey()})

	install("node-7")
	if err := srv.Reload(); err == nil || !strings.Contains(err.Error(), `does not name node "node-0"`) {
		t.Fatalf("Reload with a certificate naming node-7 = %v, want a refusal naming node-0", err)
	}
	if leaf := src.Certificate().Leaf; !tlsutil.CertificateNamesNode(leaf, "node-0") {
		t.Errorf("after the refused reload the node presents %v, want its previous certificate", tlsutil.CertificateNodes(leaf))
	}
	install("node-0")
	if err := srv.Reload(); err != nil {
		t.Errorf("Reload with a certificate naming the node: %v", err)
	}
}
