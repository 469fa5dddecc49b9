package fsm

import (
	"encoding/binary"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	craft "github.com/commitlog-go/commitlog/consensus/raft"
	"github.com/commitlog-go/commitlog/storage/vfs/crashfs"
)

// raftSnapshotsWithData lists the snapshots of the node in nodeDir (a consensustest node's
// dir) whose state.bin holds more than consensus/raft's frame header (24 bytes) and manifest:
// the leader's data, in a snapshot received from it.
func raftSnapshotsWithData(t *testing.T, nodeDir string) (all int, withData []string) {
	t.Helper()
	dir := filepath.Join(nodeDir, "raft", "snapshots")
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range ents {
		if !e.IsDir() || strings.HasSuffix(e.Name(), ".tmp") {
			continue
		}
		b, err := os.ReadFile(filepath.Join(dir, e.Name(), "state.bin"))
		if err != nil || len(b) < 24 {
			continue // being reaped or replaced
		}
		all++
		if framed := 24 + binary.BigEndian.Uint64(b[16:24]); uint64(len(b)) != framed {
			withData = append(withData, fmt.Sprintf("%s: %d bytes, frame and manifest %d", e.Name(), len(b), framed))
		}
	}
	return all, withData
}

// TestClusterInstalledSnapshotKeepsNoCopyOfTheData: a node that joins and catches up from a
// snapshot keeps, once it restored it, no copy of the leader's data in Raft's snapshots
// directory: only a manifest its own log serves. Its FSM log, which does not fsync on apply,
// was synced before the received copy went: a power failure that drops every unsynced write
// right after leaves a node that starts on the same records.
func TestClusterInstalledSnapshotKeepsNoCopyOfTheData(t *testing.T) {
	c := newFSMCluster(t, 3, clusterOpts{crashFS: true, segmentBytes: 1 << 20, raft: func(rc *craft.Config) {
		rc.TrailingLogs = 1
		rc.SnapshotThreshold = 1 << 40
		rc.SnapshotInterval = time.Hour // snapshots only when the test asks
		rc.WALSegmentSize = 2048        // compaction deletes whole segments only
	}})
	l := newLedger()
	c.WaitLeader()
	next := proposeBatches(t, c, l, "before", 40, 0)
	c.converge(next)
	for _, i := range c.Running() {
		snapshotNode(t, c, i)
	}
	joiner := joinBySnapshot(t, c, next)
	var left []string
	t.Cleanup(func() {
		if t.Failed() && len(left) > 0 {
			t.Logf("snapshots of the new node holding data: %v", left)
		}
	})
	c.WaitFor("the received snapshot replaced by a manifest-only one", func() bool {
		all, data := raftSnapshotsWithData(t, c.Dir(joiner))
		left = data
		return all > 0 && len(data) == 0
	})

	c.crash(joiner, crashfs.DropUnsynced, 1)
	c.Restart(joiner)
	c.converge(next)
	if recs := c.checkInvariants(l); uint64(len(recs)) != next {
		t.Fatalf("log holds %d records, want %d", len(recs), next)
	}
	next = proposeBatches(t, c, l, "after", 3, next)
	c.converge(next)
	c.checkInvariants(l)
}
