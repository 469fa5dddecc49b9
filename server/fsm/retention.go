package fsm

import (
	"fmt"
	"sort"
	"time"
)

// RetentionPolicy says how much of the log to keep. Zero fields mean no limit.
type RetentionPolicy struct {
	// Bytes bounds the stored size of the records kept (their envelopes included).
	Bytes int64
	// Age bounds the age of the records kept, from the timestamp each record carries (the
	// leader's clock when it was proposed), never from file times.
	Age time.Duration
}

// RetentionPoint evaluates p on this node's log at time now and returns the first offset the
// log should start at: its current first offset when nothing is to be cut. The leader calls
// it and proposes the result with ProposeRetention, so that every replica cuts at the same
// offset. It reads O(log n) records (binary searches over the envelopes' byte positions and
// timestamps, which never decrease along the log). It always keeps the last record. Safe for
// concurrent use.
//
// Records written before timestamps were stored (envelope version 1) count as old as the
// first later record that has one, so an upgrade never makes them expire at once.
//
// Errors: the log's read errors, wrapped.
func (f *FSM) RetentionPoint(p RetentionPolicy, now time.Time) (uint64, error) {
	lowest, next := f.Bounds()
	if next-lowest <= 1 || (p.Bytes <= 0 && p.Age <= 0) {
		return lowest, nil
	}
	last := next - 1 // always kept
	var readErr error
	env := func(off uint64) envelope {
		if readErr != nil {
			return envelope{}
		}
		b, err := f.log.Read(off)
		if err == nil {
			var e envelope
			if e, err = decodeEnvelope(b); err == nil {
				e.Value = b[:len(b):len(b)] // the stored bytes: Pos+len(Value) is where the record ends
				return e
			}
		}
		readErr = fmt.Errorf("fsm: retention: read %d: %w", off, err)
		return envelope{}
	}
	// search returns the smallest offset in [lo, hi) where ok holds (ok is false then true
	// along the log), or hi.
	search := func(lo, hi uint64, ok func(off uint64) bool) uint64 {
		return lo + uint64(sort.Search(int(hi-lo), func(i int) bool { return ok(lo + uint64(i)) }))
	}
	cut := lowest
	if p.Bytes > 0 {
		e := env(last)
		end := e.Pos + uint64(len(e.Value))
		// The smallest offset from which the records, through the end, fit in p.Bytes.
		off := search(lowest, last, func(off uint64) bool { return end-env(off).Pos <= uint64(p.Bytes) })
		cut = max(cut, off)
	}
	if p.Age > 0 {
		cutoff := now.Add(-p.Age).UnixMilli()
		dated := search(lowest, next, func(off uint64) bool { return env(off).Timestamp != 0 })
		if dated < next && env(dated).Timestamp < cutoff {
			// Records before dated are older than it: they go with it.
			off := search(dated, last, func(off uint64) bool { return env(off).Timestamp >= cutoff })
			cut = max(cut, off)
		}
	}
	if readErr != nil {
		return lowest, readErr
	}
	return min(cut, last), nil
}
