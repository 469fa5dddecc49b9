package raft_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/commitlog-go/commitlog/consensus/consensustest"
)

// followerLags returns, on the current leader, commit index minus each follower's match index
// (the follower_lag gauge), and whether every follower has a match index yet.
func followerLags(t *testing.T, c *consensustest.Cluster) (lags map[string]uint64, leader int, known bool) {
	t.Helper()
	leader = c.WaitLeader()
	n := c.Node(leader)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	servers, err := n.Servers(ctx)
	if err != nil {
		return nil, leader, false
	}
	commit := n.Status().CommitIndex
	lags, known = map[string]uint64{}, true
	for _, s := range servers {
		if s.ID == c.ID(leader) {
			continue
		}
		if s.MatchIndex == 0 {
			known = false
		}
		lags[s.ID] = commit - min(commit, s.MatchIndex)
	}
	return lags, leader, known
}

// TestFollowerLagFromMatchIndex: the leader reports a follower's lag from how far the follower
// holds the log, so a stalled follower's lag grows with every commit it misses and returns to
// zero once it is released and catches up (before, MatchIndex stayed 0 and the lag was the
// commit index forever).
func TestFollowerLagFromMatchIndex(t *testing.T) {
	for _, tr := range transports {
		t.Run(tr.name, func(t *testing.T) {
			c := consensustest.NewCluster(t, 3, consensustest.Options{TCP: tr.tcp})
			for k := range 5 {
				c.Propose(fmt.Appendf(nil, "warm-%d", k))
			}
			c.WaitFor("every follower at lag 0", func() bool {
				lags, _, known := followerLags(t, c)
				if !known {
					return false
				}
				for _, l := range lags {
					if l != 0 {
						return false
					}
				}
				return true
			})

			leader := c.WaitLeader()
			stalled := (leader + 1) % 3
			c.Partition(stalled)
			const missed = 40
			for k := range missed {
				c.Propose(fmt.Appendf(nil, "while-stalled-%d", k))
			}
			c.WaitFor("the stalled follower's lag to grow", func() bool {
				lags, l, _ := followerLags(t, c)
				return l != stalled && lags[c.ID(stalled)] >= missed
			})
			lags, _, _ := followerLags(t, c)
			for id, l := range lags {
				if id != c.ID(stalled) && l > missed/2 {
					t.Errorf("healthy follower %s reported lag %d", id, l)
				}
			}

			c.Heal()
			c.Propose([]byte("after-heal"))
			c.WaitFor("every follower back at lag 0 after the release", func() bool {
				lags, _, known := followerLags(t, c)
				if !known || len(lags) != 2 {
					return false
				}
				for _, l := range lags {
					if l != 0 {
						return false
					}
				}
				return true
			})
		})
	}
}
