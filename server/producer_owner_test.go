package server

import (
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

// TestProducerBelongsToItsClient: producer IDs are handed out in sequence, so any client
// allowed to produce could re-initialise another client's producer (fencing it) or produce
// under it, taking its next sequence numbers: the owner's batch was then answered "duplicate"
// and never stored. A producer now belongs to the client that asked for it, on the leader and
// through a follower; the owner goes on, and may re-initialise it.
func TestProducerBelongsToItsClient(t *testing.T) {
	for _, tr := range transports {
		t.Run(tr, func(t *testing.T) {
			pki := newTestPKI(t)
			policy := filepath.Join(t.TempDir(), "policy.csv")
			if err := os.WriteFile(policy, []byte("p, alice, *, produce\np, alice, *, consume\np, mallory, *, produce\n"), 0o600); err != nil {
				t.Fatal(err)
			}
			leader, follower := startSecurePair(t, pki, tr, policy, nil)
			ctx := ctxT(t, 60*time.Second)
			type client interface {
				transport.Client
				transport.TopicsClient
			}
			as := func(name, addr string) client {
				return tlsClient(t, tr, addr, pki.client(pki.cert(name+"-"+addr, certgen.Client, certgen.Options{CommonName: name}))).(client)
			}
			alice, aliceF := as("alice", leader.Addr()), as("alice", follower.Addr())
			mallory, malloryF := as("mallory", leader.Addr()), as("mallory", follower.Addr())

			init, err := aliceF.InitProducer(ctx, &logv1.InitProducerRequest{})
			if err != nil {
				t.Fatalf("alice's InitProducer through the follower: %v", err)
			}
			ref := func(seq int32) *logv1.ProducerRef {
				return &logv1.ProducerRef{Id: init.GetProducerId(), Epoch: init.GetEpoch(), BaseSequence: seq}
			}
			batch := func(seq int32, v string) *logv1.ProduceBatchRequest {
				return &logv1.ProduceBatchRequest{Producer: ref(seq), Records: []*logv1.Record{{Value: []byte(v)}}}
			}
			if _, err := alice.ProduceBatch(ctx, batch(0, "alice 0")); err != nil {
				t.Fatalf("alice's first batch: %v", err)
			}
			for _, c := range []struct {
				name string
				c    client
			}{{"on the leader", mallory}, {"through the follower", malloryF}} {
				if _, err := c.c.InitProducer(ctx, &logv1.InitProducerRequest{ProducerId: init.GetProducerId()}); transport.CodeOf(err) != transport.PermissionDenied {
					t.Errorf("mallory re-initialises alice's producer %s: %v, want PermissionDenied", c.name, err)
				}
				if res, err := c.c.ProduceBatch(ctx, batch(1, "mallory")); transport.CodeOf(err) != transport.PermissionDenied {
					t.Errorf("mallory produces under alice's producer %s: %v, %v; want PermissionDenied", c.name, res, err)
				}
			}
			res, err := aliceF.ProduceBatch(ctx, batch(1, "alice 1"))
			if err != nil || res.GetDuplicate() || res.GetBaseOffset() != 1 {
				t.Fatalf("alice's second batch: %v, %v; want it stored at offset 1", res, err)
			}
			for off, want := range []string{"alice 0", "alice 1"} {
				got, err := alice.Consume(ctx, &logv1.ConsumeRequest{Offset: uint64(off)})
				if err != nil || string(got.GetRecord().GetValue()) != want {
					t.Errorf("offset %d: %q, %v; want %q", off, got.GetRecord().GetValue(), err, want)
				}
			}
			if again, err := alice.InitProducer(ctx, &logv1.InitProducerRequest{ProducerId: init.GetProducerId()}); err != nil || again.GetEpoch() != init.GetEpoch()+1 {
				t.Errorf("alice re-initialises her producer: %v, %v; want epoch %d", again, err, init.GetEpoch()+1)
			}
			if own, err := mallory.InitProducer(ctx, &logv1.InitProducerRequest{}); err != nil || own.GetProducerId() == init.GetProducerId() {
				t.Errorf("mallory's own producer: %v, %v", own, err)
			}
		})
	}
}

// TestProducerClaimWindow: InitProducer hands the ID out with one Raft command and records its
// owner with a second; producer IDs are handed out in sequence, so a client that keeps
// producing under the next ID lands in between, while the ID is known and nobody's yet. Its
// batch took the owner's first sequence numbers: the owner's first batch was then answered
// "duplicate" and never stored. A produce under an unclaimed ID now waits for a claim under
// way, and a claim for one in flight.
func TestProducerClaimWindow(t *testing.T) {
	tr := TransportGRPC
	pki := newTestPKI(t)
	policy := filepath.Join(t.TempDir(), "policy.csv")
	if err := os.WriteFile(policy, []byte("p, alice, *, produce\np, alice, *, consume\np, mallory, *, produce\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	leader, _ := startSecurePair(t, pki, tr, policy, nil)
	ctx := ctxT(t, 90*time.Second)
	type client interface {
		transport.Client
		transport.TopicsClient
	}
	as := func(name string) client {
		return tlsClient(t, tr, leader.Addr(), pki.client(pki.cert(name, certgen.Client, certgen.Options{CommonName: name}))).(client)
	}
	alice, mallory := as("alice"), as("mallory")
	first, err := alice.InitProducer(ctx, &logv1.InitProducerRequest{})
	if err != nil {
		t.Fatal(err)
	}
	next := first.GetProducerId()
	for round := 0; round < 30; round++ {
		next++
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
					req := &logv1.ProduceBatchRequest{Producer: &logv1.ProducerRef{Id: next}, Records: []*logv1.Record{{Value: []byte("mallory")}}}
					if _, err := mallory.ProduceBatch(ctx, req); err == nil {
						stolen.Add(1)
						return
					}
				}
			})
		}
		init, err := alice.InitProducer(ctx, &logv1.InitProducerRequest{})
		time.Sleep(20 * time.Millisecond)
		close(stop)
		wg.Wait()
		if err != nil {
			t.Fatalf("round %d: alice's InitProducer: %v", round, err)
		}
		next = init.GetProducerId()
		res, err := alice.ProduceBatch(ctx, &logv1.ProduceBatchRequest{Producer: &logv1.ProducerRef{Id: next, Epoch: init.GetEpoch()}, Records: []*logv1.Record{{Value: []byte("alice")}}})
		if n := stolen.Load(); n > 0 || err != nil || res.GetDuplicate() {
			t.Fatalf("round %d: mallory stored %d batches under alice's producer %d; alice's first batch: %v, %v", round, n, next, res, err)
		}
	}
}

// TestProducerOwnerForwardedForNotPeer: with mutual TLS and no ACL policy (everyone may do
// everything) the forwarded-for header was trusted from any caller, so a client naming the
// owner in it passed for the owner and produced under its ID, taking its sequence numbers. A
// forwarded-for claim from a caller that is not a cluster peer now names nobody but the
// caller; a follower still forwards for the client.
func TestProducerOwnerForwardedForNotPeer(t *testing.T) {
	for _, tr := range transports {
		t.Run(tr, func(t *testing.T) {
			pki := newTestPKI(t)
			leader, follower := startSecurePair(t, pki, tr, "", func(c *Config) { c.ACLModelFile = "" })
			ctx := ctxT(t, 60*time.Second)
			type client interface {
				transport.Client
				transport.TopicsClient
			}
			as := func(name, addr string) client {
				return tlsClient(t, tr, addr, pki.client(pki.cert(name+"-"+addr, certgen.Client, certgen.Options{CommonName: name}))).(client)
			}
			alice, aliceF, mallory := as("alice", leader.Addr()), as("alice", follower.Addr()), as("mallory", leader.Addr())
			init, err := aliceF.InitProducer(ctx, &logv1.InitProducerRequest{})
			if err != nil {
				t.Fatal(err)
			}
			batch := func(seq int32, v string) *logv1.ProduceBatchRequest {
				return &logv1.ProduceBatchRequest{Producer: &logv1.ProducerRef{Id: init.GetProducerId(), Epoch: init.GetEpoch(), BaseSequence: seq}, Records: []*logv1.Record{{Value: []byte(v)}}}
			}
			if _, err := alice.ProduceBatch(ctx, batch(0, "alice 0")); err != nil {
				t.Fatal(err)
			}
			if res, err := mallory.ProduceBatch(transport.ContextWithForwardedFor(ctx, "alice"), batch(1, "mallory")); transport.CodeOf(err) != transport.PermissionDenied {
				t.Errorf("mallory, forwarded for alice, produces under her producer: %v, %v; want PermissionDenied", res, err)
			}
			res, err := aliceF.ProduceBatch(ctx, batch(1, "alice 1"))
			if err != nil || res.GetDuplicate() || res.GetBaseOffset() != 1 {
				t.Fatalf("alice's second batch through the follower: %v, %v; want it stored at offset 1", res, err)
			}
		})
	}
}
