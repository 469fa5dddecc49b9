package fsm

import (
	"context"
	"errors"
	"fmt"
	"hash/crc32"
	"log/slog"
	"sync"
	"sync/atomic"

	"github.com/commitlog-go/commitlog/consensus"
	"github.com/commitlog-go/commitlog/storage"
)

var (
	_ consensus.StateMachine   = (*FSM)(nil)
	_ consensus.SnapshotSource = (*FSM)(nil)
	_ consensus.SnapshotSizer  = (*FSM)(nil)
)

// Errors. Compare with errors.Is; they are wrapped with context.
var (
	// ErrInvalidCommand: a command is malformed (bad version, kind, lengths or checksum). As an
	// Apply result, the entry appended nothing.
	ErrInvalidCommand = errors.New("fsm: invalid command")
	// ErrTooLarge: a record, a batch or a command exceeds a limit. Only from EncodeAppend and
	// Propose: nothing was proposed. (A committed entry the storage.Log refuses is a failure,
	// ErrFailed: a replica never skips a committed entry.)
	ErrTooLarge = errors.New("fsm: over a limit")
	// ErrEmptyBatch: an append carries no record.
	ErrEmptyBatch = errors.New("fsm: empty batch")
	// ErrAlreadyApplied: as an Apply result, the entry's index is at or below the last one the
	// log holds (a replay after restart); it was skipped.
	ErrAlreadyApplied = errors.New("fsm: entry already applied")
	// ErrFailed: the state machine stopped applying because it could not store a committed
	// entry (sticky). It wraps the original cause. The node serves the records it applied
	// before, nothing past them; it is repaired by fixing the cause (disk, storage limits) and
	// restarting it: replay restores what was not stored.
	ErrFailed = errors.New("fsm: state machine failed: a committed entry could not be stored")
	// ErrStopped: refused before proposing, on a leader whose state machine stopped applying
	// (ErrFailed): the write would be committed on the other nodes and fail here, its outcome
	// unknown to its caller. Nothing was proposed; another leader may take it. It does not wrap
	// ErrFailed (it names its cause as text).
	ErrStopped = errors.New("fsm: not proposed: this node stopped applying committed entries")
	// ErrNotStoredHere: a read at or past the first record this node failed to store (it
	// wraps ErrFailed too). Another replica may hold the record: the server answers
	// Unavailable, the answer of a replica that cannot serve a read another can, not Internal.
	ErrNotStoredHere = errors.New("fsm: not stored here: this node stopped applying before it")
	// ErrNotStored: a proposal's result when this node could not store its entry (it wraps
	// ErrFailed and the cause). The entry was committed — the other replicas store it — but
	// this node does not know its offsets: its proposer's write happened, the outcome is
	// unknown to it, nothing was refused.
	ErrNotStored = errors.New("fsm: committed, but this node could not store it")
)

// errNoLog is returned by New when Config.Log is nil.
var errNoLog = errors.New("fsm: Config.Log is required")

// DefaultMaxAppendBytes is the default of Config.MaxAppendBytes.
const DefaultMaxAppendBytes = 1 << 20

// Config configures an FSM. Only Log is required; every other zero field means its documented
// default.
type Config struct {
	// Log is where records are stored. The FSM is its only writer; it does not close it.
	Log storage.Log
	// Logger receives the FSM's rare diagnostics (failures, snapshot installs). Default: a
	// logger that discards everything.
	Logger *slog.Logger
	// Limits bound what FSM.EncodeAppend and FSM.Propose produce, i.e. what this node
	// proposes when it leads. Apply does not use them (see the package doc). Zero fields mean
	// defaults.
	Limits Limits
	// MaxAppendBytes bounds the stored bytes of one coalesced storage.Log.Append when Apply
	// merges the batches of consecutive entries (default DefaultMaxAppendBytes). One entry's
	// batch is never split, whatever its size.
	MaxAppendBytes int
}

// AppendResult is the Apply result of an entry whose records were appended: they have the
// offsets [First, First+Count).
type AppendResult struct {
	First uint64
	Count uint64
	// Duplicate: an idempotent producer's retry of a batch stored before (Machine.Apply); it
	// was not stored again, First and Count are the original's.
	Duplicate bool
}

// RetainResult is the Apply result of a retain command: the log's first offset after it
// (the command's, or a higher one an earlier command set).
type RetainResult struct {
	First uint64
}

// FSM is the commit-log state machine. Create it with New.
//
// Apply, Snapshot and Restore must be called from one goroutine at a time (the consensus calls
// them from its FSM goroutine); every other method is safe for concurrent use with them and
// with each other.
type FSM struct {
	log       storage.Log
	logger    *slog.Logger
	limits    Limits
	maxAppend int

	// State owned by the goroutine calling Apply, Snapshot and Restore.
	term       uint64 // term of the last applied entry
	lastTS     int64  // timestamp (Unix ms) of the record at Next-1; 0 when unknown
	lastCRC    uint32 // CRC-32C of the stored record at Next-1, when hasLastCRC
	hasLastCRC bool
	nextPos    uint64 // byte position of the record at Next (see the envelope), when hasPos
	hasPos     bool
	group      []pendingEntry // entries waiting for one coalesced Append
	groupBytes int            // their stored size, about
	scratch    []byte         // stored bytes of the records being appended
	recs       [][]byte

	applied atomic.Uint64 // index of the last applied entry
	// first is the replicated start of the log: the highest offset a retain command (or a
	// restored snapshot) set. The storage may still hold records below it, up to a segment
	// boundary; they are never served.
	first atomic.Uint64
	// goodNext is the log's next offset after the last entry applied in full; once the FSM
	// failed, nothing at or above it is served, whatever the storage holds.
	goodNext atomic.Uint64

	chk checksumCache // Checksum's (checksum.go)

	failOnce   sync.Once
	failErr    atomic.Pointer[error]
	failed     chan struct{}
	failCtx    context.Context // done when the FSM fails: wakes readers waiting past the end
	failCancel context.CancelFunc
}

// pendingEntry is an entry whose records wait in the pending group. Its records alias the
// entry's data, valid during Apply.
type pendingEntry struct {
	result      int // position in Apply's entries and results
	index, term uint64
	ts          int64 // the records' timestamp
	records     []AppendRecord
}

// New returns an FSM over cfg.Log. It reads the log's last record to learn the last Raft index
// applied, so that Apply skips the entries a restart replays.
//
// Errors: a nil Log; the log's read errors (storage.ErrCorrupt, storage.ErrClosed), wrapped; a
// last record that is not an envelope (wrapping storage.ErrCorrupt).
func New(cfg Config) (*FSM, error) {
	if cfg.Log == nil {
		return nil, errNoLog
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.MaxAppendBytes <= 0 {
		cfg.MaxAppendBytes = DefaultMaxAppendBytes
	}
	f := &FSM{
		log:       cfg.Log,
		logger:    cfg.Logger,
		limits:    cfg.Limits.withDefaults(),
		maxAppend: cfg.MaxAppendBytes,
		failed:    make(chan struct{}),
	}
	f.failCtx, f.failCancel = context.WithCancel(context.Background())
	if err := f.loadLast(); err != nil {
		f.failCancel()
		return nil, fmt.Errorf("fsm: open: %w", err)
	}
	return f, nil
}

// loadLast sets the applied index, term and last CRC from the log's last record; an empty log
// means nothing is known (applied index 0).
func (f *FSM) loadLast() error {
	lowest, next := f.log.Bounds()
	f.goodNext.Store(next)
	if s, ok := f.log.(starter); ok {
		// The cut this node applied last (a retain command, a snapshot's first offset), which
		// the storage keeps: the records it still holds below it (whole segments are dropped
		// only) were cut on every replica, and must not be served again after a restart while
		// Raft has not replayed the retain command (it replays nothing before a leader tells
		// it what committed: a node restarted alone would serve them for good).
		lowest = max(lowest, min(s.Start(), next))
	}
	if f.first.Load() < lowest {
		// After a restart, until the snapshot and the replayed retain commands raise it.
		f.first.Store(lowest)
	}
	if next == lowest {
		// An empty log at 0 is a new one; elsewhere (after a snapshot install reset it) the
		// byte position is learnt from the snapshot the consensus restores at startup.
		f.applied.Store(0)
		f.term, f.lastCRC, f.hasLastCRC, f.lastTS = 0, 0, false, 0
		f.nextPos, f.hasPos = 0, next == 0
		return nil
	}
	b, err := f.log.Read(next - 1)
	if err != nil {
		return fmt.Errorf("read last record %d: %w", next-1, err)
	}
	env, err := decodeEnvelope(b)
	if err != nil {
		return fmt.Errorf("last record %d: %w", next-1, err)
	}
	f.applied.Store(env.Index)
	f.term, f.lastCRC, f.hasLastCRC = env.Term, crc32.Checksum(b, castagnoli), true
	f.lastTS = env.Timestamp
	f.nextPos, f.hasPos = env.Pos+uint64(len(b)), true
	return nil
}

// Limits returns the limits EncodeAppend applies for this FSM (defaults filled in).
func (f *FSM) Limits() Limits { return f.limits }

// Size is the size on disk of the partition's log (its segments), or 0 when its log does not
// tell (a storage.Log without a Size method).
func (f *FSM) Size() int64 {
	if l, ok := f.log.(interface{ Size() int64 }); ok {
		return l.Size()
	}
	return 0
}

// EncodeAppend encodes an append command for records within the FSM's configured Limits. It
// is EncodeAppend(f.Limits(), records...): safe for concurrent use, same errors.
func (f *FSM) EncodeAppend(records ...AppendRecord) ([]byte, error) {
	return EncodeAppend(f.limits, records...)
}

// Err returns the sticky error (wrapping ErrFailed) once the FSM has failed, nil before.
func (f *FSM) Err() error {
	if p := f.failErr.Load(); p != nil {
		return *p
	}
	return nil
}

// Failed returns a channel closed when the FSM fails; Err then returns why.
func (f *FSM) Failed() <-chan struct{} { return f.failed }

// fail makes err the sticky error (the first one wins) and returns the sticky error.
func (f *FSM) fail(err error) error {
	f.failOnce.Do(func() {
		f.setFailed(fmt.Errorf("%w: %w", ErrFailed, err))
		f.logger.Error("state machine stopped applying: a committed entry could not be stored; this node serves nothing past it until the cause is fixed and it is restarted",
			"err", err, "applied_index", f.applied.Load(), "log_next", f.goodNext.Load())
	})
	return f.Err()
}

// stop makes err (wrapping ErrFailed), its Machine's failure, the sticky error, as fail does:
// the Machine applies no later entry to any partition, so each one's readers learn it as from
// a failure of its own. The Machine logged it, once.
func (f *FSM) stop(err error) {
	f.failOnce.Do(func() { f.setFailed(err) })
}

func (f *FSM) setFailed(err error) {
	f.failErr.Store(&err)
	close(f.failed)
	f.failCancel()
}

// AppliedIndex returns the Raft index of the last entry applied (or restored from a snapshot);
// 0 when nothing is known.
func (f *FSM) AppliedIndex() uint64 { return f.applied.Load() }

// Apply implements consensus.StateMachine. Each result is an AppendResult, or an error:
// ErrInvalidCommand or ErrEmptyBatch (wrapped) for a malformed command, ErrTooLarge for a batch
// the storage.Log refused, ErrAlreadyApplied for a replayed entry, the sticky ErrFailed after a
// storage failure. Every storage error other than a single entry's storage.ErrTooLarge is
// fatal (see Err).
func (f *FSM) Apply(entries []consensus.Entry) []any {
	results := make([]any, len(entries))
	items := make([]applyItem, len(entries))
	for i, e := range entries {
		items[i] = applyItem{result: i, entry: e}
		items[i].cmd, items[i].err = DecodeCommand(e.Data)
		if items[i].err == nil && items[i].cmd.Kind != KindAppend && items[i].cmd.Kind != KindRetain {
			items[i].err = fmt.Errorf("%w: kind %d is not a log command", ErrInvalidCommand, items[i].cmd.Kind)
		}
	}
	f.apply(items, results)
	return results
}

// applyItem is an entry to apply, its decoded command (or why it does not decode), and where
// its result goes.
type applyItem struct {
	result int
	entry  consensus.Entry
	cmd    Command
	err    error
}

// apply applies decoded entries (see Apply) and sets their results.
func (f *FSM) apply(items []applyItem, results []any) {
	for _, it := range items {
		i, e, cmd, err := it.result, it.entry, it.cmd, it.err
		if err := f.Err(); err != nil {
			results[i] = err
			continue
		}
		// Entries arrive in index order and the pending group's are above the applied index,
		// so comparing with the applied index is enough.
		if applied := f.applied.Load(); e.Index <= applied {
			// A replay after a restart: the records are in the log. A retain command is not
			// (the log keeps no trace of it but the records it hid), so it is applied again:
			// raising the first offset is idempotent.
			if err == nil && cmd.Kind == KindRetain {
				f.applyRetain(e, cmd.First)
			}
			results[i] = fmt.Errorf("%w: index %d, log holds up to %d", ErrAlreadyApplied, e.Index, applied)
			continue
		}
		if err != nil || cmd.Kind == KindRetain {
			// Not an append: flush the pending group first, to keep the applied index in order.
			f.flush(results)
			if err := f.Err(); err != nil {
				results[i] = err
				continue
			}
			if err != nil {
				if cerr := corruptEntry(e.Index, e.Data); cerr != nil {
					// Damaged here, not rejected everywhere: never skip a committed entry.
					results[i] = f.fail(cerr)
					continue
				}
				// Rejected deterministically: nothing to store.
				f.setApplied(e.Index, e.Term)
				results[i] = fmt.Errorf("entry %d: %w", e.Index, err)
				continue
			}
			results[i] = f.applyRetain(e, cmd.First)
			continue
		}
		// Timestamps never decrease along the log, whatever the leaders' clocks did.
		ts := max(cmd.Timestamp, f.lastTS, 0)
		f.lastTS = ts
		size := 0
		for _, r := range cmd.Records {
			size += maxEnvelopeHeader + recordSize(r)
		}
		if len(f.group) > 0 && f.groupBytes+size > f.maxAppend {
			f.flush(results)
		}
		f.group = append(f.group, pendingEntry{result: i, index: e.Index, term: e.Term, ts: ts, records: cmd.Records})
		f.groupBytes += size
	}
	f.flush(results)
}

func (f *FSM) setApplied(index, term uint64) {
	f.applied.Store(index)
	f.term = term
}

// flush appends the pending group, as one storage.Log.Append, and sets the results of its
// entries. When the log refuses a coalesced group as too large, each entry is appended alone;
// a single entry the log refuses is a failure (a committed entry is never skipped).
func (f *FSM) flush(results []any) {
	if len(f.group) == 0 {
		return
	}
	defer func() {
		clear(f.group) // drop the references to the entries' data
		f.group, f.groupBytes = f.group[:0], 0
		clear(f.recs)
		f.scratch, f.recs = f.scratch[:0], f.recs[:0]
		if cap(f.scratch) > 4*f.maxAppend {
			f.scratch = nil // do not pin one huge batch's memory
		}
	}()
	if err := f.appendEntries(f.group, results); err == nil || !errors.Is(err, storage.ErrTooLarge) || len(f.group) == 1 {
		return
	}
	for i := range f.group {
		_ = f.appendEntries(f.group[i:i+1], results)
	}
}

// appendEntries appends the records of group with one Append and sets their results, unless it
// returns a storage.ErrTooLarge for a group of several entries (the caller retries them one by
// one).
func (f *FSM) appendEntries(group []pendingEntry, results []any) error {
	if err := f.Err(); err != nil {
		for _, p := range group {
			results[p.result] = err
		}
		return err
	}
	if !f.hasPos {
		// The log is empty at a non-zero offset and no snapshot said where it stands: storing
		// records would give them wrong positions.
		return f.failGroup(group, results, fmt.Errorf("log position unknown: the log is empty at a non-zero offset and no snapshot was restored: %w", storage.ErrCorrupt))
	}
	f.scratch, f.recs = f.scratch[:0], f.recs[:0]
	pos := f.nextPos
	var spans [][2]int
	for _, p := range group {
		for _, r := range p.records {
			start := len(f.scratch)
			if r.plain() {
				f.scratch = appendEnvelope(f.scratch, p.index, p.term, pos, r.Type, p.ts, r.Value)
			} else {
				f.scratch = appendEnvelopeV3(f.scratch, p.index, p.term, pos, p.ts, r)
			}
			pos += uint64(len(f.scratch) - start)
			spans = append(spans, [2]int{start, len(f.scratch)})
		}
	}
	for _, sp := range spans {
		f.recs = append(f.recs, f.scratch[sp[0]:sp[1]])
	}
	first, err := f.log.Append(f.recs...)
	switch {
	case err == nil:
	case errors.Is(err, storage.ErrTooLarge) && len(group) > 1:
		return err
	default:
		// Including a single entry's storage.ErrTooLarge: the entry is committed, the leader
		// accepted it, every other replica stores it; skipping it would shift every later
		// offset on this node. Stop instead.
		return f.failGroup(group, results, err)
	}
	off := first
	for _, p := range group {
		results[p.result] = AppendResult{First: off, Count: uint64(len(p.records))}
		off += uint64(len(p.records))
	}
	last := group[len(group)-1]
	f.setApplied(last.index, last.term)
	f.lastCRC, f.hasLastCRC = crc32.Checksum(f.recs[len(f.recs)-1], castagnoli), true
	f.nextPos = pos
	f.goodNext.Store(off)
	return nil
}

// applyRetain applies a retain command: the records below first become unreadable on every
// replica, and the storage drops the whole segments below it. It keeps at least the last
// record (the FSM learns its applied index from it after a restart), so a command that would
// have emptied the log when it was applied — the record at first was not written before it —
// is rejected, deterministically: every replica has the same log at this entry, and a
// replayed command (after a restart) is judged as it was the first time.
func (f *FSM) applyRetain(e consensus.Entry, first uint64) any {
	if e.Index > f.applied.Load() {
		f.setApplied(e.Index, e.Term)
	}
	if cur := f.first.Load(); first <= cur {
		return RetainResult{First: cur}
	}
	if lowest, _ := f.log.Bounds(); first > lowest {
		b, err := f.log.Read(first)
		var env envelope
		if err == nil {
			env, err = decodeEnvelope(b)
		}
		switch {
		case errors.Is(err, storage.ErrOutOfRange) || (err == nil && env.Index >= e.Index):
			_, next := f.Bounds()
			return fmt.Errorf("entry %d: %w: retain from %d would empty the log (next offset %d)", e.Index, ErrInvalidCommand, first, next)
		case err != nil:
			return f.fail(fmt.Errorf("retain entry %d: read record %d: %w", e.Index, first, err))
		}
	}
	// The storage records the cut (and drops what it can) before reads see it, so that once
	// this node answered OutOfRange below it, it still does after a kill and restart.
	err := f.compactTo(first)
	f.first.Store(first)
	if err != nil {
		return f.fail(fmt.Errorf("retain entry %d: %w", e.Index, err))
	}
	f.logger.Info("retention: log start moved", "first", first, "index", e.Index)
	return RetainResult{First: first}
}

// starter is a storage.Log that keeps the offset it was last cut at (TruncatePrefix's before)
// across restarts, as storage/segment's Log does (Start).
type starter interface{ Start() uint64 }

// First returns the log's replicated first offset (see Bounds).
func (f *FSM) First() uint64 { return f.first.Load() }

// Compact drops from the storage the whole segments that hold only records below the first
// offset (a storage.Log drops whole segments only, so some records below it may stay until
// their segment is sealed). It changes nothing anyone can read. Safe for concurrent use with
// every other method; the server calls it periodically.
func (f *FSM) Compact() error { return f.compactTo(f.first.Load()) }

// compactTo is Compact with first as the log's first offset.
func (f *FSM) compactTo(first uint64) error {
	if lowest, _ := f.log.Bounds(); lowest >= first {
		return nil
	}
	// Make the records kept durable before the segments below them go: the log needs no
	// fsync per apply because, after a power failure, it still ends with the last record it
	// really holds and Raft replays the rest. Without this sync a power failure right after
	// the cut can lose every record left (all unsynced, in the active segment): the log is
	// then empty at a non-zero offset, and the replayed entries can no longer be placed.
	if err := f.log.Sync(); err != nil {
		return fmt.Errorf("fsm: sync before dropping segments below %d: %w", first, err)
	}
	if err := f.log.TruncatePrefix(first); err != nil {
		return fmt.Errorf("fsm: drop segments below %d: %w", first, err)
	}
	return nil
}

// failGroup makes err the sticky failure and the result of every entry of group.
func (f *FSM) failGroup(group []pendingEntry, results []any, err error) error {
	sticky := f.fail(fmt.Errorf("append entries %d..%d: %w", group[0].index, group[len(group)-1].index, err))
	for _, p := range group {
		results[p.result] = sticky
	}
	return sticky
}
