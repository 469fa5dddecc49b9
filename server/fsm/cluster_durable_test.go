package fsm

import (
	"fmt"
	"strings"
	"testing"

	"github.com/commitlog-go/commitlog/storage/vfs/crashfs"
)

// proposePadded proposes count batches of values of a few hundred bytes, so that the unsynced
// tail of a log spans many pages, and records them in l. It returns the next offset.
func proposePadded(t *testing.T, c *fsmCluster, l *ledger, prefix string, count int, next uint64) uint64 {
	t.Helper()
	pad := strings.Repeat("x", 300)
	for b := range count {
		vals := make([]string, 1+b%4)
		for j := range vals {
			vals[j] = fmt.Sprintf("%s/%d/%d/%s", prefix, b, j, pad)
		}
		res := c.proposeAmong(nil, vals...)
		if res.First != next {
			t.Fatalf("batch %d got offsets from %d, want %d", b, res.First, next)
		}
		l.ack(t, res, vals...)
		next += res.Count
	}
	return next
}

// TestClusterPowerFailureHoleInUnsyncedTail: a power failure that loses random pages of a
// node's unsynced FSM log (holes with valid records after them, as unordered page writeback
// leaves them) does not stop the node from starting: recovery cuts the log at the first hole,
// the FSM learns the last index actually stored, and Raft replays the rest, so the node ends
// with the same records at the same offsets as its peers.
func TestClusterPowerFailureHoleInUnsyncedTail(t *testing.T) {
	c := newFSMCluster(t, 3, clusterOpts{crashFS: true, segmentBytes: 1 << 20})
	l := newLedger()
	c.WaitLeader()
	next := proposePadded(t, c, l, "synced", 10, 0)
	c.converge(next)
	snapshotNode(t, c, 0) // syncs node 0's log: what follows is unsynced
	next = proposePadded(t, c, l, "unsynced", 60, next)
	before := c.checkInvariants(l)

	holes := 0
	for seed := uint64(1); seed <= 20 && holes < 2; seed++ {
		c.crash(0, crashfs.DropUnsyncedPages, seed)
		c.Restart(0) // fails the test if recovery refuses the log
		sm := c.SM(0).(*nodeSM)
		rep := sm.log.Recovery()
		_, stored := sm.Bounds()
		if rep.Hole {
			holes++
			t.Logf("seed %d: recovery cut a hole at the watermark %d: %d bytes, %d records kept of %d", seed, rep.Synced, rep.TruncatedBytes, stored, next)
		}
		after := c.checkInvariants(l)
		if len(after) != len(before) {
			t.Fatalf("seed %d: %d records after the restart, %d before", seed, len(after), len(before))
		}
		for k := range after {
			if string(after[k].Value) != string(before[k].Value) || after[k].Index != before[k].Index {
				t.Fatalf("seed %d: offset %d changed across the power failure: %+v, was %+v", seed, k, after[k], before[k])
			}
		}
		// The replayed records are unsynced again (recovery synced only what it kept), so
		// the next power failure can tear them too.
	}
	if holes == 0 {
		t.Fatal("no power failure left a hole with valid records after it: the test proves nothing")
	}
}
