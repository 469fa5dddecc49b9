package fsm

import (
	"bufio"
	"context"
	"errors"
	"io"
	"iter"
	"sort"
	"time"
)

var _ Partition = (*FSM)(nil)

// Partition is what the server reads and sizes a partition through: one dense log with its
// own offsets. *FSM implements it. It is the seam for placing partitions on separate Raft
// groups later: the server reaches a partition's log only through this interface and the
// Machine's lookups, never through the FSM's Raft-facing methods (see the server README).
type Partition interface {
	Bounds() (lowest, next uint64)
	Read(ctx context.Context, off uint64) (Record, error)
	Records(ctx context.Context, from uint64) iter.Seq2[Record, error]
	Checksum(ctx context.Context, at uint64) (uint32, error)
	RetentionPoint(p RetentionPolicy, now time.Time) (uint64, error)
	Compact() error
	Err() error
}

// manifestAt captures the partition's manifest as of the machine's applied index and term
// (every partition of a machine snapshot names the same index: its state at that index).
func (f *FSM) manifestAt(index, term uint64) manifest {
	lowest, next := f.log.Bounds()
	return manifest{
		Index: index, Term: term,
		Lowest: lowest, Next: next, First: min(max(lowest, f.first.Load()), next),
		NextPos: f.nextPos, HasNextPos: f.hasPos,
		LastCRC: f.lastCRC, HasLastCRC: f.hasLastCRC && next > 0,
	}
}

// holds reports whether Restore(m) keeps the local log without reading data.
func (f *FSM) holds(m manifest) bool {
	lowest, next := f.log.Bounds()
	return next >= m.Next && (lowest <= m.Next || f.applied.Load() >= m.Index)
}

// offsetOfIndex returns the offset of the first record the entry at Raft index idx stored in
// this log, found by binary search (envelopes' indexes never decrease along the log). ok is
// false when the log no longer holds it.
func (f *FSM) offsetOfIndex(idx uint64) (uint64, bool) {
	lowest, next := f.Bounds()
	bad := false
	at := func(off uint64) uint64 {
		b, err := f.log.Read(off)
		if err != nil {
			bad = true
			return 0
		}
		env, err := decodeEnvelope(b)
		if err != nil {
			bad = true
			return 0
		}
		return env.Index
	}
	off := lowest + uint64(sort.Search(int(next-lowest), func(i int) bool { return at(lowest+uint64(i)) >= idx }))
	if off >= next || at(off) != idx || bad {
		return 0, false
	}
	if off == lowest && off > 0 {
		// The entry may have started below the log's first offset.
		if lo, _ := f.log.Bounds(); lo >= off || at(off-1) == idx {
			return 0, false
		}
	}
	return off, true
}

// drainSection reads one partition's section of a machine snapshot data stream, checking
// it, and discards it.
func drainSection(br *bufio.Reader) error {
	sr, err := newStreamReader(br)
	if err != nil {
		return err
	}
	for {
		if _, _, err := sr.frame(); err != nil {
			if errors.Is(err, io.EOF) {
				return nil
			}
			return err
		}
	}
}
