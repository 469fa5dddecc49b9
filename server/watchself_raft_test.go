package server

import (
	"context"
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/commitlog-go/commitlog/consensus"
	"github.com/commitlog-go/commitlog/consensus/consensustest"
	craft "github.com/commitlog-go/commitlog/consensus/raft"
)

// TestWatchSelfAdditionLostWithItsLeader, on real Raft nodes: a joining server receives the
// entry adding it from a leader cut off from the other voters, which elect a leader without
// the entry. The server, whose own configuration still lists it, hears from no leader and asks
// the new one, which does not list it: it took that for a removal and withdrew its Raft address
// after the grace, and then no leader ever added it. Added for real afterwards (the entry
// committed) and then removed, it withdraws as before.
func TestWatchSelfAdditionLostWithItsLeader(t *testing.T) {
	c := consensustest.NewCluster(t, 3, consensustest.Options{Config: func(_ int, cfg *craft.Config) {
		// The cut-off leader keeps leading long enough to append the addition and replicate
		// it to the new server.
		cfg.HeartbeatTimeout, cfg.ElectionTimeout, cfg.LeaderLeaseTimeout = 2*time.Second, 2*time.Second, 2*time.Second
	}, WaitTimeout: 30 * time.Second})
	old := c.WaitLeader()
	c.WaitApplied(c.Node(old).Status().CommitIndex)
	n := c.AddNode()
	self := c.ID(n)
	node := c.Node(n)
	holds := func(nd consensus.Consensus) bool {
		servers, err := nd.Servers(t.Context())
		return err == nil && slices.ContainsFunc(servers, func(s consensus.ServerStatus) bool { return s.ID == self })
	}

	var announced []bool
	var unheard time.Duration
	var leader consensus.Consensus
	r := newReconciler(reconcilerConfig{self: self, node: node, unheardAfter: time.Second,
		unheard: func() time.Duration { return unheard },
		askLeader: func(context.Context) (bool, bool) {
			if leader == nil || !leader.IsLeader() {
				return false, false
			}
			return holds(leader), true
		},
		announceRemoved: func(_ context.Context, removed bool) error {
			announced = append(announced, removed)
			return nil
		}})
	pass := func(what string, want ...bool) {
		t.Helper()
		for range 3 {
			r.asked = time.Time{} // not rate-limited here
			if !r.unlisted.IsZero() {
				r.unlisted = r.unlisted.Add(-r.removedGrace())
			}
			r.watchSelf(t.Context())
		}
		if !slices.Equal(announced, want) {
			t.Fatalf("%s: announced %v, want %v", what, announced, want)
		}
	}

	c.Partition(old, n)
	ctx, cancel := context.WithTimeout(t.Context(), 500*time.Millisecond)
	err := c.Node(old).AddNonvoter(ctx, self, c.Addr(n))
	cancel()
	if err == nil || errors.Is(err, consensus.ErrNotLeader) || errors.Is(err, consensus.ErrNoLeader) {
		t.Fatalf("AddNonvoter on a leader cut off from the other voters: %v, want it proposed, not committed", err)
	}
	c.WaitFor(self+" holds the entry adding it", func() bool { return holds(node) })
	pass("added by an entry not committed, hearing from its leader")

	var others []int
	for i := range 3 {
		if i != old {
			others = append(others, i)
		}
	}
	leader = c.Node(c.WaitLeader(others...))
	if holds(leader) {
		t.Fatalf("the next leader has the entry adding %s: the addition was not lost", self)
	}
	unheard = time.Minute
	pass("its addition lost with its leader, the next leader not listing it")

	// Added for real, then removed: a removal.
	c.Heal()
	li := c.WaitLeader(append(others, old)...)
	leader = c.Node(li)
	if err := leader.AddNonvoter(t.Context(), self, c.Addr(n)); err != nil {
		t.Fatalf("AddNonvoter: %v", err)
	}
	c.WaitFor(self+" applies the configuration adding it", func() bool {
		servers, _, ok := node.CommittedServers()
		return ok && slices.ContainsFunc(servers, func(s consensus.Server) bool { return s.ID == self })
	})
	unheard = 0
	pass("a member")
	if err := leader.RemoveServer(t.Context(), self); err != nil {
		t.Fatalf("RemoveServer: %v", err)
	}
	unheard = time.Minute // whether or not the removal reached it, it asks the leader
	pass("removed", true)
}

// TestWatchSelfRemovedWhileDownRestartedWithoutSnapshot, on real Raft nodes: a member removed
// while it was down, restarted without a snapshot, holds a log whose configuration lists it, and
// no leader ever replicates to it again (so it never learns what committed from one). It was a
// member, committed, before it stopped: asking the leader, it announces itself removed, as it
// did before its committed membership was checked. Taken for a node that never was one, it
// stayed listed in gossip, and a next leader added the removed server back.
func TestWatchSelfRemovedWhileDownRestartedWithoutSnapshot(t *testing.T) {
	c := consensustest.NewCluster(t, 3, consensustest.Options{})
	c.Propose([]byte("one"))
	l := c.WaitLeader()
	f := (l + 1) % 3
	self := c.ID(f)
	c.WaitApplied(c.Node(l).Status().CommitIndex, f)
	c.Stop(f)
	leader := c.Node(l)
	if err := leader.RemoveServer(t.Context(), self); err != nil {
		t.Fatalf("RemoveServer: %v", err)
	}
	c.Restart(f)
	node := c.Node(f)
	if servers, err := node.Servers(t.Context()); err != nil || !slices.ContainsFunc(servers, func(s consensus.ServerStatus) bool { return s.ID == self }) {
		t.Fatalf("restarted, %s's own configuration %v (%v) does not list it: the removal reached it", self, servers, err)
	}

	var announced []bool
	var unheard time.Duration
	r := newReconciler(reconcilerConfig{self: self, node: node, unheardAfter: time.Second,
		unheard: func() time.Duration { return unheard },
		askLeader: func(ctx context.Context) (bool, bool) {
			if !leader.IsLeader() {
				return false, false
			}
			servers, err := leader.Servers(ctx)
			if err != nil {
				return false, false
			}
			return slices.ContainsFunc(servers, func(s consensus.ServerStatus) bool { return s.ID == self }), true
		},
		announceRemoved: func(_ context.Context, removed bool) error {
			announced = append(announced, removed)
			return nil
		}})
	r.watchSelf(t.Context()) // just restarted: its own configuration lists it
	unheard = time.Minute    // no leader reaches it: it asks the leader
	for range 3 {
		r.asked = time.Time{} // not rate-limited here
		if !r.unlisted.IsZero() {
			r.unlisted = r.unlisted.Add(-r.removedGrace())
		}
		r.watchSelf(t.Context())
	}
	if !slices.Equal(announced, []bool{true}) {
		servers, index, ok := node.CommittedServers()
		t.Fatalf("removed while down, restarted without a snapshot: announced %v, want [true] (committed configuration %v at %d, known %v)", announced, servers, index, ok)
	}
}
