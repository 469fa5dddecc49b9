package raft

import (
	"encoding/binary"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"

	"github.com/hashicorp/go-hclog"
	hraft "github.com/hashicorp/raft"
	wal "github.com/hashicorp/raft-wal"
	"github.com/hashicorp/raft-wal/types"
)

// errLogWrite marks a failed write of Raft's log (StoreLogs, DeleteRange). A leader's
// proposals in the failed batch get it; mapError answers ErrOutcomeUnknown: the batch was not
// fsynced, but its bytes may have reached the file, and a process that crashed before the
// node recovered reads them back as its log on restart.
var errLogWrite = errors.New("consensus/raft: raft log write failed")

// walStore is Raft's log store and stable store: raft-wal, with the latest entries cached in
// memory, that recovers from a failed write by reopening the WAL from disk.
//
// Why: raft-wal v0.4.0 changes its in-memory state before a write is durable. A batch whose
// write or fsync fails (ENOSPC, EIO) has already been added to the tail segment's in-memory
// frame index (segment.Writer.appendEntry) while its commit index stayed behind, so every
// later append is refused ("non-monotonic append to segment"); a failed segment rotation (no
// space for the new file) leaves the tail sealed in memory, and every later append gets
// "segment is sealed". Either way the node stays up but can never write its log again.
// hashicorp/raft itself copes with a failed StoreLogs: the leader answers the batch's
// proposals with the error and steps down, a follower fails the AppendEntries and the leader
// resends the entries; neither advances its in-memory last index.
//
// So after a failed write, the next write first reopens the WAL from its files, as a restart
// would (raft-wal recovers a torn tail: a batch without a whole commit frame is dropped),
// then cuts the log back to the last index it had before the failed StoreLogs: a batch
// whose fsync failed can still be read back whole from the page cache, yet it was never
// durable (after a failed fsync, the kernel may have dropped the pages' error and their
// data), never acknowledged, and Raft's in-memory state does not count it. The log then holds
// exactly what Raft believes it holds, and the write is retried. Reads go on meanwhile from
// the old WAL, whose in-memory state holds only what was fsynced; the swap is made under a
// lock, so Raft never sees a half-swapped store.
//
// Failed truncations are handled in DeleteRange. When the log on disk cannot match what Raft
// believes, recovery is unsafe and the node fails stop (Config.OnFatal): fsynced entries
// missing after the reopen, a StoreLogs failing just after a tail truncation succeeded
// (hashicorp/raft v1.8.0 then keeps the truncated entries' last index in memory — a TODO in its
// appendEntries — and asks forever for entries that are gone), or a reopen failing after a
// failed truncation closed the WAL.
type walStore struct {
	open   func() (*wal.WAL, error) // opens the WAL from its files
	meta   types.MetaStore          // the WAL's meta store, open across reopens
	logger hclog.Logger
	fatal  func(error)

	// wmu serializes writes and recovery.
	wmu sync.Mutex
	// mu guards w and cache against the swap: readers take it shared.
	mu    sync.RWMutex
	w     *wal.WAL
	cache *logCache

	// Under wmu:
	failed error // the failed write not yet recovered from, or nil
	stored bool  // failed is a StoreLogs's
	// quiesce: failed is a DeleteRange's, after which a segment rotation may be pending on the
	// current WAL: it is closed before the reopen.
	quiesce bool
	want    uint64 // after a failed StoreLogs: the last index before it
	cut     bool   // a DeleteRange cut the log's tail since the last successful StoreLogs
	closed  bool   // Close was called: no reopening

	// failures counts the StoreLogs and DeleteRange calls that failed (Status.LogWriteFailures).
	failures atomic.Uint64
}

var (
	_ hraft.LogStore          = (*walStore)(nil)
	_ hraft.StableStore       = (*walStore)(nil)
	_ hraft.MonotonicLogStore = (*walStore)(nil)
)

// newWALStore opens the WAL with open, which must use meta as its meta store. The caller
// closes meta after the walStore.
func newWALStore(open func() (*wal.WAL, error), meta types.MetaStore, logger hclog.Logger, fatal func(error)) (*walStore, error) {
	w, err := open()
	if err != nil {
		return nil, err
	}
	s := &walStore{open: open, meta: meta, logger: logger, fatal: fatal}
	if err := s.set(w); err != nil {
		_ = w.Close()
		return nil, err
	}
	return s, nil
}

// set makes w the current WAL, with a new cache (which only caches what w stored).
func (s *walStore) set(w *wal.WAL) error {
	cache, err := newLogCache(logCacheEntries, logCacheBytes, w)
	if err != nil {
		return err
	}
	s.w, s.cache = w, cache
	return nil
}

// FirstIndex implements hraft.LogStore.
func (s *walStore) FirstIndex() (uint64, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.cache.FirstIndex()
}

// LastIndex implements hraft.LogStore.
func (s *walStore) LastIndex() (uint64, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.cache.LastIndex()
}

// GetLog implements hraft.LogStore.
func (s *walStore) GetLog(index uint64, log *hraft.Log) error {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.cache.GetLog(index, log)
}

// IsMonotonic implements hraft.MonotonicLogStore: raft-wal refuses gaps.
func (s *walStore) IsMonotonic() bool { return true }

// StoreLog implements hraft.LogStore.
func (s *walStore) StoreLog(log *hraft.Log) error { return s.StoreLogs([]*hraft.Log{log}) }

// StoreLogs implements hraft.LogStore.
func (s *walStore) StoreLogs(logs []*hraft.Log) error {
	s.wmu.Lock()
	defer s.wmu.Unlock()
	err := s.storeLocked(logs)
	if err != nil {
		s.failures.Add(1)
	}
	switch {
	case err == nil:
		s.cut = false
	case s.cut:
		s.fatal(fmt.Errorf("%w; hashicorp/raft cut the log's tail just before, and keeps the cut entries' last index in memory: this node cannot go on without a restart", err))
	}
	return err
}

func (s *walStore) storeLocked(logs []*hraft.Log) error {
	if err := s.recoverLocked(); err != nil {
		return err
	}
	last, err := s.w.LastIndex()
	if err != nil {
		return err
	}
	// One raft-wal append per at most maxStoreBytes of entries: raft-wal encodes a whole
	// append in its segment's buffer, which never shrinks (a sealed segment keeps it), and a
	// group commit may be MaxAppendEntries (up to 512) commands of up to 16 MiB each (a leader under
	// ProduceStreams kept 1 GiB of it while idle). A failure in any part drops the whole batch
	// on recovery (want is the last index before it), as one append did.
	for len(logs) > 0 {
		n, size := 0, 0
		for n < len(logs) && (n == 0 || size+len(logs[n].Data) <= maxStoreBytes) {
			size += len(logs[n].Data)
			n++
		}
		if err := s.cache.StoreLogs(logs[:n]); err != nil {
			s.failed, s.stored, s.want = err, true, last
			s.logger.Error("raft log write failed: the log will be reopened from disk before the next write", "last_index", last, "error", err)
			return fmt.Errorf("%w: %w", errLogWrite, err)
		}
		logs = logs[n:]
	}
	return nil
}

// maxStoreBytes bounds the entries' data in one raft-wal append (one entry may exceed it).
// Below 8 MiB by what frames add, so that the buffer (which raft-wal doubles) stays at 8 MiB:
// a sealed segment keeps its writer, and its buffer, as its reader until compaction deletes it.
const maxStoreBytes = 7 << 20

// DeleteRange implements hraft.LogStore.
//
// A failed head truncation (log compaction) is left to the next append, which reopens the WAL
// first: Raft keeps no in-memory state of it and retries compaction after its next snapshot,
// but raft-wal may have committed it to its meta store and failed after (one that removes
// every segment creates a new one), so the WAL's memory may no longer match its files, and an
// append to its old tail could be lost on restart.
//
// A failed tail cut (a follower clearing a conflicting suffix) is retried at once on the WAL
// reopened from disk: raft-wal commits a cut to its meta store before it creates the new tail
// segment, which fails on a full disk, so a cut that failed may be durable, and Raft must
// then be told it succeeded (the retry is a no-op), lest it ask for entries that are gone.
//
// After a failed DeleteRange the current WAL is closed before the reopen, not after: a
// StoreLogs waits for the segment rotation the one before it triggered, a DeleteRange does
// not, and a rotation run after a truncation that failed commits the WAL's stale memory to the
// meta store, listing again segment files the reopened WAL may have deleted as unused.
// Closing abandons a rotation not yet started (the reopen completes it: completeRotation). So
// the reopen runs only on Raft's main goroutine (an append, a tail cut), the one that would
// otherwise read the log meanwhile, never from the snapshot goroutine's compaction; and a
// reopen that fails leaves no log to read: the node fails stop.
func (s *walStore) DeleteRange(minIdx, maxIdx uint64) error {
	err := s.deleteRange(minIdx, maxIdx)
	if err != nil {
		s.failures.Add(1)
	}
	return err
}

func (s *walStore) deleteRange(minIdx, maxIdx uint64) error {
	s.wmu.Lock()
	defer s.wmu.Unlock()
	isTail := func() (bool, error) {
		first, err := s.w.FirstIndex()
		if err != nil {
			return false, err
		}
		last, err := s.w.LastIndex()
		return minIdx > first && minIdx <= last && maxIdx >= last, err
	}
	tail, err := isTail()
	if err != nil {
		return err
	}
	if s.failed != nil && s.quiesce && !tail {
		return fmt.Errorf("%w: %w (the log is reopened from disk at the next append)", errLogWrite, s.failed)
	}
	if err := s.recoverLocked(); err != nil {
		return err
	}
	if tail, err = isTail(); err != nil {
		return err
	}
	err = s.cache.DeleteRange(minIdx, maxIdx)
	if err != nil && !tail {
		s.failed, s.stored, s.quiesce = err, false, true
		s.logger.Error("raft log head truncation failed: the log will be reopened from disk before the next append", "min", minIdx, "max", maxIdx, "error", err)
		return fmt.Errorf("%w: %w", errLogWrite, err)
	}
	if err != nil {
		s.logger.Error("raft log tail cut failed: reopening the log from disk", "min", minIdx, "max", maxIdx, "error", err)
		s.failed, s.stored, s.quiesce = err, false, true
		if rerr := s.recoverLocked(); rerr != nil {
			return rerr
		}
		if err = s.cache.DeleteRange(minIdx, maxIdx); err != nil {
			// On a WAL just reopened, with no rotation pending.
			s.failed, s.stored, s.quiesce = err, false, false
			return fmt.Errorf("%w: %w", errLogWrite, err)
		}
	}
	if tail {
		s.cut = true
	}
	return nil
}

// recoverLocked, after a failed write, reopens the WAL from disk and cuts it back to what Raft
// believes it holds. After a failed StoreLogs, the reopened WAL replaces the current one only
// when all that succeeded, and until then reads go on from the current one: no segment
// rotation is pending on it (a StoreLogs waits for the rotation the one before it triggered,
// and a failed one triggers none). After a failed DeleteRange (quiesce), the current WAL is
// closed first (see DeleteRange), and a reopen that fails is fatal. wmu must be held.
func (s *walStore) recoverLocked() error {
	if s.failed == nil {
		return nil
	}
	if s.closed {
		return wal.ErrClosed
	}
	failed := s.failed
	if s.quiesce {
		s.mu.Lock()
		_ = s.w.Close() // idempotent
		s.mu.Unlock()
	}
	w, err := s.open()
	if err != nil {
		s.logger.Error("cannot reopen the raft log after a failed write", "error", err)
		err = fmt.Errorf("%w: %w (reopening the log: %w)", errLogWrite, failed, err)
		if s.quiesce {
			s.fatal(fmt.Errorf("%w; the log is closed, and Raft cannot read it", err))
		}
		return err
	}
	keep := false
	defer func() {
		if !keep {
			_ = w.Close()
		}
	}()
	last, err := w.LastIndex()
	if err != nil {
		return err
	}
	if s.stored {
		switch {
		case last < s.want:
			err := fmt.Errorf("%w: after %w, the log reopened from disk ends at index %d, before index %d, which was fsynced", errLogWrite, failed, last, s.want)
			s.fatal(err)
			return err
		case last > s.want:
			// The failed batch, readable although its fsync failed.
			s.logger.Warn("dropping log entries whose write failed", "from", s.want+1, "to", last)
			if err := w.DeleteRange(s.want+1, last); err != nil {
				return fmt.Errorf("%w: %w (dropping the entries whose write failed: %w)", errLogWrite, failed, err)
			}
		}
	}
	s.mu.Lock()
	old := s.w
	err = s.set(w)
	s.mu.Unlock()
	if err != nil {
		return err
	}
	keep = true
	_ = old.Close()
	s.failed, s.quiesce = nil, false
	last, _ = w.LastIndex()
	s.logger.Info("raft log reopened after a failed write", "last_index", last)
	return nil
}

// The stable store (term, vote, the Node's keys) is raft-wal's meta store, which stays open
// across reopens of the WAL: its methods go there directly, as raft-wal's own do, so that they
// never meet a WAL being reopened.

// Get implements hraft.StableStore.
func (s *walStore) Get(key []byte) ([]byte, error) { return s.meta.GetStable(key) }

// Set implements hraft.StableStore.
func (s *walStore) Set(key, val []byte) error { return s.meta.SetStable(key, val) }

// GetUint64 implements hraft.StableStore, as raft-wal's WAL.GetUint64 (little-endian; a key
// not set is 0).
func (s *walStore) GetUint64(key []byte) (uint64, error) {
	raw, err := s.meta.GetStable(key)
	if err != nil {
		return 0, err
	}
	if len(raw) == 0 {
		return 0, nil
	}
	if len(raw) != 8 {
		return 0, fmt.Errorf("consensus/raft: GetUint64 of a key holding %d bytes", len(raw))
	}
	return binary.LittleEndian.Uint64(raw), nil
}

// SetUint64 implements hraft.StableStore, as raft-wal's WAL.SetUint64.
func (s *walStore) SetUint64(key []byte, val uint64) error {
	return s.meta.SetStable(key, binary.LittleEndian.AppendUint64(nil, val))
}

// Close closes the current WAL.
func (s *walStore) Close() error {
	s.wmu.Lock()
	defer s.wmu.Unlock()
	s.mu.Lock()
	defer s.mu.Unlock()
	s.closed = true
	return s.w.Close()
}
