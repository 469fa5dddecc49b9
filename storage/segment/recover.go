package segment

import (
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"slices"

	"github.com/commitlog-go/commitlog/storage"
)

// recover opens every segment of the directory, checks them and repairs a torn tail. It
// runs inside Open, before the Log is shared.
func (l *Log) recover() error {
	names, err := l.fs.ReadDir(l.dir)
	if err != nil {
		return fmt.Errorf("segment: list %s: %w", l.dir, err)
	}
	type found struct{ id, base uint64 }
	var segs []found
	idx := map[found]bool{}
	tix := map[found]bool{}
	for _, n := range names {
		if id, base, ok := parseSegName(n, segExt); ok {
			segs = append(segs, found{id, base})
		} else if id, base, ok := parseSegName(n, idxExt); ok {
			idx[found{id, base}] = true
		} else if id, base, ok := parseSegName(n, tixExt); ok {
			tix[found{id, base}] = true
		}
	}
	slices.SortFunc(segs, func(a, b found) int { return compareU64(a.id, b.id) })
	firstID, firstOK, firstErr := l.readFirst()

	// Open every segment and check its header.
	var opened []*segment
	for i, fs := range segs {
		s, err := l.openSegment(fs.id, fs.base)
		if errors.Is(err, errTornCreate) && i == len(segs)-1 {
			// The last segment's header never reached the disk whole: it holds no record.
			_ = l.fs.Remove(s.path)
			l.report.RemovedFiles = append(l.report.RemovedFiles, s.path)
			l.logger.Warn("segment: removed a segment torn at creation", "file", s.path)
			continue
		}
		if errors.Is(err, errTornCreate) {
			// Not the last: records after it were written, so it held some once.
			err = fmt.Errorf("segment: %s at position 0: %w: %w (a segment before the last)", s.path, storage.ErrCorrupt, err)
		}
		if err != nil {
			l.segs = opened
			return err
		}
		opened = append(opened, s)
	}
	l.segs = opened

	// Finish an interrupted Reset: segments before the newest reset segment are obsolete.
	for i := len(l.segs) - 1; i > 0; i-- {
		if l.segs[i].resetFlag {
			for _, s := range l.segs[:i] {
				if err := l.removeSegmentFiles(s); err != nil {
					return fmt.Errorf("segment: finish interrupted reset: %w", err)
				}
				l.report.RemovedFiles = append(l.report.RemovedFiles, s.path)
				s.release()
			}
			l.segs = slices.Delete(l.segs, 0, i)
			if err := l.fs.SyncDir(l.dir); err != nil {
				return fmt.Errorf("segment: sync dir %s: %w", l.dir, err)
			}
			l.logger.Warn("segment: finished an interrupted reset", "removed", i)
			break
		}
	}
	if err := l.checkFirst(firstID, firstOK, firstErr); err != nil {
		return err
	}
	if len(segs) > 0 {
		l.nextID = segs[len(segs)-1].id + 1
	} else {
		l.nextID = 1
	}
	if len(l.segs) == 0 {
		s, err := l.createSegment(l.cfg.InitialOffset, 0)
		if err != nil {
			return fmt.Errorf("segment: %w", err)
		}
		l.segs = []*segment{s}
	}
	// Segments are ordered by id; their bases must increase too.
	for i := 1; i < len(l.segs); i++ {
		if l.segs[i].base < l.segs[i-1].base {
			return fmt.Errorf("segment: %s starts at offset %d, before %s (%d): %w", l.segs[i].path, l.segs[i].base, l.segs[i-1].path, l.segs[i-1].base, storage.ErrCorrupt)
		}
	}

	for i, s := range l.segs {
		last := i == len(l.segs)-1
		if last {
			if err := l.recoverActive(s); err != nil {
				return err
			}
		} else {
			if err := l.recoverSealed(s, idx[found{s.id, s.base}], tix[found{s.id, s.base}]); err != nil {
				return err
			}
			s.sealed = true
		}
		if i > 0 {
			prev := l.segs[i-1]
			if want := prev.base + prev.count(); s.base != want {
				return fmt.Errorf("segment: %s starts at offset %d but %s ends at %d (missing or extra records): %w", s.path, s.base, prev.path, want, storage.ErrCorrupt)
			}
		}
	}
	// Remove index files of segments that no longer exist or are active.
	for ext, files := range map[string]map[found]bool{idxExt: idx, tixExt: tix} {
		for k := range files {
			keep := false
			for _, s := range l.segs {
				keep = keep || (s.id == k.id && s.base == k.base && s.sealed)
			}
			if !keep {
				_ = l.fs.Remove(filepath.Join(l.dir, segName(k.id, k.base, ext)))
			}
		}
	}
	if l.firstID != l.segs[0].id {
		if err := l.writeFirst(l.segs[0].id); err != nil {
			return fmt.Errorf("segment: %w", err)
		}
	}
	l.setActive(l.segs[len(l.segs)-1])
	l.lowest = l.segs[0].base
	l.next = l.active.base + l.active.count()
	l.nextWrite = l.next
	l.start = l.lowest
	if startID, start, ok := l.readStart(); ok && slices.ContainsFunc(l.segs, func(s *segment) bool { return s.id == startID }) {
		l.start = max(start, l.lowest)
		if l.start > l.next {
			// The log lost records past its start at rest (an unsynced tail): the records
			// appended from now on are new ones.
			l.start = l.next
			l.writeStartOrWarn(startID, l.next)
		}
	}
	return nil
}

func compareU64(a, b uint64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// errTornCreate: a segment file shorter than its header.
var errTornCreate = errors.New("segment: file shorter than its header")

// openSegment opens a segment file and checks its header. On errTornCreate it returns the
// segment (with its path) but the file closed.
func (l *Log) openSegment(id, base uint64) (*segment, error) {
	s := &segment{id: id, base: base, path: filepath.Join(l.dir, segName(id, base, segExt))}
	f, err := l.fs.Open(s.path)
	if err != nil {
		return nil, fmt.Errorf("segment: open %s: %w", s.path, err)
	}
	size, err := f.Size()
	if err != nil {
		_ = f.Close()
		return nil, fmt.Errorf("segment: stat %s: %w", s.path, err)
	}
	if size < segHdrLen {
		_ = f.Close()
		return s, errTornCreate
	}
	var b [segHdrLen]byte
	if _, err := f.ReadAt(b[:], 0); err != nil {
		_ = f.Close()
		return nil, fmt.Errorf("segment: read header of %s: %w", s.path, err)
	}
	h, err := decodeSegHeader(b[:])
	if err == nil && (h.id != id || h.base != base) {
		err = fmt.Errorf("header says segment %d base %d", h.id, h.base)
	}
	if err != nil {
		_ = f.Close()
		return nil, fmt.Errorf("segment: %s at position 0: bad header: %w: %w", s.path, storage.ErrCorrupt, err)
	}
	s.f, s.end, s.created, s.resetFlag = l.cfg.Files.wrap(l.fs, s.path, f, false), size, h.created, h.flags&flagReset != 0
	s.hdr, s.mark = h, -1
	if h.version == version {
		s.mark = int64(h.synced)
	}
	s.refs.Store(1)
	return s, nil
}

// recoverSealed loads a sealed segment's index, or rebuilds it by a full, strict scan when
// it is missing or bad. With a good index it checks only the last frame (the other frames
// are verified when read). Any defect is corruption: a sealed segment has no torn tail.
func (l *Log) recoverSealed(s *segment, hasIdx, hasTix bool) error {
	if hasIdx {
		if pos, err := l.loadIndex(s); err == nil {
			s.pos = pos
			if err := l.checkLastFrame(s); err != nil {
				return err
			}
			if l.timeIndexing() {
				return l.recoverTimeIndex(s, hasTix)
			}
			return nil
		} else {
			l.logger.Warn("segment: rebuilding bad index", "segment", s.path, "err", err)
		}
	}
	res, err := l.scan(s)
	if err != nil {
		return err
	}
	if res.bad != nil || res.goodEnd != s.end {
		at, why := res.goodEnd, error(errors.New("incomplete batch at end of a sealed segment"))
		if res.bad != nil {
			at, why = res.badAt, res.bad
		}
		return fmt.Errorf("segment: %s at position %d (sealed segment): %w: %w", s.path, at, storage.ErrCorrupt, why)
	}
	s.pos = res.pos
	l.report.RebuiltIndexes++
	l.writeIndex(s, s.pos)
	if l.timeIndexing() {
		s.tix = res.tix
		l.report.RebuiltTimeIndexes++
		l.writeTimeIndex(s, s.count(), &s.tix)
	}
	return nil
}

// loadIndex reads and checks a sealed segment's index file.
func (l *Log) loadIndex(s *segment) ([]uint32, error) {
	name := filepath.Join(l.dir, segName(s.id, s.base, idxExt))
	f, err := l.fs.Open(name)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	size, err := f.Size()
	if err != nil {
		return nil, err
	}
	// A segment of n bytes holds at most n/frameHdr records: bound the allocation.
	if size > idxHdrLen+4+4*(s.end/frameHdr) {
		return nil, errors.New("index larger than its segment allows")
	}
	b := make([]byte, size)
	if _, err := f.ReadAt(b, 0); err != nil && !errors.Is(err, io.EOF) {
		return nil, err
	}
	pos, err := decodeIndex(b, s.id, s.base)
	if err != nil {
		return nil, err
	}
	prev := int64(segHdrLen) - frameHdr
	for i, p := range pos {
		if int64(p) < prev+frameHdr || (i == 0 && p != segHdrLen) || int64(p)+frameHdr > s.end {
			return nil, fmt.Errorf("index entry %d (%d) inconsistent", i, p)
		}
		prev = int64(p)
	}
	return pos, nil
}

// checkLastFrame verifies the last frame of a sealed segment: whole, with the right offset,
// closing a batch, and ending exactly at the end of the file.
func (l *Log) checkLastFrame(s *segment) error {
	if len(s.pos) == 0 {
		if s.end != segHdrLen {
			return fmt.Errorf("segment: %s at position %d: bytes after the header of an empty sealed segment: %w", s.path, segHdrLen, storage.ErrCorrupt)
		}
		return nil
	}
	i := len(s.pos) - 1
	p := int64(s.pos[i])
	if s.end-p > int64(frameHdr+l.cfg.MaxRecordBytes) {
		return fmt.Errorf("segment: %s at position %d: last frame too long: %w", s.path, p, storage.ErrCorrupt)
	}
	b := make([]byte, s.end-p)
	if _, err := s.f.ReadAt(b, p); err != nil {
		return fmt.Errorf("segment: read %s at position %d: %w", s.path, p, err)
	}
	fi, _, err := decodeFrame(b, l.cfg.MaxRecordBytes)
	if err == nil && (fi.offset != s.base+uint64(i) || !fi.last || fi.size() != len(b)) {
		err = fmt.Errorf("%w: last frame offset %d (want %d), last-in-batch %v, size %d of %d", errOffset, fi.offset, s.base+uint64(i), fi.last, fi.size(), len(b))
	}
	if err != nil {
		return fmt.Errorf("segment: %s at position %d (sealed segment): %w: %w", s.path, p, storage.ErrCorrupt, err)
	}
	return nil
}

// scanResult is the outcome of scanning a segment's frames.
type scanResult struct {
	pos       []uint32  // positions of the frames of whole batches
	goodEnd   int64     // end of the last whole batch
	frames    int       // valid frames seen, including those of an incomplete batch
	badAt     int64     // position of the first bad frame (when bad != nil)
	bad       error     // why the frame at badAt is bad
	nextValid int64     // when bad != nil: position of a valid frame after badAt, or -1
	tix       timeIndex // the time index of the whole batches (with Config.Timestamp)
}

// scan reads every frame of s, verifying checksums and offsets, until the end of the file or
// the first bad frame. When it finds a bad frame it searches the rest of the file for a
// valid frame, which tells corruption (valid data follows) from a torn tail.
func (l *Log) scan(s *segment) (scanResult, error) {
	res := scanResult{goodEnd: segHdrLen, nextValid: -1}
	var fr frameReader
	fr.reset(s, segHdrLen, s.end, l.cfg.MaxRecordBytes)
	var pos []uint32
	var tix timeIndex
	off := s.base
	for fr.pos < s.end {
		p := fr.pos
		fi, v, err := fr.next()
		if err == nil && fi.offset != off {
			err = fmt.Errorf("%w: frame holds offset %d, want %d", errOffset, fi.offset, off)
		}
		if errors.Is(err, errIO) {
			return res, fmt.Errorf("segment: read %s at position %d: %w", s.path, p, err)
		}
		if err != nil {
			res.badAt, res.bad = p, err
			next, serr := l.findValidFrame(s, p+1, off)
			if serr != nil {
				return res, serr
			}
			res.nextValid = next
			break
		}
		pos = append(pos, uint32(p))
		if l.timeIndexing() {
			l.addTime(&tix, off, v, p)
		}
		res.frames++
		off++
		if fi.last {
			res.goodEnd = fr.pos
			res.pos = pos
			res.tix = tix // entries only grow: the header is a prefix
		}
	}
	res.pos = pos[:len(res.pos)]
	return res, nil
}

// findValidFrame looks for a frame with a valid checksum and an offset of at least minOff
// starting at or after position from. It returns its position, or -1.
func (l *Log) findValidFrame(s *segment, from int64, minOff uint64) (int64, error) {
	const chunk = 64 << 10
	buf := make([]byte, chunk+frameHdr)
	for base := from; base+frameHdr <= s.end; base += chunk {
		n, err := s.f.ReadAt(buf[:min(int64(len(buf)), s.end-base)], base)
		if err != nil && !errors.Is(err, io.EOF) {
			return -1, fmt.Errorf("segment: read %s at position %d: %w", s.path, base, err)
		}
		for i := 0; i+frameHdr <= n && i < chunk; i++ {
			fi, err := peekFrame(buf[i:i+frameHdr], l.cfg.MaxRecordBytes)
			q := base + int64(i)
			if err != nil || fi.offset < minOff || fi.offset-minOff > uint64(s.end-q)/frameHdr || q+int64(fi.size()) > s.end {
				continue
			}
			b := make([]byte, fi.size())
			if _, err := s.f.ReadAt(b, q); err != nil {
				continue
			}
			if _, _, err := decodeFrame(b, l.cfg.MaxRecordBytes); err == nil {
				return q, nil
			}
		}
	}
	return -1, nil
}

// recoverActive scans the last segment and cuts a torn tail back to the last whole batch.
// A bad frame beyond the synced watermark is a torn tail, even with valid frames after it
// (a hole in unsynced data); at or below it, it is corruption, never cut. Without a
// watermark (format version 1), a bad frame followed by a valid one is corruption. It then
// makes the watermark exact.
func (l *Log) recoverActive(s *segment) error {
	mark := s.mark
	l.report.Synced = mark
	if mark > s.end {
		return fmt.Errorf("segment: %s at position %d: %w: the file ends before its synced watermark %d (durable bytes are missing)", s.path, s.end, storage.ErrCorrupt, mark)
	}
	res, err := l.scan(s)
	if err != nil {
		return err
	}
	if res.bad != nil {
		switch {
		case mark >= 0 && res.badAt < mark:
			return fmt.Errorf("segment: %s at position %d: %w: %w (below the synced watermark %d: these bytes were durable)", s.path, res.badAt, storage.ErrCorrupt, res.bad, mark)
		case mark < 0 && res.nextValid >= 0:
			return fmt.Errorf("segment: %s at position %d: %w: %w (a valid frame follows at position %d, so this is not a torn tail)", s.path, res.badAt, storage.ErrCorrupt, res.bad, res.nextValid)
		}
	}
	if mark >= 0 && res.goodEnd < mark {
		return fmt.Errorf("segment: %s at position %d: %w: incomplete batch below the synced watermark %d", s.path, res.goodEnd, storage.ErrCorrupt, mark)
	}
	s.pos = res.pos
	s.tix = res.tix
	cut := res.goodEnd != s.end
	if cut {
		n := s.end - res.goodEnd
		dropped := res.frames - len(res.pos)
		if err := s.f.Truncate(res.goodEnd); err != nil {
			return fmt.Errorf("segment: cut torn tail of %s: %w", s.path, err)
		}
		if err := s.f.Sync(); err != nil {
			return fmt.Errorf("segment: fdatasync %s: %w", s.path, err)
		}
		s.end = res.goodEnd
		l.report.TruncatedFile = s.path
		l.report.TruncatedBytes = n
		l.report.DroppedRecords = dropped
		l.report.Hole = res.bad != nil && res.nextValid >= 0
		why := "end of file"
		if res.bad != nil {
			why = res.bad.Error()
		}
		if l.report.Hole {
			l.logger.Warn("segment: cut a torn tail with a hole (unsynced data partly lost in a power failure) back to the last whole batch; its records are replayed by whoever replicates the log",
				"file", s.path, "position", res.goodEnd, "bytes", n, "dropped_records", dropped, "synced", mark, "hole_at", res.badAt, "valid_frame_at", res.nextValid, "reason", why)
		} else {
			l.logger.Warn("segment: cut a torn tail back to the last whole batch",
				"file", s.path, "position", res.goodEnd, "bytes", n, "dropped_records", dropped, "synced", mark, "reason", why)
		}
	}
	if s.mark != s.end {
		// Everything kept is now known durable: record it, so that a later power failure
		// tells a hole in new, unsynced data from corruption of this data.
		if !cut {
			if err := s.f.Sync(); err != nil {
				return fmt.Errorf("segment: fdatasync %s: %w", s.path, err)
			}
		}
		if err := l.writeMark(s, s.end); err != nil {
			return fmt.Errorf("segment: %w", err)
		}
		if err := s.f.Sync(); err != nil {
			return fmt.Errorf("segment: fdatasync %s: %w", s.path, err)
		}
	}
	return nil
}

// removeSegmentFiles removes a segment file and its index files. A failure to remove an index is
// ignored (Open removes orphan indexes); the caller syncs the directory.
func (l *Log) removeSegmentFiles(s *segment) error {
	if cf, ok := s.f.(*cachedFile); ok {
		// Reads in flight on s keep reading the removed file, as through any descriptor.
		cf.pin()
	}
	_ = l.fs.Remove(filepath.Join(l.dir, segName(s.id, s.base, idxExt)))
	_ = l.fs.Remove(filepath.Join(l.dir, segName(s.id, s.base, tixExt)))
	if err := l.fs.Remove(s.path); err != nil {
		return fmt.Errorf("remove %s: %w", s.path, err)
	}
	return nil
}
