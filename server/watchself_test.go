package server

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"testing"

	"github.com/commitlog-go/commitlog/consensus"
	"github.com/commitlog-go/commitlog/discovery"
)

// selfNode is a consensus.Consensus whose configuration lists ids. Any other method panics
// (nil embedded interface).
type selfNode struct {
	consensus.Consensus
	ids []string
}

func (n *selfNode) Servers(context.Context) ([]consensus.ServerStatus, error) {
	var out []consensus.ServerStatus
	for _, id := range n.ids {
		out = append(out, consensus.ServerStatus{Server: consensus.Server{ID: id}})
	}
	return out, nil
}

// TestWatchSelfWaitsBeforeAnnouncingRemoval: a node announces itself removed (withdraws its
// Raft address from gossip, so that no leader adds it back) only once its configuration has not
// listed it for removedGrace, and comes back when listed again. Without the wait, a node that a
// leader re-addresses (removed, then added at once), or whose addition was lost with a leader
// and that the next leader adds again, withdrew its address in between: no leader added it
// again, and it stayed out of the cluster until restarted.
func TestWatchSelfWaitsBeforeAnnouncingRemoval(t *testing.T) {
	node := &selfNode{}
	var announced []bool
	r := newReconciler(reconcilerConfig{self: "n1", node: node, announceRemoved: func(_ context.Context, removed bool) error {
		announced = append(announced, removed)
		return nil
	}})
	step := func(ids []string, elapsed bool, want ...bool) {
		t.Helper()
		node.ids = ids
		if elapsed && !r.unlisted.IsZero() {
			r.unlisted = r.unlisted.Add(-r.removedGrace())
		}
		r.watchSelf(t.Context())
		if !slices.Equal(announced, want) {
			t.Fatalf("configuration %v (grace over: %v): announced %v, want %v", ids, elapsed, announced, want)
		}
	}
	others := []string{"n2", "n3"}
	step(others, true)                             // never listed yet (joining): nothing
	step(append(others, "n1"), false)              // added
	step(others, false)                            // removed...
	step(append(others, "n1"), true)               // ...and added back at once (re-addressed): nothing
	step(others, false)                            // removed
	step(others, true, true)                       // still not listed after the grace: announced
	step(others, true, true)                       // once
	step(append(others, "n1"), false, true, false) // listed again: back
}

// TestWatchSelfAnnounceFailures: an announcement gossip failed is tried again at the next pass;
// a membership that cannot announce (a fixed one: discovery.ErrNotSupported) is not asked again.
func TestWatchSelfAnnounceFailures(t *testing.T) {
	node := &selfNode{ids: []string{"n1", "n2"}}
	var calls int
	answer := errors.New("serf: closed")
	r := newReconciler(reconcilerConfig{self: "n1", node: node, announceRemoved: func(_ context.Context, removed bool) error {
		calls++
		if !removed {
			t.Errorf("announced back, never removed")
		}
		return answer
	}})
	r.watchSelf(t.Context()) // listed
	node.ids = []string{"n2"}
	r.watchSelf(t.Context())
	r.unlisted = r.unlisted.Add(-r.removedGrace())
	r.watchSelf(t.Context())
	r.watchSelf(t.Context())
	if calls != 2 || r.removedSelf {
		t.Fatalf("after 2 failed announcements: %d calls, removedSelf %v; want 2 calls, not removed", calls, r.removedSelf)
	}
	answer = fmt.Errorf("static: %w", discovery.ErrNotSupported)
	r.watchSelf(t.Context())
	r.watchSelf(t.Context())
	if calls != 3 || r.announceRemoved != nil {
		t.Fatalf("a membership that cannot announce: %d calls, want 3 (asked once)", calls)
	}
}

// committedNode is a selfNode that also tells which configuration committed: committed, nil
// while it knows none (consensus.CommittedConfiguration).
type committedNode struct {
	selfNode
	committed []string
}

func (n *committedNode) CommittedServers() ([]consensus.Server, uint64, bool) {
	if n.committed == nil {
		return nil, 0, false
	}
	var out []consensus.Server
	for _, id := range n.committed {
		out = append(out, consensus.Server{ID: id})
	}
	return out, uint64(len(n.committed)), true
}

// TestWatchSelfIgnoresRolledBackAddition: a joining node that saw itself added by an entry that
// never committed (the leader that appended it died, or lost leadership, first; the next
// leader's log does not have it, and the node's configuration rolls back to one without it) was
// never a member: it does not announce itself removed, however long no leader adds it again.
// It took the rollback for a removal and withdrew its Raft address once the grace passed, and
// then no leader ever added it: it stayed out of the cluster until restarted. Once a committed
// configuration lists it, a removal is one, as before.
func TestWatchSelfIgnoresRolledBackAddition(t *testing.T) {
	node := &committedNode{}
	var announced []bool
	r := newReconciler(reconcilerConfig{self: "n1", node: node, announceRemoved: func(_ context.Context, removed bool) error {
		announced = append(announced, removed)
		return nil
	}})
	step := func(ids, committed []string, elapsed bool, want ...bool) {
		t.Helper()
		node.ids, node.committed = ids, committed
		if elapsed && !r.unlisted.IsZero() {
			r.unlisted = r.unlisted.Add(-r.removedGrace())
		}
		r.watchSelf(t.Context())
		if !slices.Equal(announced, want) {
			t.Fatalf("configuration %v, committed %v (grace over: %v): announced %v, want %v", ids, committed, elapsed, announced, want)
		}
	}
	others, with := []string{"n2", "n3"}, []string{"n2", "n3", "n1"}
	step(others, nil, true)     // joining, nothing committed known yet: nothing
	step(with, nil, false)      // added, not committed (a new node knows no commit yet)
	step(others, nil, true)     // rolled back: nothing...
	step(others, nil, true)     // ...however long
	step(with, others, false)   // added again, not committed yet
	step(others, others, false) // rolled back again
	step(others, others, true)  // nothing
	step(with, with, false)     // added, committed: a member
	step(others, with, false)   // removed (the removal not known committed here yet)...
	step(others, with, true, true)
	step(with, others, false, true, false) // re-added: back
}
