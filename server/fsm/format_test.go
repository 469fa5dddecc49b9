package fsm

import (
	"bytes"
	"encoding/binary"
	"errors"
	"math"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/commitlog-go/commitlog/transport"
)

func TestEncodeDecodeRoundTrip(t *testing.T) {
	tests := []struct {
		name    string
		records []AppendRecord
	}{
		{"one empty value", []AppendRecord{{}}},
		{"one record", []AppendRecord{{Value: []byte("hello"), Type: 7}}},
		{"many records", []AppendRecord{{Value: []byte("a")}, {Value: nil, Type: 1}, {Value: bytes.Repeat([]byte{0xff}, 1000), Type: math.MaxUint32}}},
		{"max record", []AppendRecord{{Value: make([]byte, DefaultMaxRecordBytes)}}},
		{"max batch", slices.Repeat([]AppendRecord{{Value: []byte("x"), Type: 2}}, DefaultMaxBatchRecords)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b, err := EncodeAppend(Limits{}, tt.records...)
			if err != nil {
				t.Fatalf("EncodeAppend: %v", err)
			}
			if len(b) != EncodedAppendSize(tt.records...) {
				t.Errorf("encoded %d bytes, EncodedAppendSize says %d", len(b), EncodedAppendSize(tt.records...))
			}
			cmd, err := DecodeCommand(b)
			if err != nil {
				t.Fatalf("DecodeCommand: %v", err)
			}
			if len(cmd.Records) != len(tt.records) {
				t.Fatalf("decoded %d records, want %d", len(cmd.Records), len(tt.records))
			}
			for i, r := range cmd.Records {
				if r.Type != tt.records[i].Type || !bytes.Equal(r.Value, tt.records[i].Value) {
					t.Fatalf("record %d: got type %d value %q…, want type %d", i, r.Type, r.Value[:min(len(r.Value), 8)], tt.records[i].Type)
				}
			}
		})
	}
}

func TestEncodeAppendLimits(t *testing.T) {
	tests := []struct {
		name    string
		lim     Limits
		records []AppendRecord
		want    error
	}{
		{"empty batch", Limits{}, nil, ErrEmptyBatch},
		{"record over default", Limits{}, []AppendRecord{{Value: make([]byte, DefaultMaxRecordBytes+1)}}, ErrTooLarge},
		{"record over configured", Limits{MaxRecordBytes: 10}, []AppendRecord{{Value: make([]byte, 11)}}, ErrTooLarge},
		{"record at configured", Limits{MaxRecordBytes: 10}, []AppendRecord{{Value: make([]byte, 10)}}, nil},
		{"too many records", Limits{MaxBatchRecords: 2}, make([]AppendRecord, 3), ErrTooLarge},
		{"command too large", Limits{MaxCommandBytes: 100}, []AppendRecord{{Value: make([]byte, 50)}, {Value: make([]byte, 50)}}, ErrTooLarge},
		{"configured above hard bound is capped", Limits{MaxRecordBytes: 1 << 30, MaxCommandBytes: 1 << 30}, []AppendRecord{{Value: make([]byte, MaxRecordValueBytes+1)}}, ErrTooLarge},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := EncodeAppend(tt.lim, tt.records...)
			if !errors.Is(err, tt.want) || (tt.want == nil) != (err == nil) {
				t.Fatalf("EncodeAppend: got %v, want %v", err, tt.want)
			}
		})
	}
}

// reCRC recomputes a command's checksum after a test edited it, so that the decoder's other
// checks are reached.
func reCRC(b []byte) []byte {
	binary.BigEndian.PutUint32(b[8:12], commandCRC(b))
	return b
}

func TestDecodeCommandRejects(t *testing.T) {
	valid, err := EncodeAppend(Limits{}, AppendRecord{Value: []byte("abc"), Type: 1}, AppendRecord{Value: []byte("de")})
	if err != nil {
		t.Fatal(err)
	}
	edit := func(f func(b []byte) []byte) []byte { return f(slices.Clone(valid)) }
	tests := []struct {
		name string
		data []byte
	}{
		{"nil", nil},
		{"short header", valid[:commandHeaderLen-1]},
		{"header only", edit(func(b []byte) []byte { return reCRC(b[:commandHeaderLen]) })},
		{"bad version", edit(func(b []byte) []byte { b[0] = 3; return reCRC(b) })},
		{"version 1 retain", edit(func(b []byte) []byte { b[0], b[1] = 1, 2; return reCRC(b) })},
		{"retain with records", edit(func(b []byte) []byte { b[1] = 2; return reCRC(b) })},
		{"retain short", func() []byte { b := EncodeRetain(5, time.Now()); return reCRC(b[:len(b)-1]) }()},
		{"bad kind", edit(func(b []byte) []byte { b[1] = 9; return reCRC(b) })},
		{"reserved set", edit(func(b []byte) []byte { b[3] = 1; return reCRC(b) })},
		{"zero count", edit(func(b []byte) []byte { binary.BigEndian.PutUint32(b[4:], 0); return reCRC(b) })},
		{"count above data", edit(func(b []byte) []byte { binary.BigEndian.PutUint32(b[4:], 3); return reCRC(b) })},
		{"count above hard bound", edit(func(b []byte) []byte { binary.BigEndian.PutUint32(b[4:], MaxBatchRecords+1); return reCRC(b) })},
		{"checksum mismatch", edit(func(b []byte) []byte { b[len(b)-1] ^= 1; return b })},
		{"length past end", edit(func(b []byte) []byte { binary.BigEndian.PutUint32(b[commandHeaderLen+4:], 100); return reCRC(b) })},
		{"length above hard bound", edit(func(b []byte) []byte {
			binary.BigEndian.PutUint32(b[commandHeaderLen+4:], MaxRecordValueBytes+1)
			return reCRC(b)
		})},
		{"trailing bytes", edit(func(b []byte) []byte { return reCRC(append(b, 0)) })},
		{"truncated", edit(func(b []byte) []byte { return reCRC(b[:len(b)-1]) })},
		{"too large", make([]byte, MaxCommandBytes+1)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := DecodeCommand(tt.data); !errors.Is(err, ErrInvalidCommand) {
				t.Fatalf("DecodeCommand: got %v, want ErrInvalidCommand", err)
			}
		})
	}
}

func FuzzDecodeCommand(f *testing.F) {
	for _, recs := range [][]AppendRecord{
		{{}},
		{{Value: []byte("hello"), Type: 3}},
		{{Value: []byte("a")}, {Value: []byte("bc"), Type: 1}, {Value: bytes.Repeat([]byte("z"), 300)}},
	} {
		b, err := EncodeAppend(Limits{}, recs...)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Add([]byte{1, 1, 0, 0, 0xff, 0xff, 0xff, 0xff, 0, 0, 0, 0})
	f.Add(EncodeRetain(42, time.UnixMilli(1_780_000_000_000)))
	if v1, err := encodeAppend(commandVersion1, Limits{}, 0, []AppendRecord{{Value: []byte("old")}}); err == nil {
		f.Add(v1)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		cmd, err := DecodeCommand(data)
		if err != nil {
			if !errors.Is(err, ErrInvalidCommand) {
				t.Fatalf("error %v does not wrap ErrInvalidCommand", err)
			}
			return
		}
		// Whatever decodes re-encodes to the same bytes: the format has one encoding.
		var again []byte
		if cmd.Kind == KindRetain {
			again = EncodeRetain(cmd.First, time.UnixMilli(cmd.Timestamp))
		} else {
			again, err = encodeAppend(cmd.Version, hardLimits, cmd.Timestamp, cmd.Records)
		}
		if err != nil {
			t.Fatalf("re-encode a decoded command: %v", err)
		}
		if !bytes.Equal(again, data) {
			t.Fatalf("re-encoded command differs from the decoded one")
		}
	})
}

func TestEnvelopeRoundTrip(t *testing.T) {
	tests := []struct {
		index, term, pos uint64
		typ              uint32
		ts               int64
		value            []byte
	}{
		{0, 0, 0, 0, 0, nil},
		{1, 1, 1, 1, 1, []byte("v")},
		{math.MaxUint64, math.MaxUint64, math.MaxUint64, math.MaxUint32, math.MaxInt64, bytes.Repeat([]byte{0}, 100)},
		{1 << 35, 7, 1 << 40, 300, 1_780_000_000_000, []byte("hello")},
	}
	for _, tt := range tests {
		b := appendEnvelope(nil, tt.index, tt.term, tt.pos, tt.typ, tt.ts, tt.value)
		if size := envelopeSize(tt.index, tt.term, tt.pos, tt.typ, tt.ts, len(tt.value)); len(b) != size {
			t.Errorf("envelope is %d bytes, envelopeSize says %d", len(b), size)
		}
		if len(b)-len(tt.value) > maxEnvelopeHeader {
			t.Errorf("envelope header is %d bytes, above maxEnvelopeHeader", len(b)-len(tt.value))
		}
		env, err := decodeEnvelope(b)
		if err != nil {
			t.Fatalf("decodeEnvelope: %v", err)
		}
		if env.Index != tt.index || env.Term != tt.term || env.Pos != tt.pos || env.Type != tt.typ || env.Timestamp != tt.ts || !bytes.Equal(env.Value, tt.value) {
			t.Fatalf("got %+v, want %+v", env, tt)
		}
	}
	// A version-1 record (written before timestamps) still decodes, with no timestamp.
	v1 := []byte{1, 5, 2, 9, 3, 'h', 'i'}
	if env, err := decodeEnvelope(v1); err != nil || env.Index != 5 || env.Term != 2 || env.Pos != 9 || env.Type != 3 || env.Timestamp != 0 || string(env.Value) != "hi" {
		t.Fatalf("version-1 envelope: %+v, %v", env, err)
	}
	for _, bad := range [][]byte{nil, {3, 1, 1, 1, 1}, {1, 0x80}, {1, 1, 1}, {1, 1, 1, 1, 0xff, 0xff, 0xff, 0xff, 0x7f}, {2, 1, 1, 1, 1}, {2, 1, 1, 1, 1, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01}} {
		if _, err := decodeEnvelope(bad); !errors.Is(err, errBadEnvelope) {
			t.Errorf("decodeEnvelope(%x): got %v, want errBadEnvelope", bad, err)
		}
	}
}

func FuzzDecodeEnvelope(f *testing.F) {
	f.Add(appendEnvelope(nil, 5, 2, 99, 1, 1_780_000_000_000, []byte("value")))
	f.Add([]byte{1, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01})
	f.Fuzz(func(t *testing.T, data []byte) {
		env, err := decodeEnvelope(data)
		if err != nil {
			return
		}
		if len(data)-len(env.Value) > maxEnvelopeHeader {
			t.Fatalf("header of %d bytes accepted", len(data)-len(env.Value))
		}
	})
}

// TestEncodedRecordSizeBounds: EncodedAppendOverhead plus each record's EncodedRecordSize
// bounds the encoded command in either version (exactly a version-3 one), and RecordSize
// counts key, headers and value, as the limits do.
func TestEncodedRecordSizeBounds(t *testing.T) {
	plain := []AppendRecord{{Value: []byte("a")}, {Value: make([]byte, 300)}}
	keyed := []AppendRecord{{Value: []byte("v"), Key: []byte("key"), Timestamp: 7, Headers: []Header{{Key: "h", Value: []byte("xy")}}}, {Value: nil, Key: []byte{}}}
	for _, b := range []Batch{
		{Records: plain},
		{Records: keyed},
		{Target: Target{Partition: 3}, Records: plain},
		{Producer: ProducerRef{ID: 9}, Records: keyed},
	} {
		bound := EncodedAppendOverhead()
		for _, r := range b.Records {
			bound += EncodedRecordSize(r)
		}
		cmd, err := EncodeBatchAt(Limits{}, time.Now(), b)
		if err != nil {
			t.Fatal(err)
		}
		if len(cmd) != EncodedBatchSize(b) || len(cmd) > bound || (b.needsV3() && len(cmd) != bound) {
			t.Errorf("batch %+v: encoded %d bytes, EncodedBatchSize %d, bound %d", b, len(cmd), EncodedBatchSize(b), bound)
		}
	}
	if n := RecordSize(keyed[0]); n != 1+3+1+2 {
		t.Errorf("RecordSize = %d, want 7 (value, key, header key and value)", n)
	}
	// MaxRecordBytes bounds the key, headers and value together.
	over := AppendRecord{Value: make([]byte, 10), Key: make([]byte, 10), Headers: []Header{{Key: "k", Value: make([]byte, 5)}}}
	if _, err := EncodeBatchAt(Limits{MaxRecordBytes: 20}, time.Now(), Batch{Records: []AppendRecord{over}}); !errors.Is(err, ErrTooLarge) {
		t.Errorf("a 26-byte record under a 20-byte limit: %v, want ErrTooLarge", err)
	}
}

// TestTooLargeRecordNamed: a record over the limit is named by its index in a batch, and as
// "the record" alone: a ProduceStream's refused record is a command of its own, and "record 0"
// named its place in a command the client never saw.
func TestTooLargeRecordNamed(t *testing.T) {
	lim := Limits{MaxRecordBytes: 10}
	big, small := AppendRecord{Value: make([]byte, 11)}, AppendRecord{Value: []byte("v")}
	keyed := AppendRecord{Value: make([]byte, 11), Key: []byte("k")} // encoded as version 3
	for _, tt := range []struct {
		name string
		enc  func() ([]byte, error)
		want string
	}{
		{"alone", func() ([]byte, error) { return EncodeAppend(lim, big) }, "the record is 11 bytes, limit 10"},
		{"second of two", func() ([]byte, error) { return EncodeAppend(lim, small, big) }, "record 1 is 11 bytes, limit 10"},
		{"alone, v3", func() ([]byte, error) { return EncodeBatchAt(lim, time.Now(), Batch{Records: []AppendRecord{keyed}}) },
			"the record is 12 bytes (key, headers and value), limit 10"},
		{"second of two, v3", func() ([]byte, error) {
			return EncodeBatchAt(lim, time.Now(), Batch{Records: []AppendRecord{small, keyed}})
		}, "record 1 is 12 bytes (key, headers and value), limit 10"},
	} {
		_, err := tt.enc()
		if !errors.Is(err, ErrTooLarge) || !strings.HasPrefix(err.Error(), tt.want) {
			t.Errorf("%s: %v; want ErrTooLarge saying %q", tt.name, err, tt.want)
		}
	}
}

// TestRecordHeaderLimitMatchesTransport: the transports refuse a record of more headers than
// transport.MaxRecordHeaders before decoding it, and the command format bounds what it stores
// by MaxRecordHeaders: were they to differ, a record would pass one check and be refused by the
// other, with another error, or the pre-decode bound would not bound what is stored.
func TestRecordHeaderLimitMatchesTransport(t *testing.T) {
	if MaxRecordHeaders != transport.MaxRecordHeaders {
		t.Fatalf("MaxRecordHeaders = %d, transport.MaxRecordHeaders = %d: keep them equal", MaxRecordHeaders, transport.MaxRecordHeaders)
	}
}
