package fsm

import (
	"errors"
	"testing"

	"github.com/commitlog-go/commitlog/storage/memory"
)

// TestStoppedLeaderProposesNothing: once this node's state machine stopped applying (its log
// refused a committed entry), a leader proposes no later write: each would be committed on
// the others and fail here, so its caller could only be told the outcome is unknown, and on a
// cluster where every node's disk is full each refused write would still be appended to
// Raft's log, to be stored once the disks are freed. It is refused before proposing
// (ErrStopped, which is not ErrFailed: nothing was committed). A follower still hands it to
// the leader (NotLeader), which may be healthy.
func TestStoppedLeaderProposesNothing(t *testing.T) {
	log := newMemLog(t, memory.Config{MaxRecordBytes: 200})
	t.Cleanup(func() { _ = log.Close() })
	f, err := New(Config{Log: log})
	if err != nil {
		t.Fatal(err)
	}
	p := &applyProposer{f: f, leader: true}
	if _, err := f.Propose(t.Context(), p, AppendRecord{Value: []byte("ok")}); err != nil {
		t.Fatal(err)
	}
	// Committed, refused by this node's log: the state machine stops.
	if _, err := f.Propose(t.Context(), p, AppendRecord{Value: make([]byte, 1000)}); !errors.Is(err, ErrFailed) {
		t.Fatalf("Propose of an entry the log refuses: %v, want ErrFailed", err)
	}
	proposed := p.proposed
	_, err = f.Propose(t.Context(), p, AppendRecord{Value: []byte("later")})
	if !errors.Is(err, ErrStopped) || errors.Is(err, ErrFailed) || p.proposed != proposed {
		t.Fatalf("Propose on a stopped leader: %v (%d proposals, %d before); want ErrStopped, nothing proposed", err, p.proposed, proposed)
	}
	if _, err := f.ProposeRetention(t.Context(), p, 1); !errors.Is(err, ErrStopped) || p.proposed != proposed {
		t.Fatalf("ProposeRetention on a stopped leader: %v (%d proposals, %d before)", err, p.proposed, proposed)
	}
	p.leader = false
	if _, err := f.Propose(t.Context(), p, AppendRecord{Value: []byte("later")}); errors.Is(err, ErrStopped) || p.proposed != proposed+1 {
		t.Fatalf("Propose on a stopped follower: %v (%d proposals); want it handed to the leader", err, p.proposed)
	}
}

// TestStoppedMachineLeaderProposesNothing: the same through the Machine (topics, groups,
// producers, retention): after a partition's log failed, a leader proposes nothing.
func TestStoppedMachineLeaderProposesNothing(t *testing.T) {
	n := openMachineNode(t, t.TempDir())
	if _, err := n.m.ProposeAppend(t.Context(), n, DefaultTopic, 0, ProducerRef{}, AppendRecord{Value: []byte("ok")}); err != nil {
		t.Fatal(err)
	}
	n.m.fail(errors.New("disk full"))
	before := n.index
	if _, err := n.m.ProposeAppend(t.Context(), n, DefaultTopic, 0, ProducerRef{}, AppendRecord{Value: []byte("later")}); !errors.Is(err, ErrStopped) || errors.Is(err, ErrFailed) {
		t.Fatalf("ProposeAppend on a stopped leader: %v, want ErrStopped", err)
	}
	if _, err := n.m.CreateTopic(t.Context(), n, "t", 1, TopicConfig{}); !errors.Is(err, ErrStopped) {
		t.Fatalf("CreateTopic on a stopped leader: %v, want ErrStopped", err)
	}
	if n.index != before {
		t.Fatalf("%d entries proposed after the machine stopped", n.index-before)
	}
}
