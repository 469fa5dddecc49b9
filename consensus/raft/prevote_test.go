package raft_test

import (
	"testing"
	"time"

	"github.com/commitlog-go/commitlog/consensus/consensustest"
)

// TestRejoiningFollowerDoesNotDeposeLeader: a follower cut off from the others campaigns on its
// own; back, it must not depose the healthy leader. Without pre-vote (Raft turned it off: the
// transport wrappers did not pass hraft.WithPreVote on) its campaigns raised its term, and its
// first message after the heal made the leader step down for an election it could not even win.
func TestRejoiningFollowerDoesNotDeposeLeader(t *testing.T) {
	for _, tr := range transports {
		t.Run(tr.name, func(t *testing.T) {
			c := consensustest.NewCluster(t, 3, consensustest.Options{TCP: tr.tcp})
			c.Propose([]byte("before"))
			leader := c.WaitLeader()
			term := c.Node(leader).Status().Term
			follower := (leader + 1) % 3
			c.Partition(follower)
			// Several election timeouts: it campaigns (pre-votes only, with pre-vote).
			time.Sleep(2 * time.Second)
			if _, err := c.Node(leader).Propose(ctxT(t), []byte("during")); err != nil {
				t.Fatalf("Propose on the leader during the partition: %v", err)
			}
			c.Heal()
			c.WaitFor("the follower caught up", func() bool { return c.List(follower).Len() >= 2 })
			c.Propose([]byte("after"))
			if l := c.WaitLeader(); l != leader {
				t.Fatalf("leader moved from node %d to node %d after the follower came back", leader, l)
			}
			if got := c.Node(leader).Status().Term; got != term {
				t.Fatalf("the leader's term went from %d to %d: the returning follower forced an election", term, got)
			}
		})
	}
}
