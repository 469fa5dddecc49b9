package server

import (
	"testing"
	"time"

	"github.com/commitlog-go/commitlog/transport"
	logv1 "github.com/commitlog-go/commitlog/transport/gen/log/v1"
)

// TestConsumeStreamEndsWhenItsNodeLosesTheLeader: a ConsumeStream tailing a follower that is
// cut off from its cluster stalled without an error for as long as that lasted, while the
// others could go on committing. It now ends Unavailable, with the empty NotLeader detail
// (clients resume on another server), once the node has known no leader for an election.
func TestConsumeStreamEndsWhenItsNodeLosesTheLeader(t *testing.T) {
	for _, tr := range transports {
		t.Run(tr, func(t *testing.T) {
			nodes := startClusterWith(t, 3, func(_ int, cfg *Config) { cfg.Transport = tr })
			leader := leaderOf(t, nodes)
			var follower *testServer
			var others []*testServer
			for _, nd := range nodes {
				if nd != leader && follower == nil {
					follower = nd
				} else {
					others = append(others, nd)
				}
			}
			ctx := ctxT(t, 60*time.Second)
			lc := newClient(t, tr, leader.Addr())
			if _, err := lc.Produce(ctx, &logv1.ProduceRequest{Record: &logv1.Record{Value: []byte("r0")}}); err != nil {
				t.Fatalf("Produce: %v", err)
			}
			fc := newClient(t, tr, follower.Addr())
			st, err := fc.ConsumeStream(ctx, &logv1.ConsumeRequest{Offset: 0, MaxBatch: 16})
			if err != nil {
				t.Fatalf("ConsumeStream: %v", err)
			}
			defer st.Close()
			if res, err := st.Receive(); err != nil || len(res.GetRecords()) != 1 {
				t.Fatalf("first message: %v %v", res, err)
			}
			// The stream now tails the follower. Its cluster goes away.
			for _, nd := range others {
				nd.shutdown(t)
			}
			lost := time.Now()
			type result struct {
				res *logv1.ConsumeResponse
				err error
			}
			got := make(chan result, 1)
			go func() {
				res, err := st.Receive()
				got <- result{res, err}
			}()
			select {
			case r := <-got:
				if r.err == nil {
					t.Fatalf("Receive after the leader was lost: %v, want an error", r.res)
				}
				if code := transport.CodeOf(r.err); code != transport.Unavailable {
					t.Fatalf("stream ended %v (%v), want Unavailable", code, r.err)
				}
				if nl, ok := transport.NotLeaderDetail(r.err); !ok || nl.LeaderAddr != "" {
					t.Errorf("stream ended without the empty NotLeader detail (%v %v): %v", nl, ok, r.err)
				}
				t.Logf("stream ended %v after the cluster went away: %v", time.Since(lost).Round(time.Millisecond), r.err)
			case <-time.After(20 * time.Second):
				t.Fatal("the stream still waits 20 s after its node lost the leader")
			}
		})
	}
}
