package fsm

import (
	"context"
	"fmt"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	craft "github.com/commitlog-go/commitlog/consensus/raft"
	"github.com/commitlog-go/commitlog/storage/vfs/crashfs"
)

// TestPowerLossAfterCompaction: power failures of a minority and then of every node at once,
// in which each node loses every unsynced write of both its FSM log and Raft's own log
// (raft-wal's segment files, on crashfs through server/internal/walvfs; its BoltDB meta store
// stays on the real disk behind a fence, see power), while producers keep writing.
//
// A snapshot first lets Raft drop its log's entries (raft-wal deletes whole segments: they are
// small here, and the test checks that the oldest entries are gone from Raft's log), so the
// records they carried then live in the FSM's log alone, which does not fsync on apply; the
// records written after it are in Raft's log (fsynced before they are acknowledged) and in the
// FSM's unsynced tail. After the restart: no acknowledged record is lost and each is at its
// acknowledged offset, a record whose outcome was unknown is there at most once, nothing
// else is, the replicas hold the same records and offsets are dense from 0; writes go on.
// (The planted bug snapshot-no-sync, `-tags chaosbugs` with
// COMMITLOG_CHAOS_BUG=snapshot-no-sync, makes this test fail: see `make chaos-planted`.)
func TestPowerLossAfterCompaction(t *testing.T) {
	tests := []struct {
		name  string
		crash []int
		mode  crashfs.CrashMode
	}{
		{"minority", []int{1}, crashfs.DropUnsynced},
		{"every node at once", []int{0, 1, 2}, crashfs.DropUnsynced},
		{"every node at once, unsynced pages half written", []int{0, 1, 2}, crashfs.DropUnsyncedPages},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := newFSMCluster(t, 3, clusterOpts{crashFS: true, segmentBytes: 1 << 20, raft: func(rc *craft.Config) {
				rc.TrailingLogs = 1 // a snapshot leaves Raft's log (nearly) empty
				rc.SnapshotThreshold = 1 << 40
				rc.SnapshotInterval = time.Hour // snapshots only when the test asks
				rc.WALSegmentSize = 2048        // compaction deletes whole segments only
			}})
			l := newLedger()
			c.WaitLeader()
			next := proposeBatches(t, c, l, "before", 60, 0)
			c.converge(next)
			recs := snapshotLog(t, c.fsm(0))
			for _, i := range c.Running() {
				snapshotNode(t, c, i)
				first := c.walFirstIndex(i)
				if first <= recs[len(recs)/2].Index {
					t.Fatalf("node %d: Raft's log still starts at index %d after the snapshot, before the middle record's %d: the test would not tell whether the FSM's log kept the records", i, first, recs[len(recs)/2].Index)
				}
			}
			next = proposeBatches(t, c, l, "after", 20, next) // in Raft's log and the FSM's unsynced tail

			// Producers write while the power fails.
			var stop atomic.Bool
			var wg sync.WaitGroup
			acked := make(chan struct{}, 1)
			for p := range 2 {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for b := 0; !stop.Load(); b++ {
						vals := batchVals(fmt.Sprintf("load%d/%d", p, b), 1+b%3)
						if c.produceOnce(l, vals) {
							select {
							case acked <- struct{}{}:
							default:
							}
						}
					}
				}()
			}
			<-acked
			syncs := 0
			for _, i := range tt.crash {
				syncs += c.power(i).fsm.Syncs() + c.power(i).wal.Syncs()
				c.power(i).cut(tt.mode, newRand(uint64(i+1)))
			}
			for _, i := range tt.crash {
				c.Stop(i)
			}
			if syncs == 0 {
				t.Fatal("the crashed nodes never synced: the test would not tell a sync from none")
			}
			lost := 0
			for _, i := range tt.crash {
				c.Restart(i)
				_, n := c.fsm(i).Bounds()
				lost += int(next - min(n, next))
			}
			if len(tt.crash) == c.N() && lost == 0 {
				t.Fatal("the power failure took no record from any FSM log: Raft's log was not needed to restore them")
			}
			c.WaitLeader()
			time.Sleep(200 * time.Millisecond) // some writes after the restart
			stop.Store(true)
			wg.Wait()
			c.checkInvariants(l)
			t.Logf("the FSM logs lost %d records of %d; Raft's logs restored them; %d acknowledged in all", lost, next, len(l.acked))
			proposeBatches(t, c, l, "end", 5, c.converge(0))
			c.checkInvariants(l)
		})
	}
}

// produceOnce proposes vals once through the current leader and records the outcome in l: an
// acknowledgement, or an unknown outcome for any error but "not the leader". It reports
// whether vals were acknowledged. Any goroutine may call it.
func (c *fsmCluster) produceOnce(l *ledger, vals []string) bool {
	n := c.currentLeader()
	if n == nil {
		time.Sleep(5 * time.Millisecond)
		return false
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	res, err := proposeOn(ctx, c.t, n, vals...)
	switch {
	case err == nil:
		l.ack(c.t, res, vals...)
		return true
	case isRetryable(err):
	default:
		l.maybe(vals...)
	}
	return false
}

// walFirstIndex returns the first index of node i's oldest raft-wal segment on crashfs (raft-wal
// names a segment by its zero-padded first index and id, so the first name is the oldest).
func (c *fsmCluster) walFirstIndex(i int) uint64 {
	c.t.Helper()
	names, err := c.power(i).wal.ReadDir(filepath.Join(c.Dir(i), "raft", "wal"))
	if err != nil || len(names) == 0 {
		c.t.Fatalf("node %d: no raft-wal segment on crashfs: %v", i, err)
	}
	var base, id uint64
	if _, err := fmt.Sscanf(names[0], "%020d-%016x.wal", &base, &id); err != nil {
		c.t.Fatalf("node %d: segment file %q: %v", i, names[0], err)
	}
	return base
}
