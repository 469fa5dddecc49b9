package fsm

import (
	"encoding/binary"
	"errors"
	"testing"
	"time"

	"github.com/commitlog-go/commitlog/consensus"
	"github.com/commitlog-go/commitlog/storage"
	"github.com/commitlog-go/commitlog/storage/memory"
)

// appendEnvelopeV1 is the version-1 stored form (no timestamp), as data dirs written before
// timestamps hold it.
func appendEnvelopeV1(dst []byte, index, term, pos uint64, typ uint32, value []byte) []byte {
	dst = append(dst, envelopeVersion1)
	dst = binary.AppendUvarint(dst, index)
	dst = binary.AppendUvarint(dst, term)
	dst = binary.AppendUvarint(dst, pos)
	dst = binary.AppendUvarint(dst, uint64(typ))
	return append(dst, value...)
}

// TestOldDataWithoutTimestamps: a log written before timestamps (version-1 envelopes, and
// version-1 commands replayed from Raft's log) opens, serves its records, takes new ones,
// and retention by age never expires the undated records before the first dated record
// after them.
func TestOldDataWithoutTimestamps(t *testing.T) {
	log := newMemLog(t, memory.Config{})
	defer log.Close()
	var pos uint64
	for i := range 3 {
		b := appendEnvelopeV1(nil, uint64(i+1), 1, pos, 1, []byte{'o', byte('0' + i)})
		pos += uint64(len(b))
		if _, err := log.Append(b); err != nil {
			t.Fatal(err)
		}
	}
	f, err := New(Config{Log: log})
	if err != nil {
		t.Fatalf("open a log of version-1 records: %v", err)
	}
	if f.AppliedIndex() != 3 {
		t.Fatalf("AppliedIndex %d, want 3", f.AppliedIndex())
	}
	// A version-1 command replayed from Raft's log: stored without a timestamp too.
	v1, err := encodeAppend(commandVersion1, Limits{}, 0, []AppendRecord{{Value: []byte("o3"), Type: 1}})
	if err != nil {
		t.Fatal(err)
	}
	t0 := time.UnixMilli(1_780_000_000_000)
	newer, err := EncodeAppendAt(Limits{}, t0.Add(-time.Hour), AppendRecord{Value: []byte("n0")})
	if err != nil {
		t.Fatal(err)
	}
	// A leader whose clock is behind: its records still get the previous timestamp, never
	// less.
	skewed, err := EncodeAppendAt(Limits{}, t0.Add(-2*time.Hour), AppendRecord{Value: []byte("n1")})
	if err != nil {
		t.Fatal(err)
	}
	latest, err := EncodeAppendAt(Limits{}, t0, AppendRecord{Value: []byte("n2")})
	if err != nil {
		t.Fatal(err)
	}
	mustApply(t, f,
		consensus.Entry{Index: 4, Term: 1, Data: v1},
		consensus.Entry{Index: 5, Term: 2, Data: newer},
		consensus.Entry{Index: 6, Term: 2, Data: skewed},
		consensus.Entry{Index: 7, Term: 2, Data: latest},
	)
	recs := readAll(t, f)
	if got := values(recs); len(got) != 7 || got[0] != "o0" || got[3] != "o3" || got[6] != "n2" {
		t.Fatalf("records %q", got)
	}
	wantTS := []int64{0, 0, 0, 0, t0.Add(-time.Hour).UnixMilli(), t0.Add(-time.Hour).UnixMilli(), t0.UnixMilli()}
	for off, want := range wantTS {
		b, err := log.Read(uint64(off))
		if err != nil {
			t.Fatal(err)
		}
		env, err := decodeEnvelope(b)
		if err != nil || env.Timestamp != want {
			t.Fatalf("offset %d: timestamp %d (%v), want %d", off, env.Timestamp, err, want)
		}
	}
	// The undated records count as old as n0 (an hour): kept at 90 minutes, cut with n0 and
	// n1 at 30 minutes.
	for _, tt := range []struct {
		age  time.Duration
		want uint64
	}{{90 * time.Minute, 0}, {30 * time.Minute, 6}, {time.Minute, 6}} {
		if got, err := f.RetentionPoint(RetentionPolicy{Age: tt.age}, t0); err != nil || got != tt.want {
			t.Errorf("RetentionPoint(age %v) = %d, %v; want %d", tt.age, got, err, tt.want)
		}
	}
	// Size: the whole log fits in its own size; one byte less drops the first record.
	_, next := f.Bounds()
	end := storedPos(t, f, next)
	if got, _ := f.RetentionPoint(RetentionPolicy{Bytes: int64(end)}, t0); got != 0 {
		t.Errorf("RetentionPoint(bytes = log size) = %d, want 0", got)
	}
	if got, _ := f.RetentionPoint(RetentionPolicy{Bytes: int64(end) - 1}, t0); got != 1 {
		t.Errorf("RetentionPoint(bytes = log size - 1) = %d, want 1", got)
	}
	if got, _ := f.RetentionPoint(RetentionPolicy{Bytes: 1}, t0); got != next-1 {
		t.Errorf("RetentionPoint(1 byte) = %d, want %d (the last record is always kept)", got, next-1)
	}
	// Reopened (a restart), the timestamps still never go down.
	re, err := New(Config{Log: log})
	if err != nil {
		t.Fatal(err)
	}
	mustApply(t, re, consensus.Entry{Index: 8, Term: 2, Data: skewed})
	b, _ := log.Read(7)
	if env, _ := decodeEnvelope(b); env.Timestamp != t0.UnixMilli() {
		t.Fatalf("after a restart, a record from a slow clock got %d, want %d", env.Timestamp, t0.UnixMilli())
	}
}

// TestRestartRestoresTheFirstOffset: after a restart, the node's own snapshot brings back the
// first offset a retain command set, although its storage (which drops whole segments only)
// still holds records below it; a retain command replayed from Raft's log does too.
func TestRestartRestoresTheFirstOffset(t *testing.T) {
	f, log := newMemFSM(t, Config{})
	var stored [][]byte // what a storage that drops whole segments only may still hold
	keepStored := func(from, to uint64) {
		for off := from; off < to; off++ {
			b, err := log.Read(off)
			if err != nil {
				t.Fatal(err)
			}
			stored = append(stored, b)
		}
	}
	applyRange(t, f, 0, 10, 2, 1) // indices 1..5
	keepStored(0, 10)
	res := f.Apply([]consensus.Entry{{Index: 6, Term: 1, Data: EncodeRetain(4, testTime)}})
	if r, ok := res[0].(RetainResult); !ok || r.First != 4 {
		t.Fatalf("retain: %v", res[0])
	}
	m := persist(t, f)
	// A replayed retain command that would have emptied the log then is rejected again.
	applyRange(t, f, 10, 12, 2, 7) // index 7
	keepStored(10, 12)
	res = f.Apply([]consensus.Entry{{Index: 8, Term: 1, Data: EncodeRetain(11, testTime)}})
	if r, ok := res[0].(RetainResult); !ok || r.First != 11 {
		t.Fatalf("retain 11: %v", res[0])
	}
	applyRange(t, f, 12, 14, 2, 9) // index 9: after a restart the log says 9 is applied
	keepStored(12, 14)

	// Restart with a storage that kept everything (as whole segments may).
	keep := newMemLog(t, memory.Config{})
	defer keep.Close()
	for _, b := range stored {
		if _, err := keep.Append(b); err != nil {
			t.Fatal(err)
		}
	}
	re, err := New(Config{Log: keep})
	if err != nil {
		t.Fatal(err)
	}
	if lo, _ := re.Bounds(); lo != 0 {
		t.Fatalf("before the snapshot is restored: lowest %d", lo)
	}
	if err := re.Restore(m, unreadable{t}); err != nil {
		t.Fatalf("Restore: %v", err)
	}
	if lo, hi := re.Bounds(); lo != 4 || hi != 14 {
		t.Fatalf("after restoring its snapshot: [%d, %d), want [4, 14)", lo, hi)
	}
	// Raft replays the entries after the snapshot: the records are skipped, the retain
	// command (whose index is below the last record's) is applied again.
	res = re.Apply([]consensus.Entry{
		{Index: 7, Term: 1, Data: cmd(t, "v-10", "v-11")},
		{Index: 8, Term: 1, Data: EncodeRetain(11, testTime)},
		{Index: 9, Term: 1, Data: cmd(t, "v-12", "v-13")},
	})
	for i, r := range res {
		if err, ok := r.(error); !ok || !errors.Is(err, ErrAlreadyApplied) {
			t.Fatalf("replayed entry %d: %v", 7+i, r)
		}
	}
	if lo, hi := re.Bounds(); lo != 11 || hi != 14 {
		t.Fatalf("after the replay: [%d, %d), want [11, 14)", lo, hi)
	}
	if _, err := re.Read(t.Context(), 10); !errors.Is(err, storage.ErrOutOfRange) {
		t.Fatalf("Read below the start: %v", err)
	}
	// A retain that would have emptied the log when it was first applied is rejected on
	// replay too, although the log is longer now.
	f2, _ := newMemFSM(t, Config{})
	applyRange(t, f2, 0, 4, 2, 1) // indices 1, 2: offsets 0..3
	if r := f2.Apply([]consensus.Entry{{Index: 3, Term: 1, Data: EncodeRetain(5, testTime)}}); !errors.Is(r[0].(error), ErrInvalidCommand) {
		t.Fatalf("retain past the end: %v", r[0])
	}
	applyRange(t, f2, 4, 8, 2, 4) // indices 4, 5: offsets 4..7
	if r := f2.Apply([]consensus.Entry{{Index: 3, Term: 1, Data: EncodeRetain(5, testTime)}}); !errors.Is(r[0].(error), ErrAlreadyApplied) {
		t.Fatalf("replayed retain: %v", r[0])
	}
	if lo, _ := f2.Bounds(); lo != 0 {
		t.Fatalf("a replayed retain rejected the first time moved the start to %d", lo)
	}
}

// cutObserver wraps a storage.Log and records, when the FSM asks it to drop segments, the
// first offset the FSM showed readers at that moment.
type cutObserver struct {
	storage.Log
	f          *FSM
	firstSeen  []uint64 // FSM.First() at each TruncatePrefix
	truncateTo []uint64
}

func (l *cutObserver) TruncatePrefix(first uint64) error {
	l.firstSeen = append(l.firstSeen, l.f.First())
	l.truncateTo = append(l.truncateTo, first)
	return l.Log.TruncatePrefix(first)
}

// TestRetainReachesTheStorageBeforeReads: a retain command has the storage record the cut
// before reads see the new log start, so that a node that answered OutOfRange below the cut
// (which it may only do once the storage holds the cut) answers the same after a kill and a
// restart. Before, the FSM moved First first, and readers were refused below the cut while the
// storage had not recorded it yet.
func TestRetainReachesTheStorageBeforeReads(t *testing.T) {
	l := &cutObserver{Log: newMemLog(t, memory.Config{})}
	defer l.Close()
	f, err := New(Config{Log: l})
	if err != nil {
		t.Fatal(err)
	}
	l.f = f
	applyRange(t, f, 0, 10, 2, 1) // indices 1..5, offsets 0..9
	res := f.Apply([]consensus.Entry{{Index: 6, Term: 1, Data: EncodeRetain(4, testTime)}})
	if r, ok := res[0].(RetainResult); !ok || r.First != 4 {
		t.Fatalf("retain: %v", res[0])
	}
	if len(l.truncateTo) != 1 || l.truncateTo[0] != 4 {
		t.Fatalf("storage asked to drop below %v, want [4]", l.truncateTo)
	}
	if l.firstSeen[0] != 0 {
		t.Fatalf("when the storage was asked to record the cut at 4, readers already saw first %d; want 0 (the cut visible only once stored)", l.firstSeen[0])
	}
	if got := f.First(); got != 4 {
		t.Fatalf("after the retain, first %d, want 4", got)
	}
}
