package raft_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/commitlog-go/commitlog/consensus"
	"github.com/commitlog-go/commitlog/consensus/consensustest"
	craft "github.com/commitlog-go/commitlog/consensus/raft"
)

// committedLists reports whether n's committed configuration lists id, and whether n knows one.
func committedLists(n *craft.Node, id string) (listed, known bool) {
	servers, _, ok := n.CommittedServers()
	return slices.ContainsFunc(servers, func(s consensus.Server) bool { return s.ID == id }), ok
}

// TestCommittedServersOfAnAdditionLostWithItsLeader: a server added by an entry that reaches it
// but never commits (its leader is cut off from the other voters meanwhile, and they elect a
// leader without the entry) finds itself in its latest configuration (Servers), but not in the
// committed one (CommittedServers): nothing says it was ever a member. A server whose addition
// committed finds itself in both.
func TestCommittedServersOfAnAdditionLostWithItsLeader(t *testing.T) {
	c := consensustest.NewCluster(t, 3, consensustest.Options{Config: func(_ int, cfg *craft.Config) {
		// The cut-off leader keeps leading long enough to append the addition and replicate
		// it to the new server.
		cfg.HeartbeatTimeout, cfg.ElectionTimeout, cfg.LeaderLeaseTimeout = 2*time.Second, 2*time.Second, 2*time.Second
	}, WaitTimeout: 30 * time.Second})
	l := c.WaitLeader()
	c.WaitFor("every server applied the bootstrap configuration", func() bool {
		for i := range 3 {
			if listed, _ := committedLists(c.Node(i), c.ID(i)); !listed {
				return false
			}
		}
		return true
	})

	n := c.AddNode()
	c.Partition(l, n)
	ctx, cancel := context.WithTimeout(t.Context(), 500*time.Millisecond)
	err := c.Node(l).AddNonvoter(ctx, c.ID(n), c.Addr(n))
	cancel()
	if err == nil || errors.Is(err, consensus.ErrNotLeader) || errors.Is(err, consensus.ErrNoLeader) {
		t.Fatalf("AddNonvoter on a leader cut off from the other voters: %v, want it proposed, not committed", err)
	}
	c.WaitFor(c.ID(n)+" holds the entry adding it", func() bool {
		_, ok := serverByIDNoFail(c.Node(n), c.ID(n))
		return ok
	})
	if listed, _ := committedLists(c.Node(n), c.ID(n)); listed {
		t.Fatalf("%s's committed configuration lists it, its addition never committed: %v", c.ID(n), committedOf(c.Node(n).CommittedServers()))
	}

	var others []int
	for i := range 3 {
		if i != l {
			others = append(others, i)
		}
	}
	next := c.WaitLeader(others...)
	if _, ok := serverByIDNoFail(c.Node(next), c.ID(n)); ok {
		t.Fatalf("the next leader %s has the entry adding %s: the addition was not lost", c.ID(next), c.ID(n))
	}
	if listed, _ := committedLists(c.Node(n), c.ID(n)); listed {
		t.Fatalf("%s's committed configuration lists it after its addition was lost: %v", c.ID(n), committedOf(c.Node(n).CommittedServers()))
	}

	// Added for real: committed, it is listed by both.
	c.Heal()
	leader := c.Node(c.WaitLeader(append(others, l)...))
	if err := leader.AddNonvoter(ctxT(t), c.ID(n), c.Addr(n)); err != nil {
		t.Fatalf("AddNonvoter: %v", err)
	}
	c.WaitFor(c.ID(n)+" applies the configuration adding it", func() bool {
		listed, _ := committedLists(c.Node(n), c.ID(n))
		return listed
	})
}

// TestCommittedServersAfterRestart: a server restarted, and reached by no leader, knows the
// configuration of the snapshot it restored as committed; one restarted without a snapshot knows
// the one it had applied before it stopped (kept in its stable store).
func TestCommittedServersAfterRestart(t *testing.T) {
	c := consensustest.NewCluster(t, 3, consensustest.Options{})
	c.Propose([]byte("one"))
	l := c.WaitLeader()
	withSnap, without := (l+1)%3, (l+2)%3
	c.WaitApplied(c.Node(l).Status().CommitIndex, withSnap, without)
	if err := c.Node(withSnap).Raft().Snapshot().Error(); err != nil {
		t.Fatalf("snapshot: %v", err)
	}
	for _, i := range []int{withSnap, without} {
		c.Partition(i)
		c.Stop(i)
		c.Restart(i)
	}
	if listed, known := committedLists(c.Node(withSnap), c.ID(withSnap)); !listed || !known {
		t.Fatalf("restarted from a snapshot: committed configuration %v", committedOf(c.Node(withSnap).CommittedServers()))
	}
	if listed, known := committedLists(c.Node(without), c.ID(without)); !listed || !known {
		t.Fatalf("restarted without a snapshot, reached by no leader: committed configuration %v", committedOf(c.Node(without).CommittedServers()))
	}
	c.Heal()
	c.WaitFor(c.ID(without)+" learns what committed", func() bool {
		listed, _ := committedLists(c.Node(without), c.ID(without))
		return listed
	})
}

func serverByIDNoFail(n *craft.Node, id string) (consensus.ServerStatus, bool) {
	servers, err := n.Servers(context.Background())
	if err != nil {
		return consensus.ServerStatus{}, false
	}
	i := slices.IndexFunc(servers, func(s consensus.ServerStatus) bool { return s.ID == id })
	if i < 0 {
		return consensus.ServerStatus{}, false
	}
	return servers[i], true
}

func committedOf(servers []consensus.Server, _ uint64, _ bool) []consensus.Server { return servers }

// TestCommittedServersOfAServerJoinedFromASnapshot: a server that joined from the leader's
// snapshot (taken before it was added, so its configuration does not list it) and then applied
// the entry adding it, restarted and reached by no leader, knows the configuration that added it,
// not the older one of the snapshot it restores.
func TestCommittedServersOfAServerJoinedFromASnapshot(t *testing.T) {
	c := consensustest.NewCluster(t, 3, consensustest.Options{Config: func(_ int, cfg *craft.Config) {
		// The joining server can only catch up from the snapshot.
		cfg.TrailingLogs = 4
		cfg.WALSegmentSize = 2048       // so that compaction deletes segments
		cfg.SnapshotThreshold = 1 << 20 // snapshots only when asked
	}})
	for k := range 40 {
		c.Propose(fmt.Appendf(nil, "cmd-%d-%s", k, make([]byte, 100)))
	}
	l := c.WaitLeader()
	if err := c.Node(l).Raft().Snapshot().Error(); err != nil {
		t.Fatalf("snapshot: %v", err)
	}
	c.WaitFor("log compacted", func() bool {
		first, err := leaderFirstIndex(c.Node(l))
		return err == nil && first > 10
	})
	n := c.AddNode()
	if err := c.Node(l).AddNonvoter(ctxT(t), c.ID(n), c.Addr(n)); err != nil {
		t.Fatalf("AddNonvoter: %v", err)
	}
	c.WaitFor(c.ID(n)+" applies the configuration adding it", func() bool {
		listed, _ := committedLists(c.Node(n), c.ID(n))
		return listed
	})
	if c.List(n).Restores() == 0 {
		t.Fatalf("%s caught up without the leader's snapshot", c.ID(n))
	}
	c.Partition(n)
	c.Stop(n)
	c.Restart(n)
	if listed, known := committedLists(c.Node(n), c.ID(n)); !listed || !known {
		t.Fatalf("restarted from the snapshot it joined from: committed configuration %v", committedOf(c.Node(n).CommittedServers()))
	}
}
