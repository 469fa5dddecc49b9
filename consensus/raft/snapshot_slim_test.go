package raft_test

import (
	"encoding/binary"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/commitlog-go/commitlog/consensus/consensustest"
	craft "github.com/commitlog-go/commitlog/consensus/raft"
)

// snapshotsWithData returns, for node i of c, the snapshots in its snapshots directory and
// those whose state.bin holds more than the frame header and manifest (the data of a snapshot
// received from a leader), with their sizes.
func snapshotsWithData(t *testing.T, c *consensustest.Cluster, i int) (all int, withData []string) {
	t.Helper()
	dir := filepath.Join(c.Dir(i), "raft", "snapshots")
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range ents {
		if !e.IsDir() || strings.HasSuffix(e.Name(), ".tmp") {
			continue
		}
		b, err := os.ReadFile(filepath.Join(dir, e.Name(), "state.bin"))
		if err != nil {
			continue // being reaped or replaced
		}
		all++
		if len(b) < 24 {
			t.Fatalf("snapshot %s: state.bin of %d bytes", e.Name(), len(b))
		}
		if framed := 24 + binary.BigEndian.Uint64(b[16:24]); uint64(len(b)) != framed {
			withData = append(withData, fmt.Sprintf("%s: state.bin %d bytes, frame and manifest %d", e.Name(), len(b), framed))
		}
	}
	return all, withData
}

// TestInstalledSnapshotKeepsNoCopyOfTheData: a follower that catches up by InstallSnapshot
// stores the leader's whole data stream in its snapshots directory; once its state machine
// restored it (and made it durable), that copy is replaced by a snapshot holding only the
// manifest, served from the follower's own data. It used to stay until RetainSnapshots newer
// snapshots pushed it out (SnapshotThreshold entries later: on a quiet cluster, possibly
// never), doubling the node's disk use. The follower then restarts from the new snapshot
// without reading any data, and, as leader, serves it to a node that joins.
func TestInstalledSnapshotKeepsNoCopyOfTheData(t *testing.T) {
	for _, tcp := range []bool{false, true} {
		t.Run(fmt.Sprintf("tcp=%v", tcp), func(t *testing.T) {
			c := consensustest.NewCluster(t, 3, consensustest.Options{
				TCP: tcp,
				Config: func(_ int, cfg *craft.Config) {
					cfg.TrailingLogs = 4
					cfg.WALSegmentSize = 2048       // so that compaction deletes segments
					cfg.SnapshotThreshold = 1 << 20 // snapshots only when asked
				},
			})
			var want [][]byte
			propose := func(k int) {
				cmd := fmt.Appendf(nil, "cmd-%d-%s", k, make([]byte, 100))
				c.Propose(cmd)
				want = append(want, cmd)
			}
			for k := range 5 {
				propose(k)
			}
			l := c.WaitLeader()
			f := (l + 1) % 3
			c.WaitFor("the follower applied", func() bool { return c.List(f).Len() == len(want) })
			c.Partition(f)
			for k := 5; k < 45; k++ {
				propose(k)
			}
			l = c.WaitLeader(l, 3-l-f)
			leader := c.Node(l)
			if err := leader.Raft().Snapshot().Error(); err != nil {
				t.Fatalf("snapshot: %v", err)
			}
			c.WaitFor("the leader's log compacted", func() bool {
				first, err := leader.FirstIndex()
				return err == nil && first > 20
			})
			c.Heal()
			c.WaitFor("the follower caught up", func() bool { return c.List(f).Len() == len(want) })
			checkSameRecords(t, c, want, f)
			if c.List(f).Restores() == 0 {
				t.Fatalf("the follower caught up without a snapshot restore")
			}
			var left []string
			t.Cleanup(func() {
				if t.Failed() && len(left) > 0 {
					t.Logf("snapshots of %s holding data: %v", c.ID(f), left)
				}
			})
			c.WaitFor("the follower's received snapshot replaced by a manifest-only one", func() bool {
				all, data := snapshotsWithData(t, c, f)
				left = data
				return all > 0 && len(data) == 0
			})

			// It restarts from that snapshot, on its own data.
			c.Stop(f)
			c.Restart(f)
			c.WaitFor("the restarted follower restored", func() bool { return c.List(f).Restores() == 1 })
			checkSameRecords(t, c, want, f)
			if got := c.List(f).DataOpens(); got != 0 {
				t.Fatalf("restoring the replaced snapshot opened SnapshotData %d times", got)
			}
			propose(45)
			c.WaitFor("everyone applied", func() bool {
				for i := range 3 {
					if c.List(i).Len() != len(want) {
						return false
					}
				}
				return true
			})

			// As leader, it serves the snapshot to a node that joins: its log starts after the
			// snapshot, so the new node can only catch up from it.
			if l := c.WaitLeader(); l != f {
				if err := c.Node(l).TransferLeadership(ctxT(t), c.ID(f)); err != nil {
					t.Fatalf("transfer leadership to %s: %v", c.ID(f), err)
				}
			}
			if c.WaitLeader() != f {
				t.Fatalf("leadership went to %s, not %s", c.ID(c.WaitLeader()), c.ID(f))
			}
			if first := must(c.Node(f).FirstIndex()); first <= 1 {
				t.Fatalf("the follower's log starts at %d: it would send entries, not its snapshot", first)
			}
			n := c.AddNode()
			if err := c.Node(f).AddVoter(ctxT(t), c.ID(n), c.Addr(n)); err != nil {
				t.Fatalf("AddVoter: %v", err)
			}
			c.WaitFor("the new node caught up", func() bool { return c.List(n).Len() == len(want) })
			checkSameRecords(t, c, want, n)
			if c.List(n).Restores() == 0 {
				t.Fatalf("the new node caught up without a snapshot restore")
			}
			if c.List(f).DataOpens() == 0 {
				t.Fatalf("the new leader never streamed SnapshotData")
			}
		})
	}
}
