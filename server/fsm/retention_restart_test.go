package fsm

import (
	"errors"
	"fmt"
	"testing"

	"github.com/commitlog-go/commitlog/consensus"
	"github.com/commitlog-go/commitlog/storage"
	"github.com/commitlog-go/commitlog/storage/segment"
)

// TestRestartKeepsTheRetentionCut: a retain command cuts the log in the middle of a segment
// (segments are dropped whole, so the storage still holds records below the cut), and the node
// restarts before any snapshot records the cut. Raft replays nothing until a leader tells it
// what committed, so until then (for good, on a node restarted alone or cut off) the log start
// must come from the node's own disk. Before the fix it fell back to the storage's lowest
// offset: the restarted node served records every other replica answered OutOfRange, and its
// GetBounds reported a lower first offset than theirs (seen on a 3-node cluster of real
// processes: lowest_offset 2740 on the restarted node, 2757 on the others, and offset 2745
// served there).
func TestRestartKeepsTheRetentionCut(t *testing.T) {
	dir := t.TempDir()
	cfg := segment.Config{Sync: segment.SyncNever, SegmentBytes: 512, MaxRecordBytes: MaxStoredRecordBytes}
	open := func() (*segment.Log, *FSM) { return openSegmentFSM(t, dir, cfg) }
	l, f := open()
	index := uint64(0)
	apply := func(data []byte) {
		t.Helper()
		index++
		if res := f.Apply([]consensus.Entry{{Index: index, Term: 1, Data: data}}); res[0] != nil {
			if err, ok := res[0].(error); ok {
				t.Fatalf("Apply(%d): %v", index, err)
			}
		}
	}
	for i := 0; l.Segments() < 4; i++ {
		apply(cmd(t, fmt.Sprintf("record-%d", i)))
	}
	apply(cmd(t, "after the cut"))
	// Cut in the middle of the log: inside a sealed segment, which stays.
	lowest, next := l.Bounds()
	cut := lowest + (next-lowest)/2 + 1
	apply(EncodeRetain(cut, testTime))
	if lo, _ := f.Bounds(); lo != cut {
		t.Fatalf("after the retain command: lowest %d, want %d", lo, cut)
	}
	if lo, _ := l.Bounds(); lo >= cut {
		t.Fatalf("the storage dropped everything below the cut (lowest %d, cut %d): the test needs a cut inside a segment", lo, cut)
	}
	apply(cmd(t, "after the retain command"))
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}

	// Restart: no snapshot restored, nothing replayed yet.
	l, f = open()
	defer func() { _ = l.Close() }()
	if lo, hi := f.Bounds(); lo != cut || hi != next+1 {
		t.Fatalf("after a restart, before any replay: bounds [%d, %d), want [%d, %d)", lo, hi, cut, next+1)
	}
	if _, err := f.Read(t.Context(), cut-1); !errors.Is(err, storage.ErrOutOfRange) {
		t.Fatalf("after a restart: Read(%d) below the cut = %v, want ErrOutOfRange", cut-1, err)
	}
	// The replayed retain command changes nothing.
	res := f.Apply([]consensus.Entry{{Index: index - 1, Term: 1, Data: EncodeRetain(cut, testTime)}})
	if err, ok := res[0].(error); !ok || !errors.Is(err, ErrAlreadyApplied) {
		t.Fatalf("replayed retain: %v", res[0])
	}
	if lo, _ := f.Bounds(); lo != cut {
		t.Fatalf("after the replay: lowest %d, want %d", lo, cut)
	}
}
