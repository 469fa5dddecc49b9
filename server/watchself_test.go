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
