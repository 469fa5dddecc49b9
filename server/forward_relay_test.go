package server

import (
	"path/filepath"
	"testing"
	"time"

	"github.com/commitlog-go/commitlog/transport"
	logv1 "github.com/commitlog-go/commitlog/transport/gen/log/v1"
)

// TestForwardRelayKeepsOriginalCaller: a follower that receives a write forwarded for root by a
// peer (what a node that lost leadership does with a write a follower forwarded to it) must
// forward it again naming root, so that the leader authorizes root. Over gRPC the handler's
// Peer loses its Server verdict (transport/grpc rebuilds it after admission), so the follower
// forwards in its own name ("server") and the leader authorizes the wrong subject.
func TestForwardRelayKeepsOriginalCaller(t *testing.T) {
	for _, tr := range transports {
		t.Run(tr, func(t *testing.T) {
			pki := newTestPKI(t)
			policy := filepath.Join(seedACLDir, "policy.csv")
			_, follower := startSecurePair(t, pki, tr, policy, nil)
			ctx := ctxT(t, 60*time.Second)
			peer := tlsClient(t, tr, follower.Addr(), pki.client(filepath.Join(pki.dir, "server.pem"), filepath.Join(pki.dir, "server-key.pem")))
			_, err := peer.Produce(transport.ContextWithForwardedFor(ctx, "root"), &logv1.ProduceRequest{Record: &logv1.Record{Value: []byte("relayed")}})
			if err != nil {
				t.Fatalf("a write forwarded for root, relayed by the follower to the leader: %v", err)
			}
		})
	}
}
