package fsm

import (
	"encoding/binary"
	"testing"
	"time"

	"github.com/commitlog-go/commitlog/consensus"
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
	log := memory.New(memory.Config{})
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
