package fsm

import (
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/commitlog-go/commitlog/storage"
)

// StoredTimestamp returns the timestamp of a stored record (an envelope, as the FSM writes
// them to its storage.Log) in Unix milliseconds: the producer's when it gave one, otherwise
// the append time — Record.Timestamp. Records stored before timestamps (envelope version 1,
// or a zero time) and bytes that are not an envelope have none (false). It reads only the
// envelope's header and never allocates: give it to a storage.Log that keeps a time index
// (storage/segment's Config.Timestamp) so that OffsetForTime does not read the log.
func StoredTimestamp(b []byte) (int64, bool) {
	if len(b) == 0 || (b[0] != envelopeVersion && b[0] != envelopeVersion3) {
		return 0, false
	}
	rest := b[1:]
	var ts uint64
	for range 5 { // index, term, position, type, append time
		v, n := binary.Uvarint(rest)
		if n <= 0 {
			return 0, false
		}
		ts, rest = v, rest[n:]
	}
	if b[0] == envelopeVersion3 && len(rest) > 0 && rest[0]&recordAttrTime != 0 {
		if v, n := binary.Varint(rest[1:]); n > 0 && v != 0 {
			return v, true
		}
	}
	if ts == 0 || ts > 1<<63-1 {
		return 0, false
	}
	return int64(ts), true
}

// OffsetForTime returns the offset of the first record served (at or above the log start)
// whose Timestamp is at or after ts (Unix milliseconds), or the next offset when there is
// none: Kafka's ListOffsets by timestamp. With a storage.Log that keeps a time index
// (storage.TimeIndex over StoredTimestamp) it reads a few records; otherwise it reads the
// log from its start. Every replica that applied the same entries answers the same. Safe for
// concurrent use.
//
// Errors: storage.ErrCorrupt, storage.ErrClosed, wrapped; ErrFailed.
func (f *FSM) OffsetForTime(ts int64) (uint64, error) {
	lowest, next := f.Bounds()
	from := lowest
	if ti, ok := f.log.(storage.TimeIndex); ok {
		// From the first offset served: retention cuts inside a segment, and the records
		// below the cut that stay on disk must not decide where the search goes.
		off, err := ti.OffsetForTimeFrom(ts, lowest)
		switch {
		case errors.Is(err, storage.ErrNoTimeIndex):
		case err != nil:
			return 0, fmt.Errorf("fsm: offset for time %d: %w", ts, err)
		case off >= next:
			return next, nil
		default:
			// Below the log start (retention) the answer is the first match from the start.
			from = max(off, lowest)
		}
	}
	for off := from; off < next; off++ {
		b, err := f.log.Read(off)
		if errors.Is(err, storage.ErrOutOfRange) {
			// Retention moved the start under us: start again from the new one.
			return f.OffsetForTime(ts)
		}
		if err != nil {
			return 0, fmt.Errorf("fsm: offset for time %d: %w", ts, err)
		}
		if t, ok := StoredTimestamp(b); ok && t >= ts {
			return off, nil
		}
	}
	return next, nil
}
