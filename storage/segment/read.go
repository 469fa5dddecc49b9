package segment

import (
	"errors"
	"fmt"
	"io"
	"iter"
	"sort"

	"github.com/commitlog-go/commitlog/storage"
)

// findLocked returns the segment holding off, which must be in [lowest, next). l.mu must
// be held.
func (l *Log) findLocked(off uint64) *segment {
	i := sort.Search(len(l.segs), func(i int) bool { return l.segs[i].base > off }) - 1
	return l.segs[i]
}

// Read implements storage.Log. It reads the record's frame with one pread (from the page
// cache when warm) and verifies its checksum; it never waits for an append in progress.
// Errors: storage.ErrOutOfRange, storage.ErrCorrupt (wrapped with file and position),
// storage.ErrClosed.
func (l *Log) Read(off uint64) ([]byte, error) {
	for {
		v, err := l.read(off)
		if err != errRewritten {
			return v, err
		}
	}
}

// errRewritten: the log was truncated or reset since the record's position was looked up, so
// what was read there proves nothing: look again.
var errRewritten = errors.New("segment: rewritten during the read")

// read is one attempt of Read: errRewritten, or Read's answer.
func (l *Log) read(off uint64) (v []byte, err error) {
	l.mu.RLock()
	if l.closed.Load() {
		l.mu.RUnlock()
		return nil, storage.ErrClosed
	}
	if off < l.lowest || off >= l.next {
		lo, hi := l.lowest, l.next
		l.mu.RUnlock()
		return nil, fmt.Errorf("segment: read %d (log holds [%d, %d)): %w", off, lo, hi, storage.ErrOutOfRange)
	}
	s := l.findLocked(off)
	i := int(off - s.base)
	p, end := int64(s.pos[i]), s.frameEnd(i)
	rewrites := l.rewrites.Load()
	s.acquire()
	l.mu.RUnlock()
	defer s.release()

	buf := make([]byte, end-p)
	var fi frameInfo
	// A second attempt covers a read racing with TruncateSuffix rewriting the header of the
	// new last record (an 8-byte in-place write); real corruption fails twice.
	for attempt := 0; attempt < 2; attempt++ {
		if _, err = s.f.ReadAt(buf, p); err != nil {
			if l.rewrittenSince(rewrites) {
				return nil, errRewritten
			}
			return nil, l.readError(s, off, p, err)
		}
		fi, v, err = decodeFrame(buf, l.cfg.MaxRecordBytes)
		if err == nil && (fi.offset != off || fi.size() != len(buf)) {
			err = fmt.Errorf("%w: frame holds offset %d, length %d", errOffset, fi.offset, fi.length)
		}
		if err == nil {
			break
		}
	}
	if err != nil {
		if l.rewrittenSince(rewrites) {
			return nil, errRewritten
		}
		if l.gone(off) {
			return nil, fmt.Errorf("segment: read %d: truncated concurrently: %w", off, storage.ErrOutOfRange)
		}
		return nil, fmt.Errorf("segment: %s at position %d (offset %d): %w: %w", s.path, p, off, storage.ErrCorrupt, err)
	}
	if l.rewrittenSince(rewrites) {
		// A whole record, but maybe another one: the offset written again after a
		// TruncateSuffix, and not durable yet under SyncAlways.
		return nil, errRewritten
	}
	return v, nil
}

// rewrittenSince reports whether TruncateSuffix or Reset ran since rewrites was read.
func (l *Log) rewrittenSince(rewrites uint64) bool {
	return l.rewrites.Load() != rewrites
}

// gone reports whether off has left the log (truncated, reset or closed) since a read began.
func (l *Log) gone(off uint64) bool {
	l.mu.RLock()
	defer l.mu.RUnlock()
	return l.closed.Load() || off < l.lowest || off >= l.next
}

// readError classifies a failed pread.
func (l *Log) readError(s *segment, off uint64, p int64, err error) error {
	if l.gone(off) {
		if l.closed.Load() {
			return storage.ErrClosed
		}
		return fmt.Errorf("segment: read %d: truncated concurrently: %w", off, storage.ErrOutOfRange)
	}
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
		return fmt.Errorf("segment: %s at position %d (offset %d): file too short: %w", s.path, p, off, storage.ErrCorrupt)
	}
	return fmt.Errorf("segment: read %s at position %d: %w", s.path, p, err)
}

// Records implements storage.Log. It streams frames sequentially with large preads into a
// reusable buffer (the yielded Value slices alias it) and verifies every checksum.
// Errors (yielded, ending the iteration): storage.ErrOutOfRange if from is below Lowest or
// the records were truncated concurrently, storage.ErrCorrupt, storage.ErrClosed.
func (l *Log) Records(from, to uint64) iter.Seq2[storage.Record, error] {
	return func(yield func(storage.Record, error) bool) {
		l.mu.RLock()
		if to > l.next {
			to = l.next
		}
		l.mu.RUnlock()
		var r frameReader
		for off := from; off < to; {
			l.mu.RLock()
			if l.closed.Load() {
				l.mu.RUnlock()
				yield(storage.Record{}, storage.ErrClosed)
				return
			}
			if off < l.lowest || off >= l.next {
				lo, hi := l.lowest, l.next
				l.mu.RUnlock()
				yield(storage.Record{}, fmt.Errorf("segment: records from %d (log holds [%d, %d)): %w", off, lo, hi, storage.ErrOutOfRange))
				return
			}
			s := l.findLocked(off)
			rewrites := l.rewrites.Load()
			stop := min(to, s.base+s.count())
			start := int64(s.pos[off-s.base])
			end := s.end
			if stop < s.base+s.count() {
				end = int64(s.pos[stop-s.base])
			}
			s.acquire()
			l.mu.RUnlock()

			r.reset(s, start, end, l.cfg.MaxRecordBytes)
			for ; off < stop; off++ {
				p := r.pos
				fi, v, err := r.next()
				if err == nil && fi.offset != off {
					err = fmt.Errorf("%w: frame holds offset %d", errOffset, fi.offset)
				}
				if l.rewrittenSince(rewrites) {
					// Truncated or reset since the positions were looked up: what was read
					// may be other bytes, even a record written again and not durable yet.
					// Look again from off (what was yielded was the log's then).
					break
				}
				if err != nil {
					s.release()
					switch {
					case l.gone(off) && l.closed.Load():
						err = storage.ErrClosed
					case l.gone(off):
						err = fmt.Errorf("segment: records at %d: truncated concurrently: %w", off, storage.ErrOutOfRange)
					case errors.Is(err, errIO):
						err = fmt.Errorf("segment: read %s at position %d: %w", s.path, p, err)
					default:
						err = fmt.Errorf("segment: %s at position %d (offset %d): %w: %w", s.path, p, off, storage.ErrCorrupt, err)
					}
					yield(storage.Record{}, err)
					return
				}
				if !yield(storage.Record{Offset: off, Value: v}, nil) {
					s.release()
					return
				}
			}
			s.release()
		}
	}
}

// errIO marks a frameReader error that came from the file, not from the data.
var errIO = errors.New("segment: I/O error")

// readChunk is the size of the sequential reads of frameReader.
const readChunk = 256 << 10

// frameReader decodes the frames of a byte range of a segment file with large reads.
type frameReader struct {
	s        *segment
	pos, end int64 // file position of the next frame, end of the range
	maxLen   int
	buf      []byte // buf[r:w] holds file bytes from position pos
	r, w     int
}

func (fr *frameReader) reset(s *segment, start, end int64, maxLen int) {
	fr.s, fr.pos, fr.end, fr.maxLen, fr.r, fr.w = s, start, end, maxLen, 0, 0
	// Size the buffer to the range (a tailing reader often reads a few records), up to
	// readChunk; fill grows it for a frame larger than the buffer.
	if want := int(min(readChunk, max(end-start, 4096))); len(fr.buf) < want {
		fr.buf = make([]byte, want)
	}
}

// fill makes at least n bytes available at buf[r:], reading ahead up to the range's end.
func (fr *frameReader) fill(n int) error {
	if fr.w-fr.r >= n {
		return nil
	}
	if int64(n) > fr.end-fr.pos {
		return errShort
	}
	copy(fr.buf, fr.buf[fr.r:fr.w])
	fr.w -= fr.r
	fr.r = 0
	if n > len(fr.buf) {
		nb := make([]byte, max(n, 2*len(fr.buf)))
		copy(nb, fr.buf[:fr.w])
		fr.buf = nb
	}
	want := min(int64(len(fr.buf)), fr.end-fr.pos) // bytes to hold from pos
	m, err := fr.s.f.ReadAt(fr.buf[fr.w:want], fr.pos+int64(fr.w))
	fr.w += m
	if fr.w-fr.r < n {
		if err == nil || errors.Is(err, io.EOF) {
			return errShort
		}
		return fmt.Errorf("%w: %w", errIO, err)
	}
	return nil
}

// next decodes the next frame; the value aliases the reader's buffer.
func (fr *frameReader) next() (frameInfo, []byte, error) {
	if err := fr.fill(frameHdr); err != nil {
		return frameInfo{}, nil, err
	}
	fi, err := peekFrame(fr.buf[fr.r:fr.w], fr.maxLen)
	if err != nil {
		return fi, nil, err
	}
	if err := fr.fill(fi.size()); err != nil {
		return fi, nil, err
	}
	fi, v, err := decodeFrame(fr.buf[fr.r:fr.w], fr.maxLen)
	if err != nil {
		return fi, nil, err
	}
	fr.r += fi.size()
	fr.pos += int64(fi.size())
	return fi, v, nil
}
