package fsm

import (
	"sync/atomic"
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

// countingLog counts the records read through Read.
type countingLog struct {
	*segment.Log
	reads atomic.Int64
}

func (c *countingLog) Read(off uint64) ([]byte, error) {
	c.reads.Add(1)
	return c.Log.Read(off)
}

// TestOffsetForTimeAfterCutInsideSegment: retention cuts the log inside a segment (the
// segment stays on disk; its records below the cut are not served). A lookup whose first
// match in the stored segments lies below the cut must not read the log from the cut to
// the end to find the first match above it: it reads at most about a segment.
func TestOffsetForTimeAfterCutInsideSegment(t *testing.T) {
	seg, err := segment.Open(t.TempDir(), segment.Config{Sync: segment.SyncNever, SegmentBytes: 4096,
		TimeIndexInterval: 100, Timestamp: StoredTimestamp, MaxRecordBytes: MaxStoredRecordBytes})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = seg.Close() })
	log := &countingLog{Log: seg}
	f, err := New(Config{Log: log})
	if err != nil {
		t.Fatal(err)
	}
	at := time.UnixMilli(1_780_000_000_000)
	index := uint64(0)
	produce := func(tss ...int64) {
		t.Helper()
		recs := make([]AppendRecord, len(tss))
		for i, ts := range tss {
			recs[i] = AppendRecord{Value: []byte("0123456789"), Type: 1, Timestamp: ts}
		}
		b, err := EncodeBatchAt(Limits{}, at, Batch{Records: recs})
		if err != nil {
			t.Fatal(err)
		}
		index++
		mustApply(t, f, consensus.Entry{Index: index, Term: 1, Data: b})
	}
	// Offsets 0-1 are late (producer time 9000), 2-9 early (1000, 7000 at 6): the cut at 5
	// leaves 0-4 in the first segment, unserved.
	produce(9000, 9000, 1000, 1000, 1000, 1000, 7000, 1000, 1000, 1000)
	for range 3000 {
		produce(1000)
	}
	produce(9500)
	if seg.Segments() < 10 {
		t.Fatalf("%d segments; the test wants many", seg.Segments())
	}
	index++
	f.Apply([]consensus.Entry{{Index: index, Term: 1, Data: EncodeRetain(5, at)}})
	if lo, _ := f.Bounds(); lo != 5 {
		t.Fatalf("lowest %d after the cut, want 5", lo)
	}
	if lo, _ := seg.Bounds(); lo != 0 {
		t.Fatalf("the stored log starts at %d; the test wants the cut inside its first segment", lo)
	}
	_, next := f.Bounds()
	for _, c := range []struct {
		ts   int64
		want uint64
	}{{5000, 6}, {8000, next - 1}, {9000, next - 1}, {9501, next}, {1000, 5}} {
		log.reads.Store(0)
		got, err := f.OffsetForTime(c.ts)
		if err != nil || got != c.want {
			t.Fatalf("OffsetForTime(%d) = %d, %v; want %d", c.ts, got, err, c.want)
		}
		if n := log.reads.Load(); n > 200 {
			t.Errorf("OffsetForTime(%d) read %d records of %d: it scanned the log", c.ts, n, next)
		}
	}
}
