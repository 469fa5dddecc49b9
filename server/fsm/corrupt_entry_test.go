package fsm

import (
	"bytes"
	"errors"
	"slices"
	"testing"

	"github.com/commitlog-go/commitlog/consensus"
	"github.com/commitlog-go/commitlog/storage"
)

// A committed entry whose copy on this node fails its checksum (a bit flipped in Raft's log on
// disk, which raft-wal does not verify on read, then replicated by that node as leader or
// replayed at a restart) is not a command every replica rejects: skipping it dropped its
// records on this node alone, and every later offset shifted by one. The machine stops.
func TestApplyStopsOnCorruptCommittedEntry(t *testing.T) {
	n := openMachineNode(t, t.TempDir())
	n.produce(DefaultTopic, 0, recs("a")...)
	good := n.entries[0].Data
	bad := bytes.Clone(good)
	bad[len(bad)-1] ^= 0x01 // the value's last byte

	res := n.m.Apply([]consensus.Entry{
		{Index: n.index + 1, Term: 1, Data: bad},
		{Index: n.index + 2, Term: 1, Data: bytes.Clone(good)},
	})
	err, ok := res[0].(error)
	if !ok || !errors.Is(err, storage.ErrCorrupt) {
		t.Fatalf("corrupt entry: result %v, want an error wrapping storage.ErrCorrupt", res[0])
	}
	if err := n.m.Err(); !errors.Is(err, ErrFailed) || !errors.Is(err, storage.ErrCorrupt) {
		t.Fatalf("machine error after a corrupt committed entry: %v, want ErrFailed wrapping storage.ErrCorrupt", err)
	}
	if _, ok := res[1].(AppendResult); ok {
		t.Fatalf("the entry after the corrupt one was applied: %v", res[1])
	}
	if got := n.partitionValues(DefaultTopic, 0); !slices.Equal(got, []string{"a"}) {
		t.Fatalf("partition holds %q, want [a]", got)
	}
}

// The same for a lone FSM: a damaged entry stops it; garbage that carries no valid checksum
// layout is still rejected deterministically (TestApplyRejectsInvalidCommandsDeterministically).
func TestFSMApplyStopsOnCorruptCommittedEntry(t *testing.T) {
	f, _ := newMemFSM(t, Config{})
	bad := cmd(t, "b")
	bad[len(bad)-1] ^= 0x01
	res := f.Apply([]consensus.Entry{
		{Index: 1, Term: 1, Data: cmd(t, "a")},
		{Index: 2, Term: 1, Data: bad},
		{Index: 3, Term: 1, Data: cmd(t, "c")},
	})
	if ar, ok := res[0].(AppendResult); !ok || ar.First != 0 {
		t.Fatalf("entry 1: %v", res[0])
	}
	if err, ok := res[1].(error); !ok || !errors.Is(err, storage.ErrCorrupt) {
		t.Fatalf("entry 2: %v, want an error wrapping storage.ErrCorrupt", res[1])
	}
	if _, ok := res[2].(AppendResult); ok {
		t.Fatalf("entry 3 was applied after a corrupt one: %v", res[2])
	}
	if !errors.Is(f.Err(), ErrFailed) {
		t.Fatalf("FSM error %v, want ErrFailed", f.Err())
	}
	if got := values(readAll(t, f)); !slices.Equal(got, []string{"a"}) {
		t.Fatalf("log holds %q, want [a]", got)
	}
}
