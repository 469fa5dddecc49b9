package server

import (
	"context"
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

// TestConsumeStreamReadsWhatItsNodeHoldsWithoutALeader: a node without a leader gets no
// new record, but it still holds every record it applied. A stream still reading those (a
// backlog: the last node up, read for what it holds) was ended once the node had known no
// leader for an election, whatever remained unsent, and a client that does not resume (the
// seed's, grpcurl) could never read the node's log through. Only a stream that has sent
// everything its node holds is waiting for records that cannot come: that one ends.
func TestConsumeStreamReadsWhatItsNodeHoldsWithoutALeader(t *testing.T) {
	// One transport: the rule is the server's, and 32 MiB replicated under the race
	// detector is slow.
	for _, tr := range []string{TransportGRPC} {
		t.Run(tr, func(t *testing.T) {
			nodes := startClusterWith(t, 3, func(_ int, cfg *Config) { cfg.Transport = tr })
			ctx := ctxT(t, 120*time.Second)
			// More than the transports' flow-control windows hold (16 MiB at most), and more
			// records than a stream sends between two looks at its context (1024).
			const want, batch, size = 2048, 64, 16 << 10
			value := make([]byte, size)
			recs := make([]*logv1.Record, batch)
			for j := range recs {
				recs[j] = &logv1.Record{Value: value}
			}
			// Written through whichever node leads: on a loaded machine leadership may move
			// while 32 MiB are replicated, and a batch whose outcome is unknown is sent again
			// (a duplicate only makes the log longer; its end is read afterwards).
			lc := newClient(t, tr, leaderOf(t, nodes).Addr())
			for end := uint64(0); end < want; {
				res, err := lc.ProduceBatch(ctx, &logv1.ProduceBatchRequest{Records: recs})
				if err != nil {
					if ctx.Err() != nil {
						t.Fatalf("ProduceBatch: %v", err)
					}
					t.Logf("ProduceBatch (sent again, to the leader then): %v", err)
					lc = newClient(t, tr, leaderOf(t, nodes).Addr())
					continue
				}
				end = res.GetBaseOffset() + batch
			}
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
			b, err := newClient(t, tr, leader.Addr()).GetBounds(ctx, &logv1.GetBoundsRequest{})
			if err != nil {
				t.Fatalf("leader's GetBounds: %v", err)
			}
			total := b.GetNextOffset()
			fc := newClient(t, tr, follower.Addr())
			waitFor(t, 30*time.Second, "the follower holds every record", func() bool {
				b, err := fc.GetBounds(ctx, &logv1.GetBoundsRequest{})
				return err == nil && b.GetNextOffset() == total
			})
			st, err := fc.ConsumeStream(ctx, &logv1.ConsumeRequest{Offset: 0, MaxBatch: 1})
			if err != nil {
				t.Fatalf("ConsumeStream: %v", err)
			}
			defer st.Close()
			if _, err := st.Receive(); err != nil {
				t.Fatalf("first record: %v", err)
			}
			for _, nd := range others {
				nd.shutdown(t)
			}
			// The reader is slow: the node knows no leader for longer than an election
			// before it has read the backlog.
			time.Sleep(4 * time.Second)
			got := uint64(1)
			for {
				res, err := st.Receive()
				if err != nil {
					if got != total {
						t.Fatalf("stream ended after %d of the %d records its node holds: %v", got, total, err)
					}
					if nl, ok := transport.NotLeaderDetail(err); !ok || nl.LeaderAddr != "" || transport.CodeOf(err) != transport.Unavailable {
						t.Fatalf("stream ended at its node's end with %v, want Unavailable with the empty NotLeader detail", err)
					}
					return
				}
				if off := res.GetRecord().GetOffset(); off != got {
					t.Fatalf("record at %d, want %d", off, got)
				}
				got++
			}
		})
	}
}

// TestProduceWithoutLeaderAnsweredBeforeDeadline: a write to a node that knows no leader waits
// for one (an election's time), but no later than its caller can still hear that nothing was
// proposed. A caller whose deadline is shorter than that wait was answered only at its
// deadline, and could only take the outcome as unknown.
func TestProduceWithoutLeaderAnsweredBeforeDeadline(t *testing.T) {
	for _, tr := range transports {
		t.Run(tr, func(t *testing.T) {
			nodes := startClusterWith(t, 3, func(_ int, cfg *Config) { cfg.Transport = tr })
			leader := leaderOf(t, nodes)
			var follower, other *testServer
			for _, nd := range nodes {
				switch {
				case nd == leader:
				case follower == nil:
					follower = nd
				default:
					other = nd
				}
			}
			other.shutdown(t)
			leader.shutdown(t)
			// A graceful stop may hand leadership to follower, which then steps down without
			// a majority. The hand-over's election may still be counting the stopped leader's
			// vote when follower first knows no leader (a candidate): it must go a while
			// knowing none, longer than it leads when it wins (until its lease without a
			// majority ends), so that the write below cannot be proposed by it as leader.
			var since time.Time
			waitFor(t, 20*time.Second, "follower knows no leader for 2s", func() bool {
				if _, known := follower.node.Leader(); known || follower.node.IsLeader() {
					since = time.Time{}
					return false
				}
				if since.IsZero() {
					since = time.Now()
				}
				return time.Since(since) >= 2*time.Second
			})
			fc := newClient(t, tr, follower.Addr())
			ctx, cancel := context.WithTimeout(t.Context(), time.Second)
			defer cancel()
			_, err := fc.Produce(ctx, &logv1.ProduceRequest{Record: &logv1.Record{Value: []byte("r")}})
			if ctx.Err() != nil {
				t.Fatalf("Produce answered %v only once its deadline had passed", err)
			}
			if !transport.IsNotProposed(err) {
				t.Fatalf("Produce = %v, want the NotProposed detail", err)
			}
		})
	}
}
