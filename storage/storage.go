// Package storage defines the contract of commitlog's storage engine: an append-only log of
// records addressed by dense, increasing offsets.
//
// A Log holds the records [Lowest, Next). Offsets are assigned by the log on append and never
// reused, except by TruncateSuffix (which removes a tail so that it can be written again) and
// Reset (which empties the log and starts it at a chosen offset).
//
// Concurrency: every method is safe for concurrent use. A Log has many readers and one logical
// writer: appends are serialized by the log itself, and reads never wait for an append's disk
// write or fsync to finish.
//
// Implementations: storage/segment (segmented files on disk) and storage/memory (in memory, for
// tests and ephemeral use). The conformance suite storage/storagetest runs against both.
package storage

import (
	"context"
	"errors"
	"iter"
)

// Errors returned by every implementation. Implementations wrap them with context; compare
// with errors.Is.
var (
	// ErrOutOfRange: the offset is below Lowest or at or above Next.
	ErrOutOfRange = errors.New("storage: offset out of range")
	// ErrCorrupt: stored bytes failed their checksum or framing check. Never served.
	ErrCorrupt = errors.New("storage: corrupt data")
	// ErrClosed: the log was closed.
	ErrClosed = errors.New("storage: log closed")
	// ErrTooLarge: a record or batch exceeds the configured maximum size.
	ErrTooLarge = errors.New("storage: record too large")
	// ErrEmptyBatch: Append was called with no records.
	ErrEmptyBatch = errors.New("storage: empty batch")
	// ErrLocked: another process holds the log's directory.
	ErrLocked = errors.New("storage: directory locked by another process")
	// ErrFailed: an earlier write or fsync failed; the log refuses every later write until it
	// is reopened (sticky write error). Wraps the original cause.
	ErrFailed = errors.New("storage: log failed after a write error")
	// ErrNoTimeIndex: the log keeps no timestamp index (TimeIndex is not configured).
	ErrNoTimeIndex = errors.New("storage: log keeps no time index")
)

// Record is one record read back from the log.
type Record struct {
	Offset uint64
	Value  []byte
}

// Log is an append-only log of records.
type Log interface {
	// Append appends records as one atomic batch and returns the offset of the first; the
	// records get consecutive offsets. After a crash, either every record of the batch is in
	// the log or none is. Append returns only when the batch is as durable as the log's sync
	// policy promises. The log does not keep references to the slices after it returns.
	// Errors: ErrEmptyBatch, ErrTooLarge, ErrClosed, ErrFailed.
	Append(records ...[]byte) (first uint64, err error)

	// Read returns the record at off. The returned slice belongs to the caller.
	// Errors: ErrOutOfRange, ErrCorrupt, ErrClosed.
	Read(off uint64) ([]byte, error)

	// Records iterates over the records [from, to) in order; to is capped at Next as of the
	// call. The Value slices are valid only until the next iteration step. Iteration stops at
	// the first error, which is yielded (ErrOutOfRange if from is below Lowest, ErrCorrupt,
	// ErrClosed). A concurrent TruncatePrefix may make a long iteration fail with ErrOutOfRange.
	Records(from, to uint64) iter.Seq2[Record, error]

	// Bounds returns the lowest offset held and the offset the next append will get; the log
	// is empty when lowest == next.
	Bounds() (lowest, next uint64)

	// Wait blocks until off < Next, ctx is done (returning ctx.Err()) or the log is closed
	// (ErrClosed). It does not poll.
	Wait(ctx context.Context, off uint64) error

	// TruncatePrefix removes records below before, for retention. Implementations may keep
	// more than asked (whole segments only); Lowest never passes before or Next.
	TruncatePrefix(before uint64) error

	// TruncateSuffix removes the records at from and above, so that Next becomes from. Used by
	// a replica whose uncommitted tail is replaced. Errors: ErrOutOfRange if from < Lowest or
	// from > Next.
	TruncateSuffix(from uint64) error

	// Reset removes every record and makes the log start at next: Lowest == Next == next.
	// Used when a replica installs a snapshot that does not overlap its log.
	Reset(next uint64) error

	// Sync makes every appended record durable (fsync), whatever the sync policy.
	Sync() error

	// Close syncs and releases the log. It is idempotent; waiters are woken with ErrClosed.
	Close() error
}

// TimeIndex is implemented by logs that keep a sparse index of their records' timestamps
// (an optional interface: assert it on a Log). The log learns a record's timestamp from the
// record itself, through a function its owner configures.
type TimeIndex interface {
	// OffsetForTime returns the offset of the first record, at or above Lowest, whose
	// timestamp is at or after ts; Next when there is none. It reads a bounded number of
	// records (those between two index entries), never the whole log. Records without a
	// timestamp are skipped. Safe for concurrent use.
	// Errors: ErrNoTimeIndex, ErrClosed, ErrCorrupt.
	OffsetForTime(ts int64) (uint64, error)
	// OffsetForTimeFrom is OffsetForTime among the records at or above from (its owner's
	// first served offset, when it serves fewer records than the log holds): the first
	// record at or above max(from, Lowest) whose timestamp is at or after ts; Next when there
	// is none. It reads at most the rest of from's segment more than OffsetForTime.
	// Errors: as OffsetForTime.
	OffsetForTimeFrom(ts int64, from uint64) (uint64, error)
}
