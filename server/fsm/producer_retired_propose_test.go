package fsm

import (
	"context"
	"errors"
	"testing"
)

// TestRetiredProducerRefusedBeforeProposing: a batch under a retired producer ID (re-initialised
// at its last epoch) is refused by the replica it reaches without proposing anything. Refused
// only in Apply, the entry went into the Raft log, and a server from before retirement (34a5c4b)
// still a member during a rolling upgrade stored it: measured with real processes, the old
// follower held a record its client was told was refused, every later offset one higher.
func TestRetiredProducerRefusedBeforeProposing(t *testing.T) {
	n := openMachineNode(t, t.TempDir())
	ctx := context.Background()
	p, old := spendEpochs(t, n)
	if cur, err := n.m.InitProducer(ctx, n, p.ID); err != nil || cur.ID == p.ID {
		t.Fatalf("re-init at the last epoch = %+v, %v; want a new ID", cur, err)
	}
	before := len(n.entries)
	if _, err := n.idem("", 0, old, 0, "zombie"); !errors.Is(err, ErrProducerFenced) {
		t.Fatalf("batch of the retired ID: %v, want ErrProducerFenced", err)
	}
	if got := len(n.entries) - before; got != 0 {
		t.Fatalf("batch of the retired ID: %d entries proposed, want none (refused before proposing)", got)
	}
}
