package raft

import (
	"fmt"
	"testing"

	"github.com/hashicorp/go-hclog"
	hraft "github.com/hashicorp/raft"
	wal "github.com/hashicorp/raft-wal"
	"github.com/hashicorp/raft-wal/metadb"
)

// TestWALReopensAfterTailTruncation reproduces hashicorp/raft-wal#31: raft clears a conflicting
// suffix (a tail truncation), appends the leader's entries, and the node restarts. raft-wal
// v0.4.0 then fails every read of the truncated segment with "sealed segment has no index
// block" (raft panics in NewRaft); with walFiler the log reads back whole.
func TestWALReopensAfterTailTruncation(t *testing.T) {
	dir := t.TempDir()
	open := func() (*wal.WAL, *metadb.BoltMetaDB) {
		t.Helper()
		meta := &metadb.BoltMetaDB{}
		w, err := openWAL(dir, meta, wal.DefaultSegmentSize, hclog.NewNullLogger())
		if err != nil {
			t.Fatalf("open: %v", err)
		}
		return w, meta
	}
	store := func(w *wal.WAL, from, to uint64, term uint64) {
		t.Helper()
		var logs []*hraft.Log
		for i := from; i <= to; i++ {
			logs = append(logs, &hraft.Log{Index: i, Term: term, Type: hraft.LogCommand, Data: fmt.Appendf(nil, "%d@%d", i, term)})
		}
		if err := w.StoreLogs(logs); err != nil {
			t.Fatalf("store %d-%d: %v", from, to, err)
		}
	}
	w, meta := open()
	store(w, 1, 10, 1)
	if err := w.DeleteRange(8, 10); err != nil { // the uncommitted tail is replaced
		t.Fatal(err)
	}
	store(w, 8, 12, 2)
	_ = w.Close()
	_ = meta.Close()

	w, meta = open()
	defer meta.Close()
	defer w.Close()
	for i := uint64(1); i <= 12; i++ {
		var l hraft.Log
		if err := w.GetLog(i, &l); err != nil {
			t.Fatalf("after reopen, GetLog(%d): %v", i, err)
		}
		term := uint64(1)
		if i >= 8 {
			term = 2
		}
		if want := fmt.Sprintf("%d@%d", i, term); string(l.Data) != want {
			t.Fatalf("GetLog(%d) = %q, want %q", i, l.Data, want)
		}
	}
	if last, _ := w.LastIndex(); last != 12 {
		t.Fatalf("LastIndex = %d, want 12", last)
	}
}
