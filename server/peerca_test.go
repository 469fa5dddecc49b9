package server

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/commitlog-go/commitlog/server/tlsutil"
	"github.com/commitlog-go/commitlog/server/tlsutil/certgen"
)

// strangerPKI is a CA other than newTestPKI's (named "other CA"), as another cluster's or a
// mistaken issuing service's.
func strangerPKI(t *testing.T) *testPKI {
	t.Helper()
	ca, err := certgen.CreateCA(certgen.Options{CommonName: "other CA"})
	if err != nil {
		t.Fatal(err)
	}
	p := &testPKI{t: t, dir: t.TempDir(), ca: ca}
	p.caFile, _ = p.write("ca", ca)
	return p
}

// TestNewRefusesPeerCertificateOfAnotherCA: a node whose peer certificate was issued by a CA
// its own peer CA bundle does not hold started, and every peer refused it (the leader logged
// "refusing server … unknown authority"): the node was silently cut off. New refuses it, the
// error naming the certificate file, its issuer and the CA file, whether the certificate is
// the peer credentials' (--peer-tls-*) or the API's securing Raft too, and for configurations
// built without Sources; before it makes the data dir.
func TestNewRefusesPeerCertificateOfAnotherCA(t *testing.T) {
	pki, other := newTestPKI(t), strangerPKI(t)
	goodCert, goodKey := pki.nodeCert("good-node-0", "node-0")
	strangerCert, strangerKey := other.nodeCert("stranger-node-0", "node-0")
	source := func(t *testing.T, cert, key, ca string) *tlsutil.Source {
		t.Helper()
		src, err := tlsutil.NewSource(cert, key, ca)
		if err != nil {
			t.Fatal(err)
		}
		return src
	}
	for _, tt := range []struct {
		name  string
		cfg   func(t *testing.T) Config
		names []string // what the error must name
	}{
		{"peer credentials", func(t *testing.T) Config {
			api := source(t, goodCert, goodKey, pki.caFile)
			peer := source(t, strangerCert, strangerKey, pki.caFile)
			apiCfg, err := api.ServerConfig()
			if err != nil {
				t.Fatal(err)
			}
			peerCfg, err := peer.PeerConfig(peerName)
			if err != nil {
				t.Fatal(err)
			}
			return Config{ServerTLS: apiCfg, PeerServerTLS: peerCfg, PeerClientTLS: peerCfg, PeerServerName: peerName,
				TLSCredentials: map[string]*tlsutil.Source{"server": api, "peer": peer}}
		}, []string{strangerCert, `"other CA"`, pki.caFile}},
		{"API credentials securing Raft", func(t *testing.T) Config {
			api := source(t, strangerCert, strangerKey, pki.caFile)
			apiCfg, err := api.ServerConfig()
			if err != nil {
				t.Fatal(err)
			}
			return Config{ServerTLS: apiCfg, TLSCredentials: map[string]*tlsutil.Source{"server": api}}
		}, []string{strangerCert, `"other CA"`, pki.caFile}},
		{"configuration without Sources", func(t *testing.T) Config {
			peer, err := tlsutil.PeerConfig(strangerCert, strangerKey, pki.caFile, peerName)
			if err != nil {
				t.Fatal(err)
			}
			return Config{PeerServerTLS: peer, PeerClientTLS: peer, PeerServerName: peerName}
		}, []string{`"other CA"`}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			cfg := tt.cfg(t)
			cfg.NodeName, cfg.GossipKey = "node-0", pki.gossipKey()
			cfg.DataDir = filepath.Join(t.TempDir(), "data")
			cfg.BindAddr, cfg.RPCPort = "127.0.0.1:0", -1
			srv, err := New(cfg)
			if srv != nil {
				_ = srv.Close()
			}
			if srv != nil || !errors.Is(err, ErrInvalidConfig) || !errors.Is(err, tlsutil.ErrPeerRefused) {
				t.Fatalf("New with a peer certificate of another CA = %v; want ErrInvalidConfig and tlsutil.ErrPeerRefused", err)
			}
			for _, s := range append(tt.names, "unknown authority") {
				if !strings.Contains(err.Error(), s) {
					t.Errorf("New = %v; want it to name %s", err, s)
				}
			}
			if _, statErr := os.Stat(cfg.DataDir); !errors.Is(statErr, fs.ErrNotExist) {
				t.Errorf("New created %s before refusing the certificate (%v)", cfg.DataDir, statErr)
			}
		})
	}
}

// TestReloadRefusesPeerCertificateOfAnotherCA: a SIGHUP took a peer certificate of a CA the
// peer CA bundle does not hold, and the node, presenting it, was refused by every peer. Reload
// now keeps the previous certificate and says why, as it does for an expired one; a
// certificate of the new CA goes through once the bundle holds both CAs (a rotation).
func TestReloadRefusesPeerCertificateOfAnotherCA(t *testing.T) {
	pki, other := newTestPKI(t), strangerPKI(t)
	good := [2]string{}
	good[0], good[1] = pki.nodeCert("good-node-0", "node-0")
	stranger := [2]string{}
	stranger[0], stranger[1] = other.nodeCert("stranger-node-0", "node-0")
	dir := t.TempDir()
	certFile, keyFile, caFile := filepath.Join(dir, "server.pem"), filepath.Join(dir, "server-key.pem"), filepath.Join(dir, "ca.pem")
	install := func(cert [2]string) {
		t.Helper()
		replaceFiles(t, map[string]string{cert[0]: certFile, cert[1]: keyFile})
	}
	install(good)
	replaceFiles(t, map[string]string{pki.caFile: caFile})
	// The API's credentials secure Raft too (no peer credentials of their own).
	srv, src := startWithAPICredentials(t, certFile, keyFile, caFile, Config{NodeName: "node-0", GossipKey: pki.gossipKey()})

	install(stranger)
	err := srv.Reload()
	if !errors.Is(err, tlsutil.ErrPeerRefused) || !strings.Contains(err.Error(), `"other CA"`) ||
		!strings.Contains(err.Error(), certFile) || !strings.Contains(err.Error(), caFile) {
		t.Fatalf("Reload with a certificate of another CA = %v, want a refusal naming its issuer (other CA), %s and %s", err, certFile, caFile)
	}
	if issuer := src.Certificate().Leaf.Issuer.CommonName; issuer != "test CA" {
		t.Errorf("after the refused reload the node presents a certificate of %q, want its previous one (test CA)", issuer)
	}

	// The rotation: the bundle holds both CAs, then the new CA's certificate loads.
	bundle := filepath.Join(t.TempDir(), "bundle.pem")
	var both []byte
	for _, f := range []string{pki.caFile, other.caFile} {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		both = append(both, b...)
	}
	if err := os.WriteFile(bundle, both, 0o600); err != nil {
		t.Fatal(err)
	}
	replaceFiles(t, map[string]string{bundle: caFile})
	if err := srv.Reload(); err != nil {
		t.Fatalf("Reload with both CAs in the bundle: %v", err)
	}
	if issuer := src.Certificate().Leaf.Issuer.CommonName; issuer != "other CA" {
		t.Errorf("after the rotation the node presents a certificate of %q, want other CA", issuer)
	}
}
