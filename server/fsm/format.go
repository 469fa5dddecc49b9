package fsm

import (
	"encoding/binary"
	"fmt"
	"hash/crc32"

	"github.com/commitlog-go/commitlog/storage"
)

// Command format (version 1). All integers are big-endian. This layout is part of the wire
// format (it is replicated in Raft logs and replayed after upgrades): it must not be changed;
// a new layout gets a new version.
//
//	 0        1        2                 4                 8                12
//	+--------+--------+-----------------+-----------------+-----------------+
//	| version|  kind  |    reserved=0   |  record count   |  CRC-32C        |
//	|  = 1   | 1=append|     uint16     |     uint32      |     uint32      |
//	+--------+--------+-----------------+-----------------+-----------------+
//	| record 0 | record 1 | ... | record count-1 |
//	+----------+----------+-----+----------------+
//
//	record:
//	+-----------------+-----------------+----------------------+
//	|  type  uint32   |  length uint32  |  value [length]byte  |
//	+-----------------+-----------------+----------------------+
//
// The CRC-32C (Castagnoli) covers bytes [0, 8) followed by every byte after the header. The
// decoder checks, before allocating anything: the total length against MaxCommandBytes, the
// version, the kind, the count against MaxBatchRecords (and against what the bytes can hold),
// the checksum, every length against MaxRecordValueBytes and the bytes left; the records must
// fill the command exactly.
const (
	commandVersion    = 1
	commandKindAppend = 1
	commandHeaderLen  = 12
	recordHeaderLen   = 8
)

// Hard bounds of the command format. Decoding enforces them on every node, whatever its
// configuration, so that every node accepts or rejects the same committed entries.
const (
	// MaxRecordValueBytes is the largest record value a command may carry.
	MaxRecordValueBytes = 4 << 20
	// MaxBatchRecords is the largest number of records in one command.
	MaxBatchRecords = 1 << 16
	// MaxCommandBytes is the largest encoded command.
	MaxCommandBytes = 16 << 20
)

// Defaults of Limits' zero fields.
const (
	DefaultMaxRecordBytes  = 1 << 20
	DefaultMaxBatchRecords = 10_000
	DefaultMaxCommandBytes = 4 << 20
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// Limits bound the commands EncodeAppend produces. A zero field means its Default; a field
// above the format's hard bound is lowered to it.
type Limits struct {
	// MaxRecordBytes bounds one record's value (default DefaultMaxRecordBytes).
	MaxRecordBytes int
	// MaxBatchRecords bounds the records of one command (default DefaultMaxBatchRecords).
	MaxBatchRecords int
	// MaxCommandBytes bounds one encoded command (default DefaultMaxCommandBytes).
	MaxCommandBytes int
}

// withDefaults returns l with zero fields set to their defaults and every field capped at the
// format's hard bound.
func (l Limits) withDefaults() Limits {
	fix := func(v, def, hard int) int {
		if v <= 0 {
			v = def
		}
		return min(v, hard)
	}
	return Limits{
		MaxRecordBytes:  fix(l.MaxRecordBytes, DefaultMaxRecordBytes, MaxRecordValueBytes),
		MaxBatchRecords: fix(l.MaxBatchRecords, DefaultMaxBatchRecords, MaxBatchRecords),
		MaxCommandBytes: fix(l.MaxCommandBytes, DefaultMaxCommandBytes, MaxCommandBytes),
	}
}

// AppendRecord is one record to append: its value and the wire Record's type.
type AppendRecord struct {
	Value []byte
	Type  uint32
}

// Command is a decoded command. Its Records' values alias the bytes it was decoded from.
type Command struct {
	Records []AppendRecord
}

// EncodedAppendSize returns the encoded size of an append command carrying records.
func EncodedAppendSize(records ...AppendRecord) int {
	n := commandHeaderLen
	for _, r := range records {
		n += recordHeaderLen + len(r.Value)
	}
	return n
}

// EncodeAppend encodes an append command for records, checked against lim (zero fields mean
// defaults). It is safe for concurrent use.
//
// Errors: ErrEmptyBatch when records is empty; ErrTooLarge when a value, the record count or
// the encoded size exceeds lim.
func EncodeAppend(lim Limits, records ...AppendRecord) ([]byte, error) {
	lim = lim.withDefaults()
	if len(records) == 0 {
		return nil, ErrEmptyBatch
	}
	if len(records) > lim.MaxBatchRecords {
		return nil, fmt.Errorf("%d records in one batch, limit %d: %w", len(records), lim.MaxBatchRecords, ErrTooLarge)
	}
	size := commandHeaderLen
	for i, r := range records {
		if len(r.Value) > lim.MaxRecordBytes {
			return nil, fmt.Errorf("record %d is %d bytes, limit %d: %w", i, len(r.Value), lim.MaxRecordBytes, ErrTooLarge)
		}
		size += recordHeaderLen + len(r.Value)
		if size > lim.MaxCommandBytes {
			return nil, fmt.Errorf("batch exceeds %d bytes encoded: %w", lim.MaxCommandBytes, ErrTooLarge)
		}
	}
	b := make([]byte, commandHeaderLen, size)
	b[0] = commandVersion
	b[1] = commandKindAppend
	binary.BigEndian.PutUint32(b[4:8], uint32(len(records)))
	for _, r := range records {
		b = binary.BigEndian.AppendUint32(b, r.Type)
		b = binary.BigEndian.AppendUint32(b, uint32(len(r.Value)))
		b = append(b, r.Value...)
	}
	binary.BigEndian.PutUint32(b[8:12], commandCRC(b))
	return b, nil
}

func commandCRC(b []byte) uint32 {
	return crc32.Update(crc32.Checksum(b[:8], castagnoli), castagnoli, b[commandHeaderLen:])
}

// DecodeCommand decodes a command encoded by EncodeAppend, enforcing the format's hard bounds.
// The returned Command's values alias data. It allocates at most one slice of
// min(count, len(data)/8) records. It is safe for concurrent use.
//
// Errors: ErrInvalidCommand (wrapped with the reason) for anything malformed: short, too
// large, unknown version or kind, bad count, checksum mismatch, bad lengths.
func DecodeCommand(data []byte) (Command, error) {
	if len(data) < commandHeaderLen {
		return Command{}, fmt.Errorf("%w: %d bytes, shorter than the header", ErrInvalidCommand, len(data))
	}
	if len(data) > MaxCommandBytes {
		return Command{}, fmt.Errorf("%w: %d bytes, limit %d", ErrInvalidCommand, len(data), MaxCommandBytes)
	}
	if data[0] != commandVersion {
		return Command{}, fmt.Errorf("%w: unknown version %d", ErrInvalidCommand, data[0])
	}
	if data[1] != commandKindAppend {
		return Command{}, fmt.Errorf("%w: unknown kind %d", ErrInvalidCommand, data[1])
	}
	if r := binary.BigEndian.Uint16(data[2:4]); r != 0 {
		return Command{}, fmt.Errorf("%w: reserved field is %d", ErrInvalidCommand, r)
	}
	count := binary.BigEndian.Uint32(data[4:8])
	body := data[commandHeaderLen:]
	if count == 0 || count > MaxBatchRecords || uint64(count) > uint64(len(body)/recordHeaderLen) {
		return Command{}, fmt.Errorf("%w: record count %d for %d bytes (limit %d)", ErrInvalidCommand, count, len(body), MaxBatchRecords)
	}
	if got, want := commandCRC(data), binary.BigEndian.Uint32(data[8:12]); got != want {
		return Command{}, fmt.Errorf("%w: checksum %08x, header says %08x", ErrInvalidCommand, got, want)
	}
	records := make([]AppendRecord, count)
	for i := range records {
		if len(body) < recordHeaderLen {
			return Command{}, fmt.Errorf("%w: record %d: truncated header", ErrInvalidCommand, i)
		}
		typ := binary.BigEndian.Uint32(body[0:4])
		n := binary.BigEndian.Uint32(body[4:8])
		body = body[recordHeaderLen:]
		if n > MaxRecordValueBytes || uint64(n) > uint64(len(body)) {
			return Command{}, fmt.Errorf("%w: record %d: length %d with %d bytes left (limit %d)", ErrInvalidCommand, i, n, len(body), MaxRecordValueBytes)
		}
		records[i] = AppendRecord{Type: typ, Value: body[:n:n]}
		body = body[n:]
	}
	if len(body) != 0 {
		return Command{}, fmt.Errorf("%w: %d bytes after the last record", ErrInvalidCommand, len(body))
	}
	return Command{Records: records}, nil
}

// Stored record envelope (version 1): what the FSM writes to the storage.Log for each record.
// Part of the on-disk format: it must not be changed; a new layout gets a new version.
//
//	+---------+-------------+-------------+-------------+-------------+------------------+
//	| version | raft index  | raft term   | position    | record type | value (the rest) |
//	| u8 = 1  | uvarint     | uvarint     | uvarint     | uvarint     |                  |
//	+---------+-------------+-------------+-------------+-------------+------------------+
//
// position is the sum of the stored sizes of every record before this one in the log (since
// offset 0): the log's byte position, the same on every node. It lets the FSM size a snapshot
// data stream from two records, without reading the log between them.
//
// The storage engine checksums the stored bytes; the envelope adds what the FSM needs to
// replay (the Raft index) and what readers are served (term, type).
const (
	envelopeVersion = 1
	// maxEnvelopeHeader is the largest envelope header: version, three 64-bit and one 32-bit
	// uvarint.
	maxEnvelopeHeader = 1 + binary.MaxVarintLen64*3 + 5
	// maxEnvelopeBytes bounds a stored record.
	maxEnvelopeBytes = maxEnvelopeHeader + MaxRecordValueBytes
)

// errBadEnvelope prefixes envelope decoding errors; it wraps storage.ErrCorrupt, as malformed
// stored bytes are corrupt data.
var errBadEnvelope = fmt.Errorf("fsm: malformed stored record: %w", storage.ErrCorrupt)

// envelope is a decoded stored record. Value aliases the bytes it was decoded from.
type envelope struct {
	Index uint64
	Term  uint64
	Pos   uint64
	Type  uint32
	Value []byte
}

// envelopeSize returns the stored size of a record with this header and a value of n bytes.
func envelopeSize(index, term, pos uint64, typ uint32, n int) int {
	return 1 + uvarintLen(index) + uvarintLen(term) + uvarintLen(pos) + uvarintLen(uint64(typ)) + n
}

func uvarintLen(v uint64) int {
	n := 1
	for v >= 0x80 {
		v >>= 7
		n++
	}
	return n
}

// appendEnvelope appends the stored form of a record to dst.
func appendEnvelope(dst []byte, index, term, pos uint64, typ uint32, value []byte) []byte {
	dst = append(dst, envelopeVersion)
	dst = binary.AppendUvarint(dst, index)
	dst = binary.AppendUvarint(dst, term)
	dst = binary.AppendUvarint(dst, pos)
	dst = binary.AppendUvarint(dst, uint64(typ))
	return append(dst, value...)
}

// decodeEnvelope decodes a stored record. Errors: storage.ErrCorrupt, wrapped with the reason.
func decodeEnvelope(b []byte) (envelope, error) {
	if len(b) == 0 {
		return envelope{}, fmt.Errorf("%w: empty", errBadEnvelope)
	}
	if b[0] != envelopeVersion {
		return envelope{}, fmt.Errorf("%w: unknown version %d", errBadEnvelope, b[0])
	}
	rest := b[1:]
	var vals [4]uint64
	for i := range vals {
		v, n := binary.Uvarint(rest)
		if n <= 0 {
			return envelope{}, fmt.Errorf("%w: bad varint in field %d", errBadEnvelope, i)
		}
		vals[i], rest = v, rest[n:]
	}
	if vals[3] > 1<<32-1 {
		return envelope{}, fmt.Errorf("%w: record type %d overflows uint32", errBadEnvelope, vals[3])
	}
	return envelope{Index: vals[0], Term: vals[1], Pos: vals[2], Type: uint32(vals[3]), Value: rest}, nil
}
