package segment

import (
	"encoding/binary"
	"errors"
	"hash/crc32"
	"io"
	"io/fs"
	"path/filepath"
)

// The START file records the offset the log's owner last cut it at (TruncatePrefix's before),
// so that a reopened log still knows it (Start): segments are dropped whole only, so the
// lowest segment may hold records below the cut, which a replicated log (server/fsm) must not
// serve again after a restart, before its replicated log start is learnt anew.
//
//	+-------------------------------+-------------------------------+
//	| magic "CLGO" (u32)            | holding segment's id (u64) ...|  0
//	+-------------------------------+-------------------------------+
//	| ... holding segment's id      | start offset (u64) ...        |  8
//	+-------------------------------+-------------------------------+
//	| ... start offset              | CRC-32C of bytes [0, 20) (u32)| 16
//	+-------------------------------+-------------------------------+
//
// It names the segment holding the start offset when it was written, which no truncation of
// the prefix deletes, and counts only while that segment exists: a Reset (new segments only)
// makes it stale, and a stale, missing (a log written before it existed, or never cut) or
// damaged file means the lowest offset held. It is written before the first segment below
// the cut is deleted (so a crash amid the deletions leaves it in place), rewritten in place
// (24 bytes in one sector) and fdatasync'ed; it only hides records, so a failure to write
// it is logged, not fatal: the log start is then learnt again from the owner's replicated
// state. A start beyond the log's end after Open (records lost at rest) is clamped to it.
const (
	startName          = "START"
	startMagic  uint32 = 0x4f474c43 // "CLGO" little endian
	startLen           = 24
	startFields        = 20
)

func encodeStart(id, off uint64) []byte {
	b := make([]byte, startLen)
	binary.LittleEndian.PutUint32(b[0:], startMagic)
	binary.LittleEndian.PutUint64(b[4:], id)
	binary.LittleEndian.PutUint64(b[12:], off)
	binary.LittleEndian.PutUint32(b[startFields:], crc32.Checksum(b[:startFields], castagnoli))
	return b
}

// readStart returns the segment id and the offset the START file records; ok is false
// when there is none, or it cannot be read or is damaged (logged: it only hides records, so
// going without it loses nothing).
func (l *Log) readStart() (id, off uint64, ok bool) {
	path := filepath.Join(l.dir, startName)
	f, err := l.fs.Open(path)
	if errors.Is(err, fs.ErrNotExist) {
		return 0, 0, false
	}
	if err != nil {
		l.logger.Warn("segment: cannot read the file recording the log's start; starting at the lowest offset held", "file", path, "err", err)
		return 0, 0, false
	}
	defer func() { _ = f.Close() }()
	var b [startLen]byte
	n, err := f.ReadAt(b[:], 0)
	if n < startLen && err != nil && !errors.Is(err, io.EOF) && !errors.Is(err, io.ErrUnexpectedEOF) {
		l.logger.Warn("segment: cannot read the file recording the log's start; starting at the lowest offset held", "file", path, "err", err)
		return 0, 0, false
	}
	if n < startLen || binary.LittleEndian.Uint32(b[0:]) != startMagic ||
		binary.LittleEndian.Uint32(b[startFields:]) != crc32.Checksum(b[:startFields], castagnoli) {
		l.logger.Warn("segment: the file recording the log's start is damaged; starting at the lowest offset held", "file", path)
		return 0, 0, false
	}
	return binary.LittleEndian.Uint64(b[4:]), binary.LittleEndian.Uint64(b[12:]), true
}

// writeStartOrWarn durably records off as the log's start, held by segment id (see
// writeStart), logging a failure. l.wmu must be held (or Open running).
func (l *Log) writeStartOrWarn(id, off uint64) {
	if err := l.writeStart(id, off); err != nil {
		l.logger.Warn("segment: recording the log's start", "dir", l.dir, "start", off, "err", err)
	}
}

// writeStart durably records off as the log's start, held by segment id (writeRecordFile).
// l.wmu must be held (or Open running).
func (l *Log) writeStart(id, off uint64) error {
	return l.writeRecordFile(startName, encodeStart(id, off))
}

// holderLocked returns the segment holding off: the last one starting at or below it (the
// first one when off is below every base). l.mu must be held.
func (l *Log) holderLocked(off uint64) *segment {
	h := l.segs[0]
	for _, s := range l.segs {
		if s.base <= off {
			h = s
		}
	}
	return h
}

// Start returns the offset the log was last cut at (TruncatePrefix's before, Reset's next),
// kept across restarts in the START file (unless its write failed, which is logged): at
// least Lowest, at most Next. Records in
// [Lowest, Start) are still held (segments are dropped whole) but their owner asked them
// gone. Safe for concurrent use.
func (l *Log) Start() uint64 {
	l.mu.RLock()
	defer l.mu.RUnlock()
	return min(max(l.start, l.lowest), l.next)
}
