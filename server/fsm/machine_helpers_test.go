package fsm

import (
	"bytes"
	"context"
	"io"
	"path/filepath"
	"testing"

	"github.com/commitlog-go/commitlog/consensus"
	"github.com/commitlog-go/commitlog/storage"
	"github.com/commitlog-go/commitlog/storage/segment"
)

// machineNode is a Machine over segment logs in dir (log/ for the default partition, topics/
// for the others), as the server lays them out.
type machineNode struct {
	t   testing.TB
	dir string
	def *segment.Log
	m   *Machine
	// entries are every entry applied through the direct proposer, for replays.
	entries []consensus.Entry
	index   uint64
}

func segmentOpener(dir string) (storage.Log, error) {
	return segment.Open(dir, segment.Config{Sync: segment.SyncNever, MaxRecordBytes: MaxStoredRecordBytes})
}

func openMachineNode(t testing.TB, dir string) *machineNode {
	t.Helper()
	def, err := segmentOpener(filepath.Join(dir, "log"))
	if err != nil {
		t.Fatalf("open log: %v", err)
	}
	m, err := NewMachine(MachineConfig{Config: Config{Log: def}, Dir: filepath.Join(dir, "topics"), OpenLog: segmentOpener})
	if err != nil {
		t.Fatalf("NewMachine: %v", err)
	}
	n := &machineNode{t: t, dir: dir, def: def.(*segment.Log), m: m}
	t.Cleanup(n.close)
	return n
}

func (n *machineNode) close() {
	if n.m == nil {
		return
	}
	if err := n.m.Close(); err != nil {
		n.t.Errorf("Machine.Close: %v", err)
	}
	_ = n.def.Close()
	n.m = nil
}

// Propose implements Proposer: it applies cmd at the next index, term 1.
func (n *machineNode) Propose(_ context.Context, cmd []byte) (any, error) {
	n.index++
	e := consensus.Entry{Index: n.index, Term: 1, Data: bytes.Clone(cmd)}
	n.entries = append(n.entries, e)
	return n.m.Apply([]consensus.Entry{e})[0], nil
}

func (n *machineNode) IsLeader() bool                   { return true }
func (n *machineNode) Leader() (consensus.Server, bool) { return consensus.Server{ID: "self"}, true }

// snapshot takes a snapshot and returns its persisted manifest.
func (n *machineNode) snapshot() []byte {
	n.t.Helper()
	s, err := n.m.Snapshot()
	if err != nil {
		n.t.Fatalf("Snapshot: %v", err)
	}
	defer s.Release()
	var buf bytes.Buffer
	if err := s.Persist(&buf); err != nil {
		n.t.Fatalf("Persist: %v", err)
	}
	return buf.Bytes()
}

// data returns the snapshot data stream of manifest, read in full.
func (n *machineNode) data(manifest []byte) []byte {
	n.t.Helper()
	r, err := n.m.SnapshotData(manifest)
	if err != nil {
		n.t.Fatalf("SnapshotData: %v", err)
	}
	defer r.Close()
	b, err := io.ReadAll(r)
	if err != nil {
		n.t.Fatalf("read snapshot data: %v", err)
	}
	size, err := n.m.SnapshotDataSize(manifest)
	if err != nil || size != int64(len(b)) {
		n.t.Fatalf("SnapshotDataSize = %d, %v; the stream has %d bytes", size, err, len(b))
	}
	return b
}

// produce appends values to topic/partition and returns the result.
func (n *machineNode) produce(topic string, p uint32, recs ...AppendRecord) AppendResult {
	n.t.Helper()
	res, err := n.m.ProposeAppend(context.Background(), n, topic, p, ProducerRef{}, recs...)
	if err != nil {
		n.t.Fatalf("produce to %s/%d: %v", topic, p, err)
	}
	return res
}

func recs(vals ...string) []AppendRecord {
	out := make([]AppendRecord, len(vals))
	for i, v := range vals {
		out[i] = AppendRecord{Value: []byte(v), Type: 1}
	}
	return out
}

// partitionValues returns the values of a partition's records.
func (n *machineNode) partitionValues(topic string, p uint32) []string {
	n.t.Helper()
	f, _, err := n.m.Partition(topic, p)
	if err != nil {
		n.t.Fatalf("Partition(%s, %d): %v", topic, p, err)
	}
	return values(readAll(n.t, f))
}

// neverRead is a data stream that fails the test when read.
type neverRead struct{ t testing.TB }

func (r neverRead) Read([]byte) (int, error) {
	r.t.Errorf("the snapshot data stream was read")
	return 0, io.ErrUnexpectedEOF
}
