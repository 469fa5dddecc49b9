package fsm

import (
	"context"
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/commitlog-go/commitlog/consensus"
	"github.com/commitlog-go/commitlog/storage"
	"github.com/commitlog-go/commitlog/storage/segment"
)

func TestReadErrors(t *testing.T) {
	f, log := source(t, 10, 3)
	if err := log.TruncatePrefix(4); err != nil {
		t.Fatal(err)
	}
	expired, cancel := context.WithCancel(t.Context())
	cancel()
	tests := []struct {
		name string
		ctx  context.Context
		off  uint64
		want []error
	}{
		{"below the start, even with time to wait", t.Context(), 3, []error{storage.ErrOutOfRange}},
		{"not yet written, context done", expired, 10, []error{storage.ErrOutOfRange, context.Canceled}},
		{"far ahead, context done", expired, 1 << 40, []error{storage.ErrOutOfRange}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := f.Read(tt.ctx, tt.off)
			for _, w := range tt.want {
				if !errors.Is(err, w) {
					t.Fatalf("Read(%d): %v, want %v", tt.off, err, w)
				}
			}
		})
	}
	r, err := f.Read(expired, 9)
	if err != nil || string(r.Value) != "v-9" || r.Offset != 9 || r.Type != 1 || r.Term != 1 {
		t.Fatalf("Read(9) of a written record: %+v, %v", r, err)
	}
}

func TestReadWaitsForTheRecord(t *testing.T) {
	f, _ := source(t, 3, 1)
	got := make(chan Record, 1)
	errc := make(chan error, 1)
	go func() {
		r, err := f.Read(t.Context(), 3)
		got <- r
		errc <- err
	}()
	// The reader blocks until the record is applied: observe it parked (a Read that returned,
	// or never waited, fails here), then the Apply below must wake it.
	waitParked(t, "fsm.TestReadWaitsForTheRecord.func1", func() bool {
		select {
		case r := <-got:
			t.Fatalf("Read returned %+v before the record was applied", r)
		default:
		}
		return false
	})
	mustApply(t, f, consensus.Entry{Index: 10, Term: 2, Data: cmd(t, "late")})
	r := <-got
	if err := <-errc; err != nil || string(r.Value) != "late" || r.Index != 10 {
		t.Fatalf("Read: %+v, %v", r, err)
	}
}

func TestRecordsTailsUntilCancelled(t *testing.T) {
	f, _ := source(t, 5, 2)
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	type item struct {
		v   string
		err error
	}
	items := make(chan item, 100)
	done := make(chan struct{})
	go func() {
		defer close(done)
		for r, err := range f.Records(ctx, 2) {
			items <- item{string(r.Value), err}
		}
	}()
	var got []string
	take := func(n int) {
		for range n {
			select {
			case it := <-items:
				if it.err != nil {
					t.Fatalf("Records: %v", it.err)
				}
				got = append(got, it.v)
			case <-time.After(10 * time.Second):
				t.Fatal("Records did not yield")
			}
		}
	}
	take(3)
	applyRange(t, f, 5, 9, 3, 10)
	take(4)
	if want := []string{"v-2", "v-3", "v-4", "v-5", "v-6", "v-7", "v-8"}; !slices.Equal(got, want) {
		t.Fatalf("Records yielded %q, want %q", got, want)
	}
	cancel()
	select {
	case it := <-items:
		if !errors.Is(it.err, context.Canceled) {
			t.Fatalf("after cancel: %+v, want context.Canceled", it)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Records did not stop on cancel")
	}
	<-done
}

func TestRecordsErrors(t *testing.T) {
	f, log := source(t, 10, 3)
	if err := log.TruncatePrefix(5); err != nil {
		t.Fatal(err)
	}
	yielded := 0
	for _, err := range f.Records(t.Context(), 2) {
		yielded++
		if !errors.Is(err, storage.ErrOutOfRange) {
			t.Fatalf("Records below the start: %v", err)
		}
	}
	if yielded != 1 {
		t.Fatalf("Records below the start yielded %d items, want one ErrOutOfRange", yielded)
	}
	n := 0
	for r, err := range f.Records(t.Context(), 5) {
		if err != nil {
			t.Fatal(err)
		}
		if r.Offset != uint64(5+n) {
			t.Fatalf("offset %d, want %d", r.Offset, 5+n)
		}
		if n++; n == 3 {
			break
		}
	}
	if n != 3 {
		t.Fatalf("Records from 5 yielded %d records before the break, want 3", n)
	}
	if err := log.Close(); err != nil {
		t.Fatal(err)
	}
	yielded = 0
	for _, err := range f.Records(t.Context(), 10) {
		yielded++
		if !errors.Is(err, storage.ErrClosed) {
			t.Fatalf("Records on a closed log: %v", err)
		}
	}
	if yielded != 1 {
		t.Fatalf("Records on a closed log yielded %d items, want one ErrClosed", yielded)
	}
}

// TestRecordsEndAtRetentionCut: an iteration that is below the log's start once a retain
// command is applied under it (a stream reading a backlog while retention runs) ends with
// ErrOutOfRange before its next record, as a read there answers: it went on yielding every
// record of the range it had started reading, though the cut made them unreadable on every
// replica (Consume of the same offsets answered OutOfRange meanwhile).
func TestRecordsEndAtRetentionCut(t *testing.T) {
	for _, name := range []string{"memory", "segment"} {
		t.Run(name, func(t *testing.T) {
			var f *FSM
			if name == "memory" {
				f, _ = newMemFSM(t, Config{})
			} else {
				lg, err := segment.Open(t.TempDir(), segment.Config{SegmentBytes: 4 << 10})
				if err != nil {
					t.Fatal(err)
				}
				t.Cleanup(func() { _ = lg.Close() })
				if f, err = New(Config{Log: lg}); err != nil {
					t.Fatal(err)
				}
			}
			const n, cut = 2000, 1500
			idx := applyRange(t, f, 0, n, 100, 1)
			var got []uint64
			var end error
			for r, err := range f.Records(t.Context(), 0) {
				if err != nil {
					end = err
					break
				}
				got = append(got, r.Offset)
				if r.Offset == 10 {
					res := f.Apply([]consensus.Entry{{Index: idx, Term: 1, Data: EncodeRetain(cut, testTime)}})
					if rr, ok := res[0].(RetainResult); !ok || rr.First != cut {
						t.Fatalf("retain: %v", res[0])
					}
				}
				if r.Offset > 10 && r.Offset < cut {
					if _, err := f.Read(t.Context(), r.Offset); !errors.Is(err, storage.ErrOutOfRange) {
						t.Fatalf("Read(%d) below the cut: %v, want ErrOutOfRange", r.Offset, err)
					}
					t.Fatalf("Records yielded offset %d after the log start moved to %d", r.Offset, cut)
				}
			}
			if !errors.Is(end, storage.ErrOutOfRange) || len(got) != 11 {
				t.Fatalf("Records across a retention cut: %d records (last %d), ended with %v; want offsets 0..10, then ErrOutOfRange",
					len(got), got[len(got)-1], end)
			}
		})
	}
}
