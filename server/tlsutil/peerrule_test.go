package tlsutil_test

import (
	"crypto/tls"
	"crypto/x509"
	"slices"
	"strings"
	"testing"

	"github.com/commitlog-go/commitlog/server/tlsutil"
)

func TestNodeNameRule(t *testing.T) {
	if got := tlsutil.NodeDNSName("n1"); got != "n1.node.commitlog" {
		t.Errorf("NodeDNSName(n1) = %q", got)
	}
	for _, ok := range []string{"n1", "node-1", "ip-10-0-0-1.ec2.internal", "Node_2"} {
		if err := tlsutil.ValidNodeName(ok); err != nil {
			t.Errorf("ValidNodeName(%q) = %v, want nil", ok, err)
		}
	}
	for _, bad := range []string{"", "a b", "*", "n1/x", ".n1", "n1.", strings.Repeat("a", 250)} {
		if err := tlsutil.ValidNodeName(bad); err == nil {
			t.Errorf("ValidNodeName(%q) = nil, want an error", bad)
		}
	}
	cert := &x509.Certificate{DNSNames: []string{"localhost", "n1.node.commitlog", "*.node.commitlog", "n2.node.commitlog", "node.commitlog"}}
	if got := tlsutil.CertificateNodes(cert); !slices.Equal(got, []string{"n1", "n2"}) {
		t.Errorf("CertificateNodes = %v, want [n1 n2] (wildcards name no node)", got)
	}
	if !tlsutil.CertificateNamesNode(cert, "n2") || tlsutil.CertificateNamesNode(cert, "N2") || tlsutil.CertificateNamesNode(cert, "localhost") {
		t.Error("CertificateNamesNode: want n2 only, compared exactly")
	}
}

// TestVerifyPeer checks the one notion of a peer: a certificate chaining to the peer CA, with
// server authentication, naming a node.
func TestVerifyPeer(t *testing.T) {
	f := newFixture(t)
	load := func(fl files) []*x509.Certificate {
		kp, err := tls.LoadX509KeyPair(fl.cert, fl.key)
		if err != nil {
			t.Fatal(err)
		}
		c, err := x509.ParseCertificate(kp.Certificate[0])
		if err != nil {
			t.Fatal(err)
		}
		return []*x509.Certificate{c}
	}
	pool := func(caFile string) *x509.CertPool {
		cfg, err := tlsutil.ClientConfig("", "", caFile, "")
		if err != nil {
			t.Fatal(err)
		}
		return cfg.RootCAs
	}
	peers := pool(f.caFile)
	if err := tlsutil.VerifyPeer(load(f.server), peers); err != nil {
		t.Errorf("a server certificate naming node-1: %v", err)
	}
	for name, tc := range map[string]struct {
		chain []*x509.Certificate
		roots *x509.CertPool
		want  string
	}{
		"dual usage, names no node":   {load(f.unnamed), peers, "names no node"},
		"client certificate":          {load(f.alice), peers, "does not allow server authentication"},
		"another CA":                  {load(f.server), pool(f.otherCAFile), "does not chain"},
		"no certificate":              {nil, peers, "no certificate"},
		"no peer CA":                  {load(f.server), nil, "no peer CA"},
		"server-only (no clientAuth)": {load(f.serverOnly), peers, "does not chain"},
	} {
		if err := tlsutil.VerifyPeer(tc.chain, tc.roots); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: VerifyPeer = %v, want an error saying %q", name, err, tc.want)
		}
	}
}

// TestPeerConfigFromServer derives the peer configuration from an API configuration with
// mutual TLS: the server's certificate, its client CA as the peer CA, and the peer rule.
func TestPeerConfigFromServer(t *testing.T) {
	f := newFixture(t)
	api, err := tlsutil.ServerConfig(f.server.cert, f.server.key, f.caFile)
	if err != nil {
		t.Fatal(err)
	}
	api.GetConfigForClient = func(*tls.ClientHelloInfo) (*tls.Config, error) { return api, nil } // as a reloader might
	peer, err := tlsutil.PeerConfigFromServer(api, "server.commitlog")
	if err != nil {
		t.Fatal(err)
	}
	if peer.RootCAs != api.ClientCAs || peer.ClientAuth != tls.RequireAndVerifyClientCert || peer.ServerName != "server.commitlog" ||
		peer.VerifyConnection == nil || peer.GetConfigForClient == nil {
		t.Errorf("derived config: %+v", peer)
	}
	// Each handshake gets the API's current configuration with the peer rule, never the API's.
	if cur, err := peer.GetConfigForClient(&tls.ClientHelloInfo{}); err != nil || cur == api || cur.ClientCAs != api.ClientCAs ||
		cur.ClientAuth != tls.RequireAndVerifyClientCert || cur.VerifyConnection == nil || cur.GetConfigForClient != nil {
		t.Errorf("derived per-handshake config: %+v, %v", cur, err)
	}
	leaf, err := tlsutil.Leaf(peer)
	if err != nil || !tlsutil.CertificateNamesNode(leaf, "node-1") {
		t.Errorf("Leaf = %v, %v; want node-1's certificate", leaf, err)
	}
	// Peers built this way accept each other, and refuse a certificate naming no node.
	other, err := tlsutil.PeerConfig(f.node2.cert, f.node2.key, f.caFile, "server.commitlog")
	if err != nil {
		t.Fatal(err)
	}
	if out := handshake(t, peer, other); out.serverErr != nil || out.clientErr != nil {
		t.Errorf("derived peer refused node-2: server %v, client %v", out.serverErr, out.clientErr)
	}
	unnamed, err := tlsutil.PeerConfig(f.unnamed.cert, f.unnamed.key, f.caFile, "server.commitlog")
	if err != nil {
		t.Fatal(err)
	}
	if out := handshake(t, peer, unnamed); out.serverErr == nil || !namesNoNode(out.serverErr) {
		t.Errorf("derived peer accepted a certificate naming no node: server %v", out.serverErr)
	}
	tlsOnly, err := tlsutil.ServerConfig(f.server.cert, f.server.key, "")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tlsutil.PeerConfigFromServer(tlsOnly, ""); err == nil {
		t.Error("derived a peer configuration from an API without a client CA")
	}
}
