package server

import (
	"fmt"
	"maps"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/commitlog-go/commitlog/transport"
	logv1 "github.com/commitlog-go/commitlog/transport/gen/log/v1"
)

// TestDivergenceDetectorPartition: the divergence check compares every topic partition, not
// only the default one: a follower whose record in orders/1 was changed at rest raises its
// alarm naming the partition, and refuses reads; the others raise nothing.
func TestDivergenceDetectorPartition(t *testing.T) {
	const n = 3
	cfgs := make([]Config, n)
	nodes := make([]*testServer, n)
	for i := range n {
		cfgs[i] = Config{NodeName: fmt.Sprintf("node-%d", i), GossipProfile: "test", ReconcileInterval: 100 * time.Millisecond,
			DivergenceCheckInterval: 100 * time.Millisecond, DataDir: t.TempDir()}
		if i > 0 {
			cfgs[i].StartJoinAddrs = []string{nodes[0].GossipAddr()}
		}
		nodes[i] = startNode(t, cfgs[i], i == 0)
	}
	waitVoters(t, nodes)
	ctx := ctxT(t, 120*time.Second)
	leader := leaderOf(t, nodes)
	lc := newClient(t, TransportConnect, leader.Addr())
	created, err := lc.(transport.TopicsClient).CreateTopic(ctx, &logv1.CreateTopicRequest{Name: "orders", Partitions: 2})
	if err != nil {
		t.Fatal(err)
	}
	var batch []*logv1.Record
	for i := range 20 {
		batch = append(batch, &logv1.Record{Value: fmt.Appendf(nil, "order-%d", i), Key: []byte("k")})
	}
	if _, err := lc.ProduceBatch(ctx, &logv1.ProduceBatchRequest{Topic: "orders", Partition: 1, Records: batch}); err != nil {
		t.Fatal(err)
	}
	if _, err := lc.Produce(ctx, &logv1.ProduceRequest{Record: &logv1.Record{Value: []byte("default")}}); err != nil {
		t.Fatal(err)
	}
	clients := map[*testServer]transport.Client{}
	bounds := func(nd *testServer) *logv1.GetBoundsResponse {
		t.Helper()
		if clients[nd] == nil {
			clients[nd] = newClient(t, TransportConnect, nd.Addr())
		}
		b, err := clients[nd].GetBounds(ctx, &logv1.GetBoundsRequest{Topic: "orders", Partition: 1})
		if err != nil {
			t.Fatalf("GetBounds on %s: %v", nd.ID(), err)
		}
		return b
	}
	for _, nd := range nodes {
		waitFor(t, 30*time.Second, nd.ID()+" applied every record", func() bool { return bounds(nd).GetNextOffset() == 20 })
	}
	var victim int
	for i, nd := range nodes {
		if nd != leader {
			victim = i
			break
		}
	}
	nodes[victim].shutdown(t)
	plantDivergenceIn(t, filepath.Join(cfgs[victim].DataDir, "topics", created.GetTopic().GetId(), "1"), "order-7")
	cfg := cfgs[victim]
	cfg.StartJoinAddrs = []string{leader.GossipAddr()}
	nodes[victim] = startNode(t, cfg, false)
	v := nodes[victim]
	vc := newClient(t, TransportConnect, v.Addr())

	waitFor(t, 60*time.Second, "the planted divergence raises the alarm on "+v.ID(), func() bool {
		// NotFound until the restarted server, on a new address, hears from the leader and
		// replays the topic's creation.
		b, err := vc.GetBounds(ctx, &logv1.GetBoundsRequest{Topic: "orders", Partition: 1})
		return err == nil && b.GetDivergence() != ""
	})
	b, err := vc.GetBounds(ctx, &logv1.GetBoundsRequest{Topic: "orders", Partition: 1})
	if err != nil {
		t.Fatal(err)
	}
	alarm := b.GetDivergence()
	if !strings.Contains(alarm, `topic "orders" partition 1`) {
		t.Errorf("alarm %q does not name the partition", alarm)
	}
	if _, err := vc.Consume(ctx, &logv1.ConsumeRequest{Topic: "orders", Partition: 1}); transport.CodeOf(err) != transport.DataLoss {
		t.Errorf("Consume on the diverged server: %v, want DATA_LOSS", err)
	}
	for _, nd := range nodes {
		if nd == v {
			continue
		}
		if d := bounds(nd).GetDivergence(); d != "" {
			t.Errorf("%s, whose log agrees with the majority, raised the alarm: %s", nd.ID(), d)
		}
	}
}

// TestDivergenceForgetsDeletedPartitions: a check drops the scrub positions of partitions that
// are no longer there and keeps the default partition's and the live ones'.
func TestDivergenceForgetsDeletedPartitions(t *testing.T) {
	st := &divergenceState{scrub: map[divTarget]uint64{
		{}: 7, {"live", 0}: 1, {"live", 3}: 2, {"gone", 0}: 3, {"live", 9}: 4,
	}}
	st.forget([]divTarget{{"live", 0}, {"live", 3}})
	want := map[divTarget]uint64{{}: 7, {"live", 0}: 1, {"live", 3}: 2}
	if !maps.Equal(st.scrub, want) {
		t.Fatalf("scrub positions %v, want %v", st.scrub, want)
	}
}
