package segment

import (
	"fmt"
	"path/filepath"

	"github.com/commitlog-go/commitlog/storage"
)

// Append implements storage.Log: it appends records as one atomic batch and returns the
// offset of the first. The batch is encoded into a reusable buffer and written with one
// write(2); under SyncAlways, Append then waits for an fdatasync covering it (shared with
// every concurrent appender) and the records become visible to readers only then.
//
// Errors: storage.ErrEmptyBatch; storage.ErrTooLarge (a record above MaxRecordBytes or a
// batch above MaxBatchBytes); storage.ErrClosed; storage.ErrFailed (this or an earlier
// write or fsync failed: the log refuses writes until reopened; the outcome of this batch is
// unknown, it may be found in the log after reopening).
func (l *Log) Append(records ...[]byte) (uint64, error) {
	if len(records) == 0 {
		return 0, storage.ErrEmptyBatch
	}
	size := 0
	for i, r := range records {
		if len(r) > l.cfg.MaxRecordBytes {
			return 0, fmt.Errorf("segment: record %d of batch is %d bytes, limit %d: %w", i, len(r), l.cfg.MaxRecordBytes, storage.ErrTooLarge)
		}
		size += frameHdr + len(r)
	}
	if size > l.cfg.MaxBatchBytes {
		return 0, fmt.Errorf("segment: batch of %d records is %d bytes encoded, limit %d: %w", len(records), size, l.cfg.MaxBatchBytes, storage.ErrTooLarge)
	}

	l.wmu.Lock()
	if l.closed.Load() {
		l.wmu.Unlock()
		return 0, storage.ErrClosed
	}
	if err := l.failedErr(); err != nil {
		l.wmu.Unlock()
		return 0, err
	}
	if l.active.end > segHdrLen && l.active.end+int64(size) > l.cfg.SegmentBytes {
		if err := l.rollLocked(); err != nil {
			l.wmu.Unlock()
			return 0, err
		}
	}

	first := l.nextWrite
	buf := l.wbuf[:0]
	pos := l.wpos[:0]
	at := l.active.end
	for i, r := range records {
		pos = append(pos, uint32(at+int64(len(buf))))
		buf = appendFrame(buf, first+uint64(i), r, i == len(records)-1)
	}
	l.wbuf, l.wpos = buf, pos
	if cap(l.wbuf) > maxKeptBuffer {
		l.wbuf = nil // do not pin a huge buffer after one huge batch
	}

	if _, err := l.active.f.Write(buf); err != nil {
		err = l.fail("write "+l.active.path, err)
		l.wmu.Unlock()
		return 0, err
	}
	next := first + uint64(len(records))
	l.nextWrite = next

	var tix timeIndex
	if l.timeIndexing() {
		// Work on a copy outside mu, publish it with the positions.
		tix = l.active.tix
		for i, r := range records {
			l.addTime(&tix, first+uint64(i), r, int64(pos[i]))
		}
	}

	l.mu.Lock()
	l.active.pos = append(l.active.pos, pos...)
	l.active.end += int64(len(buf))
	l.active.tix = tix
	if l.cfg.Sync != SyncAlways {
		l.next = next
		l.wakeLocked()
	}
	l.mu.Unlock()

	l.smu.Lock()
	l.written += uint64(len(buf))
	l.sEnd = at + int64(len(buf))
	end := l.written
	if l.cfg.Sync == SyncAlways {
		l.pending = append(l.pending, pending{end: end, next: next})
	}
	l.smu.Unlock()
	l.wmu.Unlock()

	if l.cfg.Sync == SyncAlways {
		if err := l.waitDurable(end); err != nil {
			return 0, err
		}
	}
	return first, nil
}

// maxKeptBuffer is the encoding buffer capacity beyond which Append does not keep the
// buffer for the next batch.
const maxKeptBuffer = 8 << 20

// rollLocked seals the active segment and starts a new one. The sealed segment is fsynced
// before the new one is created, so that a crash never leaves records in a later segment
// while an earlier one lost its tail. l.wmu must be held.
func (l *Log) rollLocked() error {
	l.acquireSyncToken()
	defer l.releaseSyncToken()
	old := l.active
	if err := old.f.Sync(); err != nil {
		return l.fail("fdatasync "+old.path, err)
	}
	l.smu.Lock()
	l.markDurableLocked(l.written)
	l.smu.Unlock()

	// The index is a cache (Open rebuilds a missing or bad one), but it is fsynced, and its
	// directory entry made durable by createSegment's SyncDir, so that Open after a power
	// failure need not scan every sealed segment. The writer (holding wmu) is the only one
	// that changes old.pos, so reading it without mu is safe.
	l.writeIndex(old, old.pos)
	if l.timeIndexing() {
		l.writeTimeIndex(old, old.count(), &old.tix)
	}

	s, err := l.createSegment(l.nextWrite, 0)
	if err != nil {
		return l.fail("roll", err)
	}
	l.mu.Lock()
	old.sealed = true
	l.segs = append(l.segs, s)
	l.mu.Unlock()
	l.setActive(s)
	l.smu.Lock()
	l.sseg, l.sEnd, l.sMark = s, s.end, s.mark
	l.smu.Unlock()
	return nil
}

// createSegment creates, syncs and registers in the directory a new segment file starting
// at base. It does not add it to l.segs. l.wmu must be held (or Open running).
func (l *Log) createSegment(base uint64, flags uint16) (*segment, error) {
	id := l.nextID
	s := &segment{id: id, base: base, created: l.cfg.Now().UnixNano()}
	s.path = filepath.Join(l.dir, segName(id, base, segExt))
	f, err := l.fs.Create(s.path)
	if err != nil {
		return nil, fmt.Errorf("create %s: %w", s.path, err)
	}
	var hdr [segHdrLen]byte
	s.hdr = segHeader{version: version, flags: flags, id: id, base: base, created: s.created, synced: segHdrLen}
	s.mark = segHdrLen
	s.hdr.encode(hdr[:])
	if _, err := f.Write(hdr[:]); err != nil {
		_ = f.Close()
		return nil, fmt.Errorf("write header %s: %w", s.path, err)
	}
	if err := f.Sync(); err != nil {
		_ = f.Close()
		return nil, fmt.Errorf("fdatasync %s: %w", s.path, err)
	}
	if err := l.fs.SyncDir(l.dir); err != nil {
		_ = f.Close()
		return nil, fmt.Errorf("sync dir %s: %w", l.dir, err)
	}
	l.nextID++
	s.f = l.cfg.Files.wrap(l.fs, s.path, f, true) // the new active segment (setActive)
	s.end = segHdrLen
	s.refs.Store(1)
	return s, nil
}

// writeIndex writes and fsyncs the index file of a sealed segment, logging (not returning)
// failures: the index is only a cache.
func (l *Log) writeIndex(s *segment, pos []uint32) {
	name := filepath.Join(l.dir, segName(s.id, s.base, idxExt))
	f, err := l.fs.Create(name)
	if err == nil {
		_, err = f.Write(encodeIndex(s.id, s.base, pos))
		if err == nil {
			err = f.Sync()
		}
		if cerr := f.Close(); err == nil {
			err = cerr
		}
	}
	if err != nil {
		l.logger.Warn("segment: cannot write index; it will be rebuilt on open", "file", name, "err", err)
	}
}
