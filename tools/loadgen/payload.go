package loadgen

import (
	"encoding/binary"
	"hash/crc32"
	"time"
)

// Record values written by the load generator. Values of at least HeaderSize bytes start with a
// header that lets readers check what they read and measure end-to-end latency:
//
//	0          4                     12           16                        RecordSize
//	+----------+---------------------+------------+-------------------------+
//	| "clb1"   | send time, unix ns  | CRC-32C    | filler                  |
//	| magic    | big-endian int64    | big-endian | (deterministic bytes)   |
//	+----------+---------------------+------------+-------------------------+
//
// The CRC-32C (Castagnoli) covers bytes [0,12) and [16,end): the header before it and the filler.
// Smaller values are filler only and are not checked. The layout is this tool's private format:
// records written by other programs simply lack the magic and are counted as foreign.
const (
	// HeaderSize is the smallest record size that carries the checked header.
	HeaderSize = 16
	magic      = "clb1"
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// payload builds record values of one size. It is immutable after newPayload and safe for
// concurrent use.
type payload struct {
	size   int
	filler []byte // size bytes of filler; the header overwrites the first 16 when present
}

func newPayload(size int) *payload {
	f := make([]byte, size)
	// A cheap deterministic pattern that does not compress to nothing and differs per position.
	x := uint32(2463534242)
	for i := range f {
		x ^= x << 13
		x ^= x >> 17
		x ^= x << 5
		f[i] = byte(x)
	}
	return &payload{size: size, filler: f}
}

// value returns a new value stamped with sent. The caller owns it.
func (p *payload) value(sent time.Time) []byte {
	v := make([]byte, p.size)
	copy(v, p.filler)
	if p.size < HeaderSize {
		return v
	}
	copy(v[0:4], magic)
	binary.BigEndian.PutUint64(v[4:12], uint64(sent.UnixNano()))
	binary.BigEndian.PutUint32(v[12:16], checksum(v))
	return v
}

func checksum(v []byte) uint32 {
	c := crc32.Update(0, castagnoli, v[0:12])
	return crc32.Update(c, castagnoli, v[16:])
}

// verdict is what a reader learns from a value.
type verdict int

const (
	// valueForeign: not written by this tool (no magic, or too short to carry a header).
	valueForeign verdict = iota
	// valueOK: header present and checksum matches.
	valueOK
	// valueCorrupt: magic present, checksum mismatch.
	valueCorrupt
)

// inspect checks v and, for a valid value, returns the send time stamped in it.
func inspect(v []byte) (verdict, time.Time) {
	if len(v) < HeaderSize || string(v[0:4]) != magic {
		return valueForeign, time.Time{}
	}
	if binary.BigEndian.Uint32(v[12:16]) != checksum(v) {
		return valueCorrupt, time.Time{}
	}
	return valueOK, time.Unix(0, int64(binary.BigEndian.Uint64(v[4:12])))
}
