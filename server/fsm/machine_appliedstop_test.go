package fsm

import (
	"fmt"
	"syscall"
	"testing"

	"github.com/commitlog-go/commitlog/consensus"
	"github.com/commitlog-go/commitlog/storage"
	"github.com/commitlog-go/commitlog/storage/memory"
)

// failAfterLog wraps a storage.Log: its first ok Appends succeed, every later one fails with
// ENOSPC, as a segment write on a full disk does.
type failAfterLog struct {
	storage.Log
	ok int
}

func (l *failAfterLog) Append(records ...[]byte) (uint64, error) {
	if l.ok <= 0 {
		return 0, fmt.Errorf("write 0000000036.seg: %w", syscall.ENOSPC)
	}
	l.ok--
	return l.Log.Append(records...)
}

// TestMachineStoppedMidBatchAppliedIndex: a state machine that stops in the middle of a batch
// of entries Raft hands it (its disk filled) reports, as its applied index, the last entry it
// stored. It reported the last entry of the batch before (seen with real processes on a full
// tmpfs: `cluster status` showed APPLIED 8257 for a node whose log held entries up to 8264, and
// a node that had reported 8519 before a restart reported 8513 after it, while serving the
// same records), so `cluster status`' APPLIED and LAG understated what it held by up to a
// batch, and went backwards across a restart.
func TestMachineStoppedMidBatchAppliedIndex(t *testing.T) {
	fl := &failAfterLog{Log: newMemLog(t, memory.Config{}), ok: 3}
	// MaxAppendBytes 1: each entry is its own Append.
	m, err := NewMachine(MachineConfig{Config: Config{Log: fl, MaxAppendBytes: 1}, Dir: t.TempDir(), OpenLog: segmentOpener})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	var es []consensus.Entry
	for i := uint64(1); i <= 6; i++ {
		cmd, err := EncodeAppend(Limits{}, AppendRecord{Value: fmt.Appendf(nil, "r%d", i)})
		if err != nil {
			t.Fatal(err)
		}
		es = append(es, consensus.Entry{Index: i, Term: 1, Data: cmd})
	}
	res := m.Apply(es)
	for i, r := range res {
		_, stored := r.(AppendResult)
		if stored != (i < 3) {
			t.Fatalf("entry %d: result %v; want the first 3 stored, the rest refused", i+1, r)
		}
	}
	if m.Err() == nil {
		t.Fatal("the machine did not stop on the failed append")
	}
	if got := m.AppliedIndex(); got != 3 {
		t.Fatalf("applied index %d after entries 1-3 were stored and entry 4 failed; want 3", got)
	}
	// Entries Raft hands it later change nothing.
	_ = m.Apply([]consensus.Entry{{Index: 7, Term: 1, Data: es[0].Data}})
	if got := m.AppliedIndex(); got != 3 {
		t.Fatalf("applied index %d after a later entry; want 3", got)
	}
}
