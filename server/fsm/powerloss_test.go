package fsm

import (
	"testing"
	"time"

	craft "github.com/commitlog-go/commitlog/consensus/raft"
	"github.com/commitlog-go/commitlog/storage/vfs/crashfs"
)

// TestPowerLossAfterCompaction: a snapshot lets Raft drop its log's entries, so the records
// they carried then live in the FSM's log alone, which does not fsync on apply. A power loss
// that drops every unsynced write, on a minority and then on every node at once, must not take
// any of them: the snapshot synced the FSM's log before its manifest said it covers them. (The
// planted bug snapshot-no-sync, `-tags chaosbugs` with COMMITLOG_CHAOS_BUG=snapshot-no-sync,
// makes this test fail: see `make chaos-planted`.)
func TestPowerLossAfterCompaction(t *testing.T) {
	tests := []struct {
		name  string
		crash []int
	}{
		{"minority", []int{1}},
		{"every node at once", []int{0, 1, 2}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := newFSMCluster(t, 3, clusterOpts{crashFS: true, segmentBytes: 1 << 20, raft: func(rc *craft.Config) {
				rc.TrailingLogs = 1 // a snapshot leaves Raft's log (nearly) empty
				rc.SnapshotThreshold = 1 << 40
				rc.SnapshotInterval = time.Hour // snapshots only when the test asks
			}})
			l := newLedger()
			c.WaitLeader()
			next := proposeBatches(t, c, l, "before", 30, 0)
			c.converge(next)
			for _, i := range c.Running() {
				snapshotNode(t, c, i)
			}
			syncs := 0
			for _, i := range tt.crash {
				syncs += c.fs(i).Syncs()
				c.crash(i, crashfs.DropUnsynced, uint64(i+1))
			}
			if syncs == 0 {
				t.Fatal("the crashed nodes never synced their log: the test would not tell a sync from none")
			}
			for _, i := range tt.crash {
				c.Restart(i)
			}
			c.WaitLeader()
			c.checkInvariants(l)
			proposeBatches(t, c, l, "after", 5, next)
			c.checkInvariants(l)
		})
	}
}
