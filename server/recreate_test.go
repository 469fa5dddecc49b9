package server

import (
	"context"
	"fmt"
	"net"
	"os"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/commitlog-go/commitlog/discovery"
	"github.com/commitlog-go/commitlog/transport"
	logv1 "github.com/commitlog-go/commitlog/transport/gen/log/v1"
)

// fixedCluster is three servers on fixed ports with a fixed membership, so that they can be
// stopped and started again on the same data dirs and addresses.
type fixedCluster struct {
	t     *testing.T
	cfgs  []Config
	nodes []*testServer
}

func newFixedCluster(t *testing.T, n int) *fixedCluster {
	t.Helper()
	ports := freePorts(t, n)
	members := make([]discovery.Member, n)
	for i := range n {
		members[i] = PeerMember(fmt.Sprintf("node-%d", i), net.JoinHostPort("127.0.0.1", strconv.Itoa(ports[i])))
	}
	fc := &fixedCluster{t: t}
	for i := range n {
		var peers []discovery.Member
		for j := range n {
			if j != i {
				peers = append(peers, members[j])
			}
		}
		fc.cfgs = append(fc.cfgs, Config{
			NodeName: members[i].Name, DataDir: t.TempDir(), BindAddr: "127.0.0.1:0", RPCPort: ports[i],
			BootstrapExpect: n, ReconcileInterval: 100 * time.Millisecond,
			// The divergence check runs all along: a deleted and re-created topic is not a
			// divergence, on any node.
			DivergenceCheckInterval: 100 * time.Millisecond,
			Membership:              staticMembership(peers...),
		})
	}
	fc.start()
	return fc
}

// start starts every node and waits until they form one cluster with a leader.
func (fc *fixedCluster) start() {
	t := fc.t
	t.Helper()
	fc.nodes = nil
	for _, cfg := range fc.cfgs {
		srv, err := New(cfg)
		if err != nil {
			t.Fatalf("New %s: %v", cfg.NodeName, err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		ts := &testServer{Server: srv, done: make(chan error, 1), stop: cancel}
		go func() { ts.done <- srv.Run(ctx) }()
		t.Cleanup(func() { ts.shutdown(t) })
		fc.nodes = append(fc.nodes, ts)
	}
	waitVoters(t, fc.nodes)
	leaderOf(t, fc.nodes)
}

func (fc *fixedCluster) stop() {
	for _, nd := range fc.nodes {
		nd.shutdown(fc.t)
	}
}

// TestTopicDeleteRecreateRestart: a topic is created, written, deleted and created again under
// the same name (a new ID), and written again; before and after every node restarts (from a
// snapshot taken before the deletion, replaying the deletion and the new creation), every node
// serves the new topic with only the new records, and all agree.
func TestTopicDeleteRecreateRestart(t *testing.T) {
	fc := newFixedCluster(t, 3)
	ctx := ctxT(t, 120*time.Second)
	client := func() transport.Client {
		return newClient(t, TransportConnect, leaderOf(t, fc.nodes).Addr())
	}
	c := client()
	topics := c.(transport.TopicsClient)
	old, err := topics.CreateTopic(ctx, &logv1.CreateTopicRequest{Name: "orders", Partitions: 2})
	if err != nil {
		t.Fatal(err)
	}
	for i := range 5 {
		if _, err := c.Produce(ctx, &logv1.ProduceRequest{Topic: "orders", Partition: uint32(i % 2), Record: &logv1.Record{Value: fmt.Appendf(nil, "old-%d", i)}}); err != nil {
			t.Fatal(err)
		}
	}
	// Every node snapshots the old topic: the restart below restores these snapshots and
	// replays the deletion and the re-creation.
	for _, nd := range fc.nodes {
		waitFor(t, 20*time.Second, nd.ID()+" applies the old records", func() bool {
			f, _, err := nd.sm.Partition("orders", 0)
			if err != nil {
				return false
			}
			_, next := f.Bounds()
			return next == 3
		})
		if err := nd.node.Raft().Snapshot().Error(); err != nil {
			t.Fatalf("snapshot on %s: %v", nd.ID(), err)
		}
	}
	if _, err := topics.DeleteTopic(ctx, &logv1.DeleteTopicRequest{Name: "orders"}); err != nil {
		t.Fatal(err)
	}
	created, err := topics.CreateTopic(ctx, &logv1.CreateTopicRequest{Name: "orders", Partitions: 1})
	if err != nil {
		t.Fatal(err)
	}
	if created.GetTopic().GetId() == old.GetTopic().GetId() {
		t.Fatalf("the re-created topic has the deleted one's ID %s", old.GetTopic().GetId())
	}
	for i := range 2 {
		res, err := c.Produce(ctx, &logv1.ProduceRequest{Topic: "orders", Record: &logv1.Record{Value: fmt.Appendf(nil, "new-%d", i)}})
		if err != nil || res.GetOffset() != uint64(i) {
			t.Fatalf("Produce to the re-created topic = %v, %v; want offset %d", res, err, i)
		}
	}
	want := []string{"new-0", "new-1"}
	agree := func(stage string) {
		t.Helper()
		for _, nd := range fc.nodes {
			waitFor(t, 30*time.Second, nd.ID()+" serves the re-created topic "+stage, func() bool {
				tp, err := nd.sm.Topic("orders")
				if err != nil || tp.ID.String() != created.GetTopic().GetId() {
					return false
				}
				f, _, err := nd.sm.Partition("orders", 0)
				if err != nil {
					return false
				}
				_, next := f.Bounds()
				return next >= uint64(len(want))
			})
			tp, _ := nd.sm.Topic("orders")
			if tp.Partitions != 1 {
				t.Errorf("%s %s: orders has %d partitions, want 1", nd.ID(), stage, tp.Partitions)
			}
			if got := partitionValues(t, ctx, nd, "orders", 0); !slices.Equal(got, want) {
				t.Errorf("%s %s: orders/0 holds %q, want %q", nd.ID(), stage, got, want)
			}
			if _, _, err := nd.sm.Partition("orders", 1); err == nil {
				t.Errorf("%s %s: the deleted topic's partition 1 is still served", nd.ID(), stage)
			}
			// And over the API, from this node.
			nc := newClient(t, TransportGRPC, nd.Addr())
			d, err := nc.(transport.TopicsClient).DescribeTopic(ctx, &logv1.DescribeTopicRequest{Name: "orders"})
			if err != nil || d.GetTopic().GetId() != created.GetTopic().GetId() || len(d.GetPartitions()) != 1 || d.GetPartitions()[0].GetNextOffset() != uint64(len(want)) {
				t.Errorf("%s %s: DescribeTopic = %v, %v", nd.ID(), stage, d, err)
			}
			if b, err := nc.GetBounds(ctx, &logv1.GetBoundsRequest{Topic: "orders"}); err != nil || b.GetDivergence() != "" {
				t.Errorf("%s %s: GetBounds = %v, %v; want no divergence alarm", nd.ID(), stage, b, err)
			}
		}
	}
	agree("before the restart")

	fc.stop()
	fc.start()
	agree("after the restart")
	c = client()
	res, err := c.Produce(ctx, &logv1.ProduceRequest{Topic: "orders", Record: &logv1.Record{Value: []byte("new-2")}})
	if err != nil || res.GetOffset() != 2 {
		t.Fatalf("Produce after the restart = %v, %v; want offset 2", res, err)
	}
	want = append(want, "new-2")
	agree("after a produce")
}

// TestStaticMembershipWipedLowestJoinsBack: with a fixed membership (no gossip tags) and
// BootstrapExpect, the lowest-named server restarted with a wiped data dir asks the others
// for their cluster ID before it bootstraps: it finds theirs and waits to be added, instead of
// founding a second cluster.
func TestStaticMembershipWipedLowestJoinsBack(t *testing.T) {
	fc := newFixedCluster(t, 3)
	old := fc.nodes[1].node.ClusterID()
	fc.nodes[0].shutdown(t)
	if err := os.RemoveAll(fc.cfgs[0].DataDir); err != nil {
		t.Fatal(err)
	}
	srv, err := New(fc.cfgs[0])
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	ts := &testServer{Server: srv, done: make(chan error, 1), stop: cancel}
	go func() { ts.done <- srv.Run(ctx) }()
	t.Cleanup(func() { ts.shutdown(t) })
	waitFor(t, 30*time.Second, "the wiped node to be in the old cluster again", func() bool {
		id := ts.node.ClusterID()
		if id != "" && id != old {
			t.Fatalf("the wiped node-0 founded cluster %s; the others are in %s", id, old)
		}
		return id == old && ts.node.Status().AppliedIndex > 0
	})
}
