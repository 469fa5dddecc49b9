package fsm

import (
	"encoding/binary"
	"fmt"
	"hash/crc32"
	"math"
	"time"

	"github.com/commitlog-go/commitlog/storage"
)

// Command formats. All integers are big-endian. These layouts are part of the wire format
// (they are replicated in Raft logs and replayed after upgrades): they must not be changed; a
// new layout gets a new version. Version 1 is decoded (Raft logs written before version 2
// replay), never encoded.
//
// Version 1 (append only, no timestamp):
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
// Version 2 adds the proposer's (the leader's) clock to the header, and a second kind:
//
//	 0        1        2            4              8            12                  20
//	+--------+--------+------------+--------------+------------+-------------------+
//	| version|  kind  | reserved=0 | record count |  CRC-32C   | timestamp int64   |
//	|  = 2   |        |   uint16   |    uint32    |   uint32   | Unix milliseconds |
//	+--------+--------+------------+--------------+------------+-------------------+
//
//	kind 1 (append): count >= 1 records follow, as in version 1. Every replica stores the
//	    timestamp with each record (see the envelope), so ages agree everywhere.
//	kind 2 (retain): count = 0; the body is one uint64, the log's new first offset: every
//	    replica makes the records below it unreadable (retention, decided by the leader).
//
// The CRC-32C (Castagnoli) covers bytes [0, 8) followed by every byte after byte 12. The
// decoder checks, before allocating anything: the total length against MaxCommandBytes, the
// version, the kind, the count against MaxBatchRecords (and against what the bytes can hold),
// the checksum, every length against MaxRecordValueBytes and the bytes left; the records must
// fill the command exactly.
const (
	commandVersion1    = 1
	commandVersion     = 2 // the version EncodeAppend and EncodeRetain write
	commandKindAppend  = 1
	commandKindRetain  = 2
	commandHeaderLenV1 = 12
	commandHeaderLen   = 20
	recordHeaderLen    = 8
	retainBodyLen      = 8
)

// CommandKind says what a command does.
type CommandKind uint8

// Command kinds.
const (
	// KindAppend appends a batch of records.
	KindAppend CommandKind = commandKindAppend
	// KindRetain moves the log's first offset up (retention).
	KindRetain CommandKind = commandKindRetain
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
// above the format's hard bound is lowered to it. They are the leader's business: they decide
// what is proposed, never what a replica stores (see the package doc).
type Limits struct {
	// MaxRecordBytes bounds one record's value (default DefaultMaxRecordBytes).
	MaxRecordBytes int
	// MaxBatchRecords bounds the records of one command (default DefaultMaxBatchRecords).
	MaxBatchRecords int
	// MaxCommandBytes bounds one encoded command (default DefaultMaxCommandBytes, or more when
	// one record at MaxRecordBytes needs more: a record within its bound always fits alone).
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
	rec := fix(l.MaxRecordBytes, DefaultMaxRecordBytes, MaxRecordValueBytes)
	return Limits{
		MaxRecordBytes:  rec,
		MaxBatchRecords: fix(l.MaxBatchRecords, DefaultMaxBatchRecords, MaxBatchRecords),
		// The default always carries one record at MaxRecordBytes: the record bound, not the
		// command's, decides whether a record alone is too large.
		MaxCommandBytes: fix(l.MaxCommandBytes, max(DefaultMaxCommandBytes, singleRecordCommandBytes(rec)), MaxCommandBytes),
	}
}

// singleRecordCommandBytes is the largest append command carrying one record whose key,
// headers and value make n bytes, in any format version.
func singleRecordCommandBytes(n int) int {
	return EncodedAppendOverhead() + recordHeaderLenV3 + 4 + 8 + 4 + 8*MaxRecordHeaders + n
}

// hardLimits are the format's own bounds: what every node accepts.
var hardLimits = Limits{MaxRecordBytes: MaxRecordValueBytes, MaxBatchRecords: MaxBatchRecords, MaxCommandBytes: MaxCommandBytes}

// AppendRecord is one record to append: its value and the wire Record's type, and optionally
// a key (nil: none; empty is a key), headers and the producer's timestamp (Unix ms; 0: none,
// the record is then dated by its append time). Records with a key, headers or a timestamp
// are encoded in command version 3 (see format_v3.go).
type AppendRecord struct {
	Value     []byte
	Type      uint32
	Key       []byte
	Headers   []Header
	Timestamp int64
}

// Command is a decoded command. Its Records' values alias the bytes it was decoded from.
type Command struct {
	// Version is the format version it was encoded in (1 or 2).
	Version int
	// Kind is KindAppend or KindRetain.
	Kind CommandKind
	// Timestamp is the proposer's clock in Unix milliseconds; 0 for version 1 (unknown).
	Timestamp int64
	// Records are an append's records.
	Records []AppendRecord
	// First is a retain command's new first offset.
	First uint64
	// Target is the partition an append or a retain command applies to (version 3; the
	// default partition for versions 1 and 2).
	Target Target
	// Producer is an idempotent append's producer (version 3; zero otherwise).
	Producer ProducerRef
	// Meta is a metadata command's JSON body (kinds 3-7), aliasing the command's bytes.
	Meta []byte
}

// EncodedAppendSize returns the encoded size of an append command carrying records.
func EncodedAppendSize(records ...AppendRecord) int {
	n := commandHeaderLen
	for _, r := range records {
		n += recordHeaderLen + len(r.Value)
	}
	return n
}

// EncodeAppend encodes an append command for records, stamped with the current time, checked
// against lim (zero fields mean defaults). It is EncodeAppendAt(lim, time.Now(), records...).
func EncodeAppend(lim Limits, records ...AppendRecord) ([]byte, error) {
	return EncodeAppendAt(lim, time.Now(), records...)
}

// EncodeAppendAt encodes an append command for records, stamped with ts (the proposer's
// clock: every replica stores it with the records), checked against lim (zero fields mean
// defaults). It is safe for concurrent use.
//
// Errors: ErrEmptyBatch when records is empty; ErrTooLarge when a value, the record count or
// the encoded size exceeds lim.
func EncodeAppendAt(lim Limits, ts time.Time, records ...AppendRecord) ([]byte, error) {
	return encodeAppend(commandVersion, lim, ts.UnixMilli(), records)
}

// encodeAppend encodes an append command in the given format version (1 only for tests of
// the replay of old Raft logs).
func encodeAppend(version int, lim Limits, tsMillis int64, records []AppendRecord) ([]byte, error) {
	lim = lim.withDefaults()
	if len(records) == 0 {
		return nil, ErrEmptyBatch
	}
	if len(records) > lim.MaxBatchRecords {
		return nil, fmt.Errorf("%d records in one batch, limit %d: %w", len(records), lim.MaxBatchRecords, ErrTooLarge)
	}
	hdr := commandHeaderLen
	if version == commandVersion1 {
		hdr = commandHeaderLenV1
	}
	size := hdr
	for i, r := range records {
		if len(r.Value) > lim.MaxRecordBytes {
			return nil, fmt.Errorf("%s is %d bytes, limit %d: %w", recordName(i, len(records)), len(r.Value), lim.MaxRecordBytes, ErrTooLarge)
		}
		size += recordHeaderLen + len(r.Value)
		if size > lim.MaxCommandBytes {
			return nil, fmt.Errorf("batch exceeds %d bytes encoded: %w", lim.MaxCommandBytes, ErrTooLarge)
		}
	}
	b := make([]byte, hdr, size)
	b[0] = byte(version)
	b[1] = commandKindAppend
	binary.BigEndian.PutUint32(b[4:8], uint32(len(records)))
	if version != commandVersion1 {
		binary.BigEndian.PutUint64(b[12:20], uint64(tsMillis))
	}
	for _, r := range records {
		b = binary.BigEndian.AppendUint32(b, r.Type)
		b = binary.BigEndian.AppendUint32(b, uint32(len(r.Value)))
		b = append(b, r.Value...)
	}
	binary.BigEndian.PutUint32(b[8:12], commandCRC(b))
	return b, nil
}

// EncodeRetain encodes a retain command: every replica that applies it makes the records
// below first unreadable (see FSM.ProposeRetention). ts is the proposer's clock.
func EncodeRetain(first uint64, ts time.Time) []byte {
	b := make([]byte, commandHeaderLen, commandHeaderLen+retainBodyLen)
	b[0] = commandVersion
	b[1] = commandKindRetain
	binary.BigEndian.PutUint64(b[12:20], uint64(ts.UnixMilli()))
	b = binary.BigEndian.AppendUint64(b, first)
	binary.BigEndian.PutUint32(b[8:12], commandCRC(b))
	return b
}

func commandCRC(b []byte) uint32 {
	return crc32.Update(crc32.Checksum(b[:8], castagnoli), castagnoli, b[commandHeaderLenV1:])
}

// corruptEntry returns an error wrapping storage.ErrCorrupt when a committed entry that does not
// decode fails its own checksum, and nil otherwise. Every command is encoded with its checksum
// by the server that proposes it, so such an entry is not a command the cluster rejected
// deterministically: this node's copy of it is damaged (its Raft log on disk, which does not
// verify what it reads back). Applying it as a rejection would silently drop its records here
// alone and shift every later offset; the state machine stops instead.
func corruptEntry(index uint64, data []byte) error {
	if len(data) < commandHeaderLenV1 {
		return nil
	}
	got, want := commandCRC(data), binary.BigEndian.Uint32(data[8:12])
	if got == want {
		return nil
	}
	return fmt.Errorf("entry %d: %w: this node's copy of a committed entry fails its checksum (%08x, the command says %08x): "+
		"its Raft log on disk is damaged; stop the node, remove it from the cluster (commitlog cluster remove), wipe its data dir and start it to rejoin",
		index, storage.ErrCorrupt, got, want)
}

// DecodeCommand decodes a command encoded by EncodeAppend or EncodeRetain (or a version-1
// append), enforcing the format's hard bounds. The returned Command's values alias data. It
// allocates at most one slice of min(count, len(data)/8) records. It is safe for concurrent
// use.
//
// Errors: ErrInvalidCommand (wrapped with the reason) for anything malformed: short, too
// large, unknown version or kind, bad count, checksum mismatch, bad lengths.
func DecodeCommand(data []byte) (Command, error) {
	if len(data) < commandHeaderLenV1 {
		return Command{}, fmt.Errorf("%w: %d bytes, shorter than the header", ErrInvalidCommand, len(data))
	}
	if len(data) > MaxCommandBytes {
		return Command{}, fmt.Errorf("%w: %d bytes, limit %d", ErrInvalidCommand, len(data), MaxCommandBytes)
	}
	cmd := Command{Version: int(data[0]), Kind: CommandKind(data[1])}
	hdr := commandHeaderLen
	switch {
	case data[0] == commandVersion1 && data[1] == commandKindAppend:
		hdr = commandHeaderLenV1
	case data[0] == commandVersion1:
		return Command{}, fmt.Errorf("%w: unknown kind %d for version 1", ErrInvalidCommand, data[1])
	case data[0] == commandVersion3:
		if len(data) < commandHeaderLen {
			return Command{}, fmt.Errorf("%w: %d bytes, shorter than the header", ErrInvalidCommand, len(data))
		}
	case data[0] != commandVersion:
		return Command{}, fmt.Errorf("%w: unknown version %d", ErrInvalidCommand, data[0])
	case data[1] != commandKindAppend && data[1] != commandKindRetain:
		return Command{}, fmt.Errorf("%w: unknown kind %d", ErrInvalidCommand, data[1])
	case len(data) < commandHeaderLen:
		return Command{}, fmt.Errorf("%w: %d bytes, shorter than the header", ErrInvalidCommand, len(data))
	}
	if r := binary.BigEndian.Uint16(data[2:4]); r != 0 {
		return Command{}, fmt.Errorf("%w: reserved field is %d", ErrInvalidCommand, r)
	}
	count := binary.BigEndian.Uint32(data[4:8])
	body := data[hdr:]
	if data[0] == commandVersion3 {
		if got, want := commandCRC(data), binary.BigEndian.Uint32(data[8:12]); got != want {
			return Command{}, fmt.Errorf("%w: checksum %08x, header says %08x", ErrInvalidCommand, got, want)
		}
		cmd.Timestamp = int64(binary.BigEndian.Uint64(data[12:20]))
		return decodeV3(cmd, count, body)
	}
	if cmd.Kind == KindRetain {
		if count != 0 || len(body) != retainBodyLen {
			return Command{}, fmt.Errorf("%w: retain command with count %d and %d body bytes", ErrInvalidCommand, count, len(body))
		}
	} else if count == 0 || count > MaxBatchRecords || uint64(count) > uint64(len(body)/recordHeaderLen) {
		return Command{}, fmt.Errorf("%w: record count %d for %d bytes (limit %d)", ErrInvalidCommand, count, len(body), MaxBatchRecords)
	}
	if got, want := commandCRC(data), binary.BigEndian.Uint32(data[8:12]); got != want {
		return Command{}, fmt.Errorf("%w: checksum %08x, header says %08x", ErrInvalidCommand, got, want)
	}
	if hdr == commandHeaderLen {
		cmd.Timestamp = int64(binary.BigEndian.Uint64(data[12:20]))
	}
	if cmd.Kind == KindRetain {
		cmd.First = binary.BigEndian.Uint64(body)
		return cmd, nil
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
	cmd.Records = records
	return cmd, nil
}

// Stored record envelope: what the FSM writes to the storage.Log for each record. Part of the
// on-disk format: a layout must not be changed; a new layout gets a new version. Both
// versions are read; version 2 is written.
//
//	version 1:
//	+---------+-------------+-------------+-------------+-------------+------------------+
//	| version | raft index  | raft term   | position    | record type | value (the rest) |
//	| u8 = 1  | uvarint     | uvarint     | uvarint     | uvarint     |                  |
//	+---------+-------------+-------------+-------------+-------------+------------------+
//
//	version 2: version 1's fields, then
//	+-------------------------------+------------------+
//	| timestamp uvarint (Unix ms)   | value (the rest) |
//	+-------------------------------+------------------+
//
// position is the sum of the stored sizes of every record before this one in the log (since
// offset 0): the log's byte position, the same on every node. It lets the FSM size a snapshot
// data stream from two records, without reading the log between them, and retention measure
// the log's size.
//
// timestamp is the leader's clock when it proposed the record (the command's timestamp),
// raised to the previous record's timestamp when lower, so that timestamps never decrease
// along the log: retention by age reads it, never a file's time. Version-1 records have none
// (0: unknown).
//
// The storage engine checksums the stored bytes; the envelope adds what the FSM needs to
// replay (the Raft index) and what readers are served (term, type).
const (
	envelopeVersion1 = 1
	envelopeVersion  = 2
	// maxEnvelopeHeader is the largest envelope header of a plain record: version, four
	// 64-bit and one 32-bit uvarint.
	maxEnvelopeHeader = 1 + binary.MaxVarintLen64*4 + 5
	// maxEnvelopeBytes bounds a stored record (version 3's extras included).
	maxEnvelopeBytes = maxEnvelopeHeader + maxEnvelopeExtras + MaxRecordValueBytes
)

// Exported bounds of stored records, for the storage engine's configuration.
const (
	// RecordOverhead is the most the FSM adds around a plain record's value (no key,
	// headers or producer timestamp) when it stores it.
	RecordOverhead = maxEnvelopeHeader
	// MaxStoredRecordBytes is the largest record the FSM stores: a storage.Log under an FSM
	// must accept records of this size, whatever the node's own limits, or a committed entry
	// could not be stored (the FSM would then stop applying; see the package doc).
	MaxStoredRecordBytes = maxEnvelopeBytes
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
	// Timestamp is the record's append time in Unix milliseconds; 0 when unknown (version 1).
	Timestamp int64
	// CreateTime is the producer's timestamp (version 3); 0 when none.
	CreateTime int64
	// Key is the record's key (version 3); nil when none.
	Key []byte
	// Headers are the record's headers (version 3).
	Headers []Header
	Value   []byte
}

// envelopeSize returns the stored size of a record with this header and a value of n bytes.
func envelopeSize(index, term, pos uint64, typ uint32, ts int64, n int) int {
	return 1 + uvarintLen(index) + uvarintLen(term) + uvarintLen(pos) + uvarintLen(uint64(typ)) + uvarintLen(uint64(ts)) + n
}

func uvarintLen(v uint64) int {
	n := 1
	for v >= 0x80 {
		v >>= 7
		n++
	}
	return n
}

// appendEnvelope appends the stored form (version 2) of a record to dst.
func appendEnvelope(dst []byte, index, term, pos uint64, typ uint32, ts int64, value []byte) []byte {
	dst = append(dst, envelopeVersion)
	dst = binary.AppendUvarint(dst, index)
	dst = binary.AppendUvarint(dst, term)
	dst = binary.AppendUvarint(dst, pos)
	dst = binary.AppendUvarint(dst, uint64(typ))
	dst = binary.AppendUvarint(dst, uint64(ts))
	return append(dst, value...)
}

// decodeEnvelope decodes a stored record of either version. Errors: storage.ErrCorrupt,
// wrapped with the reason.
func decodeEnvelope(b []byte) (envelope, error) {
	if len(b) == 0 {
		return envelope{}, fmt.Errorf("%w: empty", errBadEnvelope)
	}
	fields := 4
	switch b[0] {
	case envelopeVersion1:
	case envelopeVersion, envelopeVersion3:
		fields = 5
	default:
		return envelope{}, fmt.Errorf("%w: unknown version %d", errBadEnvelope, b[0])
	}
	rest := b[1:]
	var vals [5]uint64
	for i := range fields {
		v, n := binary.Uvarint(rest)
		if n <= 0 {
			return envelope{}, fmt.Errorf("%w: bad varint in field %d", errBadEnvelope, i)
		}
		vals[i], rest = v, rest[n:]
	}
	if vals[3] > 1<<32-1 {
		return envelope{}, fmt.Errorf("%w: record type %d overflows uint32", errBadEnvelope, vals[3])
	}
	if vals[4] > math.MaxInt64 {
		return envelope{}, fmt.Errorf("%w: timestamp %d overflows int64", errBadEnvelope, vals[4])
	}
	env := envelope{Index: vals[0], Term: vals[1], Pos: vals[2], Type: uint32(vals[3]), Timestamp: int64(vals[4])}
	if b[0] == envelopeVersion3 {
		var err error
		if rest, err = decodeExtras(&env, rest); err != nil {
			return envelope{}, err
		}
	}
	env.Value = rest
	return env, nil
}

// recordName names the record at index i of a command of n records in an error: "record i"
// in a batch, "the record" alone (a unary produce, or a ProduceStream's record, whose index in
// the command the server made says nothing to the client).
func recordName(i, n int) string {
	if n == 1 {
		return "the record"
	}
	return fmt.Sprintf("record %d", i)
}
