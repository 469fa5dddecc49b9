package server

import (
	"context"
	"errors"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/commitlog-go/commitlog/consensus"
	"github.com/commitlog-go/commitlog/server/fsm"
	"github.com/commitlog-go/commitlog/transport"
	tconnect "github.com/commitlog-go/commitlog/transport/connect"
	logv1 "github.com/commitlog-go/commitlog/transport/gen/log/v1"
)

// TestNewLeaderDescribeTopicCatchesUp: a leader just elected, that has not applied a deletion
// and re-creation of a topic yet, applies every committed entry before DescribeTopic answers:
// it names the topic the cluster has under that name, not the deleted one. It answered from its
// catalogue with the deleted topic's ID, which an SDK Producer (it describes topics on the
// leader) pins, and then has every batch refused NotFound. A leader that cannot confirm it
// applied everything answers Unavailable (the SDK retries), not the ID it holds.
func TestNewLeaderDescribeTopicCatchesUp(t *testing.T) {
	ctx := ctxT(t, 30*time.Second)
	m := emptyMachine(t)
	p := &directProposer{m: m}
	old, err := m.CreateTopic(ctx, p, "t", 1, fsm.TopicConfig{})
	if err != nil {
		t.Fatal(err)
	}
	var recreated fsm.Topic
	node := laggingLeader{p: p, once: &sync.Once{}, catchUp: func() {
		if _, err := m.DeleteTopic(ctx, p, "t"); err != nil {
			t.Errorf("the leader applies the topic's deletion: %v", err)
		}
		var err error
		if recreated, err = m.CreateTopic(ctx, p, "t", 1, fsm.TopicConfig{}); err != nil {
			t.Errorf("the leader applies the topic's creation again: %v", err)
		}
	}}
	svc := &service{node: node, fsm: m.Default(), sm: m, cfg: &Config{}, stop: make(chan struct{}), leaderWait: 5 * time.Second}
	res, err := svc.DescribeTopic(ctx, &logv1.DescribeTopicRequest{Name: "t"})
	if err != nil {
		t.Fatalf("DescribeTopic on a leader that has not applied the topic's re-creation yet: %v (code %v)", err, transport.CodeOf(err))
	}
	if got := res.GetTopic().GetId(); got != recreated.ID.String() {
		t.Errorf("DescribeTopic on a leader that has not applied the topic's re-creation yet: ID %s (the deleted topic's: %v); want the topic's now (%s; zero: the leader did not catch up)",
			got, got == old.ID.String(), recreated.ID)
	}

	for _, readErr := range []error{&consensus.NotLeaderError{}, errors.New("leadership not confirmed")} {
		svc := &service{node: unconfirmedLeader{laggingLeader: node, err: readErr}, fsm: m.Default(), sm: m, cfg: &Config{}, stop: make(chan struct{}), leaderWait: 5 * time.Second}
		if res, err := svc.DescribeTopic(ctx, &logv1.DescribeTopicRequest{Name: "t"}); transport.CodeOf(err) != transport.Unavailable {
			t.Errorf("DescribeTopic on a leader whose linearizable read failed (%v): %v, %v (code %v); want Unavailable", readErr, res, err, transport.CodeOf(err))
		}
	}
}

// unconfirmedLeader is a leader that cannot confirm its leadership: LinearizableRead fails
// with err.
type unconfirmedLeader struct {
	laggingLeader
	err error
}

func (u unconfirmedLeader) LinearizableRead(context.Context) error { return u.err }

// TestDescribeTopicRequireLeaderOnFollower: DescribeTopic with require_leader reaching a node
// that is not the leader (an SDK's stale idea of the leader, an ex-leader) is refused as a
// write is, NotLeader naming the leader (FailedPrecondition; Unavailable with an empty NotLeader
// when it knows none), so the SDK asks the leader, which answers once caught up. The follower
// answered from what it had applied: a lagging one named a topic the cluster deleted and
// created again, whose ID the SDK's Producer pinned, and every batch was refused NotFound.
// Without the field a follower still answers (the read policy's DescribeTopic), and a leader
// that loses its leadership while it catches up names the new leader.
func TestDescribeTopicRequireLeaderOnFollower(t *testing.T) {
	ctx := ctxT(t, 30*time.Second)
	m := emptyMachine(t)
	p := &directProposer{m: m}
	old, err := m.CreateTopic(ctx, p, "t", 1, fsm.TopicConfig{})
	if err != nil {
		t.Fatal(err)
	}
	leader := consensus.Server{ID: "n1", Address: "127.0.0.1:1"}
	follower := func(l consensus.Server) *service {
		return &service{node: followerNode{leader: l}, fsm: m.Default(), sm: m, cfg: &Config{}, stop: make(chan struct{}), leaderWait: 5 * time.Second}
	}

	res, err := follower(leader).DescribeTopic(ctx, &logv1.DescribeTopicRequest{Name: "t", RequireLeader: true})
	nl, ok := transport.NotLeaderDetail(err)
	if transport.CodeOf(err) != transport.FailedPrecondition || !ok || nl.LeaderID != leader.ID || nl.LeaderAddr != leader.Address {
		t.Fatalf("DescribeTopic with require_leader on a follower: %v, %v (code %v, NotLeader %+v %v); want FailedPrecondition with NotLeader naming %+v",
			res, err, transport.CodeOf(err), nl, ok, leader)
	}

	res, err = follower(consensus.Server{}).DescribeTopic(ctx, &logv1.DescribeTopicRequest{Name: "t", RequireLeader: true})
	if nl, ok := transport.NotLeaderDetail(err); transport.CodeOf(err) != transport.Unavailable || !ok || nl.LeaderAddr != "" {
		t.Errorf("DescribeTopic with require_leader on a follower that knows no leader: %v, %v (code %v, NotLeader %+v %v); want Unavailable with an empty NotLeader",
			res, err, transport.CodeOf(err), nl, ok)
	}

	if res, err := follower(leader).DescribeTopic(ctx, &logv1.DescribeTopicRequest{Name: "t"}); err != nil || res.GetTopic().GetId() != old.ID.String() {
		t.Errorf("DescribeTopic without require_leader on a follower: %v, %v; want its own answer (ID %s)", res, err, old.ID)
	}

	lost := unconfirmedLeader{laggingLeader: laggingLeader{p: p, once: &sync.Once{}, catchUp: func() {}}, err: &consensus.NotLeaderError{Leader: leader}}
	svc := &service{node: lost, fsm: m.Default(), sm: m, cfg: &Config{}, stop: make(chan struct{}), leaderWait: 5 * time.Second}
	res, err = svc.DescribeTopic(ctx, &logv1.DescribeTopicRequest{Name: "t", RequireLeader: true})
	if nl, ok := transport.NotLeaderDetail(err); !ok || nl.LeaderAddr != leader.Address {
		t.Errorf("DescribeTopic with require_leader on a leader that lost its leadership to %+v while catching up: %v, %v (code %v, NotLeader %+v %v); want NotLeader naming it",
			leader, res, err, transport.CodeOf(err), nl, ok)
	}
}

// TestForwardedTopicIDAsksTheLeaderOnly: the ID a follower asks of the node it takes for the
// leader (pinnedGoneOnLeader: is a pinned read's topic still the cluster's?) is the leader's
// answer; a node that is no longer the leader refuses (NotLeader) rather than name what it has
// applied. It answered from its own state: lagging the topic's deletion (and re-creation), the
// deleted topic's ID, and the follower took a pinned read's topic for the cluster's; lagging
// its creation, NotFound, and the follower answered NotFound to a read of a topic that exists.
func TestForwardedTopicIDAsksTheLeaderOnly(t *testing.T) {
	ctx := ctxT(t, 30*time.Second)
	// The ex-leader: a follower now, that still holds an incarnation of t.
	m := emptyMachine(t)
	old, err := m.CreateTopic(ctx, &directProposer{m: m}, "t", 1, fsm.TopicConfig{})
	if err != nil {
		t.Fatal(err)
	}
	leader := consensus.Server{ID: "n1", Address: "127.0.0.1:1"}
	ex := &service{node: followerNode{leader: leader}, fsm: m.Default(), sm: m, cfg: &Config{}, stop: make(chan struct{}), leaderWait: time.Second}
	srv, err := tconnect.NewServer(transport.ServerConfig{Log: ex, Topics: ex})
	if err != nil {
		t.Fatal(err)
	}
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	served := make(chan struct{})
	go func() {
		defer close(served)
		_ = srv.Serve(lis)
	}()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = srv.Stop(ctx)
		<-served
	})

	id, err := testForwarder(t).topicID(ctx, lis.Addr().String(), "t")
	if nl, ok := transport.NotLeaderDetail(err); !ok || nl.LeaderAddr != leader.Address {
		t.Fatalf("topicID asked of an ex-leader: %q (its own topic's: %v), %v (code %v, NotLeader %+v %v); want NotLeader naming %s",
			id, id == old.ID.String(), err, transport.CodeOf(err), nl, ok, leader.Address)
	}
}

// deposedLeader leads when DescribeTopic first asks, and has lost its leadership to leader by
// the time it would catch up: IsLeader is true once, then false.
type deposedLeader struct {
	followerNode
	asked *atomic.Int32
}

func (d deposedLeader) IsLeader() bool { return d.asked.Add(1) == 1 }
func (d deposedLeader) LinearizableRead(context.Context) error {
	return &consensus.NotLeaderError{Leader: d.leader}
}

// TestDescribeTopicRequireLeaderDeposedBetweenChecks: a leader deposed between DescribeTopic's
// check for require_leader and its catching up refuses, NotLeader naming the new leader, as a
// node that was not the leader does. It answered from what it had applied, without a
// linearizable read: a leader just elected and deposed at once names a topic the cluster deleted
// and created again, whose ID the SDK's Producer pins.
func TestDescribeTopicRequireLeaderDeposedBetweenChecks(t *testing.T) {
	ctx := ctxT(t, 30*time.Second)
	m := emptyMachine(t)
	if _, err := m.CreateTopic(ctx, &directProposer{m: m}, "t", 1, fsm.TopicConfig{}); err != nil {
		t.Fatal(err)
	}
	leader := consensus.Server{ID: "n1", Address: "127.0.0.1:1"}
	node := deposedLeader{followerNode: followerNode{leader: leader}, asked: new(atomic.Int32)}
	svc := &service{node: node, fsm: m.Default(), sm: m, cfg: &Config{}, stop: make(chan struct{}), leaderWait: 5 * time.Second}
	res, err := svc.DescribeTopic(ctx, &logv1.DescribeTopicRequest{Name: "t", RequireLeader: true})
	if nl, ok := transport.NotLeaderDetail(err); !ok || nl.LeaderAddr != leader.Address {
		t.Errorf("DescribeTopic with require_leader on a leader deposed before it caught up: %v, %v (code %v, NotLeader %+v %v); want NotLeader naming %+v",
			res, err, transport.CodeOf(err), nl, ok, leader)
	}
}
