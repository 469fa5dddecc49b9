package fsm

import (
	"testing"
	"time"

	"github.com/commitlog-go/commitlog/consensus"
	"github.com/commitlog-go/commitlog/storage/segment"
)

// TestOffsetForTime applies the same entries to an FSM over a memory log (which has no time
// index: OffsetForTime reads the log) and one over a segment log with a time index
// (StoredTimestamp), and checks both against a full read, for append times and producer
// timestamps, before and after a retain command.
func TestOffsetForTime(t *testing.T) {
	mem, _ := newMemFSM(t, Config{})
	seg, err := segment.Open(t.TempDir(), segment.Config{Sync: segment.SyncNever, SegmentBytes: 1024,
		TimeIndexInterval: 100, Timestamp: StoredTimestamp, MaxRecordBytes: MaxStoredRecordBytes})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = seg.Close() })
	idx, err := New(Config{Log: seg})
	if err != nil {
		t.Fatal(err)
	}
	rng := newRand(7)
	base := int64(1_780_000_000_000)
	var entries []consensus.Entry
	for i := range 200 {
		at := time.UnixMilli(base + int64(i)*10)
		recs := make([]AppendRecord, 1+rng.IntN(3))
		for j := range recs {
			recs[j] = AppendRecord{Value: []byte("v"), Type: 1}
			if rng.IntN(4) == 0 { // a producer's timestamp, a little off the clock
				recs[j].Timestamp = base + int64(i)*10 + int64(rng.IntN(40)) - 20
			}
		}
		b, err := EncodeBatchAt(Limits{}, at, Batch{Records: recs})
		if err != nil {
			t.Fatal(err)
		}
		entries = append(entries, consensus.Entry{Index: uint64(i + 1), Term: 1, Data: b})
	}
	for _, e := range entries { // one append each: segments roll between them
		mustApply(t, mem, e)
		mustApply(t, idx, e)
	}
	if seg.Segments() < 3 {
		t.Fatalf("%d segments; the test wants several", seg.Segments())
	}
	check := func(t *testing.T) {
		t.Helper()
		all := readAll(t, mem)
		_, next := mem.Bounds()
		for ts := base - 50; ts < base+2050; ts += 3 {
			want := next
			for _, r := range all {
				if r.Timestamp >= ts {
					want = r.Offset
					break
				}
			}
			for name, f := range map[string]*FSM{"memory": mem, "indexed": idx} {
				if got, err := f.OffsetForTime(ts); err != nil || got != want {
					t.Fatalf("%s: OffsetForTime(%d) = %d, %v; want %d", name, ts-base, got, err, want)
				}
			}
		}
	}
	check(t)
	_, next := mem.Bounds()
	retain := consensus.Entry{Index: 201, Term: 1, Data: EncodeRetain(next/2, time.UnixMilli(base+3000))}
	mem.Apply([]consensus.Entry{retain})
	idx.Apply([]consensus.Entry{retain})
	if lo, _ := idx.Bounds(); lo != next/2 {
		t.Fatalf("after retain: lowest %d, want %d", lo, next/2)
	}
	check(t)
}

// TestStoredTimestamp reads the timestamp of every envelope version.
func TestStoredTimestamp(t *testing.T) {
	for _, c := range []struct {
		name string
		b    []byte
		ts   int64
		ok   bool
	}{
		{"v2 append time", appendEnvelope(nil, 5, 1, 0, 1, 1234, []byte("v")), 1234, true},
		{"v2 no time", appendEnvelope(nil, 5, 1, 0, 1, 0, []byte("v")), 0, false},
		{"v3 producer time", appendEnvelopeV3(nil, 5, 1, 0, 1234, AppendRecord{Value: []byte("v"), Timestamp: 99, Key: []byte("k")}), 99, true},
		{"v3 append time", appendEnvelopeV3(nil, 5, 1, 0, 1234, AppendRecord{Value: []byte("v"), Key: []byte("k")}), 1234, true},
		{"v1", []byte{envelopeVersion1, 5, 1, 0, 1, 'v'}, 0, false},
		{"garbage", []byte{envelopeVersion, 0xff}, 0, false},
		{"empty", nil, 0, false},
	} {
		ts, ok := StoredTimestamp(c.b)
		if ts != c.ts || ok != c.ok {
			t.Errorf("%s: StoredTimestamp = %d, %v; want %d, %v", c.name, ts, ok, c.ts, c.ok)
		}
		if env, err := decodeEnvelope(c.b); ok && err == nil {
			r, _ := decodeRecord(0, c.b)
			if r.Timestamp != ts {
				t.Errorf("%s: StoredTimestamp %d, Record.Timestamp %d (envelope %+v)", c.name, ts, r.Timestamp, env)
			}
		}
	}
}
