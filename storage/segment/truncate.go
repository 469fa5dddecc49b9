package segment

import (
	"fmt"
	"path/filepath"
	"sort"
	"time"

	"github.com/commitlog-go/commitlog/storage"
)

// beginStructural takes wmu for a structural change and makes every written record durable
// and visible first. On error wmu is released.
func (l *Log) beginStructural() error {
	l.wmu.Lock()
	if l.closed.Load() {
		l.wmu.Unlock()
		return storage.ErrClosed
	}
	if err := l.syncAll(); err != nil {
		l.wmu.Unlock()
		return err
	}
	return nil
}

// TruncatePrefix implements storage.Log. It deletes whole sealed segments whose records are
// all below before, oldest first; it never deletes the active segment, so it may keep more
// than asked. Readers of a deleted segment that are mid-read finish their read. It records
// before in the START file (Start), durably, before the first segment goes: a crash in the
// middle of the deletions (one fsync each) leaves a log that still knows its start.
// Errors: storage.ErrClosed, storage.ErrFailed (a segment could not be removed).
func (l *Log) TruncatePrefix(before uint64) error {
	l.wmu.Lock()
	defer l.wmu.Unlock()
	if l.closed.Load() {
		return storage.ErrClosed
	}
	l.mu.RLock()
	cut := min(before, l.next)
	need := cut > max(l.start, l.lowest)
	// The segment holding cut (the active one for cut == next) is never deleted here: START
	// names it, and counts while it exists (see start.go).
	holder := l.holderLocked(cut)
	l.mu.RUnlock()
	record := func() {
		if !need {
			return
		}
		need = false
		l.writeStartOrWarn(holder.id, cut)
		l.mu.Lock()
		l.start = max(l.start, cut)
		l.mu.Unlock()
	}
	if _, err := l.removeOldestLocked(func(s *segment, _ int64, _ *segment) bool {
		return s.base+s.count() <= before
	}, record); err != nil {
		return err
	}
	record() // nothing was deleted
	return nil
}

// EnforceRetention deletes the oldest sealed segments that Config.RetentionBytes and
// Config.RetentionAge no longer allow, and returns how many it deleted. It never deletes the
// active segment. A segment's age is measured from the creation of the segment after it
// (when it stopped receiving records), as read from the segment headers, against now. The
// owner calls it periodically. Errors: storage.ErrClosed, storage.ErrFailed.
func (l *Log) EnforceRetention(now time.Time) (removedSegments int, err error) {
	l.wmu.Lock()
	defer l.wmu.Unlock()
	if l.closed.Load() {
		return 0, storage.ErrClosed
	}
	return l.removeOldestLocked(func(s *segment, total int64, after *segment) bool {
		if l.cfg.RetentionBytes > 0 && total > l.cfg.RetentionBytes {
			return true
		}
		return l.cfg.RetentionAge > 0 && now.Sub(time.Unix(0, after.created)) > l.cfg.RetentionAge
	}, nil)
}

// removeOldestLocked deletes sealed segments from the oldest while drop(segment, total size
// of the log, the segment after it) says so. beforeDelete, when not nil, is called once,
// before the first segment file is deleted (after FIRST records the new first segment). l.wmu
// must be held.
func (l *Log) removeOldestLocked(drop func(s *segment, total int64, after *segment) bool, beforeDelete func()) (int, error) {
	removed := 0
	defer func() {
		if removed > 0 {
			if err := l.fs.SyncDir(l.dir); err != nil {
				l.logger.Warn("segment: sync dir after removing segments", "dir", l.dir, "err", err)
			}
		}
	}()
	for {
		l.mu.Lock()
		if len(l.segs) < 2 {
			l.mu.Unlock()
			return removed, nil
		}
		var total int64
		for _, s := range l.segs {
			total += s.end
		}
		s := l.segs[0]
		if !s.sealed || !drop(s, total, l.segs[1]) {
			l.mu.Unlock()
			return removed, nil
		}
		newFirst := l.segs[1].id
		l.mu.Unlock()
		// Record the new first segment before deleting the old one, so that Open tells this
		// deletion from a lost segment. wmu keeps l.segs as it is meanwhile.
		if err := l.writeFirst(newFirst); err != nil {
			return removed, l.fail("retention", err)
		}
		if beforeDelete != nil {
			beforeDelete()
			beforeDelete = nil
		}
		l.mu.Lock()
		l.segs = l.segs[1:]
		l.lowest = l.segs[0].base
		l.wakeLocked()
		l.mu.Unlock()
		err := l.removeSegmentFiles(s)
		s.release()
		if err != nil {
			return removed, l.fail("retention", err)
		}
		removed++
	}
}

// TruncateSuffix implements storage.Log: it removes the records at from and above. Later
// segments are deleted newest first, then the segment holding from is cut and fsynced, so a
// crash in between leaves a clean prefix. It is durable when it returns, whatever the sync
// policy. Errors: storage.ErrOutOfRange, storage.ErrClosed, storage.ErrFailed.
func (l *Log) TruncateSuffix(from uint64) error {
	if err := l.beginStructural(); err != nil {
		return err
	}
	defer l.wmu.Unlock()
	l.acquireSyncToken()
	defer l.releaseSyncToken()
	l.mu.Lock()
	l.rewrites.Add(1)
	if from < l.lowest || from > l.next {
		lo, hi := l.lowest, l.next
		l.mu.Unlock()
		return fmt.Errorf("segment: truncate suffix from %d (log holds [%d, %d)): %w", from, lo, hi, storage.ErrOutOfRange)
	}
	if from == l.next {
		l.mu.Unlock()
		return nil
	}
	if from < l.start {
		// Cut below the recorded start: the records written from there on are new ones.
		l.start = from
		id := l.holderLocked(from).id
		l.mu.Unlock()
		l.writeStartOrWarn(id, from)
		l.mu.Lock()
	}
	// The segment holding from: the last one starting at or before it.
	k := len(l.segs) - 1
	for l.segs[k].base > from {
		k--
	}
	s := l.segs[k]
	later := append([]*segment(nil), l.segs[k+1:]...)
	l.segs = l.segs[:k+1]
	cut := int64(segHdrLen)
	if i := from - s.base; i < s.count() {
		cut = int64(s.pos[i])
	}
	// The record before from becomes the end of its batch (it may have been in the middle).
	patchAt := int64(-1)
	if from > s.base {
		patchAt = int64(s.pos[from-s.base-1])
	}
	s.pos = s.pos[: from-s.base : from-s.base] // full slice expression: later appends copy
	s.end = cut
	s.sealed = false
	l.next = from
	l.wakeLocked()
	l.mu.Unlock()

	for i := len(later) - 1; i >= 0; i-- {
		err := l.removeSegmentFiles(later[i])
		later[i].release()
		if err != nil {
			return l.fail("truncate suffix", err)
		}
	}
	if len(later) > 0 {
		if err := l.fs.SyncDir(l.dir); err != nil {
			return l.fail("truncate suffix: sync dir", err)
		}
	}
	_ = l.fs.Remove(filepath.Join(l.dir, segName(s.id, s.base, idxExt)))
	_ = l.fs.Remove(filepath.Join(l.dir, segName(s.id, s.base, tixExt)))
	if s.mark > cut {
		// Lower the durable watermark first, durably: the bytes appended after the cut
		// will not be synced, and a watermark above them would call their loss corruption.
		if err := l.writeMark(s, cut); err != nil {
			return l.fail("truncate suffix", err)
		}
		if err := s.f.Sync(); err != nil {
			return l.fail("fdatasync "+s.path, err)
		}
	}
	if patchAt >= 0 {
		if err := l.markBatchEnd(s, patchAt, cut, from-1); err != nil {
			return err
		}
	}
	if err := s.f.Truncate(cut); err != nil {
		return l.fail("truncate "+s.path, err)
	}
	if err := s.f.Sync(); err != nil {
		return l.fail("fdatasync "+s.path, err)
	}
	if l.timeIndexing() {
		l.retime(s, from, cut)
	}
	l.setActive(s)
	l.nextWrite = from
	l.smu.Lock()
	l.sseg, l.sEnd, l.sMark = s, cut, cut
	l.smu.Unlock()
	return nil
}

// Reset implements storage.Log: it empties the log and makes it start at next. It creates a
// new segment flagged as a reset (durably) before deleting the old ones, so Open finishes an
// interrupted Reset. Errors: storage.ErrClosed, storage.ErrFailed.
func (l *Log) Reset(next uint64) error {
	if err := l.beginStructural(); err != nil {
		return err
	}
	defer l.wmu.Unlock()
	l.acquireSyncToken()
	defer l.releaseSyncToken()
	s, err := l.createSegment(next, flagReset)
	if err != nil {
		return l.fail("reset", err)
	}
	s.resetFlag = true
	if err := l.writeFirst(s.id); err != nil {
		// The reset is durable: Open takes the reset segment as the first whatever FIRST says.
		l.logger.Warn("segment: recording the first segment after reset", "dir", l.dir, "err", err)
	}
	l.mu.Lock()
	l.rewrites.Add(1)
	old := l.segs
	l.segs = []*segment{s}
	l.lowest, l.next, l.start = next, next, next
	l.wakeLocked()
	l.mu.Unlock()
	l.setActive(s)
	l.nextWrite = next
	l.smu.Lock()
	l.sseg, l.sEnd, l.sMark = s, s.end, s.mark
	l.smu.Unlock()
	var rerr error
	for _, o := range old {
		if err := l.removeSegmentFiles(o); err != nil && rerr == nil {
			rerr = err
		}
		o.release()
	}
	if err := l.fs.SyncDir(l.dir); err != nil && rerr == nil {
		rerr = err
	}
	if rerr != nil {
		// The reset itself is durable (Open finishes it); only the cleanup failed.
		l.logger.Warn("segment: removing segments after reset", "dir", l.dir, "err", rerr)
	}
	return nil
}

// markBatchEnd makes the frame of offset off, at [at, end) in s, the last of its batch (in
// place, then fsynced), so that truncating the records after it leaves a whole batch. A
// crash before the truncation that follows leaves the log untruncated, which is allowed.
func (l *Log) markBatchEnd(s *segment, at, end int64, off uint64) error {
	b := make([]byte, end-at)
	if _, err := s.f.ReadAt(b, at); err != nil {
		return l.fail("truncate suffix: read "+s.path, err)
	}
	fi, _, err := decodeFrame(b, l.cfg.MaxRecordBytes)
	if err == nil && (fi.offset != off || fi.size() != len(b)) {
		err = errOffset
	}
	if err != nil {
		return fmt.Errorf("segment: truncate suffix: %s at position %d: %w: %w", s.path, at, storage.ErrCorrupt, err)
	}
	if fi.last {
		return nil
	}
	setLast(b)
	if _, err := s.f.WriteAt(b[:8], at); err != nil {
		return l.fail("truncate suffix: write "+s.path, err)
	}
	if err := s.f.Sync(); err != nil {
		return l.fail("fdatasync "+s.path, err)
	}
	return nil
}

// retime rebuilds the time index of s, just cut at file position cut (offset from), from its
// remaining records. Until it is done, lookups see the old index, whose entries past from are
// capped by the log's bounds. If the rebuild fails, the entries past from are dropped and the
// old maximum stays: an upper bound, which costs a lookup a longer read but no wrong answer.
// l.wmu must be held.
func (l *Log) retime(s *segment, from uint64, cut int64) {
	x, err := l.buildTimeIndex(s, cut)
	if err != nil {
		l.logger.Warn("segment: cannot rebuild the time index after a truncation; lookups read more", "segment", s.path, "err", err)
		x = s.tix.clone()
		n := sort.Search(len(x.entries), func(i int) bool { return x.entries[i].off >= from })
		x.entries = x.entries[:n]
	}
	l.mu.Lock()
	s.tix = x
	l.mu.Unlock()
}
