package fsm

import (
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"time"
)

// Command format version 3: commands that name a topic and a partition, records with keys,
// headers and producer timestamps, idempotent-producer fields, and topic metadata commands.
// Part of the wire format (replicated in Raft logs): it must not be changed; a new layout
// gets a new version. An append to the default topic's partition 0 without any of these is
// still encoded in version 2 (byte-identical to what servers before topics wrote).
//
//	header: as version 2 (20 bytes), version = 3
//
//	kind 1 (append), count >= 1:
//	+----------------+-----------+-------------+----------------+-------------------+
//	| topic ID [16]  | partition | producer ID | producer epoch | base sequence     |
//	| (UUID)         | uint32    | uint64      | uint16         | int32             |
//	+----------------+-----------+-------------+----------------+-------------------+
//	then count records:
//	+--------+-------+------------------+------------------------+--------------+
//	| type   | attrs | [timestamp int64]| [key len u32, key]     | header count |
//	| uint32 | u8    | if attrs&1       | if attrs&2             | uint32       |
//	+--------+-------+------------------+------------------------+--------------+
//	+---------------------------------------------+------------------------------+
//	| headers: key len u32, key, value len u32, v | value len uint32, value      |
//	+---------------------------------------------+------------------------------+
//
//	kind 2 (retain), count = 0: topic ID [16], partition uint32, first offset uint64.
//
//	kinds 3-7 (topic metadata and producers), count = 0: a JSON document (see meta.go), decoded
//	strictly (unknown fields are refused, the same way on every node).
//
//	kinds 8-10 (consumer groups' offsets), count = 0: a JSON document (see groups.go), decoded
//	strictly.
//
// Producer ID 0 means the append is not idempotent (epoch and sequence are then 0). Hard
// bounds, checked before allocating: header count <= MaxRecordHeaders; a record's key, header
// keys and values and value together <= MaxRecordValueBytes.
const (
	commandVersion3     = 3
	targetLen           = 16 + 4
	producerLen         = 8 + 2 + 4
	recordAttrTime      = 1
	recordAttrKey       = 2
	recordHeaderLenV3   = 4 + 1 + 4 // type, attrs, header count (value length counted apart)
	commandKindCreate   = 3
	commandKindDelete   = 4
	commandKindAddPart  = 5
	commandKindAlter    = 6
	commandKindInitPID  = 7
	commandKindClaimPID = 11
)

// Command kinds of version 3.
const (
	// KindCreateTopic creates a topic.
	KindCreateTopic CommandKind = commandKindCreate
	// KindDeleteTopic deletes a topic and its partitions' logs.
	KindDeleteTopic CommandKind = commandKindDelete
	// KindCreatePartitions raises a topic's partition count.
	KindCreatePartitions CommandKind = commandKindAddPart
	// KindAlterTopic changes a topic's configuration.
	KindAlterTopic CommandKind = commandKindAlter
	// KindInitProducer hands out a producer ID and epoch (idempotent producer).
	KindInitProducer CommandKind = commandKindInitPID
	// KindClaimProducer records the client a producer ID belongs to (the first claim wins).
	// A server older than it answers the command ErrInvalidCommand and changes nothing: the
	// owner decides only who may use the ID, never what a replica stores.
	KindClaimProducer CommandKind = commandKindClaimPID
)

// MaxRecordHeaders bounds the headers of one record.
const MaxRecordHeaders = 1024

// TopicID is a topic's UUID. The default topic's is the zero ID.
type TopicID [16]byte

// String formats the ID as a UUID.
func (id TopicID) String() string {
	var b [36]byte
	hex.Encode(b[0:8], id[0:4])
	b[8] = '-'
	hex.Encode(b[9:13], id[4:6])
	b[13] = '-'
	hex.Encode(b[14:18], id[6:8])
	b[18] = '-'
	hex.Encode(b[19:23], id[8:10])
	b[23] = '-'
	hex.Encode(b[24:], id[10:])
	return string(b[:])
}

// ParseTopicID parses a UUID string as String formats it.
func ParseTopicID(s string) (TopicID, error) {
	var id TopicID
	if len(s) != 36 || s[8] != '-' || s[13] != '-' || s[18] != '-' || s[23] != '-' {
		return id, fmt.Errorf("fsm: bad topic ID %q", s)
	}
	h := s[0:8] + s[9:13] + s[14:18] + s[19:23] + s[24:]
	if _, err := hex.Decode(id[:], []byte(h)); err != nil {
		return id, fmt.Errorf("fsm: bad topic ID %q: %w", s, err)
	}
	return id, nil
}

// NewTopicID returns a random (version 4) UUID.
func NewTopicID() TopicID {
	var id TopicID
	_, _ = rand.Read(id[:])
	id[6] = id[6]&0x0f | 0x40
	id[8] = id[8]&0x3f | 0x80
	return id
}

// Target names a partition. The zero Target is the default topic's partition 0: the log of
// servers before topics.
type Target struct {
	Topic     TopicID
	Partition uint32
}

// IsDefault reports whether t is the default topic's partition 0.
func (t Target) IsDefault() bool { return t == Target{} }

// ProducerRef is an idempotent producer's identity and the sequence number of a batch's first
// record. ID 0: not idempotent.
type ProducerRef struct {
	ID           uint64
	Epoch        uint16
	BaseSequence int32
}

// Header is a record header.
type Header struct {
	Key   string
	Value []byte
}

// Batch is what one append command carries: records for one partition, optionally from an
// idempotent producer.
type Batch struct {
	Target   Target
	Producer ProducerRef
	Records  []AppendRecord
}

// RecordSize returns what Limits.MaxRecordBytes (and a topic's MaxRecordBytes) counts of a
// record: its key, its headers' keys and values, and its value.
func RecordSize(r AppendRecord) int { return recordSize(r) }

// EncodedRecordSize returns the most bytes r adds to an append command in any format version
// (its version-3 size, never below its version-2 size): with EncodedAppendOverhead, a bound
// for splitting records into commands within Limits.MaxCommandBytes before encoding them.
func EncodedRecordSize(r AppendRecord) int { return encodedRecordSizeV3(r) }

// EncodedAppendOverhead returns the most bytes an append command takes besides its records
// (the header, target and producer of a version-3 command).
func EncodedAppendOverhead() int { return commandHeaderLen + targetLen + producerLen }

// recordSize is what limits count of a record: its key, headers and value.
func recordSize(r AppendRecord) int {
	n := len(r.Key) + len(r.Value)
	for _, h := range r.Headers {
		n += len(h.Key) + len(h.Value)
	}
	return n
}

// plain reports whether r needs nothing version 3 adds.
func (r AppendRecord) plain() bool { return r.Key == nil && len(r.Headers) == 0 && r.Timestamp == 0 }

// needsV3 reports whether b must be encoded in version 3.
func (b Batch) needsV3() bool {
	if !b.Target.IsDefault() || b.Producer.ID != 0 {
		return true
	}
	for _, r := range b.Records {
		if !r.plain() {
			return true
		}
	}
	return false
}

// encodedRecordSizeV3 is a record's size in a version-3 command.
func encodedRecordSizeV3(r AppendRecord) int {
	n := recordHeaderLenV3 + 4 + len(r.Value)
	if r.Timestamp != 0 {
		n += 8
	}
	if r.Key != nil {
		n += 4 + len(r.Key)
	}
	for _, h := range r.Headers {
		n += 8 + len(h.Key) + len(h.Value)
	}
	return n
}

// EncodedBatchSize returns the encoded size of the append command EncodeBatch makes of b.
func EncodedBatchSize(b Batch) int {
	if !b.needsV3() {
		return EncodedAppendSize(b.Records...)
	}
	n := commandHeaderLen + targetLen + producerLen
	for _, r := range b.Records {
		n += encodedRecordSizeV3(r)
	}
	return n
}

// EncodeBatchAt encodes an append command for b, stamped with ts, checked against lim (zero
// fields mean defaults; MaxRecordBytes bounds each record's key, headers and value together).
// A batch of plain records for the default partition without a producer is encoded in
// version 2. Safe for concurrent use.
//
// Errors: ErrEmptyBatch; ErrTooLarge as EncodeAppendAt's, and for more than MaxRecordHeaders
// headers on a record.
func EncodeBatchAt(lim Limits, ts time.Time, b Batch) ([]byte, error) {
	if !b.needsV3() {
		return EncodeAppendAt(lim, ts, b.Records...)
	}
	lim = lim.withDefaults()
	if len(b.Records) == 0 {
		return nil, ErrEmptyBatch
	}
	if len(b.Records) > lim.MaxBatchRecords {
		return nil, fmt.Errorf("%d records in one batch, limit %d: %w", len(b.Records), lim.MaxBatchRecords, ErrTooLarge)
	}
	size := commandHeaderLen + targetLen + producerLen
	for i, r := range b.Records {
		if n := recordSize(r); n > lim.MaxRecordBytes {
			return nil, fmt.Errorf("%s is %d bytes (key, headers and value), limit %d: %w", recordName(i, len(b.Records)), n, lim.MaxRecordBytes, ErrTooLarge)
		}
		if len(r.Headers) > MaxRecordHeaders {
			return nil, fmt.Errorf("%s has %d headers, limit %d: %w", recordName(i, len(b.Records)), len(r.Headers), MaxRecordHeaders, ErrTooLarge)
		}
		size += encodedRecordSizeV3(r)
		if size > lim.MaxCommandBytes {
			return nil, fmt.Errorf("batch exceeds %d bytes encoded: %w", lim.MaxCommandBytes, ErrTooLarge)
		}
	}
	out := make([]byte, commandHeaderLen, size)
	out[0] = commandVersion3
	out[1] = commandKindAppend
	binary.BigEndian.PutUint32(out[4:8], uint32(len(b.Records)))
	binary.BigEndian.PutUint64(out[12:20], uint64(ts.UnixMilli()))
	out = appendTarget(out, b.Target)
	out = binary.BigEndian.AppendUint64(out, b.Producer.ID)
	out = binary.BigEndian.AppendUint16(out, b.Producer.Epoch)
	out = binary.BigEndian.AppendUint32(out, uint32(b.Producer.BaseSequence))
	for _, r := range b.Records {
		out = binary.BigEndian.AppendUint32(out, r.Type)
		var attrs byte
		if r.Timestamp != 0 {
			attrs |= recordAttrTime
		}
		if r.Key != nil {
			attrs |= recordAttrKey
		}
		out = append(out, attrs)
		if r.Timestamp != 0 {
			out = binary.BigEndian.AppendUint64(out, uint64(r.Timestamp))
		}
		if r.Key != nil {
			out = binary.BigEndian.AppendUint32(out, uint32(len(r.Key)))
			out = append(out, r.Key...)
		}
		out = binary.BigEndian.AppendUint32(out, uint32(len(r.Headers)))
		for _, h := range r.Headers {
			out = binary.BigEndian.AppendUint32(out, uint32(len(h.Key)))
			out = append(out, h.Key...)
			out = binary.BigEndian.AppendUint32(out, uint32(len(h.Value)))
			out = append(out, h.Value...)
		}
		out = binary.BigEndian.AppendUint32(out, uint32(len(r.Value)))
		out = append(out, r.Value...)
	}
	binary.BigEndian.PutUint32(out[8:12], commandCRC(out))
	return out, nil
}

func appendTarget(b []byte, t Target) []byte {
	b = append(b, t.Topic[:]...)
	return binary.BigEndian.AppendUint32(b, t.Partition)
}

// EncodeRetainTarget encodes a retain command for one partition (version 2 for the default
// partition, as EncodeRetain).
func EncodeRetainTarget(t Target, first uint64, ts time.Time) []byte {
	if t.IsDefault() {
		return EncodeRetain(first, ts)
	}
	b := make([]byte, commandHeaderLen, commandHeaderLen+targetLen+retainBodyLen)
	b[0] = commandVersion3
	b[1] = commandKindRetain
	binary.BigEndian.PutUint64(b[12:20], uint64(ts.UnixMilli()))
	b = appendTarget(b, t)
	b = binary.BigEndian.AppendUint64(b, first)
	binary.BigEndian.PutUint32(b[8:12], commandCRC(b))
	return b
}

// encodeMeta encodes a metadata command of kind k with a JSON body.
func encodeMeta(k CommandKind, ts time.Time, body []byte) ([]byte, error) {
	if commandHeaderLen+len(body) > MaxCommandBytes {
		return nil, fmt.Errorf("metadata command of %d bytes: %w", len(body), ErrTooLarge)
	}
	b := make([]byte, commandHeaderLen, commandHeaderLen+len(body))
	b[0] = commandVersion3
	b[1] = byte(k)
	binary.BigEndian.PutUint64(b[12:20], uint64(ts.UnixMilli()))
	b = append(b, body...)
	binary.BigEndian.PutUint32(b[8:12], commandCRC(b))
	return b, nil
}

// decodeV3 decodes the body of a version-3 command whose header (data[:20]) was checked:
// version, reserved field, length and checksum.
func decodeV3(cmd Command, count uint32, body []byte) (Command, error) {
	bad := func(format string, args ...any) (Command, error) {
		return Command{}, fmt.Errorf("%w: %s", ErrInvalidCommand, fmt.Sprintf(format, args...))
	}
	switch cmd.Kind {
	case KindRetain:
		if count != 0 || len(body) != targetLen+retainBodyLen {
			return bad("retain command with count %d and %d body bytes", count, len(body))
		}
		cmd.Target = readTarget(body)
		cmd.First = binary.BigEndian.Uint64(body[targetLen:])
		return cmd, nil
	case KindCreateTopic, KindDeleteTopic, KindCreatePartitions, KindAlterTopic, KindInitProducer,
		KindCommitOffsets, KindDeleteGroup, KindExpireOffsets, KindClaimProducer:
		if count != 0 {
			return bad("metadata command with count %d", count)
		}
		cmd.Meta = body
		return cmd, nil
	case KindAppend:
	default:
		return bad("unknown kind %d", cmd.Kind)
	}
	if len(body) < targetLen+producerLen {
		return bad("append of %d bytes, shorter than its target", len(body))
	}
	cmd.Target = readTarget(body)
	p := body[targetLen:]
	cmd.Producer = ProducerRef{ID: binary.BigEndian.Uint64(p), Epoch: binary.BigEndian.Uint16(p[8:]), BaseSequence: int32(binary.BigEndian.Uint32(p[10:]))}
	body = body[targetLen+producerLen:]
	if count == 0 || count > MaxBatchRecords || uint64(count) > uint64(len(body)/(recordHeaderLenV3+4)) {
		return bad("record count %d for %d bytes (limit %d)", count, len(body), MaxBatchRecords)
	}
	u32 := func() (uint32, bool) {
		if len(body) < 4 {
			return 0, false
		}
		v := binary.BigEndian.Uint32(body)
		body = body[4:]
		return v, true
	}
	bytesN := func(budget *int) ([]byte, bool) {
		n, ok := u32()
		if !ok || uint64(n) > uint64(len(body)) || int(n) > *budget {
			return nil, false
		}
		*budget -= int(n)
		v := body[:n:n]
		body = body[n:]
		return v, true
	}
	records := make([]AppendRecord, count)
	for i := range records {
		var r AppendRecord
		budget := MaxRecordValueBytes
		if len(body) < 5 {
			return bad("record %d: truncated header", i)
		}
		r.Type = binary.BigEndian.Uint32(body)
		attrs := body[4]
		body = body[5:]
		if attrs&^(recordAttrTime|recordAttrKey) != 0 {
			return bad("record %d: unknown attributes %#x", i, attrs)
		}
		if attrs&recordAttrTime != 0 {
			if len(body) < 8 {
				return bad("record %d: truncated timestamp", i)
			}
			r.Timestamp = int64(binary.BigEndian.Uint64(body))
			body = body[8:]
			if r.Timestamp == 0 {
				return bad("record %d: zero timestamp with the timestamp attribute", i)
			}
		}
		if attrs&recordAttrKey != 0 {
			k, ok := bytesN(&budget)
			if !ok {
				return bad("record %d: bad key length", i)
			}
			if k == nil {
				k = []byte{}
			}
			r.Key = k
		}
		nh, ok := u32()
		if !ok || nh > MaxRecordHeaders || uint64(nh) > uint64(len(body)/8) {
			return bad("record %d: header count %d for %d bytes (limit %d)", i, nh, len(body), MaxRecordHeaders)
		}
		if nh > 0 {
			r.Headers = make([]Header, nh)
			for j := range r.Headers {
				k, ok1 := bytesN(&budget)
				v, ok2 := bytesN(&budget)
				if !ok1 || !ok2 {
					return bad("record %d: header %d: bad length", i, j)
				}
				r.Headers[j] = Header{Key: string(k), Value: v}
			}
		}
		v, ok := bytesN(&budget)
		if !ok {
			return bad("record %d: bad value length (limit %d bytes for key, headers and value)", i, MaxRecordValueBytes)
		}
		r.Value = v
		records[i] = r
	}
	if len(body) != 0 {
		return bad("%d bytes after the last record", len(body))
	}
	cmd.Records = records
	return cmd, nil
}

func readTarget(b []byte) Target {
	var t Target
	copy(t.Topic[:], b[:16])
	t.Partition = binary.BigEndian.Uint32(b[16:])
	return t
}

// Stored envelope version 3: version 2's fields, then the record's extras:
//
//	+-------+--------------------------+----------------------+--------------+---------+-------+
//	| attrs | [producer timestamp      | [key len uvarint,    | header count | headers | value |
//	| u8    |  varint] if attrs&1      |  key] if attrs&2     | uvarint      |         | (rest)|
//	+-------+--------------------------+----------------------+--------------+---------+-------+
//
//	header: key len uvarint, key, value len uvarint, value
//
// Records without a key, headers or producer timestamp are stored in version 2.
const (
	envelopeVersion3 = 3
	// maxEnvelopeExtras bounds what version 3 adds to the header: attrs, timestamp, key length,
	// header count and two lengths per header (every length is below 4 MiB: 4 bytes).
	maxEnvelopeExtras = 1 + binary.MaxVarintLen64 + 4 + 4 + MaxRecordHeaders*8
)

// appendEnvelopeV3 appends the stored form of a record with extras.
func appendEnvelopeV3(dst []byte, index, term, pos uint64, ts int64, r AppendRecord) []byte {
	dst = append(dst, envelopeVersion3)
	dst = binary.AppendUvarint(dst, index)
	dst = binary.AppendUvarint(dst, term)
	dst = binary.AppendUvarint(dst, pos)
	dst = binary.AppendUvarint(dst, uint64(r.Type))
	dst = binary.AppendUvarint(dst, uint64(ts))
	var attrs byte
	if r.Timestamp != 0 {
		attrs |= recordAttrTime
	}
	if r.Key != nil {
		attrs |= recordAttrKey
	}
	dst = append(dst, attrs)
	if r.Timestamp != 0 {
		dst = binary.AppendVarint(dst, r.Timestamp)
	}
	if r.Key != nil {
		dst = binary.AppendUvarint(dst, uint64(len(r.Key)))
		dst = append(dst, r.Key...)
	}
	dst = binary.AppendUvarint(dst, uint64(len(r.Headers)))
	for _, h := range r.Headers {
		dst = binary.AppendUvarint(dst, uint64(len(h.Key)))
		dst = append(dst, h.Key...)
		dst = binary.AppendUvarint(dst, uint64(len(h.Value)))
		dst = append(dst, h.Value...)
	}
	return append(dst, r.Value...)
}

// decodeExtras decodes version 3's extras from rest into env; it returns the value.
func decodeExtras(env *envelope, rest []byte) ([]byte, error) {
	if len(rest) < 1 {
		return nil, fmt.Errorf("%w: truncated attributes", errBadEnvelope)
	}
	attrs := rest[0]
	rest = rest[1:]
	if attrs&^(recordAttrTime|recordAttrKey) != 0 {
		return nil, fmt.Errorf("%w: unknown attributes %#x", errBadEnvelope, attrs)
	}
	uv := func() (uint64, bool) {
		v, n := binary.Uvarint(rest)
		if n <= 0 {
			return 0, false
		}
		rest = rest[n:]
		return v, true
	}
	bytesN := func() ([]byte, bool) {
		n, ok := uv()
		if !ok || n > uint64(len(rest)) {
			return nil, false
		}
		v := rest[:n:n]
		rest = rest[n:]
		return v, true
	}
	if attrs&recordAttrTime != 0 {
		v, n := binary.Varint(rest)
		if n <= 0 {
			return nil, fmt.Errorf("%w: bad producer timestamp", errBadEnvelope)
		}
		env.CreateTime, rest = v, rest[n:]
	}
	if attrs&recordAttrKey != 0 {
		k, ok := bytesN()
		if !ok {
			return nil, fmt.Errorf("%w: bad key", errBadEnvelope)
		}
		env.Key = k
		if env.Key == nil {
			env.Key = []byte{}
		}
	}
	nh, ok := uv()
	if !ok || nh > MaxRecordHeaders || nh > uint64(len(rest)/2) {
		return nil, fmt.Errorf("%w: bad header count", errBadEnvelope)
	}
	if nh > 0 {
		env.Headers = make([]Header, nh)
		for i := range env.Headers {
			k, ok1 := bytesN()
			v, ok2 := bytesN()
			if !ok1 || !ok2 {
				return nil, fmt.Errorf("%w: bad header %d", errBadEnvelope, i)
			}
			env.Headers[i] = Header{Key: string(k), Value: v}
		}
	}
	return rest, nil
}
