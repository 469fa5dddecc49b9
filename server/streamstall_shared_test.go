package server

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/commitlog-go/commitlog/consensus"
	"github.com/commitlog-go/commitlog/server/fsm"
	"github.com/commitlog-go/commitlog/transport"
	logv1 "github.com/commitlog-go/commitlog/transport/gen/log/v1"
)

// countingFollower is a follower that counts its LinearizableRead calls: every look at the
// cluster's commit point (commitPoint) begins with one, then asks the leader.
type countingFollower struct {
	catchingUpFollower
	reads *atomic.Int64
}

func (f countingFollower) LinearizableRead(ctx context.Context) error {
	f.reads.Add(1)
	return f.catchingUpFollower.LinearizableRead(ctx)
}

// TestStallChecksSharedByStreamsOfAPartition: the idle ConsumeStreams of one partition on a
// follower share the stall checks' looks at the cluster's commit point (each a linearizable
// GetBounds on the leader, and a DescribeTopic for a stream naming its topic's ID). Each
// stream looked on its own: n idle streams cost the leader n linearizable reads every stall
// interval, where one tells them all. Every stream stays open (the follower applies all).
func TestStallChecksSharedByStreamsOfAPartition(t *testing.T) {
	leader := startServer(t, Config{})
	lc := newClient(t, TransportConnect, leader.Addr())
	ctx := ctxT(t, 60*time.Second)
	const n = 2
	f := emptyFSM(t)
	for i := range n {
		if _, err := lc.Produce(ctx, &logv1.ProduceRequest{Record: &logv1.Record{Value: fmt.Appendf(nil, "v%d", i)}}); err != nil {
			t.Fatal(err)
		}
		cmd, err := f.EncodeAppend(fsm.AppendRecord{Value: fmt.Appendf(nil, "v%d", i)})
		if err != nil {
			t.Fatal(err)
		}
		f.Apply([]consensus.Entry{{Index: uint64(i + 1), Term: 1, Data: cmd}})
	}
	var reads atomic.Int64
	at := consensus.Server{ID: leader.ID(), Address: leader.Addr()}
	svc := &service{
		node: countingFollower{
			catchingUpFollower: catchingUpFollower{followerNode: followerNode{leader: at}, once: &sync.Once{}, catchUp: func() {}},
			reads:              &reads,
		},
		fsm:        f,
		forward:    testForwarder(t),
		cfg:        &Config{MaxConsumeWait: 200 * time.Millisecond},
		stop:       make(chan struct{}),
		leaderWait: 200 * time.Millisecond,
	}
	every := svc.stallInterval()
	const streams, intervals = 16, 6
	sctx, cancel := context.WithTimeout(ctx, intervals*every)
	defer cancel()
	var wg sync.WaitGroup
	errs := make([]error, streams)
	got := make([]*captureStream, streams)
	for i := range streams {
		got[i] = &captureStream{}
		wg.Go(func() {
			errs[i] = svc.ConsumeStream(sctx, &logv1.ConsumeRequest{Offset: 0, MaxBatch: 16}, got[i])
		})
		// Opened over an interval, as clients come: their checks fall at different times.
		time.Sleep(every / streams)
	}
	wg.Wait()
	for i, err := range errs {
		// Open until its deadline, which then ends it DeadlineExceeded (never OK).
		if transport.CodeOf(err) != transport.DeadlineExceeded || len(got[i].offsets) != n {
			t.Fatalf("stream %d on a follower that applied everything: sent %v, ended with %v; want %d records, then open until its deadline (DeadlineExceeded)", i, got[i].offsets, err, n)
		}
	}
	// Each stream looks at most once an interval, after its first idle one: shared, the
	// looks are about one an interval whatever the number of streams; alone, about
	// streams*(intervals-1).
	looks := reads.Load()
	t.Logf("%d looks by %d streams over %d intervals", looks, streams, intervals)
	if looks == 0 || looks > 2*intervals {
		t.Errorf("%d looks at the commit point by %d idle streams of one partition over %d stall intervals; want at least 1 and at most %d (shared)",
			looks, streams, intervals, 2*intervals)
	}
}
