package segment

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"path/filepath"
	"sort"

	"github.com/commitlog-go/commitlog/storage"
)

// Time index file, version 1: a sparse timestamp → offset index of one sealed segment, kept
// only when Config.Timestamp is set. Like the offset index it is a cache: it is written and
// fsynced when a segment is sealed, and Open rebuilds it from the segment when it is missing,
// short, fails its checksum or disagrees with the segment.
//
//	LOG DIR/0000000001-00000000000000000000.tix
//
//	+---------------------------------------------------------------+
//	| magic "CLGT" (u32) | version (u16) | flags (u16) | id (u64)   |  0
//	| base offset (u64)  | record count (u64)                       | 16
//	| max timestamp (i64)| offset of the max (u64)                  | 32
//	+---------------------------------------------------------------+
//	| entry: timestamp (i64), offset (u64) | entry | ...            | 48
//	+---------------------------------------------------------------+
//	| CRC-32C of everything before (u32)                            |
//	+---------------------------------------------------------------+
//
// Little endian. flags bit 0: some record of the segment has a timestamp; the max fields are
// then the largest timestamp in the segment and the first offset that has it (zero
// otherwise, and there are no entries). record count is the segment's, so an index left
// from before a truncation is recognised and rebuilt.
//
// An entry (ts, off) says: the record at off has timestamp ts, and every record of the
// segment before off has a smaller one (an entry is added only by a record that raises the
// segment's maximum, and only once Config.TimeIndexInterval bytes have passed since the
// previous entry; the first such record always gets one). Entries therefore increase
// strictly in both fields, and for a target t the first record at or after t lies after the
// last entry below t and at or before the first entry at or above it: a lookup reads only
// the records between two entries, and this holds whatever order the timestamps come in.
const (
	tixMagic    uint32 = 0x54474c43 // "CLGT" little endian
	tixVersion  uint16 = 1
	tixFlagMax  uint16 = 1 << 0
	tixHdrLen          = 48
	tixEntryLen        = 16
	tixExt             = ".tix"
)

// tixEntry is one entry of a time index.
type tixEntry struct {
	ts  int64
	off uint64
}

// timeIndex is a segment's time index in memory. A segment's is guarded by Log.mu; the
// writer builds the active one.
type timeIndex struct {
	entries []tixEntry
	hasMax  bool
	maxTS   int64
	maxOff  uint64
	lastPos int64 // file position of the last entry's frame (in memory only)
}

// add records that the frame at file position pos holds offset off with timestamp ts.
func (x *timeIndex) add(off uint64, ts int64, pos int64, interval int) {
	if x.hasMax && ts <= x.maxTS {
		return
	}
	x.hasMax, x.maxTS, x.maxOff = true, ts, off
	if len(x.entries) == 0 || pos-x.lastPos >= int64(interval) {
		x.entries = append(x.entries, tixEntry{ts: ts, off: off})
		x.lastPos = pos
	}
}

// clone returns a copy that shares no memory with x.
func (x *timeIndex) clone() timeIndex {
	c := *x
	c.entries = append([]tixEntry(nil), x.entries...)
	return c
}

// span returns the offsets [from, to) of s that hold the first record at or after ts, given
// the segment's record count n. Log.mu must be held (or the index owned).
func (x *timeIndex) span(base, n uint64, ts int64) (from, to uint64) {
	es := x.entries
	i := sort.Search(len(es), func(i int) bool { return es[i].ts >= ts })
	from, to = base, base+n
	if i > 0 {
		from = es[i-1].off + 1
	}
	if i < len(es) {
		to = es[i].off + 1
	}
	return from, to
}

// encodeTimeIndex returns the time index file content for a segment of n records.
func encodeTimeIndex(id, base, n uint64, x *timeIndex) []byte {
	b := make([]byte, tixHdrLen+tixEntryLen*len(x.entries)+4)
	binary.LittleEndian.PutUint32(b[0:], tixMagic)
	binary.LittleEndian.PutUint16(b[4:], tixVersion)
	binary.LittleEndian.PutUint64(b[8:], id)
	binary.LittleEndian.PutUint64(b[16:], base)
	binary.LittleEndian.PutUint64(b[24:], n)
	if x.hasMax {
		binary.LittleEndian.PutUint16(b[6:], tixFlagMax)
		binary.LittleEndian.PutUint64(b[32:], uint64(x.maxTS))
		binary.LittleEndian.PutUint64(b[40:], x.maxOff)
	}
	for i, e := range x.entries {
		p := b[tixHdrLen+tixEntryLen*i:]
		binary.LittleEndian.PutUint64(p, uint64(e.ts))
		binary.LittleEndian.PutUint64(p[8:], e.off)
	}
	end := len(b) - 4
	binary.LittleEndian.PutUint32(b[end:], crc32.Checksum(b[:end], castagnoli))
	return b
}

// decodeTimeIndex checks a time index file's content against the segment it should describe
// (id, base, n records) and returns it. Entries are bounded by the input's length.
func decodeTimeIndex(b []byte, id, base, n uint64) (timeIndex, error) {
	var x timeIndex
	if len(b) < tixHdrLen+4 {
		return x, errShort
	}
	if binary.LittleEndian.Uint32(b[0:]) != tixMagic || binary.LittleEndian.Uint16(b[4:]) != tixVersion {
		return x, errors.New("bad time index magic or version")
	}
	end := len(b) - 4
	if crc32.Checksum(b[:end], castagnoli) != binary.LittleEndian.Uint32(b[end:]) {
		return x, errChecksum
	}
	if binary.LittleEndian.Uint64(b[8:]) != id || binary.LittleEndian.Uint64(b[16:]) != base {
		return x, errors.New("time index belongs to another segment")
	}
	if c := binary.LittleEndian.Uint64(b[24:]); c != n {
		return x, fmt.Errorf("time index covers %d records, the segment holds %d", c, n)
	}
	if (end-tixHdrLen)%tixEntryLen != 0 {
		return x, errShort
	}
	flags := binary.LittleEndian.Uint16(b[6:])
	if flags&^tixFlagMax != 0 {
		return x, fmt.Errorf("unknown time index flags %#x", flags)
	}
	x.hasMax = flags&tixFlagMax != 0
	x.maxTS = int64(binary.LittleEndian.Uint64(b[32:]))
	x.maxOff = binary.LittleEndian.Uint64(b[40:])
	count := (end - tixHdrLen) / tixEntryLen
	switch {
	case !x.hasMax && (count > 0 || x.maxTS != 0 || x.maxOff != 0):
		return x, errors.New("time index without timestamps has entries")
	case x.hasMax && (count == 0 || x.maxOff < base || x.maxOff-base >= n):
		return x, errors.New("time index maximum inconsistent")
	}
	x.entries = make([]tixEntry, count)
	for i := range x.entries {
		p := b[tixHdrLen+tixEntryLen*i:]
		e := tixEntry{ts: int64(binary.LittleEndian.Uint64(p)), off: binary.LittleEndian.Uint64(p[8:])}
		if e.off < base || e.off-base >= n || (i > 0 && (e.ts <= x.entries[i-1].ts || e.off <= x.entries[i-1].off)) || e.ts > x.maxTS || e.off > x.maxOff {
			return timeIndex{}, fmt.Errorf("time index entry %d inconsistent", i)
		}
		x.entries[i] = e
	}
	return x, nil
}

// timeIndexing reports whether the log keeps a time index.
func (l *Log) timeIndexing() bool { return l.cfg.Timestamp != nil }

// addTime adds a record to x when it has a timestamp.
func (l *Log) addTime(x *timeIndex, off uint64, value []byte, pos int64) {
	if ts, ok := l.cfg.Timestamp(value); ok {
		x.add(off, ts, pos, l.cfg.TimeIndexInterval)
	}
}

// buildTimeIndex reads the frames of s up to file position end (at a frame boundary) and
// returns their time index. Frames are verified; a bad one is corruption.
func (l *Log) buildTimeIndex(s *segment, end int64) (timeIndex, error) {
	var x timeIndex
	var fr frameReader
	fr.reset(s, segHdrLen, end, l.cfg.MaxRecordBytes)
	for off := s.base; fr.pos < end; off++ {
		p := fr.pos
		fi, v, err := fr.next()
		if err == nil && fi.offset != off {
			err = fmt.Errorf("%w: frame holds offset %d, want %d", errOffset, fi.offset, off)
		}
		if errors.Is(err, errIO) {
			return x, fmt.Errorf("segment: read %s at position %d: %w", s.path, p, err)
		}
		if err != nil {
			return x, fmt.Errorf("segment: %s at position %d: %w: %w", s.path, p, storage.ErrCorrupt, err)
		}
		l.addTime(&x, off, v, p)
	}
	return x, nil
}

// writeTimeIndex writes and fsyncs the time index file of a sealed segment of n records,
// logging (not returning) failures: the index is only a cache.
func (l *Log) writeTimeIndex(s *segment, n uint64, x *timeIndex) {
	name := filepath.Join(l.dir, segName(s.id, s.base, tixExt))
	f, err := l.fs.Create(name)
	if err == nil {
		_, err = f.Write(encodeTimeIndex(s.id, s.base, n, x))
		if err == nil {
			err = f.Sync()
		}
		if cerr := f.Close(); err == nil {
			err = cerr
		}
	}
	if err != nil {
		l.logger.Warn("segment: cannot write time index; it will be rebuilt on open", "file", name, "err", err)
	}
}

// loadTimeIndex reads and checks a sealed segment's time index file (s.pos is loaded).
func (l *Log) loadTimeIndex(s *segment) (timeIndex, error) {
	name := filepath.Join(l.dir, segName(s.id, s.base, tixExt))
	f, err := l.fs.Open(name)
	if err != nil {
		return timeIndex{}, err
	}
	defer f.Close()
	size, err := f.Size()
	if err != nil {
		return timeIndex{}, err
	}
	// At most one entry per record: bound the allocation.
	if size > int64(tixHdrLen+4+tixEntryLen*len(s.pos)) {
		return timeIndex{}, errors.New("time index larger than its segment allows")
	}
	b := make([]byte, size)
	if _, err := f.ReadAt(b, 0); err != nil && !errors.Is(err, io.EOF) {
		return timeIndex{}, err
	}
	return decodeTimeIndex(b, s.id, s.base, s.count())
}

// recoverTimeIndex loads a sealed segment's time index, or rebuilds (and writes) it when it is
// missing or bad.
func (l *Log) recoverTimeIndex(s *segment, hasTix bool) error {
	if hasTix {
		x, err := l.loadTimeIndex(s)
		if err == nil {
			s.tix = x
			return nil
		}
		l.logger.Warn("segment: rebuilding bad time index", "segment", s.path, "err", err)
	}
	x, err := l.buildTimeIndex(s, s.end)
	if err != nil {
		return err
	}
	s.tix = x
	l.report.RebuiltTimeIndexes++
	l.writeTimeIndex(s, s.count(), &s.tix)
	return nil
}

// OffsetForTime implements storage.TimeIndex: the offset of the first record at or above
// the log's lowest offset whose timestamp (per Config.Timestamp) is at or after ts, or the
// next offset when there is none. It finds the first segment whose largest timestamp
// reaches ts and reads only the records between two of its index entries.
// A lookup that races a truncation (retention, Reset) starts again from the new lowest
// offset. Errors: storage.ErrNoTimeIndex (Config.Timestamp is nil), storage.ErrClosed,
// storage.ErrCorrupt.
func (l *Log) OffsetForTime(ts int64) (uint64, error) {
	return l.OffsetForTimeFrom(ts, 0)
}

// OffsetForTimeFrom implements storage.TimeIndex: OffsetForTime among the records at or
// above from. The index entries of from's segment say nothing about its records after a
// record that raised the segment's maximum, so when from is inside a segment that segment is
// read from from to the first match (at most to its end).
func (l *Log) OffsetForTimeFrom(ts int64, start uint64) (uint64, error) {
	if !l.timeIndexing() {
		return 0, storage.ErrNoTimeIndex
	}
	after := start // look only at segments holding offsets at or above it
	rewrites := l.rewrites.Load()
	for {
		l.mu.RLock()
		if l.closed.Load() {
			l.mu.RUnlock()
			return 0, storage.ErrClosed
		}
		if l.rewrittenSince(rewrites) {
			// Reset or TruncateSuffix since the last look: the offsets below after that were
			// looked at hold other records now, or none; look again from start.
			rewrites = l.rewrites.Load()
			after = start
		}
		lowest, next := l.lowest, l.next
		var from, to, segEnd uint64
		found := false
		for _, s := range l.segs {
			if s.base+s.count() <= after || !s.tix.hasMax || s.tix.maxTS < ts {
				continue
			}
			from, to = s.tix.span(s.base, s.count(), ts)
			segEnd = s.base + s.count()
			if after > s.base {
				// Records from after on: a match may lie past the span, which is the first
				// match from the segment's base.
				to = segEnd
			}
			found = true
			break
		}
		l.mu.RUnlock()
		if !found {
			return next, nil
		}
		from, to = max(from, lowest, after), min(to, next)
		if l.lookupHook != nil {
			l.lookupHook()
		}
		truncated := false
		for rec, err := range l.Records(from, to) {
			if errors.Is(err, storage.ErrOutOfRange) {
				// Retention (or Reset) removed the span under us: look again from the
				// log's new lowest offset.
				truncated = true
				break
			}
			if err != nil {
				return 0, err
			}
			if t, ok := l.cfg.Timestamp(rec.Value); ok && t >= ts {
				return rec.Offset, nil
			}
		}
		if truncated {
			after = start // a Reset may have started the log anew
			continue
		}
		if to >= next {
			return next, nil
		}
		// Not in the span (the segment's records at or after ts are not visible yet, or the
		// log changed under us): go on with the segments after it.
		after = segEnd
	}
}
