package client_test

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/commitlog-go/commitlog/client"
	"github.com/commitlog-go/commitlog/client/clienttest"
	"github.com/commitlog-go/commitlog/transport"
	logv1 "github.com/commitlog-go/commitlog/transport/gen/log/v1"
)

// movingLeader is the leadership of a two-node fake cluster, which a test moves.
type movingLeader struct {
	mu     sync.Mutex
	leader int       // the leader's index in addrs
	addrs  [2]string // the nodes' addresses
}

func (m *movingLeader) get() (leader int, addrs [2]string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.leader, m.addrs
}

func (m *movingLeader) setAddr(i int, addr string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.addrs[i] = addr
}

func (m *movingLeader) setLeader(i int) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.leader = i
}

// movedNode is one node of that cluster, serving its own *clienttest.Log. While it is not the
// leader it behaves as a real follower does: GetServers names the leader, a write (InitProducer,
// Produce, ProduceBatch) is forwarded to the leader's log, and a DescribeTopic with
// require_leader is refused with NotLeader naming the leader; any other DescribeTopic is
// answered from its own log, which may lag.
type movedNode struct {
	*clienttest.Log
	self      int // this node's index in cl.addrs
	cl        *movingLeader
	leaderLog *clienttest.Log
	described *atomic.Int32 // DescribeTopic calls, refused ones too
}

func (n movedNode) leads() bool {
	leader, _ := n.cl.get()
	return leader == n.self
}

func (n movedNode) GetServers(context.Context, *logv1.GetServersRequest) (*logv1.GetServersResponse, error) {
	leader, addrs := n.cl.get()
	var out []*logv1.Server
	for i, addr := range addrs {
		out = append(out, &logv1.Server{Id: addr, RpcAddr: addr, RaftAddr: addr, IsLeader: i == leader, Healthy: true, Suffrage: logv1.Suffrage_SUFFRAGE_VOTER})
	}
	return &logv1.GetServersResponse{Servers: out}, nil
}

func (n movedNode) DescribeTopic(ctx context.Context, req *logv1.DescribeTopicRequest) (*logv1.DescribeTopicResponse, error) {
	n.described.Add(1)
	if leader, addrs := n.cl.get(); req.GetRequireLeader() && leader != n.self {
		return nil, transport.NotLeaderError(transport.NotLeader{LeaderID: addrs[leader], LeaderAddr: addrs[leader]}, "not the leader")
	}
	return n.Log.DescribeTopic(ctx, req)
}

func (n movedNode) InitProducer(ctx context.Context, req *logv1.InitProducerRequest) (*logv1.InitProducerResponse, error) {
	if !n.leads() {
		return n.leaderLog.InitProducer(ctx, req)
	}
	return n.Log.InitProducer(ctx, req)
}

func (n movedNode) Produce(ctx context.Context, req *logv1.ProduceRequest) (*logv1.ProduceResponse, error) {
	if !n.leads() {
		return n.leaderLog.Produce(ctx, req)
	}
	return n.Log.Produce(ctx, req)
}

func (n movedNode) ProduceBatch(ctx context.Context, req *logv1.ProduceBatchRequest) (*logv1.ProduceBatchResponse, error) {
	if !n.leads() {
		return n.leaderLog.ProduceBatch(ctx, req)
	}
	return n.Log.ProduceBatch(ctx, req)
}

// TestProducerPinsTopicIDFromLeaderItFollowed: a Producer of a client whose idea of the leader
// is stale (leadership moved to another node since the client learnt it) pins the ID the
// leader gives its topic, not the one the ex-leader, now a follower that has not applied the
// topic's deletion and re-creation, still holds: its records are stored. The describe was
// answered by the ex-leader from its own state (the deleted topic's ID), the Producer pinned it,
// and the leader (the ex-leader forwards writes to it) refused every batch: each record, to a
// topic that exists, failed with ErrUnknownTopic for the Producer's life.
func TestProducerPinsTopicIDFromLeaderItFollowed(t *testing.T) {
	for _, c := range []struct {
		name string
		opts []client.ProducerOption
	}{
		{"partitioned", nil},
		{"manual", []client.ProducerOption{client.ProducerManualPartitioning()}},
	} {
		t.Run(c.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			oldLog, newLog := clienttest.New(), clienttest.New()
			// The ex-leader has applied the topic's first creation only; the leader, its
			// deletion and creation again (a new ID).
			for _, l := range []*clienttest.Log{oldLog, newLog} {
				if _, err := l.CreateTopic(ctx, &logv1.CreateTopicRequest{Name: "t", Partitions: 1}); err != nil {
					t.Fatal(err)
				}
			}
			if _, err := newLog.DeleteTopic(ctx, &logv1.DeleteTopicRequest{Name: "t"}); err != nil {
				t.Fatal(err)
			}
			created, err := newLog.CreateTopic(ctx, &logv1.CreateTopicRequest{Name: "t", Partitions: 1})
			if err != nil {
				t.Fatal(err)
			}
			// Node 0 (a) leads first, then node 1 (b).
			cl := &movingLeader{}
			var exDescribed atomic.Int32
			cl.setAddr(0, serveNode(t, movedNode{Log: oldLog, self: 0, cl: cl, leaderLog: newLog, described: &exDescribed}))
			cl.setAddr(1, serveNode(t, movedNode{Log: newLog, self: 1, cl: cl, leaderLog: newLog, described: new(atomic.Int32)}))
			_, addrs := cl.get()

			// The client learns a as the leader; then b takes over. No periodic refresh: the
			// client learns it only when a node tells it.
			c2, err := client.New(ctx, []string{addrs[0]}, client.WithRefreshInterval(0))
			if err != nil {
				t.Fatal(err)
			}
			defer c2.Close()
			if _, err := c2.ListTopics(ctx); err != nil { // a call on a: the client knows the servers
				t.Fatal(err)
			}
			cl.setLeader(1)

			p, err := c2.NewProducer(append(c.opts, client.ProducerDeliveryTimeout(10*time.Second))...)
			if err != nil {
				t.Fatal(err)
			}
			defer p.Close()
			for i := range 2 {
				f, err := p.SendRecord(ctx, client.Record{Topic: "t", Value: []byte(c.name)})
				if err != nil {
					t.Fatalf("SendRecord %d: %v", i, err)
				}
				if err := p.Flush(ctx); err != nil {
					t.Fatal(err)
				}
				if _, err := f.Wait(ctx); err != nil {
					t.Errorf("record %d to a topic the leader holds (ID %s), the client's leader stale, the ex-leader lagging its re-creation: %v; want it stored",
						i, created.GetTopic().GetId(), err)
				}
			}
			if recs, ok := newLog.Records("t", 0); !ok || len(recs) != 2 {
				t.Errorf("the leader's topic holds %d records (%v), want 2", len(recs), ok)
			}
			if n := exDescribed.Load(); n == 0 {
				t.Errorf("the ex-leader was asked DescribeTopic %d times: the test did not reach it", n)
			}
		})
	}
}

// serveNode serves n over Connect on a loopback port until the test ends.
func serveNode(t *testing.T, n movedNode) string {
	t.Helper()
	return serveConfig(t, transport.ServerConfig{Log: n, Cluster: n, Topics: n})
}
