package fsm

import (
	"bytes"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"time"

	"github.com/commitlog-go/commitlog/consensus"
	"github.com/commitlog-go/commitlog/server/internal/chaosbugs"
	"github.com/commitlog-go/commitlog/storage"
)

const (
	// dataChunkBytes is how much SnapshotData reads from the log at a time.
	dataChunkBytes = 256 << 10
	// ingestBatchRecords bounds the records of one Append while Restore ingests.
	ingestBatchRecords = 4096
)

// snapshot is the consensus.Snapshot Snapshot returns: a manifest, nothing else.
type snapshot struct {
	log storage.Log
	m   manifest
}

// Persist syncs the log, so that the manifest never covers records a crash could lose, then
// writes the manifest. It may run concurrently with Apply.
func (s *snapshot) Persist(w io.Writer) error {
	if !chaosbugs.On(chaosbugs.SnapshotNoSync) {
		if err := s.log.Sync(); err != nil {
			return fmt.Errorf("fsm: persist snapshot at index %d: sync log: %w", s.m.Index, err)
		}
	}
	if _, err := w.Write(s.m.encode()); err != nil {
		return fmt.Errorf("fsm: persist snapshot at index %d: %w", s.m.Index, err)
	}
	return nil
}

// Release implements consensus.Snapshot; a manifest holds nothing to release.
func (s *snapshot) Release() {}

// Snapshot implements consensus.StateMachine: it captures the applied index and term and the
// log's bounds, reading nothing. Errors: the sticky ErrFailed.
func (f *FSM) Snapshot() (consensus.Snapshot, error) {
	if err := f.Err(); err != nil {
		return nil, err
	}
	lowest, next := f.log.Bounds()
	return &snapshot{log: f.log, m: manifest{
		Index: f.applied.Load(), Term: f.term,
		Lowest: lowest, Next: next, First: min(max(lowest, f.first.Load()), next),
		NextPos: f.nextPos, HasNextPos: f.hasPos,
		LastCRC: f.lastCRC, HasLastCRC: f.hasLastCRC && next > 0,
	}}, nil
}

// SnapshotData implements consensus.SnapshotSource: it returns the stream of the records
// [max(manifest first, log lowest), manifest next) of the local log, in the format documented
// in snapshot_format.go. The stream reads the log lazily, a chunk at a time, as it is read; it
// must be read from one goroutine, and closed. It may be used concurrently with Apply.
//
// Errors: a manifest that does not decode (wrapping storage.ErrCorrupt); storage.ErrOutOfRange
// (wrapped) when the log does not reach the manifest's next offset. Reading the stream returns
// the log's errors, wrapped.
func (f *FSM) SnapshotData(manifestBytes []byte) (io.ReadCloser, error) {
	m, first, err := f.dataRange(manifestBytes)
	if err != nil {
		return nil, err
	}
	return &dataReader{log: f.log, cur: first, next: m.Next, buf: appendStreamHeader(nil, first, m.Next)}, nil
}

// dataRange decodes a manifest and returns the first offset of its data stream.
func (f *FSM) dataRange(manifestBytes []byte) (manifest, uint64, error) {
	m, err := decodeManifest(manifestBytes)
	if err != nil {
		return manifest{}, 0, err
	}
	lowest, next := f.log.Bounds()
	if next < m.Next {
		return manifest{}, 0, fmt.Errorf("fsm: snapshot data for index %d: log holds [%d, %d), the snapshot reaches %d: %w",
			m.Index, lowest, next, m.Next, storage.ErrOutOfRange)
	}
	return m, min(max(m.First, lowest), m.Next), nil
}

// SnapshotDataSize implements consensus.SnapshotSizer: the exact length of the stream
// SnapshotData(manifest) yields, computed from the byte positions of the first record and of
// the manifest's next offset (see the envelope), reading one record. Retention that removes
// records between this call and SnapshotData changes the stream (the transfer then fails and
// is retried). Safe for concurrent use with Apply.
//
// Errors: as SnapshotData's; a manifest without a byte position, or a record whose position
// is past the manifest's (wrapping storage.ErrCorrupt).
func (f *FSM) SnapshotDataSize(manifestBytes []byte) (int64, error) {
	m, first, err := f.dataRange(manifestBytes)
	if err != nil {
		return 0, err
	}
	if first == m.Next {
		return streamHeaderLen, nil
	}
	if !m.HasNextPos {
		return 0, fmt.Errorf("fsm: snapshot data size for index %d: the manifest has no byte position: %w", m.Index, storage.ErrCorrupt)
	}
	b, err := f.log.Read(first)
	if err != nil {
		return 0, fmt.Errorf("fsm: snapshot data size for index %d: read %d: %w", m.Index, first, err)
	}
	env, err := decodeEnvelope(b)
	if err != nil {
		return 0, fmt.Errorf("fsm: snapshot data size for index %d: record %d: %w", m.Index, first, err)
	}
	if env.Pos >= m.NextPos {
		return 0, fmt.Errorf("fsm: snapshot data size for index %d: record %d at byte %d, the snapshot ends at byte %d: %w",
			m.Index, first, env.Pos, m.NextPos, storage.ErrCorrupt)
	}
	return int64(streamHeaderLen + frameHeaderLen*(m.Next-first) + (m.NextPos - env.Pos)), nil
}

// dataReader streams the records [cur, next) of a log as snapshot data frames.
type dataReader struct {
	log       storage.Log
	cur, next uint64
	buf       []byte
	pos       int
	err       error // sticky: io.EOF at the end, or the first error
}

// errDataClosed is returned by a snapshot data stream read after Close.
var errDataClosed = errors.New("fsm: snapshot data stream closed")

func (d *dataReader) Read(p []byte) (int, error) {
	for d.pos == len(d.buf) {
		if d.err != nil {
			return 0, d.err
		}
		if d.cur == d.next {
			d.err = io.EOF
			continue
		}
		d.fill()
	}
	n := copy(p, d.buf[d.pos:])
	d.pos += n
	return n, nil
}

// fill replaces the buffer with the frames of the next chunk of records, or sets d.err.
func (d *dataReader) fill() {
	d.buf, d.pos = d.buf[:0], 0
	progress := false
	for rec, err := range d.log.Records(d.cur, d.next) {
		if err != nil {
			d.err = fmt.Errorf("fsm: snapshot data: read offset %d: %w", d.cur, err)
			return
		}
		if rec.Offset != d.cur {
			d.err = fmt.Errorf("fsm: snapshot data: log yielded offset %d where %d was expected: %w", rec.Offset, d.cur, storage.ErrCorrupt)
			return
		}
		d.buf = appendFrame(d.buf, rec.Offset, rec.Value)
		d.cur++
		progress = true
		if len(d.buf) >= dataChunkBytes {
			return
		}
	}
	if !progress {
		d.err = fmt.Errorf("fsm: snapshot data: log ended at %d before %d: %w", d.cur, d.next, storage.ErrOutOfRange)
	}
}

// Close releases the stream; later reads fail. It is idempotent.
func (d *dataReader) Close() error {
	d.err, d.buf, d.pos = errDataClosed, nil, 0
	return nil
}

// Restore implements consensus.StateMachine (see the package doc). When the local log already
// reaches the manifest's next offset it checks the log's record at next-1 against the
// manifest's checksum and keeps the log, reading nothing from data. Otherwise it ingests data.
//
// Errors: the sticky ErrFailed; a bad manifest, a log that differs from the snapshot, or a bad
// data stream (wrapping storage.ErrCorrupt; a stream cut short also wraps io.ErrUnexpectedEOF);
// data's own read errors, wrapped. A storage failure while ingesting is fatal (ErrFailed).
func (f *FSM) Restore(manifestBytes []byte, data io.Reader) error {
	if err := f.Err(); err != nil {
		return err
	}
	m, err := decodeManifest(manifestBytes)
	if err != nil {
		return fmt.Errorf("fsm: restore: %w", err)
	}
	lowest, next := f.log.Bounds()
	// The log holds the snapshot when it reaches the manifest's next offset and either starts
	// at or below it, or was compacted past it after applying the snapshot's entries. (A log
	// lying wholly beyond the snapshot with nothing applied is not this cluster's: ingest.)
	if next >= m.Next && (lowest <= m.Next || f.applied.Load() >= m.Index) {
		return f.restoreKeep(m, lowest, next)
	}
	if data == nil {
		return fmt.Errorf("fsm: restore snapshot at index %d: the log holds [%d, %d) and there is no data to reach %d: %w",
			m.Index, lowest, next, m.Next, storage.ErrOutOfRange)
	}
	if err := f.restoreIngest(m, data, lowest, next); err != nil {
		// What was ingested is a verified prefix of the source's log: make the applied index
		// say exactly that.
		if lerr := f.loadLast(); lerr != nil && f.Err() == nil {
			f.fail(fmt.Errorf("reload after a failed restore: %w", lerr))
		}
		return err
	}
	return nil
}

// restoreKeep keeps the local log, which holds [lowest, next) with next >= m.Next.
func (f *FSM) restoreKeep(m manifest, lowest, next uint64) error {
	if m.HasLastCRC && m.Next > lowest {
		b, err := f.log.Read(m.Next - 1)
		if err != nil {
			return fmt.Errorf("fsm: restore snapshot at index %d: read record %d: %w", m.Index, m.Next-1, err)
		}
		if crc32.Checksum(b, castagnoli) != m.LastCRC {
			return fmt.Errorf("fsm: restore snapshot at index %d: the log's record %d is not the snapshot's: %w",
				m.Index, m.Next-1, storage.ErrCorrupt)
		}
	}
	if next == m.Next && m.HasNextPos {
		if f.hasPos && f.nextPos != m.NextPos {
			return fmt.Errorf("fsm: restore snapshot at index %d: the log ends at byte %d, the snapshot at byte %d: %w",
				m.Index, f.nextPos, m.NextPos, storage.ErrCorrupt)
		}
		f.nextPos, f.hasPos = m.NextPos, true
	}
	if m.Index > f.applied.Load() {
		f.setApplied(m.Index, m.Term)
		if next == m.Next {
			f.lastCRC, f.hasLastCRC = m.LastCRC, m.HasLastCRC
		}
	}
	f.raiseFirst(m.First)
	f.logger.Debug("restored snapshot onto the local log", "index", m.Index, "snapshot_next", m.Next, "log_lowest", lowest, "log_next", next)
	return nil
}

// ingest batches verified records for Append while Restore ingests a stream.
type ingest struct {
	f       *FSM
	scratch []byte
	spans   [][2]int
	recs    [][]byte
	next    uint64 // offset the next appended record must get
}

func (in *ingest) add(rec []byte) error {
	start := len(in.scratch)
	in.scratch = append(in.scratch, rec...)
	in.spans = append(in.spans, [2]int{start, len(in.scratch)})
	if len(in.scratch) >= in.f.maxAppend || len(in.spans) >= ingestBatchRecords {
		return in.flush()
	}
	return nil
}

// flush appends the batched records. Any storage error is fatal.
func (in *ingest) flush() error {
	if len(in.spans) == 0 {
		return nil
	}
	in.recs = in.recs[:0]
	for _, s := range in.spans {
		in.recs = append(in.recs, in.scratch[s[0]:s[1]])
	}
	err := in.append(in.recs)
	if errors.Is(err, storage.ErrTooLarge) && len(in.recs) > 1 {
		// The source stored each of them, so they fit one by one.
		err = nil
		for _, r := range in.recs {
			if err = in.append([][]byte{r}); err != nil {
				break
			}
		}
	}
	clear(in.recs)
	in.scratch, in.spans = in.scratch[:0], in.spans[:0]
	if err != nil {
		return in.f.fail(fmt.Errorf("restore: %w", err))
	}
	return nil
}

func (in *ingest) append(recs [][]byte) error {
	first, err := in.f.log.Append(recs...)
	if err != nil {
		return fmt.Errorf("append snapshot records at %d: %w", in.next, err)
	}
	if first != in.next {
		return fmt.Errorf("append snapshot records: log put them at %d, expected %d", first, in.next)
	}
	in.next += uint64(len(recs))
	in.f.goodNext.Store(in.next)
	return nil
}

// restoreIngest brings the log, which holds [lowest, next), to the source's records up to
// m.Next from the stream.
func (f *FSM) restoreIngest(m manifest, data io.Reader, lowest, next uint64) error {
	sr, err := newStreamReader(data)
	if err != nil {
		return fmt.Errorf("fsm: restore snapshot at index %d: %w", m.Index, err)
	}
	if sr.next != m.Next {
		return fmt.Errorf("fsm: restore snapshot at index %d: %w: stream ends at %d, manifest at %d", m.Index, errBadStream, sr.next, m.Next)
	}
	// The local log continues the stream when it ends inside it and holds records (an empty
	// log is simply moved to the stream's start). Otherwise it is reset before the first
	// verified record is appended, so a stream that fails its first check changes nothing.
	reset := next < sr.first || (lowest == next && next != sr.first)
	in := &ingest{f: f, next: next}
	have := next // the stream's records below have are skipped: the log holds them
	// pos is the byte position the next ingested record must have; unknown after a reset
	// until the first record gives it, then chained record by record.
	pos, hasPos := f.nextPos, f.hasPos
	if reset {
		in.next, have, hasPos = sr.first, 0, false
	}
	var last []byte
	lastReport := time.Now() // a long install reports its progress every snapshotProgressEvery
	for {
		off, rec, err := sr.frame()
		if errors.Is(err, io.EOF) {
			break
		}
		var env envelope
		if err == nil {
			env, err = checkIngested(m, rec)
		}
		if err != nil {
			if ferr := in.flush(); ferr != nil {
				return ferr
			}
			return fmt.Errorf("fsm: restore snapshot at index %d: %w", m.Index, err)
		}
		if off < have || (chaosbugs.On(chaosbugs.SnapshotRestoreOffByOne) && off == max(have, sr.first)) {
			if off == have-1 {
				local, err := f.log.Read(off)
				if err != nil {
					return fmt.Errorf("fsm: restore snapshot at index %d: read local record %d: %w", m.Index, off, err)
				}
				if !bytes.Equal(local, rec) {
					return fmt.Errorf("fsm: restore snapshot at index %d: the local log differs from the snapshot at offset %d: %w",
						m.Index, off, storage.ErrCorrupt)
				}
			}
			continue
		}
		if hasPos && env.Pos != pos {
			if ferr := in.flush(); ferr != nil {
				return ferr
			}
			return fmt.Errorf("fsm: restore snapshot at index %d: %w: record %d at byte %d, expected %d", m.Index, errBadStream, off, env.Pos, pos)
		}
		pos, hasPos = env.Pos+uint64(len(rec)), true
		if reset {
			if err := f.resetLog(sr.first); err != nil {
				return err
			}
			f.logger.Info("snapshot does not overlap the log: reset it", "index", m.Index, "log_lowest", lowest, "log_next", next, "stream_first", sr.first)
			reset = false
		}
		if err := in.add(rec); err != nil {
			return err
		}
		last = append(last[:0], rec...)
		if off%4096 == 0 && time.Since(lastReport) >= snapshotProgressEvery {
			lastReport = time.Now()
			f.logger.Info("installing snapshot", "index", m.Index, "offset", off, "next", m.Next,
				"percent", 100*(off-sr.first)/max(m.Next-sr.first, 1))
		}
	}
	if reset { // an empty stream: nothing to verify first
		if err := f.resetLog(sr.first); err != nil {
			return err
		}
	}
	if err := in.flush(); err != nil {
		return err
	}
	if last != nil && m.HasLastCRC && crc32.Checksum(last, castagnoli) != m.LastCRC {
		return fmt.Errorf("fsm: restore snapshot at index %d: last record does not match the manifest: %w", m.Index, storage.ErrCorrupt)
	}
	if hasPos && m.HasNextPos && pos != m.NextPos {
		return fmt.Errorf("fsm: restore snapshot at index %d: the log ends at byte %d, the manifest at %d: %w", m.Index, pos, m.NextPos, storage.ErrCorrupt)
	}
	if _, n := f.log.Bounds(); n != m.Next {
		return f.fail(fmt.Errorf("restore snapshot at index %d: log reaches %d after ingesting, want %d", m.Index, n, m.Next))
	}
	f.setApplied(m.Index, m.Term)
	f.lastCRC, f.hasLastCRC = m.LastCRC, m.HasLastCRC
	f.nextPos, f.hasPos = m.NextPos, m.HasNextPos
	f.lastTS = 0
	if last != nil {
		env, _ := decodeEnvelope(last) // checked when ingested
		f.lastTS = env.Timestamp
	} else if err := f.loadLastTS(); err != nil {
		return err
	}
	f.raiseFirst(m.First)
	f.logger.Info("installed snapshot", "index", m.Index, "term", m.Term, "first", sr.first, "next", m.Next, "log_next_before", next)
	return nil
}

// resetLog empties the log and makes it start at first: a log that does not overlap a
// snapshot's stream is replaced by it, its first offset with it. A failure is fatal.
func (f *FSM) resetLog(first uint64) error {
	if err := f.log.Reset(first); err != nil {
		return f.fail(fmt.Errorf("restore: reset log to %d: %w", first, err))
	}
	f.first.Store(first)
	f.goodNext.Store(first)
	return nil
}

// raiseFirst makes first the log's first offset unless it already starts higher (it never
// moves down: what retention cut is gone everywhere), and drops the storage's whole segments
// below it. A failure to drop segments only keeps bytes nobody reads; it is logged.
func (f *FSM) raiseFirst(first uint64) {
	for {
		cur := f.first.Load()
		if first <= cur || f.first.CompareAndSwap(cur, first) {
			break
		}
	}
	if err := f.Compact(); err != nil {
		f.logger.Warn("could not drop the segments below the log start", "first", f.first.Load(), "err", err)
	}
}

// loadLastTS sets the last timestamp from the log's last record (none in an empty log).
func (f *FSM) loadLastTS() error {
	lowest, next := f.log.Bounds()
	f.lastTS = 0
	if next == lowest {
		return nil
	}
	b, err := f.log.Read(next - 1)
	if err != nil {
		return fmt.Errorf("fsm: read last record %d: %w", next-1, err)
	}
	env, err := decodeEnvelope(b)
	if err != nil {
		return fmt.Errorf("fsm: last record %d: %w", next-1, err)
	}
	f.lastTS = env.Timestamp
	return nil
}

// snapshotProgressEvery is how often a snapshot install logs how far it is.
const snapshotProgressEvery = 5 * time.Second

// checkIngested verifies that a stream record is an envelope written at or below the
// snapshot's index.
func checkIngested(m manifest, rec []byte) (envelope, error) {
	env, err := decodeEnvelope(rec)
	if err != nil {
		return envelope{}, err
	}
	if env.Index > m.Index {
		return envelope{}, fmt.Errorf("%w: record written at index %d, after the snapshot's %d", errBadStream, env.Index, m.Index)
	}
	return env, nil
}
