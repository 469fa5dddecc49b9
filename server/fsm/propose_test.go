package fsm

import (
	"context"
	"errors"
	"testing"

	"github.com/commitlog-go/commitlog/consensus"
)

// applyProposer applies every proposal to an FSM at once, as a one-node consensus would, or
// answers as a follower.
type applyProposer struct {
	f        *FSM
	leader   bool
	index    uint64
	proposed int
}

func (p *applyProposer) Propose(_ context.Context, cmd []byte) (any, error) {
	p.proposed++
	if !p.leader {
		return nil, &consensus.NotLeaderError{Leader: consensus.Server{ID: "n1", Address: "n1:1"}}
	}
	p.index++
	return p.f.Apply([]consensus.Entry{{Index: p.index, Term: 1, Data: cmd}})[0], nil
}

func (p *applyProposer) IsLeader() bool { return p.leader }

func (p *applyProposer) Leader() (consensus.Server, bool) {
	if p.leader {
		return consensus.Server{ID: "self"}, true
	}
	return consensus.Server{ID: "n1", Address: "n1:1"}, true
}

func TestProposeTypedResultsAndLeaderLimits(t *testing.T) {
	f, _ := newMemFSM(t, Config{Limits: Limits{MaxRecordBytes: 4}})
	p := &applyProposer{f: f, leader: true}
	res, err := f.Propose(t.Context(), p, AppendRecord{Value: []byte("ab")}, AppendRecord{Value: []byte("cd")})
	if err != nil || res != (AppendResult{First: 0, Count: 2}) {
		t.Fatalf("Propose = %+v, %v", res, err)
	}
	// Above this node's limit, as leader: refused, nothing proposed.
	if _, err := f.Propose(t.Context(), p, AppendRecord{Value: []byte("12345")}); !errors.Is(err, ErrTooLarge) || p.proposed != 1 {
		t.Fatalf("Propose above the limit on the leader: %v (%d proposals)", err, p.proposed)
	}
	// As a follower: the leader's limits decide, so it is handed to the leader (NotLeader,
	// nothing proposed here) rather than refused.
	p.leader = false
	_, err = f.Propose(t.Context(), p, AppendRecord{Value: []byte("12345")})
	if nl, ok := errors.AsType[*consensus.NotLeaderError](err); !ok || nl.Leader.ID != "n1" || p.proposed != 1 {
		t.Fatalf("Propose above the limit on a follower: %v (%d proposals)", err, p.proposed)
	}
	// Above the format's hard bound: refused everywhere.
	if _, err := f.Propose(t.Context(), p, AppendRecord{Value: make([]byte, MaxRecordValueBytes+1)}); !errors.Is(err, ErrTooLarge) {
		t.Fatalf("Propose above the hard bound: %v", err)
	}
	p.leader = true
	if _, err := f.Propose(t.Context(), p, AppendRecord{Value: []byte("e")}); err != nil {
		t.Fatal(err)
	}
	first, err := f.ProposeRetention(t.Context(), p, 2)
	if err != nil || first != 2 {
		t.Fatalf("ProposeRetention = %d, %v", first, err)
	}
	if lo, hi := f.Bounds(); lo != 2 || hi != 3 {
		t.Fatalf("bounds [%d, %d) after retention, want [2, 3)", lo, hi)
	}
	if _, err := f.ProposeRetention(t.Context(), p, 3); !errors.Is(err, ErrInvalidCommand) {
		t.Fatalf("ProposeRetention emptying the log: %v", err)
	}
}
