package server

import (
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/commitlog-go/commitlog/server/tlsutil/certgen"
	"github.com/commitlog-go/commitlog/transport"
	logv1 "github.com/commitlog-go/commitlog/transport/gen/log/v1"
)

// TestInsecurePeersUnderACL: with mutual TLS and an ACL on the API and plaintext Raft
// (InsecurePlaintextPeers), the servers are still told apart from clients on the API by the
// API's CA. Without a peer CA no caller was a peer, so the leader refused the reconciler's
// question to a joining node (GetBounds as subject "server") and the cluster never grew past
// its first node; nor could a follower forward a client's write.
func TestInsecurePeersUnderACL(t *testing.T) {
	pki := newTestPKI(t)
	policy := filepath.Join(seedACLDir, "policy.csv")
	_, follower := startSecurePair(t, pki, TransportConnect, policy, func(cfg *Config) {
		cfg.PeerServerTLS, cfg.PeerClientTLS, cfg.PeerServerName = nil, nil, ""
		cfg.InsecurePlaintextPeers = true
	})
	ctx := ctxT(t, 60*time.Second)
	root := tlsClient(t, TransportConnect, follower.Addr(), pki.client(pki.cert("root", certgen.Client, certgen.Options{CommonName: "root"})))
	for i := range 2 {
		res, err := root.Produce(ctx, &logv1.ProduceRequest{Record: &logv1.Record{Value: fmt.Appendf(nil, "via-follower-%d", i)}})
		if err != nil || res.GetOffset() != uint64(i) {
			t.Fatalf("Produce through the follower as root = %v, %v; want offset %d", res, err, i)
		}
	}
	nobody := tlsClient(t, TransportConnect, follower.Addr(), pki.client(pki.cert("nobody", certgen.Client, certgen.Options{CommonName: "nobody"})))
	if _, err := nobody.Produce(ctx, &logv1.ProduceRequest{Record: &logv1.Record{Value: []byte("x")}}); transport.CodeOf(err) != transport.PermissionDenied {
		t.Errorf("Produce through the follower as nobody = %v, want PermissionDenied", err)
	}
}
