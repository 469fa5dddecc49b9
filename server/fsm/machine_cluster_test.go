package fsm

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/commitlog-go/commitlog/consensus"
	"github.com/commitlog-go/commitlog/consensus/consensustest"
	craft "github.com/commitlog-go/commitlog/consensus/raft"
	"github.com/commitlog-go/commitlog/storage"
)

// machineSM is a cluster node's Machine and its default log (closed on Stop).
type machineSM struct {
	*Machine
	def storage.Log
}

func (s *machineSM) Close() error {
	err := s.Machine.Close()
	return errors.Join(err, s.def.Close())
}

func newMachineCluster(t *testing.T, n int, raft func(*craft.Config)) *consensustest.Cluster {
	return consensustest.NewCluster(t, n, consensustest.Options{
		Factory: func(_ int, dir string) (consensus.StateMachine, error) {
			def, err := segmentOpener(filepath.Join(dir, "log"))
			if err != nil {
				return nil, err
			}
			m, err := NewMachine(MachineConfig{Config: Config{Log: def}, Dir: filepath.Join(dir, "topics"), OpenLog: segmentOpener})
			if err != nil {
				_ = def.Close()
				return nil, err
			}
			return &machineSM{Machine: m, def: def}, nil
		},
		Config: func(_ int, rc *craft.Config) {
			if raft != nil {
				raft(rc)
			}
		},
		WaitTimeout: 30 * time.Second,
		TCP:         true,
	})
}

func machineOf(t *testing.T, c *consensustest.Cluster, i int) *Machine {
	t.Helper()
	return c.SM(i).(*machineSM).Machine
}

// TestMachineClusterPartitionsAgree: topics and partitions replicate through the one Raft
// group; every node holds every partition at identical offsets, including a node that was
// stopped, missed a topic's creation, deletion and re-creation, and caught up from a
// snapshot.
func TestMachineClusterPartitionsAgree(t *testing.T) {
	c := newMachineCluster(t, 3, func(rc *craft.Config) {
		rc.TrailingLogs = 4
		rc.SnapshotThreshold = 1 << 30
		rc.WALSegmentSize = 64 << 10
	})
	ctx := context.Background()
	leader := func() (*Machine, consensus.Consensus) {
		i := c.WaitLeader()
		return machineOf(t, c, i), c.Node(i)
	}
	retry := func(what string, op func(m *Machine, n consensus.Consensus) error) {
		t.Helper()
		c.WaitFor(what, func() bool {
			m, n := leader()
			err := op(m, n)
			if err != nil && !errors.Is(err, consensus.ErrNotLeader) && !errors.Is(err, consensus.ErrNoLeader) {
				t.Fatalf("%s: %v", what, err)
			}
			return err == nil
		})
	}
	create := func(name string, parts uint32) {
		retry("create "+name, func(m *Machine, n consensus.Consensus) error {
			_, err := m.CreateTopic(ctx, n, name, parts, TopicConfig{})
			return err
		})
	}
	produce := func(topic string, p uint32, vals ...string) {
		retry("produce", func(m *Machine, n consensus.Consensus) error {
			_, err := m.ProposeAppend(ctx, n, topic, p, ProducerRef{}, recs(vals...)...)
			return err
		})
	}
	create("a", 16)
	for p := range uint32(16) {
		for k := range 3 {
			produce("a", p, fmt.Sprintf("a/%d/%d", p, k))
		}
	}
	create("doomed", 2)
	produce("doomed", 1, "x")

	c.Stop(2)
	retry("delete doomed", func(m *Machine, n consensus.Consensus) error {
		_, err := m.DeleteTopic(ctx, n, "doomed")
		return err
	})
	create("doomed", 1) // a new topic of the same name
	create("b", 4)
	for p := range uint32(4) {
		produce("b", p, fmt.Sprintf("b/%d", p))
	}
	produce("", 0, "default")
	// Enough bytes that raft-wal drops whole segments: node 2 must install the snapshot.
	big := make([]string, 100)
	for k := range big {
		big[k] = fmt.Sprintf("%-1024d", k)
	}
	for p := range uint32(4) {
		produce("b", p, big...)
	}
	for _, i := range c.Running() {
		if err := c.Node(i).Raft().Snapshot().Error(); err != nil {
			t.Fatalf("snapshot node %d: %v", i, err)
		}
	}
	produce("a", 3, "after-snapshot")
	c.Restart(2)
	c.WaitFor("node 2 to install the snapshot", func() bool {
		got := c.Node(2).Raft().Stats()["last_snapshot_index"]
		return got != "0" && got != ""
	})

	want := machineOf(t, c, 0)
	c.WaitFor("every node to hold every partition", func() bool {
		for _, i := range c.Running() {
			m := machineOf(t, c, i)
			if len(m.Partitions()) != len(want.Partitions()) || m.AppliedIndex() != want.AppliedIndex() {
				return false
			}
		}
		return true
	})
	for _, ref := range want.Partitions() {
		ref0 := readAll(t, ref.FSM)
		for _, i := range c.Running()[1:] {
			f, tp, err := machineOf(t, c, i).Partition(ref.Topic.Name, ref.Partition)
			if err != nil || tp.ID != ref.Topic.ID {
				t.Fatalf("node %d %s/%d: %v (ID %s, want %s)", i, ref.Topic.Name, ref.Partition, err, tp.ID, ref.Topic.ID)
			}
			got := readAll(t, f)
			if len(got) != len(ref0) {
				t.Fatalf("node %d %s/%d: %d records, node 0 %d", i, ref.Topic.Name, ref.Partition, len(got), len(ref0))
			}
			for k := range got {
				if string(got[k].Value) != string(ref0[k].Value) || got[k].Index != ref0[k].Index || got[k].Offset != ref0[k].Offset {
					t.Fatalf("node %d %s/%d offset %d: %+v, node 0 %+v", i, ref.Topic.Name, ref.Partition, k, got[k], ref0[k])
				}
			}
		}
	}
	if d, _, _ := want.Partition("doomed", 0); len(readAll(t, d)) != 0 {
		t.Errorf("the re-created topic holds the old one's records")
	}

	// Node 2 keeps no copy of the leader's data in Raft's snapshots directory: the received
	// snapshot was replaced by one its own logs serve, which it restarts from.
	var left []string
	c.WaitFor("node 2's received snapshot replaced by a manifest-only one", func() bool {
		all, data := raftSnapshotsWithData(t, c.Dir(2))
		left = data
		return all > 0 && len(data) == 0
	})
	if len(left) > 0 {
		t.Fatalf("snapshots holding data: %v", left)
	}
	c.Stop(2)
	c.Restart(2)
	produce("a", 4, "after-restart")
	c.WaitFor("every node to apply the same after node 2's restart", func() bool {
		a := machineOf(t, c, c.WaitLeader()).AppliedIndex()
		for _, i := range c.Running() {
			if machineOf(t, c, i).AppliedIndex() != a {
				return false
			}
		}
		return true
	})
	for _, ref := range machineOf(t, c, 0).Partitions() {
		f, _, err := machineOf(t, c, 2).Partition(ref.Topic.Name, ref.Partition)
		if err != nil {
			t.Fatalf("node 2 after restart %s/%d: %v", ref.Topic.Name, ref.Partition, err)
		}
		if got, want := len(readAll(t, f)), len(readAll(t, ref.FSM)); got != want {
			t.Fatalf("node 2 after restart %s/%d: %d records, node 0 %d", ref.Topic.Name, ref.Partition, got, want)
		}
	}
}
