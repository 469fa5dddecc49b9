package server

import (
	"context"
	"testing"
	"time"

	"github.com/commitlog-go/commitlog/transport"
	logv1 "github.com/commitlog-go/commitlog/transport/gen/log/v1"
)

// TestCancelledProduceCountsCanceled: a Produce or ProduceBatch whose caller cancels while it is
// in flight is counted by the server as the caller's Canceled, whether the server had proposed
// the write by then or not. One cancelled after its proposal has an unknown outcome for the
// server too (Raft had not answered), which toWire makes Unavailable (OutcomeUnknown): the
// answer nobody receives (the caller reset the call), and in the request metrics a server
// unavailability, about one in six cancelled produces, for writes that were mostly stored.
func TestCancelledProduceCountsCanceled(t *testing.T) {
	for _, tr := range transports {
		t.Run(tr, func(t *testing.T) {
			s := startServer(t, Config{Transport: tr, MetricsAddr: "127.0.0.1:0"})
			produceCancelling(ctxT(t, 60*time.Second), newClient(t, tr, s.Addr()), 300, 30, 40*time.Microsecond)
			for _, rpc := range []string{"Produce", "ProduceBatch"} {
				if counts := checkOKOrCanceled(t, s, rpc); counts["canceled"] == 0 {
					t.Errorf("%s: no call counted canceled (%v): the cancels came too late to test anything", rpc, counts)
				}
			}
		})
	}
}

// TestCancelledForwardedProduceCountsCanceled: the same through a follower, which forwards the
// writes to the leader: a write cancelled after it was proposed (the follower's forward then
// ends cancelled, its outcome unknown) is Canceled on both, not Unavailable.
func TestCancelledForwardedProduceCountsCanceled(t *testing.T) {
	nodes := startClusterWith(t, 3, func(i int, cfg *Config) { cfg.MetricsAddr = "127.0.0.1:0" })
	var follower *testServer
	for _, n := range nodes {
		if !n.node.IsLeader() {
			follower = n
		}
	}
	produceCancelling(ctxT(t, 60*time.Second), newClient(t, TransportConnect, follower.Addr()), 200, 40, 60*time.Microsecond)
	for _, n := range nodes {
		for _, rpc := range []string{"Produce", "ProduceBatch"} {
			checkOKOrCanceled(t, n, rpc)
		}
	}
}

// produceCancelling makes calls writes through c, Produce and ProduceBatch (500 records) in
// turn, the i-th cancelled (i%spread)×step after it starts: cancels spread over a write's life,
// before it is sent, before it is proposed, while Raft commits it, after its answer. It returns
// when the servers have had time to account for the last ones.
func produceCancelling(ctx context.Context, c transport.Client, calls, spread int, step time.Duration) {
	recs := make([]*logv1.Record, 500)
	for i := range recs {
		recs[i] = &logv1.Record{Value: make([]byte, 100)}
	}
	for i := range calls {
		cctx, cancel := context.WithCancel(ctx)
		time.AfterFunc(time.Duration(i%spread)*step, cancel)
		if i%2 == 0 {
			_, _ = c.Produce(cctx, &logv1.ProduceRequest{Record: recs[0]})
		} else {
			_, _ = c.ProduceBatch(cctx, &logv1.ProduceBatchRequest{Records: recs})
		}
		cancel()
	}
	time.Sleep(500 * time.Millisecond) // the last calls' accounts
}

// checkOKOrCanceled fails t for every call of rpc that s counts under a code other than ok or
// canceled, and returns the counts.
func checkOKOrCanceled(t *testing.T, s *testServer, rpc string) map[string]uint64 {
	t.Helper()
	counts := requestCounts(t, s, rpc)
	for code, n := range counts {
		if code != "ok" && code != "canceled" {
			t.Errorf("%s (leader: %v) %s: %d cancelled calls counted %s (all: %v), want ok or canceled", s.cfg.NodeName, s.node.IsLeader(), rpc, n, code, counts)
		}
	}
	return counts
}
