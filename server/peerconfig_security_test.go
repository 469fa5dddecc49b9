package server

import (
	"errors"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/commitlog-go/commitlog/server/tlsutil"
	"github.com/commitlog-go/commitlog/server/tlsutil/certgen"
	logv1 "github.com/commitlog-go/commitlog/transport/gen/log/v1"
)

// TestRaftPeerRuleWhateverPeerTLS gives a node its peer TLS as Config documents it ("its
// ClientCAs is the peer CA"), built without tlsutil.PeerConfig: a plain mutual-TLS server
// configuration of the peer CA. A client certificate of that CA (root, or nobody) is not a
// peer's: Raft must refuse it as it does with tlsutil.PeerConfig, or such a client deposes the
// leader and appends records past the ACL. A peer configuration that asks for no client
// certificate at all must be refused by New.
func TestRaftPeerRuleWhateverPeerTLS(t *testing.T) {
	pki := newTestPKI(t)
	certFile, keyFile := pki.serverCert()

	// withMutualTLSPeers gives cfg peer TLS built as a plain mutual-TLS server configuration
	// (verifying client certificates of clientCA; none when ""), not tlsutil.PeerConfig.
	withMutualTLSPeers := func(t *testing.T, cfg *Config, clientCA string) {
		t.Helper()
		peerSrv, err := tlsutil.ServerConfig(certFile, keyFile, clientCA)
		if err != nil {
			t.Fatal(err)
		}
		peerCli, err := tlsutil.ClientConfig(certFile, keyFile, pki.caFile, peerName)
		if err != nil {
			t.Fatal(err)
		}
		cfg.PeerServerTLS, cfg.PeerClientTLS, cfg.PeerServerName = peerSrv, peerCli, peerName
	}

	t.Run("mutual TLS without the peer rule", func(t *testing.T) {
		cfg := pki.readmeConfig("node-0")
		withMutualTLSPeers(t, &cfg, pki.caFile)
		srv := startServer(t, cfg)
		ctx := ctxT(t, 60*time.Second)
		root := tlsClient(t, TransportConnect, srv.Addr(), pki.client(pki.cert("root", certgen.Client, certgen.Options{CommonName: "root"})))
		if _, err := root.Produce(ctx, &logv1.ProduceRequest{Record: &logv1.Record{Value: []byte("before")}}); err != nil {
			t.Fatalf("Produce as root: %v", err)
		}
		before := srv.node.Status()

		stranger, err := tlsutil.ClientConfig(filepath.Join(pki.dir, "root.pem"), filepath.Join(pki.dir, "root-key.pem"), pki.caFile, peerName)
		if err != nil {
			t.Fatal(err)
		}
		if resp, err := forgeAppendEntries(srv, stranger, before); err == nil {
			t.Errorf("AppendEntries over TLS with a client certificate was answered: %+v", resp)
		}
		after := srv.node.Status()
		if after.Term != before.Term || after.LastIndex != before.LastIndex {
			t.Fatalf("after the client's AppendEntries: term %d -> %d, last index %d -> %d; want unchanged",
				before.Term, after.Term, before.LastIndex, after.LastIndex)
		}
	})

	t.Run("no client certificate asked", func(t *testing.T) {
		cfg := pki.readmeConfig("node-0")
		withMutualTLSPeers(t, &cfg, "")
		cfg.DataDir = filepath.Join(t.TempDir(), "data")
		cfg.BindAddr, cfg.RPCPort = "127.0.0.1:0", -1
		srv, err := New(cfg)
		if err == nil {
			_ = srv.Close()
			t.Fatal("New accepted a peer TLS configuration that verifies no client certificate")
		}
		if !errors.Is(err, ErrInvalidConfig) || !strings.Contains(err.Error(), "PeerServerTLS") {
			t.Fatalf("New = %v; want ErrInvalidConfig naming PeerServerTLS", err)
		}
	})
}
