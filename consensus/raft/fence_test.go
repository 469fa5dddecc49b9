package raft_test

import (
	"testing"

	"github.com/commitlog-go/commitlog/consensus/consensustest"
	craft "github.com/commitlog-go/commitlog/consensus/raft"
)

// TestFencedNodeNeitherVotesNorLeads: a node that lost committed data is fenced. A leader's
// hand-over to it fails at once (the leader keeps leading, in its term); with the leader
// stopped, the healthy node that is left needs the fenced node's vote and does not get it, so
// nobody leads, and neither node's term moves while both campaign (pre-votes only: failing the
// fenced node's own vote requests does not make it bump its term). Lifted, the fence lets them
// elect a leader. Before fencing, the hand-over made the fenced node the leader, and its vote
// elected the healthy one.
func TestFencedNodeNeitherVotesNorLeads(t *testing.T) {
	c := consensustest.NewCluster(t, 3, consensustest.Options{})
	c.Propose([]byte("before"))
	L := c.WaitLeader()
	F, H := (L+1)%3, (L+2)%3
	const reason = "test: lost committed data"
	c.Node(F).Fence(reason)
	if got := c.Node(F).Status().Fenced; got != reason {
		t.Fatalf("Status().Fenced = %q, want %q", got, reason)
	}

	term := c.Node(L).Status().Term
	if err := c.Node(L).TransferLeadership(ctxT(t), c.ID(F)); err == nil {
		t.Fatalf("leadership handed over to the fenced node %d", F)
	}
	if l := c.WaitLeader(); l != L {
		t.Fatalf("node %d leads after a hand-over to the fenced node %d, want %d still", l, F, L)
	}
	if got := c.Node(L).Status().Term; got != term {
		t.Fatalf("the leader's term went from %d to %d after the refused hand-over", term, got)
	}
	c.Propose([]byte("fenced, led by another"))

	c.Stop(L)
	fTerm, hTerm := c.Node(F).Status().Term, c.Node(H).Status().Term
	refused0, blocked0 := c.Node(F).FenceCounts()
	c.WaitFor("both nodes to campaign three times each", func() bool {
		for _, i := range []int{F, H} {
			if c.Node(i).IsLeader() {
				t.Fatalf("node %d was elected with the fenced node %d and the healthy node %d alone (fenced: %v)", i, F, H, i == F)
			}
		}
		refused, blocked := c.Node(F).FenceCounts()
		return refused >= refused0+3 && blocked >= blocked0+3
	})
	if got := c.Node(F).Status().Term; got != fTerm {
		t.Fatalf("the fenced node's term went from %d to %d while it campaigned", fTerm, got)
	}
	if got := c.Node(H).Status().Term; got != hTerm {
		t.Fatalf("the healthy node's term went from %d to %d while its pre-votes were refused", hTerm, got)
	}

	c.Node(F).Unfence()
	if _, ok := c.Node(F).Fenced(); ok {
		t.Fatal("still fenced after Unfence")
	}
	c.WaitLeader()
	c.Propose([]byte("after"))
}

// TestFencedAtStart: a node started with Config.Fenced refuses votes from its first RPC: with
// one of the other two stopped, no leader is elected; and it takes no hand-over.
func TestFencedAtStart(t *testing.T) {
	fenced := map[int]string{}
	c := consensustest.NewCluster(t, 3, consensustest.Options{Config: func(i int, cfg *craft.Config) {
		cfg.Fenced = fenced[i]
	}})
	c.Propose([]byte("before"))
	L := c.WaitLeader()
	F, H := (L+1)%3, (L+2)%3
	c.Stop(F)
	fenced[F] = "divergence alarm kept on disk"
	c.Restart(F)
	if got, ok := c.Node(F).Fenced(); !ok || got != fenced[F] {
		t.Fatalf("Fenced() = %q, %v after a start with Config.Fenced %q", got, ok, fenced[F])
	}
	c.WaitApplied(c.Node(L).Status().CommitIndex, F)
	if err := c.Node(L).TransferLeadership(ctxT(t), c.ID(F)); err == nil {
		t.Fatalf("leadership handed over to the node %d fenced at start", F)
	}
	c.Stop(L)
	refused0, _ := c.Node(F).FenceCounts()
	c.WaitFor("the healthy node's pre-votes to be refused three times", func() bool {
		if c.Node(F).IsLeader() || c.Node(H).IsLeader() {
			t.Fatalf("a leader was elected with the vote of the node %d fenced at start", F)
		}
		refused, _ := c.Node(F).FenceCounts()
		return refused >= refused0+3
	})
}

// TestFencedLeaderHandsOver: a leader fenced while it leads keeps leading (Raft cannot step
// down alone) until it hands leadership over; its hand-over elects another voter without its
// vote.
func TestFencedLeaderHandsOver(t *testing.T) {
	c := consensustest.NewCluster(t, 3, consensustest.Options{})
	L := c.WaitLeader()
	c.Node(L).Fence("test")
	if err := c.Node(L).TransferLeadership(ctxT(t), ""); err != nil {
		t.Fatalf("hand-over of the fenced leader: %v", err)
	}
	if l := c.WaitLeader(); l == L {
		t.Fatalf("the fenced node %d still leads after its hand-over", L)
	}
	c.Propose([]byte("after the hand-over"))
}

// TestHandOverSkipsFencedVoter: a leader handing leadership to "the most up-to-date voter"
// whose pick is fenced hands it to the next voter. Before, the hand-over failed (the fenced
// voter refuses it), and a leader stopping gracefully left no leader where the other voter could
// have led.
func TestHandOverSkipsFencedVoter(t *testing.T) {
	c := consensustest.NewCluster(t, 3, consensustest.Options{})
	c.Propose([]byte("before"))
	L := c.WaitLeader()
	c.WaitApplied(c.Node(L).Status().LastIndex)
	// Every voter holds the whole log: the pick goes to the first in the configuration.
	F := 0
	if F == L {
		F = 1
	}
	c.Node(F).Fence("test")
	if err := c.Node(L).TransferLeadership(ctxT(t), ""); err != nil {
		t.Fatalf("hand-over with the fenced node %d among the voters: %v", F, err)
	}
	if l := c.WaitLeader(); l == L || l == F {
		t.Fatalf("node %d leads after the hand-over of %d, with %d fenced", l, L, F)
	}
	if refused, _ := c.Node(F).FenceCounts(); refused == 0 {
		t.Logf("the pick was not the fenced node %d: the retry was not exercised", F)
	}
}
