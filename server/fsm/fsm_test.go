package fsm

import (
	"context"
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/commitlog-go/commitlog/consensus"
	"github.com/commitlog-go/commitlog/storage"
	"github.com/commitlog-go/commitlog/storage/memory"
)

func TestNewRequiresLog(t *testing.T) {
	if _, err := New(Config{}); err == nil {
		t.Fatal("New with no Log succeeded")
	}
}

func TestApplyAssignsDenseOffsets(t *testing.T) {
	tests := []struct {
		name      string
		maxAppend int
		sizes     []int // records per entry
	}{
		{"one record per entry", 0, []int{1, 1, 1, 1}},
		{"batches", 0, []int{3, 1, 5, 2}},
		{"no coalescing", 1, []int{2, 3, 1}},
		// Room for two entries' estimated size (4 records "x-N" each): merged two by two.
		{"coalescing bound", 2 * 4 * (maxEnvelopeHeader + len("a-0")), []int{4, 4, 4, 4, 4}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fl := &faultLog{Log: newMemLog(t, memory.Config{})}
			defer fl.Close()
			f, err := New(Config{Log: fl, MaxAppendBytes: tt.maxAppend})
			if err != nil {
				t.Fatal(err)
			}
			var entries []consensus.Entry
			var want []string
			for i, n := range tt.sizes {
				c, vals := valuesCmd(t, string(rune('a'+i)), n)
				entries = append(entries, consensus.Entry{Index: uint64(10 + 2*i), Term: 3, Data: c})
				want = append(want, vals...)
			}
			res := mustApply(t, f, entries...)
			next := uint64(0)
			for i, r := range res {
				if r.First != next || r.Count != uint64(tt.sizes[i]) {
					t.Fatalf("entry %d: result %+v, want first %d count %d", i, r, next, tt.sizes[i])
				}
				next += r.Count
			}
			got := readAll(t, f)
			if !slices.Equal(values(got), want) {
				t.Fatalf("log holds %q, want %q", values(got), want)
			}
			for _, r := range got {
				if r.Term != 3 || r.Type != 1 {
					t.Fatalf("record %d: term %d type %d", r.Offset, r.Term, r.Type)
				}
			}
			if f.AppliedIndex() != entries[len(entries)-1].Index {
				t.Fatalf("AppliedIndex %d, want %d", f.AppliedIndex(), entries[len(entries)-1].Index)
			}
			if tt.maxAppend == 0 && fl.appends != 1 {
				t.Errorf("%d Append calls, want 1 (coalesced)", fl.appends)
			}
			if tt.maxAppend == 1 && fl.appends != len(tt.sizes) {
				t.Errorf("%d Append calls, want one per entry", fl.appends)
			}
			if tt.name == "coalescing bound" {
				// Entries are merged while they fit the bound (two by two here), and no merged
				// call exceeds it.
				if fl.appends != 3 {
					t.Errorf("%d Append calls for %d entries under a %d-byte bound (stored sizes %v), want 3 (two entries each, then one)", fl.appends, len(tt.sizes), tt.maxAppend, fl.batchBytes)
				}
				for i, n := range fl.batchBytes {
					if n > tt.maxAppend {
						t.Errorf("Append call %d stored %d bytes, over the %d-byte bound (sizes %v)", i, n, tt.maxAppend, fl.batchBytes)
					}
				}
			}
			// A second Apply continues with the next offset.
			res = mustApply(t, f, consensus.Entry{Index: 100, Term: 4, Data: cmd(t, "after")})
			if res[0].First != next {
				t.Fatalf("next Apply got first %d, want %d", res[0].First, next)
			}
		})
	}
}

func TestApplyRejectsInvalidCommandsDeterministically(t *testing.T) {
	f, _ := newMemFSM(t, Config{})
	res := f.Apply([]consensus.Entry{
		{Index: 1, Term: 1, Data: cmd(t, "a")},
		{Index: 2, Term: 1, Data: []byte("garbage")},
		{Index: 3, Term: 1, Data: cmd(t, "b", "c")},
	})
	if ar, ok := res[0].(AppendResult); !ok || ar.First != 0 {
		t.Fatalf("entry 1: %v", res[0])
	}
	if err, ok := res[1].(error); !ok || !errors.Is(err, ErrInvalidCommand) {
		t.Fatalf("entry 2: %v, want ErrInvalidCommand", res[1])
	}
	if ar, ok := res[2].(AppendResult); !ok || ar.First != 1 || ar.Count != 2 {
		t.Fatalf("entry 3: %v, want first 1 count 2", res[2])
	}
	if f.Err() != nil {
		t.Fatalf("an invalid command made the FSM fail: %v", f.Err())
	}
	if got := values(readAll(t, f)); !slices.Equal(got, []string{"a", "b", "c"}) {
		t.Fatalf("log holds %q", got)
	}
}

func TestApplySkipsReplayedEntries(t *testing.T) {
	log := newMemLog(t, memory.Config{})
	defer log.Close()
	f, err := New(Config{Log: log})
	if err != nil {
		t.Fatal(err)
	}
	entries := []consensus.Entry{
		{Index: 5, Term: 1, Data: cmd(t, "a", "b")},
		{Index: 6, Term: 1, Data: cmd(t, "c")},
		{Index: 8, Term: 2, Data: cmd(t, "d")},
	}
	mustApply(t, f, entries...)

	// A restart: a new FSM over the same log learns the applied index from the last record.
	f2, err := New(Config{Log: log})
	if err != nil {
		t.Fatal(err)
	}
	if f2.AppliedIndex() != 8 {
		t.Fatalf("reopened AppliedIndex %d, want 8", f2.AppliedIndex())
	}
	// The consensus replays its log, then goes on.
	res := f2.Apply(append(slices.Clone(entries), consensus.Entry{Index: 9, Term: 2, Data: cmd(t, "e")}))
	for i := range entries {
		if err, ok := res[i].(error); !ok || !errors.Is(err, ErrAlreadyApplied) {
			t.Fatalf("replayed entry %d: %v, want ErrAlreadyApplied", entries[i].Index, res[i])
		}
	}
	if ar, ok := res[3].(AppendResult); !ok || ar.First != 4 {
		t.Fatalf("new entry: %v, want first 4", res[3])
	}
	if got := values(readAll(t, f2)); !slices.Equal(got, []string{"a", "b", "c", "d", "e"}) {
		t.Fatalf("log holds %q", got)
	}

	// A crash lost the unsynced tail (the last two records): replay restores it exactly.
	if err := log.TruncateSuffix(3); err != nil {
		t.Fatal(err)
	}
	f3, err := New(Config{Log: log})
	if err != nil {
		t.Fatal(err)
	}
	if f3.AppliedIndex() != 6 {
		t.Fatalf("AppliedIndex after losing the tail: %d, want 6", f3.AppliedIndex())
	}
	f3.Apply(append(slices.Clone(entries), consensus.Entry{Index: 9, Term: 2, Data: cmd(t, "e")}))
	recs := readAll(t, f3)
	if got := values(recs); !slices.Equal(got, []string{"a", "b", "c", "d", "e"}) {
		t.Fatalf("log after replay holds %q", got)
	}
	if recs[3].Index != 8 || recs[4].Index != 9 || recs[4].Term != 2 {
		t.Fatalf("replayed records carry index/term %d/%d, %d/%d", recs[3].Index, recs[3].Term, recs[4].Index, recs[4].Term)
	}
}

func TestApplyStorageFailureIsSticky(t *testing.T) {
	fl := &faultLog{Log: newMemLog(t, memory.Config{})}
	defer fl.Close()
	f, err := New(Config{Log: fl})
	if err != nil {
		t.Fatal(err)
	}
	mustApply(t, f, consensus.Entry{Index: 1, Term: 1, Data: cmd(t, "ok")})
	select {
	case <-f.Failed():
		t.Fatal("Failed closed before any failure")
	default:
	}

	fl.appendErr = errDisk
	res := f.Apply([]consensus.Entry{{Index: 2, Term: 1, Data: cmd(t, "x")}, {Index: 3, Term: 1, Data: []byte("bad")}})
	for i, r := range res {
		if err, ok := r.(error); !ok || !errors.Is(err, ErrFailed) || !errors.Is(err, errDisk) {
			t.Fatalf("result %d: %v, want ErrFailed wrapping the cause", i, r)
		}
	}
	select {
	case <-f.Failed():
	default:
		t.Fatal("Failed not closed after a storage failure")
	}
	if !errors.Is(f.Err(), errDisk) {
		t.Fatalf("Err = %v", f.Err())
	}

	// Sticky: the disk works again, the FSM still refuses.
	fl.appendErr = nil
	appends := fl.appends
	res = f.Apply([]consensus.Entry{{Index: 4, Term: 1, Data: cmd(t, "y")}})
	if err, ok := res[0].(error); !ok || !errors.Is(err, ErrFailed) {
		t.Fatalf("Apply after failure: %v", res[0])
	}
	if fl.appends != appends {
		t.Fatal("Apply wrote to the log after the FSM failed")
	}
	if _, err := f.Snapshot(); !errors.Is(err, ErrFailed) {
		t.Fatalf("Snapshot after failure: %v", err)
	}
	if err := f.Restore(nil, nil); !errors.Is(err, ErrFailed) {
		t.Fatalf("Restore after failure: %v", err)
	}
	if f.AppliedIndex() != 1 {
		t.Fatalf("AppliedIndex %d, want 1 (nothing after the failure)", f.AppliedIndex())
	}
}

func TestApplyTooLargeForStorageStopsApplying(t *testing.T) {
	// The log refuses batches over 40 stored bytes: a coalesced group is retried entry by
	// entry; an entry the log refuses alone is committed all the same (the leader accepted
	// it, other replicas store it), so the FSM must not skip it (every later record would land
	// one offset lower than elsewhere): it stops applying, for good, and serves nothing past
	// the records it stored.
	fl := &faultLog{Log: newMemLog(t, memory.Config{}), maxBatchBytes: 40}
	defer fl.Close()
	f, err := New(Config{Log: fl})
	if err != nil {
		t.Fatal(err)
	}
	res := f.Apply([]consensus.Entry{
		{Index: 1, Term: 1, Data: cmd(t, "0123456789")},
		{Index: 2, Term: 1, Data: cmd(t, "0123456789", "0123456789", "0123456789")},
		{Index: 3, Term: 1, Data: cmd(t, "abcdefghij")},
	})
	if ar, ok := res[0].(AppendResult); !ok || ar.First != 0 {
		t.Fatalf("entry 1: %v", res[0])
	}
	for i := 1; i < 3; i++ {
		if err, ok := res[i].(error); !ok || !errors.Is(err, ErrFailed) {
			t.Fatalf("entry %d: %v, want ErrFailed", i+1, res[i])
		}
	}
	if !errors.Is(f.Err(), ErrFailed) || !errors.Is(f.Err(), storage.ErrTooLarge) || f.AppliedIndex() != 1 {
		t.Fatalf("Err %v AppliedIndex %d: want a sticky failure at index 1", f.Err(), f.AppliedIndex())
	}
	select {
	case <-f.Failed():
	default:
		t.Fatal("Failed not closed")
	}
	// Sticky: later entries are not applied, even ones that would fit.
	if r := f.Apply([]consensus.Entry{{Index: 4, Term: 1, Data: cmd(t, "x")}}); !errors.Is(r[0].(error), ErrFailed) {
		t.Fatalf("entry after the failure: %v", r[0])
	}
	if _, next := f.Bounds(); next != 1 {
		t.Fatalf("Bounds next %d, want 1", next)
	}
	if _, err := f.Read(t.Context(), 0); err != nil {
		t.Fatalf("the record before the failure: %v", err)
	}
	// Past the failure: refused at once, not after a wait, and a waiting reader is woken.
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	if _, err := f.Read(ctx, 1); !errors.Is(err, ErrFailed) || ctx.Err() != nil {
		t.Fatalf("Read past the failure: %v", err)
	}
	for _, err := range f.Records(ctx, 1) {
		if !errors.Is(err, ErrFailed) {
			t.Fatalf("Records past the failure: %v", err)
		}
		break
	}
}

func TestReadWaitingPastTheEndWokenByFailure(t *testing.T) {
	fl := &faultLog{Log: newMemLog(t, memory.Config{})}
	defer fl.Close()
	f, err := New(Config{Log: fl})
	if err != nil {
		t.Fatal(err)
	}
	mustApply(t, f, consensus.Entry{Index: 1, Term: 1, Data: cmd(t, "a")})
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	done := make(chan error, 1)
	go func() { _, err := f.Read(ctx, 1); done <- err }()
	fl.appendErr = errDisk
	f.Apply([]consensus.Entry{{Index: 2, Term: 1, Data: cmd(t, "b")}})
	if err := <-done; !errors.Is(err, ErrFailed) || ctx.Err() != nil {
		t.Fatalf("a reader waiting past the end: %v, want ErrFailed at once", err)
	}
}

func TestFSMEncodeAppendUsesConfiguredLimits(t *testing.T) {
	f, _ := newMemFSM(t, Config{Limits: Limits{MaxRecordBytes: 4}})
	if _, err := f.EncodeAppend(AppendRecord{Value: []byte("12345")}); !errors.Is(err, ErrTooLarge) {
		t.Fatalf("EncodeAppend over the limit: %v", err)
	}
	if f.Limits().MaxBatchRecords != DefaultMaxBatchRecords {
		t.Fatalf("Limits %+v: zero fields not defaulted", f.Limits())
	}
}
