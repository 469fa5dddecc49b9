// Package segment is a durable storage.Log kept in segmented files: an append-only log of
// records addressed by dense offsets that other projects can embed on its own.
//
// Records are framed with their length, offset and a CRC-32C checksum and appended to the
// active segment file; segments roll at Config.SegmentBytes. A batch (one Append) is written
// by one write(2) and is atomic across crashes. Durability follows Config.Sync; under
// SyncAlways concurrent appenders are group-committed (one fdatasync for all of them). Each
// segment header records how far the segment was synced (its durable watermark). Open recovers
// the directory: a torn tail beyond the watermark — a partial batch, garbage, or a hole left by
// unordered page writeback with valid frames after it — is cut back to the last whole batch
// and reported (Log.Recovery), while damage at or below the watermark, or anywhere else, makes
// Open fail with an error wrapping storage.ErrCorrupt that names the file and position. See
// format.go for the on-disk format.
//
// Concurrency: every method of Log is safe for concurrent use. Appends and structural
// changes (truncation, retention, segment rolls) are serialized; reads run concurrently with
// them and never wait for a write or fsync in progress.
//
// Lock order: wmu, then smu, then mu. mu is never held across file I/O except the small
// header writes of Open.
package segment

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"path/filepath"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/commitlog-go/commitlog/storage"
	"github.com/commitlog-go/commitlog/storage/vfs"
)

var _ storage.Log = (*Log)(nil)

// Log is a segmented, durable storage.Log. Create one with Open; all methods are safe for
// concurrent use.
type Log struct {
	cfg    Config
	fs     vfs.FS
	dir    string
	logger *slog.Logger
	lock   io.Closer
	report RecoveryReport

	closed atomic.Bool // set once by Close; checked without locks on fast paths

	// wmu serializes writers: Append, rolls, truncations, retention, Reset, Close.
	wmu       sync.Mutex
	wbuf      []byte   // reusable encoding buffer (wmu)
	wpos      []uint32 // reusable frame positions of the batch being written (wmu)
	active    *segment // the segment appended to (wmu; also in segs)
	nextWrite uint64   // offset the next appended record gets (wmu)
	nextID    uint64   // id of the next segment file (wmu)
	firstID   uint64   // the first segment id the FIRST file holds; 0: none yet (wmu)

	// smu guards the group-commit state.
	smu     sync.Mutex
	scond   *sync.Cond
	written uint64          // logical bytes handed to write(2) since Open (smu)
	synced  uint64          // logical bytes known durable (smu)
	syncing bool            // the sync token: a goroutine is running fdatasync or rewriting a header (smu)
	sseg    *segment        // the segment the next fdatasync targets (smu)
	sEnd    int64           // sseg's file position matching written (smu)
	sMark   int64           // sseg's file position known durable (smu)
	hbuf    [segHdrLen]byte // header rewrites' buffer (sync token)
	pending []pending       // SyncAlways: written batches not yet visible (smu)
	failed  error           // sticky write error, wraps storage.ErrFailed (smu)

	// mu guards what readers see.
	mu     sync.RWMutex
	segs   []*segment // ordered by base offset (mu)
	lowest uint64     // first offset held (mu)
	start  uint64     // offset the owner last cut the log at, as START records it (mu; written under wmu too)
	next   uint64     // first offset not visible to readers (mu)
	// rewrites counts TruncateSuffix and Reset calls (changed with mu held for writing, before
	// they touch a file): a reader that found a record's position before one may read other
	// bytes there — no corruption, but no record of the log either (another record at that
	// offset, maybe one not yet durable).
	rewrites atomic.Uint64
	notify   chan struct{}

	stop chan struct{}  // closed by Close to stop the interval syncer
	wg   sync.WaitGroup // the interval syncer

	// lookupHook, nil but in tests, runs in OffsetForTimeFrom after it found the span to read
	// and dropped mu, before it reads it: where a truncation is a race the lookup survives.
	lookupHook func()
}

// pending is a batch written but not yet durable under SyncAlways.
type pending struct {
	end  uint64 // logical byte position of the batch's end
	next uint64 // offset after the batch
}

// segment is one segment file.
type segment struct {
	id      uint64
	base    uint64
	created int64 // unix nanoseconds
	path    string
	f       vfs.File
	refs    atomic.Int32 // the segs list holds one; each in-flight read holds one
	// resetFlag: the header carries flagReset (segments with lower ids are obsolete).
	resetFlag bool

	// Guarded by the sync token (Log.syncing), or owned by Open.
	hdr  segHeader // the header as last read or written
	mark int64     // the header's synced watermark (durable, or with the next fdatasync); -1: none (version 1)

	// Guarded by Log.mu (written with it held for writing).
	pos    []uint32 // pos[i]: file position of the frame of offset base+i
	end    int64    // file size: end of the last frame written
	sealed bool
	tix    timeIndex // the time index, when Config.Timestamp is set
}

// count returns the number of records in the segment. Log.mu must be held.
func (s *segment) count() uint64 { return uint64(len(s.pos)) }

// frameEnd returns the end position of the frame at index i. Log.mu must be held.
func (s *segment) frameEnd(i int) int64 {
	if i+1 < len(s.pos) {
		return int64(s.pos[i+1])
	}
	return s.end
}

func (s *segment) acquire() { s.refs.Add(1) }

// release drops a reference; the last one closes the file.
func (s *segment) release() {
	if s.refs.Add(-1) == 0 {
		_ = s.f.Close()
	}
}

// RecoveryReport says what Open found and repaired.
type RecoveryReport struct {
	// Segments is the number of segment files opened.
	Segments int
	// RebuiltIndexes counts sealed segments whose index file was missing or bad and was
	// rebuilt by scanning the segment.
	RebuiltIndexes int
	// RebuiltTimeIndexes counts sealed segments whose time index file was missing or bad and
	// was rebuilt by scanning the segment (only with Config.Timestamp).
	RebuiltTimeIndexes int
	// TruncatedFile is the segment whose torn tail was cut, if any.
	TruncatedFile string
	// TruncatedBytes is the number of bytes cut from the tail.
	TruncatedBytes int64
	// DroppedRecords is the number of whole, valid frames cut because the rest of their
	// batch was missing (a batch is all or nothing).
	DroppedRecords int
	// Synced is the active segment's durable watermark as Open found it in its header: the
	// file position up to which its bytes were known durable (see format.go), or -1 for a
	// segment of format version 1, which has none.
	Synced int64
	// Hole reports that the cut tail held a bad frame followed by valid ones: a hole left by
	// a power failure in data that was never synced (page writeback is not ordered). It lay
	// beyond Synced, so it was cut as a torn tail, not refused as corruption.
	Hole bool
	// RemovedFiles lists files deleted by recovery: a segment whose header was torn at
	// creation, or segments made obsolete by an interrupted Reset.
	RemovedFiles []string
}

// Open opens (creating if needed) the log in dir and recovers it. It takes an exclusive
// lock on dir: a second Open of the same directory, in this process or another, fails with
// an error wrapping storage.ErrLocked until the first Log is closed.
//
// Errors: ErrInvalidConfig (naming the Config field out of range); storage.ErrLocked; storage.ErrCorrupt (wrapped with the file and
// position of the defect) when the log holds corruption that is not a torn tail; I/O errors.
func Open(dir string, cfg Config) (*Log, error) {
	cfg = cfg.withDefaults()
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	l := &Log{cfg: cfg, fs: cfg.FS, dir: dir, logger: cfg.Logger, stop: make(chan struct{})}
	l.scond = sync.NewCond(&l.smu)
	if err := l.fs.MkdirAll(dir); err != nil {
		return nil, fmt.Errorf("segment: create %s: %w", dir, err)
	}
	lock, err := l.fs.Lock(filepath.Join(dir, lockName))
	if err != nil {
		if errors.Is(err, vfs.ErrLocked) {
			return nil, fmt.Errorf("segment: open %s: %w (%w)", dir, storage.ErrLocked, err)
		}
		return nil, fmt.Errorf("segment: lock %s: %w", dir, err)
	}
	l.lock = lock
	if err := l.recover(); err != nil {
		l.mu.Lock()
		segs := l.segs
		l.segs = nil
		l.mu.Unlock()
		for _, s := range segs {
			s.release()
		}
		_ = lock.Close()
		return nil, err
	}
	l.report.Segments = len(l.segs)
	l.sseg, l.sEnd, l.sMark = l.active, l.active.end, l.active.mark
	if cfg.Sync == SyncInterval {
		l.wg.Add(1)
		go l.intervalSyncer()
	}
	return l, nil
}

// Recovery returns what Open found and repaired. Safe for concurrent use.
func (l *Log) Recovery() RecoveryReport {
	r := l.report
	r.RemovedFiles = slices.Clone(r.RemovedFiles)
	return r
}

// Dir returns the log's directory.
func (l *Log) Dir() string { return l.dir }

// Bounds implements storage.Log: [lowest, next) are the records readers can see (under
// SyncAlways, only durable ones). Safe for concurrent use; it never waits for I/O.
func (l *Log) Bounds() (lowest, next uint64) {
	l.mu.RLock()
	defer l.mu.RUnlock()
	return l.lowest, l.next
}

// Segments returns the number of segment files. Safe for concurrent use.
func (l *Log) Segments() int {
	l.mu.RLock()
	defer l.mu.RUnlock()
	return len(l.segs)
}

// Size returns the total size in bytes of the segment files. Safe for concurrent use.
func (l *Log) Size() int64 {
	l.mu.RLock()
	defer l.mu.RUnlock()
	var n int64
	for _, s := range l.segs {
		n += s.end
	}
	return n
}

// Wait implements storage.Log. It blocks on a channel closed by the next publication of
// records, truncation or Close; it never polls.
func (l *Log) Wait(ctx context.Context, off uint64) error {
	l.mu.RLock()
	ready := off < l.next && !l.closed.Load()
	l.mu.RUnlock()
	if ready {
		return nil
	}
	for {
		l.mu.Lock()
		if l.closed.Load() {
			l.mu.Unlock()
			return storage.ErrClosed
		}
		if off < l.next {
			l.mu.Unlock()
			return nil
		}
		if l.notify == nil {
			l.notify = make(chan struct{})
		}
		ch := l.notify
		l.mu.Unlock()
		select {
		case <-ch:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// wakeLocked wakes every Wait. l.mu must be held for writing.
func (l *Log) wakeLocked() {
	if l.notify != nil {
		close(l.notify)
		l.notify = nil
	}
}

// publish makes the records below next visible to readers.
func (l *Log) publish(next uint64) {
	l.mu.Lock()
	if next > l.next {
		l.next = next
		l.wakeLocked()
	}
	l.mu.Unlock()
}

// fail records a sticky write error and returns it (wrapping storage.ErrFailed).
func (l *Log) fail(op string, cause error) error {
	l.smu.Lock()
	defer l.smu.Unlock()
	return l.failLocked(op, cause)
}

// failLocked is fail with l.smu held.
func (l *Log) failLocked(op string, cause error) error {
	if l.failed == nil {
		l.failed = fmt.Errorf("%w: %s: %w", storage.ErrFailed, op, cause)
		l.scond.Broadcast()
	}
	return l.failed
}

// failedErr returns the sticky error, if any.
func (l *Log) failedErr() error {
	l.smu.Lock()
	defer l.smu.Unlock()
	return l.failed
}

// Sync implements storage.Log: it makes every record appended so far durable, and the
// active segment's synced watermark exact (see format.go).
// Errors: storage.ErrClosed, storage.ErrFailed.
func (l *Log) Sync() error {
	if l.closed.Load() {
		return storage.ErrClosed
	}
	if err := l.syncAll(); err != nil {
		return err
	}
	return l.syncMark()
}

// acquireSyncToken waits until no goroutine holds the sync token (l.syncing) and takes it.
// Whoever holds it is the only one to fdatasync the active segment or rewrite a segment
// header; structural changes (rolls, truncations, Reset) hold it while they switch the
// active segment, so a running fdatasync always targets the active one.
func (l *Log) acquireSyncToken() {
	l.smu.Lock()
	for l.syncing {
		l.scond.Wait()
	}
	l.syncing = true
	l.smu.Unlock()
}

// releaseSyncToken releases the sync token and wakes its waiters.
func (l *Log) releaseSyncToken() {
	l.smu.Lock()
	l.syncing = false
	l.scond.Broadcast()
	l.smu.Unlock()
}

// setActive makes s the segment appends go to, held open by the file cache (holdOpen), and
// lets the cache close the previous one once it is idle and clean.
func (l *Log) setActive(s *segment) {
	if l.active != nil && l.active != s {
		holdOpen(l.active.f, false)
	}
	holdOpen(s.f, true)
	l.active = s
}

// writeMark rewrites s's header in place with synced = mark. It is not synced: the next
// fdatasync of s makes it durable. The caller holds the sync token (or is Open), and mark
// must be durable already.
func (l *Log) writeMark(s *segment, mark int64) error {
	h := s.hdr
	h.version, h.synced = version, uint32(mark)
	h.encode(l.hbuf[:])
	if _, err := s.f.WriteAt(l.hbuf[:], 0); err != nil {
		return fmt.Errorf("rewrite header of %s: %w", s.path, err)
	}
	s.hdr, s.mark = h, mark
	return nil
}

// syncMark makes the active segment's durable watermark exact: when the header lags what is
// known durable, it rewrites it and fdatasyncs once more.
func (l *Log) syncMark() error {
	l.acquireSyncToken()
	defer l.releaseSyncToken()
	l.smu.Lock()
	s, mark, failed := l.sseg, l.sMark, l.failed
	l.smu.Unlock()
	if failed != nil {
		return failed
	}
	if mark <= s.mark {
		return nil
	}
	if err := l.writeMark(s, mark); err != nil {
		return l.fail("write", err)
	}
	if err := s.f.Sync(); err != nil {
		return l.fail("fdatasync "+s.path, err)
	}
	return nil
}

// waitDurable returns once the logical byte position target is durable, running the
// fdatasync itself if no other goroutine is (leader/follower group commit): every appender
// that wrote while a sync was in flight is covered by the next one.
func (l *Log) waitDurable(target uint64) error {
	l.smu.Lock()
	defer l.smu.Unlock()
	for l.synced < target {
		if l.failed != nil {
			return l.failed
		}
		if l.syncing {
			l.scond.Wait()
			continue
		}
		l.syncing = true
		// Let appenders woken by the previous sync write first, so this fsync covers
		// them too (larger groups, fewer fsyncs).
		l.smu.Unlock()
		runtime.Gosched()
		l.smu.Lock()
		s, upto, end, mark := l.sseg, l.written, l.sEnd, l.sMark
		l.smu.Unlock()
		// The header takes the position the previous fdatasync made durable; this one
		// makes it durable too (the watermark lags by one fdatasync, never leads).
		var err error
		if mark > s.mark {
			err = l.writeMark(s, mark)
		}
		if err == nil {
			err = s.f.Sync()
		}
		l.smu.Lock()
		l.syncing = false
		if err != nil {
			l.scond.Broadcast()
			return l.failLocked("fdatasync", err)
		}
		if s == l.sseg && end > l.sMark {
			l.sMark = end
		}
		l.markDurableLocked(upto)
		l.scond.Broadcast()
	}
	return l.failed
}

// markDurableLocked records that logical position upto is durable and publishes the
// batches it covers. l.smu must be held.
func (l *Log) markDurableLocked(upto uint64) {
	if upto <= l.synced {
		return
	}
	l.synced = upto
	n := 0
	var next uint64
	for n < len(l.pending) && l.pending[n].end <= upto {
		next = l.pending[n].next
		n++
	}
	if n > 0 {
		l.pending = append(l.pending[:0], l.pending[n:]...)
		l.publish(next)
	}
}

// intervalSyncer fsyncs every SyncInterval until Close.
func (l *Log) intervalSyncer() {
	defer l.wg.Done()
	t := time.NewTicker(l.cfg.SyncInterval)
	defer t.Stop()
	for {
		select {
		case <-l.stop:
			return
		case <-t.C:
			l.smu.Lock()
			target, failed := l.written, l.failed
			l.smu.Unlock()
			if failed != nil {
				continue
			}
			if err := l.waitDurable(target); err != nil {
				l.logger.Error("segment: background fsync failed; the log refuses writes until reopened", "dir", l.dir, "err", err)
			}
		}
	}
}

// Close implements storage.Log: it stops background work, syncs, and releases the files
// and the directory lock. It is idempotent. Waiters are woken with storage.ErrClosed;
// reads in flight finish. It returns the sticky error or the final fsync's error, if any.
func (l *Log) Close() error {
	l.wmu.Lock()
	defer l.wmu.Unlock()
	if l.closed.Swap(true) {
		return nil
	}
	close(l.stop)
	l.wg.Wait()
	err := l.failedErr()
	if err == nil {
		err = l.syncAll()
	}
	if err == nil {
		err = l.syncMark()
	}
	l.mu.Lock()
	l.wakeLocked()
	segs := l.segs
	l.segs = nil
	l.mu.Unlock()
	for _, s := range segs {
		s.release()
	}
	if cerr := l.lock.Close(); err == nil && cerr != nil {
		err = fmt.Errorf("segment: release lock: %w", cerr)
	}
	return err
}

// syncAll makes everything written durable, whether or not the log is closed.
func (l *Log) syncAll() error {
	l.smu.Lock()
	target := l.written
	l.smu.Unlock()
	return l.waitDurable(target)
}
