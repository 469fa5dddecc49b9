package server

import (
	"context"
	"fmt"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/commitlog-go/commitlog/consensus"
	"github.com/commitlog-go/commitlog/server/fsm"
	"github.com/commitlog-go/commitlog/storage"
	"github.com/commitlog-go/commitlog/storage/memory"
	"github.com/commitlog-go/commitlog/transport"
	tconnect "github.com/commitlog-go/commitlog/transport/connect"
	logv1 "github.com/commitlog-go/commitlog/transport/gen/log/v1"
)

// TestFollowerReadAfterCreateTopic: a topic, or a partition, whose creation the leader
// acknowledged is known to every follower's reads at once: a follower that has not applied it
// yet learns the leader's commit point (ReadIndex) and catches up, rather than answer NotFound
// because its own commit index lags. Consume and ListOffsets, on a new topic and on a partition
// just added.
func TestFollowerReadAfterCreateTopic(t *testing.T) {
	nodes := startCluster(t, 3)
	ctx := ctxT(t, 120*time.Second)
	leader := leaderOf(t, nodes)
	lt := newClient(t, TransportConnect, leader.Addr()).(transport.TopicsClient)
	var followers []transport.Client
	for _, nd := range nodes {
		if nd != leader {
			followers = append(followers, newClient(t, TransportConnect, nd.Addr()))
		}
	}
	check := func(what, topic string, partition uint32) {
		t.Helper()
		for j, fc := range followers {
			res, err := fc.(transport.GroupsClient).ListOffsets(ctx, &logv1.ListOffsetsRequest{Topic: topic, Partitions: []uint32{partition}})
			if err != nil || len(res.GetOffsets()) != 1 {
				t.Fatalf("%s: ListOffsets of %s/%d on follower %d: %v, %v", what, topic, partition, j, res, err)
			}
			_, err = fc.Consume(ctx, &logv1.ConsumeRequest{Topic: topic, Partition: partition, Offset: 0})
			if transport.CodeOf(err) != transport.OutOfRange {
				t.Fatalf("%s: Consume of %s/%d offset 0 on follower %d: %v, want OutOfRange (empty)", what, topic, partition, j, err)
			}
		}
	}
	for i := range 20 {
		name := fmt.Sprintf("t%d", i)
		if _, err := lt.CreateTopic(ctx, &logv1.CreateTopicRequest{Name: name, Partitions: 1}); err != nil {
			t.Fatal(err)
		}
		check("created", name, 0)
		// A new topic's partition 1 does not exist: NotFound, after catching up.
		if _, err := followers[0].Consume(ctx, &logv1.ConsumeRequest{Topic: name, Partition: 1}); transport.CodeOf(err) != transport.NotFound {
			t.Fatalf("Consume of %s/1 before it is added: %v, want NotFound", name, err)
		}
		two := uint32(2)
		if _, err := lt.AlterTopicConfig(ctx, &logv1.AlterTopicConfigRequest{Name: name, Partitions: &two}); err != nil {
			t.Fatal(err)
		}
		check("partition added", name, 1)
	}
}

// followerNode is a consensus.Consensus for a follower of a remote leader that has not
// applied the leader's latest entries: only what the produce path calls is implemented.
type followerNode struct {
	consensus.Consensus
	leader consensus.Server
}

func (f followerNode) IsLeader() bool                   { return false }
func (f followerNode) Leader() (consensus.Server, bool) { return f.leader, f.leader.ID != "" }
func (f followerNode) Propose(context.Context, []byte) (any, error) {
	return nil, &consensus.NotLeaderError{Leader: f.leader}
}

// TestFollowerProduceToTopicItHasNotApplied: a produce that reaches a follower which has not
// applied the topic's creation yet is forwarded to the leader, whose catalogue decides: it is
// stored, not refused with NotFound (DESIGN.md §4: writes to any node work). A topic the
// leader does not know either is NotFound, as the leader answers it.
func TestFollowerProduceToTopicItHasNotApplied(t *testing.T) {
	ctx := ctxT(t, 60*time.Second)
	leader, lc := leaderWithTopic(t, ctx, "fresh", 1)

	// The follower: a state machine that knows only the default topic.
	svc := followerService(t, consensus.Server{ID: leader.ID(), Address: leader.Addr()}, tconnect.NewClient, 2*time.Second)

	res, err := svc.Produce(ctx, &logv1.ProduceRequest{Topic: "fresh", Record: &logv1.Record{Value: []byte("v")}})
	if err != nil {
		t.Fatalf("Produce to a topic the leader created, through a follower that has not applied it: %v (code %v), want it forwarded and stored", err, transport.CodeOf(err))
	}
	got, err := lc.Consume(ctx, &logv1.ConsumeRequest{Topic: "fresh", Offset: res.GetOffset()})
	if err != nil || string(got.GetRecord().GetValue()) != "v" {
		t.Fatalf("the leader's record at %d = %v, %v; want v", res.GetOffset(), got, err)
	}
	if _, err := svc.ProduceBatch(ctx, &logv1.ProduceBatchRequest{Topic: "fresh", Records: []*logv1.Record{{Value: []byte("w")}}}); err != nil {
		t.Fatalf("ProduceBatch through the follower: %v", err)
	}
	_, err = svc.Produce(ctx, &logv1.ProduceRequest{Topic: "nowhere", Record: &logv1.Record{Value: []byte("v")}})
	if code := transport.CodeOf(err); code != transport.NotFound {
		t.Fatalf("Produce to a topic nobody knows, through the follower: %v (code %v), want NotFound", err, code)
	}
}

// TestFollowerTopicAdminItHasNotApplied: topic administration that reaches a follower is
// decided by the leader, whatever the follower has applied: altering and deleting a topic the
// leader created, through a follower that has not applied its creation, succeed instead of
// answering NotFound from the follower's stale catalogue.
func TestFollowerTopicAdminItHasNotApplied(t *testing.T) {
	ctx := ctxT(t, 60*time.Second)
	leader, lc := leaderWithTopic(t, ctx, "fresh", 1)
	svc := followerService(t, consensus.Server{ID: leader.ID(), Address: leader.Addr()}, tconnect.NewClient, 2*time.Second)
	two := uint32(2)
	if _, err := svc.AlterTopicConfig(ctx, &logv1.AlterTopicConfigRequest{Name: "fresh", Partitions: &two}); err != nil {
		t.Fatalf("AlterTopicConfig through a follower that has not applied the topic: %v (code %v), want it done by the leader", err, transport.CodeOf(err))
	}
	if _, err := svc.DeleteTopic(ctx, &logv1.DeleteTopicRequest{Name: "fresh"}); err != nil {
		t.Fatalf("DeleteTopic through a follower that has not applied the topic: %v (code %v), want it done by the leader", err, transport.CodeOf(err))
	}
	if _, err := lc.(transport.TopicsClient).DescribeTopic(ctx, &logv1.DescribeTopicRequest{Name: "fresh"}); transport.CodeOf(err) != transport.NotFound {
		t.Fatalf("the leader still describes the deleted topic: %v", err)
	}
}

// catchingUpFollower is a followerNode whose state machine catches up (catchUp runs, once)
// when it is asked how far it has applied.
type catchingUpFollower struct {
	followerNode
	once    *sync.Once
	catchUp func()
}

func (f catchingUpFollower) LinearizableRead(context.Context) error {
	return &consensus.NotLeaderError{Leader: f.leader}
}

func (f catchingUpFollower) Status() consensus.Status {
	f.once.Do(f.catchUp)
	return consensus.Status{AppliedIndex: 1 << 40}
}

// TestFollowerDescribeTopicCatchesUp: DescribeTopic of a topic whose creation the leader
// acknowledged, on a follower that has not applied it yet, catches up (ReadIndex) and describes
// it, as Consume and ListOffsets do there, rather than answer NotFound (a Producer reading from
// followers would fail its records with ErrUnknownTopic).
func TestFollowerDescribeTopicCatchesUp(t *testing.T) {
	ctx := ctxT(t, 60*time.Second)
	leader, _ := leaderWithTopic(t, ctx, "fresh", 3)
	m := emptyMachine(t)
	fwd := testForwarder(t)
	node := catchingUpFollower{
		followerNode: followerNode{leader: consensus.Server{ID: leader.ID(), Address: leader.Addr()}},
		once:         &sync.Once{},
		catchUp: func() {
			if _, err := m.CreateTopic(ctx, &directProposer{m: m}, "fresh", 3, fsm.TopicConfig{}); err != nil {
				t.Errorf("the follower applies the topic's creation: %v", err)
			}
		},
	}
	svc := &service{node: node, fsm: m.Default(), sm: m, forward: fwd, cfg: &Config{}, stop: make(chan struct{}), leaderWait: 5 * time.Second}
	res, err := svc.DescribeTopic(ctx, &logv1.DescribeTopicRequest{Name: "fresh"})
	if err != nil {
		t.Fatalf("DescribeTopic on a follower that has not applied the topic yet: %v (code %v), want it described after catching up", err, transport.CodeOf(err))
	}
	if res.GetTopic().GetPartitions() != 3 || len(res.GetPartitions()) != 3 {
		t.Fatalf("DescribeTopic = %v, want 3 partitions", res)
	}
	if _, err := svc.DescribeTopic(ctx, &logv1.DescribeTopicRequest{Name: "nowhere"}); transport.CodeOf(err) != transport.NotFound {
		t.Fatalf("DescribeTopic of a topic nobody knows: %v, want NotFound", err)
	}
}

// laggingLeader is a consensus.Consensus for a leader just elected, whose state machine has
// not applied every committed entry yet: LinearizableRead applies them (catchUp, once), as
// hashicorp/raft's barrier does; Propose applies commands at once.
type laggingLeader struct {
	consensus.Consensus
	p       *directProposer
	once    *sync.Once
	catchUp func()
}

func (l laggingLeader) IsLeader() bool                   { return true }
func (l laggingLeader) Leader() (consensus.Server, bool) { return consensus.Server{ID: "self"}, true }
func (l laggingLeader) Propose(ctx context.Context, cmd []byte) (any, error) {
	return l.p.Propose(ctx, cmd)
}
func (l laggingLeader) LinearizableRead(context.Context) error {
	l.once.Do(l.catchUp)
	return nil
}

// TestNewLeaderTopicAdminCatchesUp: a leader that has not applied a topic's creation yet (just
// elected) catches up before it answers a topic administration NotFound: altering and deleting
// a topic whose creation was acknowledged succeed.
func TestNewLeaderTopicAdminCatchesUp(t *testing.T) {
	ctx := ctxT(t, 30*time.Second)
	m := emptyMachine(t)
	p := &directProposer{m: m}
	node := laggingLeader{p: p, once: &sync.Once{}, catchUp: func() {
		if _, err := m.CreateTopic(ctx, p, "fresh", 1, fsm.TopicConfig{}); err != nil {
			t.Errorf("the leader applies the topic's creation: %v", err)
		}
	}}
	svc := &service{node: node, fsm: m.Default(), sm: m, cfg: &Config{}, stop: make(chan struct{}), leaderWait: 5 * time.Second}
	two := uint32(2)
	if _, err := svc.AlterTopicConfig(ctx, &logv1.AlterTopicConfigRequest{Name: "fresh", Partitions: &two}); err != nil {
		t.Fatalf("AlterTopicConfig on a leader that has not applied the topic yet: %v (code %v), want it done after catching up", err, transport.CodeOf(err))
	}
	if _, err := svc.DeleteTopic(ctx, &logv1.DeleteTopicRequest{Name: "fresh"}); err != nil {
		t.Fatalf("DeleteTopic: %v", err)
	}
	if _, err := svc.DeleteTopic(ctx, &logv1.DeleteTopicRequest{Name: "fresh"}); transport.CodeOf(err) != transport.NotFound {
		t.Fatalf("DeleteTopic of a deleted topic: %v, want NotFound", err)
	}
}

// emptyMachine is a state machine of memory logs that knows only the default topic: a node that
// has applied nothing yet.
func emptyMachine(t *testing.T) *fsm.Machine {
	t.Helper()
	def, err := memory.New(memory.Config{})
	if err != nil {
		t.Fatal(err)
	}
	m, err := fsm.NewMachine(fsm.MachineConfig{Config: fsm.Config{Log: def}, Dir: t.TempDir(),
		OpenLog: func(string) (storage.Log, error) { return memory.New(memory.Config{}) }})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = m.Close(); _ = def.Close() })
	return m
}

// testForwarder is a follower's forwarding client, closed when the test ends.
// followerService is the service of a follower of leader that has applied nothing but the
// default topic's creation, forwarding through clients of newClient, and waiting leaderWait for
// a leader.
func followerService(t *testing.T, leader consensus.Server, newClient transport.NewClientFunc, leaderWait time.Duration) *service {
	t.Helper()
	fwd := newForwarder(newClient, transport.ClientConfig{}, DefaultMaxForwardClients)
	t.Cleanup(func() { _ = fwd.Close() })
	m := emptyMachine(t)
	return &service{
		node:       followerNode{leader: leader},
		fsm:        m.Default(),
		sm:         m,
		forward:    fwd,
		cfg:        &Config{},
		stop:       make(chan struct{}),
		leaderWait: leaderWait,
	}
}

func testForwarder(t *testing.T) *forwarder {
	t.Helper()
	fwd := newForwarder(tconnect.NewClient, transport.ClientConfig{}, DefaultMaxForwardClients)
	t.Cleanup(func() { _ = fwd.Close() })
	return fwd
}

// leaderWithTopic starts a one-node server holding a topic, and returns it with a client.
func leaderWithTopic(t *testing.T, ctx context.Context, topic string, partitions uint32) (*testServer, transport.Client) {
	t.Helper()
	leader := startServer(t, Config{})
	lc := newClient(t, TransportConnect, leader.Addr())
	if _, err := lc.(transport.TopicsClient).CreateTopic(ctx, &logv1.CreateTopicRequest{Name: topic, Partitions: partitions}); err != nil {
		t.Fatal(err)
	}
	return leader, lc
}

// discardStream is a ConsumeStream's stream that drops what it is sent.
type discardStream struct{}

func (discardStream) Send(*logv1.ConsumeResponse) error { return nil }

// TestReadOfTopicUnconfirmedIsUnavailable: a read of a topic (or of a partition) this node does
// not know, on a node that cannot catch up with the leader to tell (cut off from it), is
// Unavailable: its creation may be committed and not applied here yet. NotFound ended an SDK
// read, a StreamPartition and a group member's fetcher with ErrUnknownTopic, though the topic
// exists and every other replica serves it. Consume, ConsumeStream, GetBounds, DescribeTopic
// and ListOffsets.
func TestReadOfTopicUnconfirmedIsUnavailable(t *testing.T) {
	ctx := ctxT(t, 30*time.Second)
	svc := cutOffFollower(ctx, t, "known")
	reads := map[string]func(topic string, partition uint32) error{
		"Consume": func(topic string, partition uint32) error {
			_, err := svc.Consume(ctx, &logv1.ConsumeRequest{Topic: topic, Partition: partition})
			return err
		},
		"ConsumeStream": func(topic string, partition uint32) error {
			return svc.ConsumeStream(ctx, &logv1.ConsumeRequest{Topic: topic, Partition: partition}, discardStream{})
		},
		"GetBounds": func(topic string, partition uint32) error {
			_, err := svc.GetBounds(ctx, &logv1.GetBoundsRequest{Topic: topic, Partition: partition})
			return err
		},
		"DescribeTopic": func(topic string, partition uint32) error {
			if partition > 0 {
				return transport.Errorf(transport.Unavailable, "no partition to name")
			}
			_, err := svc.DescribeTopic(ctx, &logv1.DescribeTopicRequest{Name: topic})
			return err
		},
		"ListOffsets": func(topic string, partition uint32) error {
			_, err := svc.ListOffsets(ctx, &logv1.ListOffsetsRequest{Topic: topic, Partitions: []uint32{partition}})
			return err
		},
	}
	for name, read := range reads {
		// A topic created and not applied here; a partition added and not applied here.
		for _, at := range []struct {
			topic     string
			partition uint32
		}{{"fresh", 0}, {"known", 1}} {
			if err := read(at.topic, at.partition); transport.CodeOf(err) != transport.Unavailable {
				t.Errorf("%s of %s/%d on a node cut off from its leader, which does not know it: %v (code %v), want Unavailable",
					name, at.topic, at.partition, err, transport.CodeOf(err))
			}
		}
	}
}

// TestFollowerReadOfTopicTheLeaderDeleted: a read past the end of a topic that this follower
// still holds but the cluster deleted (the leader, asked for the commit point, answers that it
// does not know the topic) is NotFound, the leader's answer: it was turned into Unavailable
// "could not learn the cluster's commit point in time", as was every answer of the leader to
// that question, however promptly it came.
func TestFollowerReadOfTopicTheLeaderDeleted(t *testing.T) {
	ctx := ctxT(t, 30*time.Second)
	leader := startServer(t, Config{})
	svc := followerService(t, consensus.Server{ID: leader.ID(), Address: leader.Addr()}, tconnect.NewClient, 2*time.Second)
	svc.node = followerOf{leader: consensus.Server{ID: leader.ID(), Address: leader.Addr()}}
	if _, err := svc.sm.CreateTopic(ctx, &directProposer{m: svc.sm}, "gone", 1, fsm.TopicConfig{}); err != nil {
		t.Fatal(err)
	}
	_, err := svc.Consume(ctx, &logv1.ConsumeRequest{Topic: "gone", Offset: 0})
	if code := transport.CodeOf(err); code != transport.NotFound {
		t.Fatalf("Consume past the end of a topic the leader does not know, on a follower that still holds it: %v (code %v), want NotFound", err, code)
	}
}

// cutOffFollower is a follower service holding topic (one partition) whose leader cannot be
// reached: it cannot catch up to tell what the cluster knows.
func cutOffFollower(ctx context.Context, t *testing.T, topic string) *service {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	unreachable := consensus.Server{ID: "leader", Address: l.Addr().String()}
	l.Close()
	svc := followerService(t, unreachable, tconnect.NewClient, 300*time.Millisecond)
	svc.node = catchingUpFollower{followerNode: followerNode{leader: unreachable}, once: &sync.Once{}, catchUp: func() {}}
	if _, err := svc.sm.CreateTopic(ctx, &directProposer{m: svc.sm}, topic, 1, fsm.TopicConfig{}); err != nil {
		t.Fatal(err)
	}
	return svc
}

// TestFollowerReadByIDOfTopicTheLeaderRecreated: a read naming its topic's ID (topic_id, as
// the SDK's streams resume), on a follower that still holds that topic while the cluster
// deleted it and created another of the same name (entries this follower has not applied), is
// answered as the leader answers it: NotFound. Past the follower's end it answered OutOfRange
// (the leader's commit point, asked by name, was the new topic's), and below the new topic's
// commit point Unavailable after waiting for records that would never come.
func TestFollowerReadByIDOfTopicTheLeaderRecreated(t *testing.T) {
	ctx := ctxT(t, 60*time.Second)
	leader, lc := leaderWithTopic(t, ctx, "t", 1)
	for range 2 {
		if _, err := lc.Produce(ctx, &logv1.ProduceRequest{Topic: "t", Record: &logv1.Record{Value: []byte("new")}}); err != nil {
			t.Fatal(err)
		}
	}
	// The follower applied the old topic "t" (another ID), not its deletion nor the new one.
	svc := followerService(t, consensus.Server{ID: leader.ID(), Address: leader.Addr()}, tconnect.NewClient, 2*time.Second)
	svc.cfg.MaxConsumeWait = 300 * time.Millisecond
	svc.node = catchingUpFollower{followerNode: followerNode{leader: consensus.Server{ID: leader.ID(), Address: leader.Addr()}}, once: &sync.Once{}, catchUp: func() {}}
	old, err := svc.sm.CreateTopic(ctx, &directProposer{m: svc.sm}, "t", 1, fsm.TopicConfig{})
	if err != nil {
		t.Fatal(err)
	}
	for _, off := range []uint64{0, 2, 5} {
		req := &logv1.ConsumeRequest{Topic: "t", TopicId: old.ID.String(), Offset: off}
		if _, err := lc.Consume(ctx, req); transport.CodeOf(err) != transport.NotFound {
			t.Fatalf("the leader's answer to a read of offset %d naming the old topic's ID: %v, want NotFound", off, err)
		}
		_, err := svc.Consume(ctx, req)
		if code := transport.CodeOf(err); code != transport.NotFound {
			t.Errorf("Consume of offset %d naming the old topic's ID, on a follower that still holds it: %v (code %v), want NotFound as the leader answers",
				off, err, code)
		}
	}
	// Without the ID, the name reads whatever topic has it: the follower's end is the
	// leader's answer's (OutOfRange past the new topic's end).
	if _, err := svc.Consume(ctx, &logv1.ConsumeRequest{Topic: "t", Offset: 5}); transport.CodeOf(err) != transport.OutOfRange {
		t.Errorf("Consume past every topic's end, by name only: %v, want OutOfRange", err)
	}
}

// TestNewLeaderReadByIDOfTopicRecreated: the same on a leader just elected that has not applied
// the deletion and re-creation yet (its barrier applies them): NotFound, not OutOfRange.
func TestNewLeaderReadByIDOfTopicRecreated(t *testing.T) {
	ctx := ctxT(t, 30*time.Second)
	m := emptyMachine(t)
	p := &directProposer{m: m}
	old, err := m.CreateTopic(ctx, p, "t", 1, fsm.TopicConfig{})
	if err != nil {
		t.Fatal(err)
	}
	node := laggingLeader{p: p, once: &sync.Once{}, catchUp: func() {
		if _, err := m.DeleteTopic(ctx, p, "t"); err != nil {
			t.Errorf("the leader applies the deletion: %v", err)
		}
		if _, err := m.CreateTopic(ctx, p, "t", 1, fsm.TopicConfig{}); err != nil {
			t.Errorf("the leader applies the new creation: %v", err)
		}
	}}
	svc := &service{node: node, fsm: m.Default(), sm: m, cfg: &Config{MaxConsumeWait: 300 * time.Millisecond}, stop: make(chan struct{}), leaderWait: 2 * time.Second}
	_, err = svc.Consume(ctx, &logv1.ConsumeRequest{Topic: "t", TopicId: old.ID.String(), Offset: 3})
	if code := transport.CodeOf(err); code != transport.NotFound {
		t.Fatalf("Consume past the end naming the ID of a topic deleted and created again, on a leader applying that: %v (code %v), want NotFound", err, code)
	}
}

// TestFollowerReadByIDBelowStartOfTopicTheLeaderRecreated: the same below the start of the
// follower's copy of the old topic (retention cut it): the follower answered OutOfRange from
// its own copy, the leader NotFound. Consume and ConsumeStream; a read by name only is still
// OutOfRange there.
func TestFollowerReadByIDBelowStartOfTopicTheLeaderRecreated(t *testing.T) {
	ctx := ctxT(t, 60*time.Second)
	leader, lc := leaderWithTopic(t, ctx, "t", 1)
	at := consensus.Server{ID: leader.ID(), Address: leader.Addr()}
	svc := followerService(t, at, tconnect.NewClient, 2*time.Second)
	svc.node = catchingUpFollower{followerNode: followerNode{leader: at}, once: &sync.Once{}, catchUp: func() {}}
	p := &directProposer{m: svc.sm}
	old, err := svc.sm.CreateTopic(ctx, p, "t", 1, fsm.TopicConfig{})
	if err != nil {
		t.Fatal(err)
	}
	for range 5 {
		if _, err := svc.sm.ProposeAppend(ctx, p, "t", 0, fsm.ProducerRef{}, fsm.AppendRecord{Value: []byte("old")}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := svc.sm.ProposeRetention(ctx, p, fsm.Target{Topic: old.ID}, 3); err != nil {
		t.Fatal(err)
	}
	req := &logv1.ConsumeRequest{Topic: "t", TopicId: old.ID.String(), Offset: 1}
	if _, err := lc.Consume(ctx, req); transport.CodeOf(err) != transport.NotFound {
		t.Fatalf("the leader's answer: %v, want NotFound", err)
	}
	if _, err := svc.Consume(ctx, req); transport.CodeOf(err) != transport.NotFound {
		t.Errorf("Consume below the start of the old topic's copy, naming its ID: %v (code %v), want NotFound", err, transport.CodeOf(err))
	}
	if err := svc.ConsumeStream(ctx, req, discardStream{}); transport.CodeOf(err) != transport.NotFound {
		t.Errorf("ConsumeStream below the start of the old topic's copy, naming its ID: %v (code %v), want NotFound", err, transport.CodeOf(err))
	}
	if _, err := svc.Consume(ctx, &logv1.ConsumeRequest{Topic: "t", Offset: 1}); transport.CodeOf(err) != transport.OutOfRange {
		t.Errorf("Consume below the start by name only: %v, want OutOfRange", err)
	}
	// On a node whose topic of that name is the cluster's (a leader here), below the start
	// naming its ID is OutOfRange.
	lsvc := &service{node: laggingLeader{p: p, once: &sync.Once{}, catchUp: func() {}}, fsm: svc.sm.Default(), sm: svc.sm,
		cfg: &Config{MaxConsumeWait: 300 * time.Millisecond}, stop: make(chan struct{}), leaderWait: 2 * time.Second}
	if _, err := lsvc.Consume(ctx, req); transport.CodeOf(err) != transport.OutOfRange {
		t.Errorf("Consume below the start naming the ID of the cluster's topic: %v (code %v), want OutOfRange", err, transport.CodeOf(err))
	}
}
