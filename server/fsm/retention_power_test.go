package fsm

import (
	"bytes"
	"context"
	"fmt"
	"testing"

	"github.com/commitlog-go/commitlog/consensus"
	"github.com/commitlog-go/commitlog/storage/segment"
	"github.com/commitlog-go/commitlog/storage/vfs/crashfs"
)

// TestPowerFailureAfterRetentionCut: a retain command drops every sealed segment, the
// records left (in the active segment, not synced under the server's default sync policy
// "never") are lost in a power failure before any snapshot, and the node restarts. Raft
// replays its whole log: the node must rebuild the same log as every other replica. Before
// the fix the cut left the log empty at a non-zero offset, the FSM no longer knew which
// entries it held and stopped applying for good ("log position unknown").
func TestPowerFailureAfterRetentionCut(t *testing.T) {
	fs := crashfs.New()
	cfg := segment.Config{FS: fs, Sync: segment.SyncNever, SegmentBytes: 512, MaxRecordBytes: MaxStoredRecordBytes}
	open := func() (*segment.Log, *FSM) { return openSegmentFSM(t, "/log", cfg) }
	ref, _ := newMemFSM(t, Config{})
	l, f := open()
	var entries []consensus.Entry
	apply := func(data []byte) {
		t.Helper()
		e := consensus.Entry{Index: uint64(len(entries) + 1), Term: 1, Data: data}
		entries = append(entries, e)
		ref.Apply([]consensus.Entry{e})
		if res := f.Apply([]consensus.Entry{e}); res[0] != nil {
			if err, ok := res[0].(error); ok {
				t.Fatalf("Apply(%d): %v", e.Index, err)
			}
		}
	}
	for i := 0; l.Segments() < 3; i++ {
		apply(cmd(t, fmt.Sprintf("record-%d", i)))
	}
	apply(cmd(t, "in the active segment"))
	_, next := f.Bounds()
	apply(EncodeRetain(next-1, testTime)) // keeps the last record only
	if l.Segments() != 1 {
		t.Fatalf("%d segments after the retention cut, want 1", l.Segments())
	}

	fs.Crash(crashfs.DropUnsynced, nil)
	l, f = open()
	defer l.Close()
	// No snapshot was taken: Raft replays every entry.
	res := f.Apply(entries)
	if err := f.Err(); err != nil {
		t.Fatalf("replay after the power failure: the node stopped applying: %v", err)
	}
	_ = res
	rl, rn := ref.Bounds()
	fl, fn := f.Bounds()
	if rl != fl || rn != fn {
		t.Fatalf("after replay: bounds [%d, %d), every other replica [%d, %d)", fl, fn, rl, rn)
	}
	for off := rl; off < rn; off++ {
		a, err1 := ref.Read(context.Background(), off)
		b, err2 := f.Read(context.Background(), off)
		if err1 != nil || err2 != nil || !bytes.Equal(a.Value, b.Value) || a.Index != b.Index {
			t.Fatalf("offset %d: %q (%v), every other replica %q (%v)", off, b.Value, err2, a.Value, err1)
		}
	}
}

// openSegmentFSM opens a segment log in dir with cfg and a state machine on it (not closed:
// the tests close the log when they restart it).
func openSegmentFSM(t *testing.T, dir string, cfg segment.Config) (*segment.Log, *FSM) {
	t.Helper()
	l, err := segment.Open(dir, cfg)
	if err != nil {
		t.Fatalf("segment.Open: %v", err)
	}
	f, err := New(Config{Log: l})
	if err != nil {
		_ = l.Close()
		t.Fatalf("New: %v", err)
	}
	return l, f
}
