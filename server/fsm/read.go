package fsm

import (
	"context"
	"errors"
	"fmt"
	"iter"

	"github.com/commitlog-go/commitlog/storage"
)

// Record is one record as the FSM serves it.
type Record struct {
	// Offset is the record's position in the log: dense, from 0, assigned by Apply.
	Offset uint64
	// Value is the record's value.
	Value []byte
	// Term is the Raft term of the entry that appended it.
	Term uint64
	// Type is the wire Record's type, as proposed.
	Type uint32
	// Index is the Raft index of the entry that appended it.
	Index uint64
	// Key is the record's key; nil when it has none.
	Key []byte
	// Headers are the record's headers.
	Headers []Header
	// Timestamp is the record's time in Unix milliseconds: the producer's when it gave one,
	// otherwise its append time; 0 for records stored before timestamps.
	Timestamp int64
	// AppendTime is when the leader appended it (Unix ms; what retention by age reads), never
	// below the previous record's; 0 for records stored before timestamps.
	AppendTime int64
}

// Bounds returns the lowest offset served (the replicated first offset: the same on every
// replica that applied the same entries, whatever its storage still keeps below it) and the
// offset the next record will get. Once the FSM failed, next stays where the last entry it
// stored in full ended. Safe for concurrent use.
func (f *FSM) Bounds() (lowest, next uint64) {
	lowest, next = f.log.Bounds()
	if f.Err() != nil {
		next = min(next, f.goodNext.Load())
	}
	return min(max(lowest, f.first.Load()), next), next
}

// failedAt returns the error for a read at off once the FSM failed and off is at or past what
// it stored in full; nil otherwise.
func (f *FSM) failedAt(off uint64) error {
	if err := f.Err(); err != nil && off >= f.goodNext.Load() {
		return fmt.Errorf("fsm: read %d: %w: %w", off, ErrNotStoredHere, err)
	}
	return nil
}

// wait waits until off is written, ctx is done or the FSM fails.
func (f *FSM) wait(ctx context.Context, off uint64) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stop := context.AfterFunc(f.failCtx, cancel)
	defer stop()
	err := f.log.Wait(ctx, off)
	if ferr := f.failedAt(off); ferr != nil {
		return ferr
	}
	return err
}

// Read returns the record at off. When off is not applied yet it waits, without polling, until
// it is or ctx is done. The returned Value belongs to the caller. Safe for concurrent use.
//
// Errors: storage.ErrOutOfRange (wrapped) at once when off is below the log's start, and when
// ctx is done before off is applied (the error then also wraps ctx.Err()); storage.ErrCorrupt,
// storage.ErrClosed, wrapped; ErrFailed (wrapped) at once for an offset at or past where the
// FSM stopped applying.
func (f *FSM) Read(ctx context.Context, off uint64) (Record, error) {
	lowest, next := f.Bounds()
	if off < lowest {
		return Record{}, fmt.Errorf("fsm: read %d: below the log start %d: %w", off, lowest, storage.ErrOutOfRange)
	}
	if err := f.failedAt(off); err != nil {
		return Record{}, err
	}
	if off >= next {
		if err := f.wait(ctx, off); err != nil {
			return Record{}, waitErr(off, err)
		}
	}
	b, err := f.log.Read(off)
	if err != nil {
		return Record{}, fmt.Errorf("fsm: read %d: %w", off, err)
	}
	return decodeRecord(off, b)
}

// waitErr wraps an error from storage.Log.Wait for off: a done context means off was not
// written in time (ErrOutOfRange).
func waitErr(off uint64, err error) error {
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return fmt.Errorf("fsm: read %d: not written yet: %w (%w)", off, storage.ErrOutOfRange, err)
	}
	return fmt.Errorf("fsm: wait for %d: %w", off, err)
}

func decodeRecord(off uint64, b []byte) (Record, error) {
	env, err := decodeEnvelope(b)
	if err != nil {
		return Record{}, fmt.Errorf("fsm: read %d: %w", off, err)
	}
	ts := env.CreateTime
	if ts == 0 {
		ts = env.Timestamp
	}
	return Record{Offset: off, Value: env.Value, Term: env.Term, Type: env.Type, Index: env.Index,
		Key: env.Key, Headers: env.Headers, Timestamp: ts, AppendTime: env.Timestamp}, nil
}

// Records iterates over the records from offset from on, in order, and then tails the log:
// when it reaches the end it waits (storage.Log.Wait, no polling) for the next record. A
// Value is valid only until the next iteration step. Safe for concurrent use; each iteration
// reads independently.
//
// The iteration ends after yielding one error: ctx.Err() (wrapped) when ctx is done;
// storage.ErrOutOfRange (wrapped) when from is below the log start, or when retention or a
// snapshot install removes the records the iteration is at; storage.ErrCorrupt,
// storage.ErrClosed, wrapped; ErrFailed (wrapped) on reaching where the FSM stopped
// applying. Breaking out of the loop ends it without an error.
func (f *FSM) Records(ctx context.Context, from uint64) iter.Seq2[Record, error] {
	return func(yield func(Record, error) bool) {
		off := from
		for {
			if err := ctx.Err(); err != nil {
				yield(Record{}, fmt.Errorf("fsm: records from %d: %w", off, err))
				return
			}
			lowest, next := f.Bounds()
			if off < lowest {
				yield(Record{}, fmt.Errorf("fsm: records from %d: below the log start %d: %w", off, lowest, storage.ErrOutOfRange))
				return
			}
			if err := f.failedAt(off); err != nil {
				yield(Record{}, err)
				return
			}
			if off >= next {
				if err := f.wait(ctx, off); err != nil {
					yield(Record{}, fmt.Errorf("fsm: records: wait for %d: %w", off, err))
					return
				}
				continue
			}
			start := off
			for rec, err := range f.log.Records(off, next) {
				if err == nil && rec.Offset != off {
					err = fmt.Errorf("log yielded offset %d where %d was expected: %w", rec.Offset, off, storage.ErrCorrupt)
				}
				if err != nil {
					yield(Record{}, fmt.Errorf("fsm: records at %d: %w", off, err))
					return
				}
				if off < f.first.Load() {
					// A retain command applied meanwhile made it unreadable, whatever the
					// storage still holds: reported at the top of the loop (ErrOutOfRange).
					break
				}
				r, err := decodeRecord(off, rec.Value)
				if err != nil {
					yield(Record{}, err)
					return
				}
				if !yield(r, nil) {
					return
				}
				off++
				if off%1024 == 0 && ctx.Err() != nil {
					break // reported at the top of the loop
				}
			}
			if off == start && ctx.Err() == nil {
				// Bounds said the records were there, the log yielded none: it was truncated
				// or reset under us. Report rather than spin.
				lowest, next := f.Bounds()
				yield(Record{}, fmt.Errorf("fsm: records at %d: log now holds [%d, %d): %w", off, lowest, next, storage.ErrOutOfRange))
				return
			}
		}
	}
}
