package server

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/commitlog-go/commitlog/consensus"
	"github.com/commitlog-go/commitlog/server/fsm"
	"github.com/commitlog-go/commitlog/transport"
	logv1 "github.com/commitlog-go/commitlog/transport/gen/log/v1"
)

// TestConsumeStreamEndsOnStalledFollower: a ConsumeStream on a follower that knows its leader
// but does not apply what the cluster committed (its state machine stalled; or it cannot reach
// the leader at all) sends what the node holds and then ends Unavailable, so that the client
// resumes on another replica, as a Consume of the next offset there answers Unavailable. It
// waited silently until the client gave up. A stream on a follower that applies everything the
// cluster committed stays open, however idle.
func TestConsumeStreamEndsOnStalledFollower(t *testing.T) {
	leader := startServer(t, Config{})
	lc := newClient(t, TransportConnect, leader.Addr())
	ctx := ctxT(t, 60*time.Second)
	const n = 4
	for i := range n {
		if _, err := lc.Produce(ctx, &logv1.ProduceRequest{Record: &logv1.Record{Value: fmt.Appendf(nil, "v%d", i)}}); err != nil {
			t.Fatal(err)
		}
	}
	follower := func(t *testing.T, leaderAt consensus.Server, applied int) *service {
		f := emptyFSM(t)
		for i := range applied {
			cmd, err := f.EncodeAppend(fsm.AppendRecord{Value: fmt.Appendf(nil, "v%d", i)})
			if err != nil {
				t.Fatal(err)
			}
			f.Apply([]consensus.Entry{{Index: uint64(i + 1), Term: 1, Data: cmd}})
		}
		return &service{
			node:       catchingUpFollower{followerNode: followerNode{leader: leaderAt}, once: &sync.Once{}, catchUp: func() {}},
			fsm:        f,
			forward:    testForwarder(t),
			cfg:        &Config{MaxConsumeWait: 300 * time.Millisecond},
			stop:       make(chan struct{}),
			leaderWait: 300 * time.Millisecond,
		}
	}
	stream := func(svc *service, d time.Duration) ([]uint64, bool, error) {
		sctx, cancel := context.WithTimeout(ctx, d)
		defer cancel()
		var got captureStream
		err := svc.ConsumeStream(sctx, &logv1.ConsumeRequest{Offset: 0, MaxBatch: 16}, &got)
		return got.offsets, sctx.Err() != nil, err
	}
	at := consensus.Server{ID: leader.ID(), Address: leader.Addr()}

	t.Run("stalled", func(t *testing.T) {
		svc := follower(t, at, n/2)
		if _, err := svc.Consume(ctx, &logv1.ConsumeRequest{Offset: n / 2}); transport.CodeOf(err) != transport.Unavailable {
			t.Fatalf("Consume of a committed offset not applied on the follower: %v, want Unavailable", err)
		}
		got, waited, err := stream(svc, 15*time.Second)
		if transport.CodeOf(err) != transport.Unavailable || waited || !slices.Equal(got, []uint64{0, 1}) {
			t.Errorf("ConsumeStream on a stalled follower: sent %v, ended with %v (code %v, waited out its deadline: %v); want 0, 1, then Unavailable",
				got, err, transport.CodeOf(err), waited)
		}
	})
	t.Run("cut off", func(t *testing.T) {
		svc := cutOffFollower(ctx, t, "t")
		svc.cfg.MaxConsumeWait = 300 * time.Millisecond
		got, waited, err := stream(svc, 15*time.Second)
		if transport.CodeOf(err) != transport.Unavailable || waited || len(got) != 0 {
			t.Errorf("ConsumeStream on a follower cut off from the leader it knows: sent %v, ended with %v (code %v, waited out its deadline: %v); want Unavailable",
				got, err, transport.CodeOf(err), waited)
		}
	})
	t.Run("topic gone", func(t *testing.T) {
		// The follower holds a topic the cluster deleted, and does not apply the deletion.
		svc := follower(t, at, 0)
		svc.sm = emptyMachine(t)
		if _, err := svc.sm.CreateTopic(ctx, &directProposer{m: svc.sm}, "gone", 1, fsm.TopicConfig{}); err != nil {
			t.Fatal(err)
		}
		sctx, cancel := context.WithTimeout(ctx, 15*time.Second)
		defer cancel()
		err := svc.ConsumeStream(sctx, &logv1.ConsumeRequest{Topic: "gone"}, discardStream{})
		if transport.CodeOf(err) != transport.NotFound || sctx.Err() != nil {
			t.Errorf("ConsumeStream of a topic the leader deleted, on a follower that does not apply the deletion: %v (code %v, waited out its deadline: %v); want NotFound",
				err, transport.CodeOf(err), sctx.Err() != nil)
		}
	})
	t.Run("caught up and idle", func(t *testing.T) {
		svc := follower(t, at, n)
		got, waited, err := stream(svc, 4*time.Second)
		// Open until the client's deadline, which then ends it DeadlineExceeded (never OK:
		// a tailing stream has no end of its own).
		if transport.CodeOf(err) != transport.DeadlineExceeded || !waited || !slices.Equal(got, []uint64{0, 1, 2, 3}) {
			t.Errorf("ConsumeStream on a follower that applied every committed record: sent %v, ended with %v (waited out its deadline: %v); want 0-3, then open until the client's deadline (DeadlineExceeded)",
				got, err, waited)
		}
	})
}

// TestFollowerConsumeStreamIdleStaysOpen: on a real 3-node cluster, a ConsumeStream tailing
// an idle log on a follower that applies everything stays open past several stall checks (each
// asks the leader for its commit point), and then sends the next record committed.
func TestFollowerConsumeStreamIdleStaysOpen(t *testing.T) {
	nodes := startCluster(t, 3)
	ctx := ctxT(t, 90*time.Second)
	leader := leaderOf(t, nodes)
	lc := newClient(t, TransportConnect, leader.Addr())
	if _, err := lc.Produce(ctx, &logv1.ProduceRequest{Record: &logv1.Record{Value: []byte("a")}}); err != nil {
		t.Fatal(err)
	}
	var follower *testServer
	for _, nd := range nodes {
		if nd != leader {
			follower = nd
			break
		}
	}
	svc := follower.svc
	fc := newClient(t, TransportConnect, follower.Addr())
	sctx, cancel := context.WithCancel(ctx)
	defer cancel()
	st, err := fc.ConsumeStream(sctx, &logv1.ConsumeRequest{Offset: 0})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	if r, err := st.Receive(); err != nil || string(r.GetRecord().GetValue()) != "a" {
		t.Fatalf("first record: %v, %v", r, err)
	}
	idle := 3*svc.stallInterval() + svc.leaderWait
	got := make(chan error, 1)
	go func() {
		r, err := st.Receive()
		if err == nil && string(r.GetRecord().GetValue()) != "b" {
			err = fmt.Errorf("record %v, want b", r)
		}
		got <- err
	}()
	select {
	case err := <-got:
		t.Fatalf("the idle stream on a healthy follower ended: %v", err)
	case <-time.After(idle):
	}
	if _, err := lc.Produce(ctx, &logv1.ProduceRequest{Record: &logv1.Record{Value: []byte("b")}}); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-got:
		if err != nil {
			t.Fatalf("the next record on the stream: %v", err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("the stream did not send the next record")
	}
}
