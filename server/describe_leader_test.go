package server

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/commitlog-go/commitlog/consensus"
	"github.com/commitlog-go/commitlog/server/fsm"
	"github.com/commitlog-go/commitlog/transport"
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
