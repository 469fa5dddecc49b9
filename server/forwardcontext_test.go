package server

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/commitlog-go/commitlog/consensus"
	"github.com/commitlog-go/commitlog/transport"
)

// TestForwardContextEndsWhenTheLeaderIsSucceeded: a call forwarded to leader a ends
// leaderSucceededGrace after this node learns of another leader, not while no leader is known
// (a leader may come back), and not for a call to a leader this node no longer takes for the
// last one; done says what the ending means: outcome unknown for a write, not proposed (asked
// again of the new leader) for a read, and passes every other answer through.
func TestForwardContextEndsWhenTheLeaderIsSucceeded(t *testing.T) {
	defer func(g time.Duration) { leaderSucceededGrace = g }(leaderSucceededGrace)
	leaderSucceededGrace = 10 * time.Millisecond
	l := &leaderLoss{since: time.Now(), changed: make(chan struct{})}
	s := &service{leaderLoss: l}
	leader := func(id string) { l.observe(consensus.LeaderEvent{Leader: consensus.Server{ID: id}}) }
	leader("a")
	ctx := context.Background()

	write, doneWrite := s.forwardContext(ctx, "a", true)
	read, doneRead := s.forwardContext(ctx, "a", false)
	stale, doneStale := s.forwardContext(ctx, "z", true)
	answered, doneAnswered := s.forwardContext(ctx, "a", true)
	if err := doneAnswered(nil); err != nil || answered.Err() == nil {
		t.Errorf("done(nil) = %v, context %v; want nil and the context released", err, answered.Err())
	}
	leader("") // the leader lost: it may come back
	time.Sleep(5 * leaderSucceededGrace)
	if write.Err() != nil || read.Err() != nil {
		t.Fatalf("forwarded calls ended while no leader was known: %v, %v", write.Err(), read.Err())
	}
	leader("b")
	for _, c := range []context.Context{write, read} {
		select {
		case <-c.Done():
		case <-time.After(30 * time.Second):
			t.Fatal("a call forwarded to a does not end once b leads")
		}
	}
	cancelled := transport.Errorf(transport.Canceled, "context canceled")
	if err := doneWrite(cancelled); !transport.IsOutcomeUnknown(err) || transport.CodeOf(err) != transport.Unavailable {
		t.Errorf("a forwarded write ended by the new leader: %v; want Unavailable, outcome unknown", err)
	}
	if err := doneRead(cancelled); !transport.IsNotProposed(err) || transport.CodeOf(err) != transport.Unavailable {
		t.Errorf("a forwarded read ended by the new leader: %v; want Unavailable, not proposed", err)
	}
	if stale.Err() != nil {
		t.Errorf("a call forwarded to z, which this node never took for the leader, ended: %v", stale.Err())
	}
	refused := errors.New("refused by the leader")
	if err := doneStale(refused); err != refused {
		t.Errorf("done passes the leader's own answer through: %v, want %v", err, refused)
	}
}
