package raft_test

import (
	"fmt"
	"testing"

	"github.com/commitlog-go/commitlog/consensus/consensustest"
	craft "github.com/commitlog-go/commitlog/consensus/raft"
)

// TestLogWriteFailureRecovers: a node whose Raft log writes fail (disk full, or fsync failing)
// refuses entries while the fault lasts — a leader steps down — and, once the fault is gone,
// takes part again by itself: it catches up, and every node applies every acknowledged
// command exactly once, in the same order, with the same log.
func TestLogWriteFailureRecovers(t *testing.T) {
	for _, tc := range []struct {
		name   string
		mode   int32
		leader bool // fault the leader, else a follower
	}{
		{"full/follower", craft.FaultFull, false},
		{"full/leader", craft.FaultFull, true},
		{"fsync/follower", craft.FaultFsync, false},
		{"fsync/leader", craft.FaultFsync, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			faults := make([]*craft.FaultFS, 3)
			c := consensustest.NewCluster(t, 3, consensustest.Options{
				Config: func(i int, cfg *craft.Config) {
					if faults[i] == nil {
						faults[i] = craft.NewFaultFS()
					}
					cfg.WALFS = faults[i]
					cfg.WALSegmentSize = 4096 // rotations (new segment files) while the fault is on
				},
			})
			var want [][]byte
			propose := func(k int) {
				cmd := fmt.Appendf(nil, "cmd-%03d-%0100d", k, k)
				c.Propose(cmd)
				want = append(want, cmd)
			}
			for k := range 10 {
				propose(k)
			}
			bad := c.WaitLeader()
			if !tc.leader {
				bad = (bad + 1) % 3
			}
			faults[bad].Set(tc.mode)
			for k := 10; k < 50; k++ {
				propose(k)
			}
			if faults[bad].Hits() == 0 {
				t.Fatal("the fault never hit a write")
			}
			// What operators see (commitlog_raft_log_write_failures): the failing node counts
			// its failed writes, the others none.
			for i := range 3 {
				got := c.Node(i).Status().LogWriteFailures
				if (i == bad) != (got > 0) {
					t.Errorf("node %d (faulted: %v) counts %d failed log writes", i, i == bad, got)
				}
			}
			if got := c.List(bad).Len(); got >= len(want) {
				t.Fatalf("node %d applied %d commands with its log failing, want fewer than %d", bad, got, len(want))
			}
			faults[bad].Set(craft.FaultNone)
			for k := 50; k < 60; k++ {
				propose(k)
			}
			l := c.WaitLeader()
			c.WaitApplied(c.Node(l).Status().CommitIndex)
			checkSameRecords(t, c, want, 0, 1, 2)
			last := c.Node(l).Status().LastIndex
			for i := range 3 {
				if got := c.Node(i).Status().LastIndex; got != last {
					t.Fatalf("node %d last log index %d, leader %d's %d", i, got, l, last)
				}
			}
		})
	}
}
