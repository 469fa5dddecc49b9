package server

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/commitlog-go/commitlog/client"
)

// TestSDKBoundsAfterLeadershipMoved: an SDK client's Bounds under its default read policy
// (ReadLeader) is the leader's, holding every record the client was acknowledged, also after
// leadership moved away from the server the client knew as the leader. That server, now a
// follower, forwards the client's writes to the new leader, so the client hears of no change;
// it answered Bounds from its own state, a next offset that could lack the records the client
// had just been acknowledged (seen with real processes: `cluster transfer-leadership` under
// load, then Bounds three records short of the client's own last acknowledgement), until the
// client's next refresh. With require_leader it names the leader instead, and the client asks
// there and remembers it.
func TestSDKBoundsAfterLeadershipMoved(t *testing.T) {
	nodes := startCluster(t, 3)
	ctx := ctxT(t, 60*time.Second)
	old := leaderOf(t, nodes)
	sdk, err := client.New(ctx, []string{old.Addr()}, client.WithRefreshInterval(0))
	if err != nil {
		t.Fatal(err)
	}
	defer sdk.Close()
	if _, err := sdk.Produce(ctx, []byte("before")); err != nil {
		t.Fatal(err)
	}
	if got := sdk.Leader(); got != old.Addr() {
		t.Fatalf("the client takes %s for the leader, want %s", got, old.Addr())
	}
	if err := old.node.TransferLeadership(ctx, ""); err != nil {
		t.Fatalf("TransferLeadership: %v", err)
	}
	var next *testServer
	waitFor(t, 30*time.Second, "another node leads and the old leader knows it", func() bool {
		for _, nd := range nodes {
			if nd != old && nd.node.IsLeader() {
				l, ok := old.node.Leader()
				if ok && l.ID == nd.cfg.NodeName {
					next = nd
					return true
				}
			}
		}
		return false
	})
	var last uint64
	for i := range 20 {
		off, err := sdk.Produce(ctx, fmt.Appendf(nil, "after-%d", i))
		if err != nil {
			t.Fatalf("Produce after the transfer: %v", err)
		}
		last = off
	}
	b, err := sdk.Bounds(ctx)
	if err != nil {
		t.Fatalf("Bounds: %v", err)
	}
	if b.Next <= last || b.Committed <= last {
		t.Errorf("Bounds %+v lacks offset %d, which this client was acknowledged", b, last)
	}
	if got := sdk.Leader(); got != next.Addr() {
		t.Errorf("after Bounds the client takes %s for the leader, want %s (the leader since the transfer): Bounds was answered by a follower", got, next.Addr())
	}
	pb, err := sdk.PartitionBounds(context.Background(), "", 0)
	if err != nil || pb.Next <= last {
		t.Errorf("PartitionBounds: %+v, %v; want a next offset past %d", pb, err, last)
	}
}
