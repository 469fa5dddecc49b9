package fsm

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"sync"
)

// Chained checksums (the divergence detector's input).
//
// Every node stores the same bytes at the same offsets (see the package doc), so a checksum of
// the stored records is the same on every node that agrees with the cluster. The chained
// checksum at offset at folds, in offset order, the CRC-32C of each stored record (its whole
// stored bytes: envelope and value) into the previous sum:
//
//	sum = CRC-32C(8-byte little-endian start)
//	for each offset o in [start, at]: sum = CRC-32C-update(sum, 4-byte little-endian CRC-32C(record o))
//
// where start = at - at%ChecksumBlock (ChecksumFrom names a later start in the same block: a
// block that retention cut, whose start is below the log's first offset, is compared from an
// offset every server still holds). The chain restarts at every multiple of ChecksumBlock,
// so that any node holding a block can compute its checksums from the log alone: nothing is
// persisted, and the checksums survive restarts, retention (a block it cut is compared from
// an offset every node still holds, see ChecksumFrom) and snapshot installs (which copy stored
// bytes). A
// checker that compares the current offset covers the newest block; comparing the last offset
// of older blocks covers the rest of the history still stored.

// ChecksumBlock is the number of offsets one chain covers (see Checksum).
const ChecksumBlock = 4096

// ErrChecksumUnavailable: the node cannot compute the checksum at that offset: the offset is
// not applied yet, or the start of its block is below the log's first offset.
var ErrChecksumUnavailable = errors.New("fsm: checksum unavailable at this offset")

// checksumCache remembers the last chain computed, to extend it instead of rereading the block.
type checksumCache struct {
	mu      sync.Mutex
	ok      bool
	from    uint64 // the chain covers [from, upto]
	upto    uint64
	sum     uint32
	lastCRC uint32 // CRC-32C of the record at upto, to detect a log changed under the cache
}

// Checksum returns the chained checksum of the log at offset at (see ChecksumBlock). It reads
// at most ChecksumBlock records (fewer when it extends its previous result). Safe for
// concurrent use.
//
// Errors: ErrChecksumUnavailable (wrapped); the log's read errors (storage.ErrCorrupt, ...);
// ctx.Err().
func (f *FSM) Checksum(ctx context.Context, at uint64) (uint32, error) {
	return f.ChecksumFrom(ctx, at-at%ChecksumBlock, at)
}

// ChecksumFrom is Checksum with the chain starting at from, an offset of at's block at or
// below at, instead of the block's start (the same value when from is the block's start).
// from outside [at's block start, at] is unavailable.
func (f *FSM) ChecksumFrom(ctx context.Context, from, at uint64) (uint32, error) {
	lowest, next := f.Bounds() // the replicated start: the same on every node
	start := from
	if at >= next || start < lowest || start > at || start < at-at%ChecksumBlock {
		return 0, fmt.Errorf("%w: offset %d (chain from %d), log holds [%d, %d)", ErrChecksumUnavailable, at, start, lowest, next)
	}
	c := &f.chk
	c.mu.Lock()
	defer c.mu.Unlock()
	var le [8]byte
	binary.LittleEndian.PutUint64(le[:], start)
	sum, from := crc32.Checksum(le[:], castagnoli), start
	if c.ok && c.upto <= at && c.from == start {
		b, err := f.log.Read(c.upto)
		if err == nil && crc32.Checksum(b, castagnoli) == c.lastCRC {
			sum, from = c.sum, c.upto+1
			if c.upto == at {
				return sum, nil
			}
		}
	}
	var last uint32
	o := from
	for r, err := range f.log.Records(from, at+1) {
		if err != nil {
			return 0, fmt.Errorf("fsm: checksum at %d: read %d: %w", at, o, err)
		}
		if o%256 == 0 {
			if err := ctx.Err(); err != nil {
				return 0, err
			}
		}
		last = crc32.Checksum(r.Value, castagnoli)
		binary.LittleEndian.PutUint32(le[:4], last)
		sum = crc32.Update(sum, castagnoli, le[:4])
		o++
	}
	if o != at+1 {
		return 0, fmt.Errorf("%w: the log ended at %d while computing the checksum at %d", ErrChecksumUnavailable, o, at)
	}
	c.ok, c.from, c.upto, c.sum, c.lastCRC = true, start, at, sum, last
	return sum, nil
}
