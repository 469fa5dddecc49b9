package fsm

import (
	"math"
	"testing"
	"time"

	"github.com/commitlog-go/commitlog/consensus"
	"github.com/commitlog-go/commitlog/storage/memory"
)

// TestTopicRetentionMsBeyondDuration: a topic's retention ms too large for a time.Duration
// in nanoseconds (more than about 292 years) keeps every record. It was multiplied into a
// Duration that wrapped: 18446744073710 ms (about 584 years) became a bound of 0.45 ms, and
// retention removed every record but the last as soon as it ran.
func TestTopicRetentionMsBeyondDuration(t *testing.T) {
	log := newMemLog(t, memory.Config{})
	defer log.Close()
	f, err := New(Config{Log: log})
	if err != nil {
		t.Fatal(err)
	}
	t0 := time.UnixMilli(1_780_000_000_000)
	var entries []consensus.Entry
	for i, ts := range []time.Time{t0.Add(-48 * time.Hour), t0.Add(-time.Hour), t0} {
		b, err := EncodeAppendAt(Limits{}, ts, AppendRecord{Value: []byte{'v', byte('0' + i)}})
		if err != nil {
			t.Fatal(err)
		}
		entries = append(entries, consensus.Entry{Index: uint64(i + 1), Term: 1, Data: b})
	}
	mustApply(t, f, entries...)
	server := RetentionPolicy{Age: time.Hour} // the topic's setting overrides it
	for _, ms := range []int64{
		math.MaxInt64 / int64(time.Millisecond), // the largest that fits: about 292 years
		math.MaxInt64/int64(time.Millisecond) + 1,
		10_000_000_000_000, // wrapped to a negative Duration
		18_446_744_073_710, // wrapped to 448384 ns
		math.MaxInt64,
	} {
		p := TopicConfig{RetentionMs: ms}.Retention(server)
		if p.Age < 200*365*24*time.Hour {
			t.Errorf("retention ms %d: age bound %v, want the largest Duration", ms, p.Age)
		}
		first, err := f.RetentionPoint(p, t0)
		if err != nil {
			t.Fatal(err)
		}
		if first != 0 {
			t.Errorf("retention ms %d (age bound %v): retention would start the log at %d, want 0 (every record is younger)", ms, p.Age, first)
		}
	}
	// A bound that fits still cuts: 2 h keeps the last two records.
	if first, err := f.RetentionPoint(TopicConfig{RetentionMs: 2 * 3600 * 1000}.Retention(server), t0); err != nil || first != 1 {
		t.Fatalf("retention ms of 2 h: log start %d (%v), want 1", first, err)
	}
}
