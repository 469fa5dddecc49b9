package raft

import (
	"errors"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/hashicorp/go-hclog"
	hraft "github.com/hashicorp/raft"
	wal "github.com/hashicorp/raft-wal"
	"github.com/hashicorp/raft-wal/metadb"
	"github.com/hashicorp/raft-wal/types"
)

func entries(term, from, to uint64) []*hraft.Log {
	var ls []*hraft.Log
	for i := from; i <= to; i++ {
		ls = append(ls, &hraft.Log{Index: i, Term: term, Type: hraft.LogCommand, Data: make([]byte, 300)})
	}
	return ls
}

// openTestStore opens a walStore in dir on vfs; fatal records OnFatal's calls. close closes
// it and its meta store (also called by t.Cleanup).
func openTestStore(t *testing.T, dir string, vfs types.VFS, fatal *[]error) (s *walStore, close func()) {
	t.Helper()
	return openTestStoreMeta(t, dir, vfs, fatal, &metadb.BoltMetaDB{})
}

// openTestStoreMeta is openTestStore on the meta store meta (a BoltMetaDB, or a wrapper of one
// whose Close closes it).
func openTestStoreMeta(t *testing.T, dir string, vfs types.VFS, fatal *[]error, meta types.MetaStore) (s *walStore, close func()) {
	t.Helper()
	s, err := newWALStore(func() (*wal.WAL, error) {
		return openWAL(dir, vfs, meta, 4096, hclog.NewNullLogger())
	}, meta, hclog.NewNullLogger(), func(err error) { *fatal = append(*fatal, err) })
	if err != nil {
		_ = meta.Close()
		t.Fatal(err)
	}
	var once sync.Once
	close = func() {
		once.Do(func() {
			_ = s.Close()
			_ = meta.Close()
		})
	}
	t.Cleanup(close)
	return s, close
}

func checkLast(t *testing.T, s *walStore, want uint64) {
	t.Helper()
	if got, err := s.LastIndex(); err != nil || got != want {
		t.Fatalf("last index %d (%v), want %d", got, err, want)
	}
}

// TestWALStoreRecoversAfterFailedWrite: a StoreLogs that fails (disk full: a torn write, no
// space for a new segment; or a failed fsync after the whole batch reached the page cache)
// leaves the log as it was; once the fault is gone the same indexes are written again (raft
// resends them, possibly from another leader), and they, not the failed batch, are what the
// log holds, also after a reopen.
func TestWALStoreRecoversAfterFailedWrite(t *testing.T) {
	for _, tc := range []struct {
		name string
		mode int32
	}{{"full", FaultFull}, {"fsync", FaultFsync}} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			vfs := NewFaultFS()
			var fatal []error
			s, closeStore := openTestStore(t, dir, vfs, &fatal)
			if err := s.StoreLogs(entries(1, 1, 5)); err != nil {
				t.Fatal(err)
			}
			vfs.Set(tc.mode)
			for range 3 { // the leader retries while the fault lasts
				if err := s.StoreLogs(entries(1, 6, 8)); !errors.Is(err, errLogWrite) {
					t.Fatalf("store under fault: %v, want errLogWrite", err)
				}
				checkLast(t, s, 5)
			}
			vfs.Set(FaultNone)
			rewriteAndReopen(t, s, closeStore, dir, vfs, &fatal)
		})
	}
}

// rewriteAndReopen, once the fault that failed the write of entries 6 to 8 of term 1 is gone,
// writes entries 6 to 20 of term 2 in s (as raft resends them, possibly from another leader),
// closes s with closeStore, opens the log in dir again, and checks that it holds them, not the
// failed batch, and that OnFatal was never called.
func rewriteAndReopen(t *testing.T, s *walStore, closeStore func(), dir string, vfs types.VFS, fatal *[]error) {
	t.Helper()
	if err := s.StoreLogs(entries(2, 6, 20)); err != nil {
		t.Fatalf("store after the fault: %v", err)
	}
	checkLast(t, s, 20)
	if len(*fatal) > 0 {
		t.Fatalf("OnFatal called: %v", *fatal)
	}
	closeStore()
	s, _ = openTestStore(t, dir, vfs, fatal)
	checkLast(t, s, 20)
	for i := uint64(1); i <= 20; i++ {
		var l hraft.Log
		if err := s.GetLog(i, &l); err != nil {
			t.Fatalf("get %d: %v", i, err)
		}
		if want := uint64(1 + min(i/6, 1)); l.Term != want {
			t.Fatalf("entry %d has term %d, want %d", i, l.Term, want)
		}
	}
}

// TestWALStoreFailsStopAfterTailCut: raft cuts a follower's conflicting tail, then its append
// fails; hashicorp/raft keeps the cut entries' last index in memory and would ask forever for
// entries that are gone, so the store calls OnFatal. A cut that raft-wal reports as failed but
// committed (its meta store is written before the new tail segment is created, which fails on
// a full disk) is reported as done.
func TestWALStoreFailsStopAfterTailCut(t *testing.T) {
	vfs := NewFaultFS()
	var fatal []error
	s, _ := openTestStore(t, t.TempDir(), vfs, &fatal)
	if err := s.StoreLogs(entries(1, 1, 5)); err != nil {
		t.Fatal(err)
	}
	vfs.Set(FaultFull)
	if err := s.DeleteRange(4, 5); err != nil {
		t.Fatalf("tail cut on a full disk: %v, want nil (it is committed)", err)
	}
	if vfs.Hits() == 0 {
		t.Fatal("the cut never hit the fault")
	}
	checkLast(t, s, 3)
	if len(fatal) > 0 {
		t.Fatalf("OnFatal called early: %v", fatal)
	}
	if err := s.StoreLogs(entries(2, 4, 6)); !errors.Is(err, errLogWrite) {
		t.Fatalf("store under fault: %v, want errLogWrite", err)
	}
	if len(fatal) != 1 {
		t.Fatalf("OnFatal called %d times, want once", len(fatal))
	}
}

// TestWALStoreReopensAfterFailedHeadTruncation: a compaction that removes every segment
// commits the new segment list, then fails to create the new tail segment (a full disk); the
// entries stored after it must survive a restart.
func TestWALStoreReopensAfterFailedHeadTruncation(t *testing.T) {
	dir := t.TempDir()
	vfs := NewFaultFS()
	var fatal []error
	s, closeStore := openTestStore(t, dir, vfs, &fatal)
	failHeadTruncation(t, s, vfs)
	if err := s.StoreLogs(entries(1, 21, 25)); err != nil {
		t.Fatalf("store after the failed compaction: %v", err)
	}
	closeStore()
	s, _ = openTestStore(t, dir, vfs, &fatal)
	checkLast(t, s, 25)
	var l hraft.Log
	if err := s.GetLog(21, &l); err != nil {
		t.Fatalf("entry 21 after a reopen: %v", err)
	}
	if len(fatal) > 0 {
		t.Fatalf("OnFatal called: %v", fatal)
	}
}

// failHeadTruncation stores entries 1 to 20 in s, then compacts them all on a full disk: the
// new segment list is committed, the new tail segment cannot be created, and the compaction
// fails. The disk then has space again.
func failHeadTruncation(t *testing.T, s *walStore, vfs *FaultFS) {
	t.Helper()
	if err := s.StoreLogs(entries(1, 1, 20)); err != nil {
		t.Fatal(err)
	}
	vfs.Set(FaultFull)
	defer vfs.Set(FaultNone)
	if err := s.DeleteRange(1, 20); err == nil {
		t.Fatal("compaction of every segment on a full disk succeeded")
	}
}

// faultMeta is a meta store whose Load (which every open of the WAL calls) or CommitState
// (a truncation's commit of the new segment list) fails while its switch is on.
type faultMeta struct {
	types.MetaStore
	failLoad, failCommit atomic.Bool
}

var errMetaFault = errors.New("injected meta store fault")

func (m *faultMeta) Load(dir string) (types.PersistentState, error) {
	if m.failLoad.Load() {
		return types.PersistentState{}, errMetaFault
	}
	return m.MetaStore.Load(dir)
}

func (m *faultMeta) CommitState(s types.PersistentState) error {
	if m.failCommit.Load() {
		return errMetaFault
	}
	return m.MetaStore.CommitState(s)
}

// openFaultMetaStore is openTestStore with its meta store behind a faultMeta.
func openFaultMetaStore(t *testing.T, dir string, vfs types.VFS, fatal *[]error) (s *walStore, meta *faultMeta, close func()) {
	t.Helper()
	meta = &faultMeta{MetaStore: &metadb.BoltMetaDB{}}
	s, close = openTestStoreMeta(t, dir, vfs, fatal, meta)
	return s, meta, close
}

// TestWALStoreRecoveryFaults: the recovery after a failed StoreLogs (an fsync that failed:
// the batch is readable from the page cache, so the reopened WAL must drop it) itself fails,
// in its reopen of the WAL (the meta store cannot be loaded) or in its drop of the failed
// batch (the meta store cannot commit the cut). The write fails with errLogWrite saying so,
// reads go on from the current WAL, which holds what was fsynced, the node is not stopped,
// and the next write retries the recovery: once the fault is gone it succeeds, and the log
// holds the rewritten entries, not the failed batch, also after a reopen. After a failed head
// truncation, the current WAL is closed before the reopen: a reopen that fails then leaves no
// log to read, and the node fails stop.
func TestWALStoreRecoveryFaults(t *testing.T) {
	for _, tc := range []struct {
		name string
		set  func(m *faultMeta, on bool)
		want string // in the error of a write while the recovery fails
	}{
		{"reopen", func(m *faultMeta, on bool) { m.failLoad.Store(on) }, "reopening the log"},
		{"drop failed batch", func(m *faultMeta, on bool) { m.failCommit.Store(on) }, "dropping the entries whose write failed"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			vfs := NewFaultFS()
			var fatal []error
			s, meta, closeStore := openFaultMetaStore(t, dir, vfs, &fatal)
			if err := s.StoreLogs(entries(1, 1, 5)); err != nil {
				t.Fatal(err)
			}
			vfs.Set(FaultFsync)
			if err := s.StoreLogs(entries(1, 6, 8)); !errors.Is(err, errLogWrite) {
				t.Fatalf("store under fault: %v, want errLogWrite", err)
			}
			vfs.Set(FaultNone)
			tc.set(meta, true)
			for range 3 { // the leader retries while the fault lasts
				err := s.StoreLogs(entries(2, 6, 8))
				if !errors.Is(err, errLogWrite) || !errors.Is(err, errMetaFault) || !strings.Contains(err.Error(), tc.want) {
					t.Fatalf("store while the recovery fails: %v, want errLogWrite %s", err, tc.want)
				}
				checkLast(t, s, 5)
				var l hraft.Log
				if err := s.GetLog(5, &l); err != nil {
					t.Fatalf("read while the recovery fails: %v", err)
				}
			}
			tc.set(meta, false)
			rewriteAndReopen(t, s, closeStore, dir, vfs, &fatal)
		})
	}

	t.Run("reopen after failed head truncation", func(t *testing.T) {
		vfs := NewFaultFS()
		var fatal []error
		s, meta, _ := openFaultMetaStore(t, t.TempDir(), vfs, &fatal)
		failHeadTruncation(t, s, vfs)
		meta.failLoad.Store(true)
		if err := s.StoreLogs(entries(1, 21, 25)); !errors.Is(err, errLogWrite) || !errors.Is(err, errMetaFault) {
			t.Fatalf("store while the reopen fails: %v, want errLogWrite", err)
		}
		if len(fatal) != 1 || !strings.Contains(fatal[0].Error(), "the log is closed") {
			t.Fatalf("OnFatal calls %v, want one: the log is closed", fatal)
		}
	})
}

// TestWALStoreBoundsRetainedBuffer: raft-wal encodes each append in its tail segment's
// buffer, which keeps its largest size until the segment rolls. A group commit of 40 entries
// of 1 MiB (the leader's under ProduceStreams: up to 512 of 4 MiB) used to leave 64 MiB on
// the heap of an idle node (1 GiB measured on a real leader); appends of at most
// maxStoreBytes keep it to twice that.
func TestWALStoreBoundsRetainedBuffer(t *testing.T) {
	meta := &metadb.BoltMetaDB{}
	dir := t.TempDir()
	s, err := newWALStore(func() (*wal.WAL, error) {
		return openWAL(dir, nil, meta, wal.DefaultSegmentSize, hclog.NewNullLogger())
	}, meta, hclog.NewNullLogger(), func(err error) { t.Error(err) })
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close(); _ = meta.Close() })
	if err := s.StoreLogs(entries(1, 1, 1)); err != nil {
		t.Fatal(err)
	}
	heap := func() uint64 {
		runtime.GC()
		var m runtime.MemStats
		runtime.ReadMemStats(&m)
		return m.HeapAlloc
	}
	before := heap()
	func() {
		var big []*hraft.Log
		for i := uint64(2); i <= 41; i++ {
			big = append(big, &hraft.Log{Index: i, Term: 1, Type: hraft.LogCommand, Data: make([]byte, 1<<20)})
		}
		if err := s.StoreLogs(big); err != nil {
			t.Fatal(err)
		}
	}()
	// Push the big entries out of the log cache.
	if err := s.StoreLogs(entries(1, 42, 42+2*logCacheEntries)); err != nil {
		t.Fatal(err)
	}
	after := heap()
	if retained := int64(after) - int64(before); retained > 2*maxStoreBytes+4<<20 {
		t.Fatalf("the store holds %d MiB more after one 40 MiB append, want at most %d MiB", retained>>20, (2*maxStoreBytes+4<<20)>>20)
	}
	checkLast(t, s, 42+2*logCacheEntries)
}
