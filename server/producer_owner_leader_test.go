package server

import (
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/commitlog-go/commitlog/server/tlsutil/certgen"
	"github.com/commitlog-go/commitlog/transport"
	logv1 "github.com/commitlog-go/commitlog/transport/gen/log/v1"
)

// TestProducerOwnerNewLeader: a leader just elected may not have applied the claim the last
// leader committed: it knew the ID (handed out earlier) without its owner, and let another
// client produce under it, taking the owner's first sequence numbers. A leader now catches up,
// once per term, before judging an ID it knows without an owner.
func TestProducerOwnerNewLeader(t *testing.T) {
	tr := TransportGRPC
	pki := newTestPKI(t)
	policy := filepath.Join(t.TempDir(), "policy.csv")
	if err := os.WriteFile(policy, []byte("p, alice, *, produce\np, alice, *, consume\np, mallory, *, produce\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	a, b := startSecurePair(t, pki, tr, policy, nil)
	nodes := []*testServer{a, b}
	ctx := ctxT(t, 120*time.Second)
	type client interface {
		transport.Client
		transport.TopicsClient
	}
	as := func(name, addr string, round int) client {
		file := fmt.Sprintf("%s-%d", name, round)
		return tlsClient(t, tr, addr, pki.client(pki.cert(file, certgen.Client, certgen.Options{CommonName: name}))).(client)
	}
	for round := 0; round < 30; round++ {
		leader := leaderOf(t, nodes)
		other := a
		if leader == a {
			other = b
		}
		alice, mallory := as("alice", leader.Addr(), round), as("mallory", other.Addr(), round)
		init, err := alice.InitProducer(ctx, &logv1.InitProducerRequest{})
		if err != nil {
			t.Fatal(err)
		}
		stop := make(chan struct{})
		var stolen atomic.Int64
		var wg sync.WaitGroup
		for g := 0; g < 4; g++ {
			wg.Go(func() {
				for {
					select {
					case <-stop:
						return
					default:
					}
					req := &logv1.ProduceBatchRequest{Producer: &logv1.ProducerRef{Id: init.GetProducerId(), Epoch: init.GetEpoch()}, Records: []*logv1.Record{{Value: []byte("mallory")}}}
					if _, err := mallory.ProduceBatch(ctx, req); err == nil {
						stolen.Add(1)
						return
					}
				}
			})
		}
		if err := leader.node.TransferLeadership(ctx, ""); err != nil {
			t.Logf("round %d: transfer: %v", round, err)
		}
		time.Sleep(300 * time.Millisecond)
		close(stop)
		wg.Wait()
		if n := stolen.Load(); n > 0 {
			t.Fatalf("round %d: mallory stored %d batches under alice's producer %d on a new leader", round, n, init.GetProducerId())
		}
	}
}
