package raft

import (
	"errors"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	hraft "github.com/hashicorp/raft"
	wal "github.com/hashicorp/raft-wal"
	"github.com/hashicorp/raft-wal/metadb"
	"github.com/hashicorp/raft-wal/segment"
	"github.com/hashicorp/raft-wal/types"
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
		w, err := openWAL(dir, nil, meta, wal.DefaultSegmentSize, hclog.NewNullLogger())
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

// refusingMeta is a meta store whose commits fail once refuse is set (a crash before them).
type refusingMeta struct {
	*metadb.BoltMetaDB
	refuse, refused atomic.Bool
}

func (m *refusingMeta) CommitState(s types.PersistentState) error {
	if m.refuse.Load() {
		m.refused.Store(true)
		return errors.New("power lost")
	}
	return m.BoltMetaDB.CommitState(s)
}

// TestWALReopensAfterInterruptedRotation: the append that fills a segment seals its file and is
// acknowledged; the rotation that records the seal in the meta store and starts a new tail
// runs after it. When a crash comes in between (here: the rotation's commit fails, and the WAL
// is closed), raft-wal v0.4.0 reopens the sealed file as its tail and refuses every append
// ("segment is sealed"); completeRotation finishes the rotation, so appends go on and every
// acknowledged entry reads back.
func TestWALReopensAfterInterruptedRotation(t *testing.T) {
	dir := t.TempDir()
	meta := &refusingMeta{BoltMetaDB: &metadb.BoltMetaDB{}}
	w, err := openWAL(dir, nil, meta, 4096, hclog.NewNullLogger())
	if err != nil {
		t.Fatal(err)
	}
	meta.refuse.Store(true)
	entry := func(i uint64) *hraft.Log {
		return &hraft.Log{Index: i, Term: 1, Type: hraft.LogCommand, Data: fmt.Appendf(nil, "entry %d %0200d", i, 0)}
	}
	next := uint64(1)
	for ; ; next++ {
		if err := w.StoreLog(entry(next)); err != nil {
			if !errors.Is(err, types.ErrSealed) || !meta.refused.Load() {
				t.Fatalf("append %d: %v; want ErrSealed after a refused rotation", next, err)
			}
			break
		}
		if next > 1000 {
			t.Fatal("no rotation after 1000 entries")
		}
	}
	_ = w.Close()
	_ = meta.Close()

	meta = &refusingMeta{BoltMetaDB: &metadb.BoltMetaDB{}}
	w, err = openWAL(dir, nil, meta, 4096, hclog.NewNullLogger())
	if err != nil {
		t.Fatalf("reopen: %v", err)
	}
	defer meta.Close()
	defer w.Close()
	if err := w.StoreLogs([]*hraft.Log{entry(next), entry(next + 1)}); err != nil {
		t.Fatalf("append after reopening: %v", err)
	}
	for i := uint64(1); i <= next+1; i++ {
		var l hraft.Log
		if err := w.GetLog(i, &l); err != nil || string(l.Data) != string(entry(i).Data) {
			t.Fatalf("GetLog(%d) = %q, %v", i, l.Data, err)
		}
	}
}

// TestWALStoreRecoversAfterTornSeal: on a full disk with preallocated segments, the append
// that fills a segment writes its entries and the header of the index frame that seals it
// within the preallocated bytes, and fails past them, before its commit frame. raft-wal's
// recovery scan of that tail still reports it sealed (it takes any index frame it meets), so
// the reopen must not complete a rotation there: the seal never committed, and a segment sealed
// at an index block that is not on disk fails every read of its entries ("failed to read
// segment index: EOF"; hashicorp/raft panics on it). Found on tmpfs: a follower's WAL filled,
// it reopened the log, and then panicked in processLogs.
func TestWALStoreRecoversAfterTornSeal(t *testing.T) {
	dir := t.TempDir()
	vfs := NewFaultFS()
	var fatal []error
	s, closeStore := openTestStore(t, dir, vfs, &fatal)
	last := storeUntilTornSeal(t, s, vfs)
	if err := s.StoreLogs(smallEntries(last+1, last+3)); err != nil {
		t.Fatalf("store after the disk has space: %v", err)
	}
	checkSmallEntries(t, s, last+3)
	closeStore()
	s, _ = openTestStore(t, dir, vfs, &fatal)
	checkSmallEntries(t, s, last+3)
	if len(fatal) > 0 {
		t.Fatalf("OnFatal called: %v", fatal)
	}
}

// TestWALOpensSegmentWithTornSealCommitted: a data dir where an earlier version committed a
// torn seal (see TestWALStoreRecoversAfterTornSeal) to the meta store: the node panicked at
// every restart. The sealed segment whose index frame does not list its entries is read by
// scanning it, and the log goes on.
func TestWALOpensSegmentWithTornSealCommitted(t *testing.T) {
	dir := t.TempDir()
	vfs := NewFaultFS()
	var fatal []error
	s, closeStore := openTestStore(t, dir, vfs, &fatal)
	last := storeUntilTornSeal(t, s, vfs)
	closeStore()

	// What the earlier completeRotation committed: the tail sealed at the torn index frame.
	meta := &metadb.BoltMetaDB{}
	st, err := meta.Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	tail := st.Segments[len(st.Segments)-1]
	w, err := segment.NewFiler(dir, vfs).RecoverTail(tail)
	if err != nil {
		t.Fatal(err)
	}
	sealed, indexStart, err := w.Sealed()
	_ = w.Close()
	if err != nil || !sealed {
		t.Fatalf("recovered tail sealed %v (%v), want a torn seal", sealed, err)
	}
	tail.SealTime, tail.MaxIndex, tail.IndexStart = time.Now(), last, indexStart
	st.Segments[len(st.Segments)-1] = tail
	st.Segments = append(st.Segments, types.SegmentInfo{ID: st.NextSegmentID, BaseIndex: last + 1, MinIndex: last + 1,
		SizeLimit: 4096, Codec: wal.CodecBinaryV1, CreateTime: time.Now()})
	st.NextSegmentID++
	if err := meta.CommitState(st); err != nil {
		t.Fatal(err)
	}
	_ = meta.Close()

	s, _ = openTestStore(t, dir, vfs, &fatal)
	if err := s.StoreLogs(smallEntries(last+1, last+3)); err != nil {
		t.Fatalf("store after reopening: %v", err)
	}
	checkSmallEntries(t, s, last+3)
}

// smallEntries returns entries from to to (term 1) whose data is "entry <index>".
func smallEntries(from, to uint64) []*hraft.Log {
	ls := entries(1, from, to)
	for _, l := range ls {
		l.Data = fmt.Appendf(nil, "entry %d", l.Index)
	}
	return ls
}

// storeUntilTornSeal stores smallEntries in s one at a time on a full disk whose segment files
// are preallocated (vfs's faultPastEnd, at openTestStore's segment size) until an append fails:
// the one that fills the tail segment, whose seal is torn. It then gives the disk its space
// back and returns the last index stored.
func storeUntilTornSeal(t *testing.T, s *walStore, vfs *FaultFS) uint64 {
	t.Helper()
	vfs.pastEnd = 4096 // openTestStore's segment size
	vfs.Set(faultPastEnd)
	defer vfs.Set(FaultNone)
	for last := uint64(0); last < 1000; last++ {
		if err := s.StoreLogs(smallEntries(last+1, last+1)); err != nil {
			return last
		}
	}
	t.Fatal("no failed append in 1000 entries")
	return 0
}

// checkSmallEntries checks that s holds smallEntries(1, last) and ends there.
func checkSmallEntries(t *testing.T, s *walStore, last uint64) {
	t.Helper()
	checkLast(t, s, last)
	for i := uint64(1); i <= last; i++ {
		var l hraft.Log
		if err := s.GetLog(i, &l); err != nil || string(l.Data) != fmt.Sprintf("entry %d", i) {
			t.Fatalf("GetLog(%d) = %q, %v", i, l.Data, err)
		}
	}
}
