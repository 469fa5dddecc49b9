// Package storagetest is the conformance suite of the storage.Log contract. Every
// implementation runs it from its tests:
//
//	func TestConformance(t *testing.T) {
//		storagetest.Run(t, storagetest.Harness{
//			New: func(t *testing.T) storage.Log {
//				l, err := memory.New(memory.Config{})
//				if err != nil {
//					t.Fatal(err)
//				}
//				return l
//			},
//		})
//	}
package storagetest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/commitlog-go/commitlog/storage"
)

// Harness describes the implementation under test.
type Harness struct {
	// New returns a new, empty log whose first offset is 0. Required. The suite closes
	// every log it creates.
	New func(t *testing.T) storage.Log
	// MaxRecordBytes is the log's record size limit; when positive the suite checks that
	// larger records fail with storage.ErrTooLarge.
	MaxRecordBytes int
	// Reopen, when set, closes l and opens the same log again; the suite then checks that
	// records, bounds and truncations persist.
	Reopen func(t *testing.T, l storage.Log) storage.Log
}

// Run runs the conformance suite as subtests of t.
func Run(t *testing.T, h Harness) {
	t.Helper()
	tests := []struct {
		name string
		fn   func(t *testing.T, h Harness)
	}{
		{"Empty", testEmpty},
		{"AppendRead", testAppendRead},
		{"Batch", testBatch},
		{"Errors", testErrors},
		{"Ownership", testOwnership},
		{"Records", testRecords},
		{"RecordsEarlyStop", testRecordsEarlyStop},
		{"Wait", testWait},
		{"TruncatePrefix", testTruncatePrefix},
		{"TruncateSuffix", testTruncateSuffix},
		{"Reset", testReset},
		{"Close", testClose},
		{"ConcurrentReadersOneWriter", testConcurrent},
		{"Reopen", testReopen},
	}
	for _, tc := range tests {
		if tc.name == "Reopen" && h.Reopen == nil {
			// Not a skip: an implementation that does not persist has nothing to reopen, and a
			// skipped test in CI would read as a test that could not run.
			t.Logf("storagetest: no Reopen in the harness (the implementation does not persist): Reopen not run")
			continue
		}
		t.Run(tc.name, func(t *testing.T) { tc.fn(t, h) })
	}
}

func newLog(t *testing.T, h Harness) storage.Log {
	t.Helper()
	l := h.New(t)
	t.Cleanup(func() { _ = l.Close() })
	return l
}

func value(i uint64) []byte { return fmt.Appendf(nil, "record-%06d", i) }

func mustAppend(t *testing.T, l storage.Log, recs ...[]byte) uint64 {
	t.Helper()
	first, err := l.Append(recs...)
	if err != nil {
		t.Fatalf("Append(%d records): %v", len(recs), err)
	}
	return first
}

func wantBounds(t *testing.T, l storage.Log, lowest, next uint64) {
	t.Helper()
	if lo, nx := l.Bounds(); lo != lowest || nx != next {
		t.Fatalf("Bounds() = [%d, %d), want [%d, %d)", lo, nx, lowest, next)
	}
}

func wantRead(t *testing.T, l storage.Log, off uint64, want []byte) {
	t.Helper()
	got, err := l.Read(off)
	if err != nil {
		t.Fatalf("Read(%d): %v", off, err)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("Read(%d) = %q, want %q", off, got, want)
	}
}

func wantErr(t *testing.T, what string, err, target error) {
	t.Helper()
	if !errors.Is(err, target) {
		t.Fatalf("%s: err = %v, want %v", what, err, target)
	}
}

// collect gathers Records(from, to) and the error that ended it.
func collect(l storage.Log, from, to uint64) ([]storage.Record, error) {
	var out []storage.Record
	for r, err := range l.Records(from, to) {
		if err != nil {
			return out, err
		}
		out = append(out, storage.Record{Offset: r.Offset, Value: bytes.Clone(r.Value)})
	}
	return out, nil
}

func testEmpty(t *testing.T, h Harness) {
	l := newLog(t, h)
	wantBounds(t, l, 0, 0)
	_, err := l.Read(0)
	wantErr(t, "Read(0) of empty log", err, storage.ErrOutOfRange)
	recs, err := collect(l, 0, 10)
	if err != nil || len(recs) != 0 {
		t.Fatalf("Records of empty log = %d records, %v; want none", len(recs), err)
	}
	if err := l.Sync(); err != nil {
		t.Fatalf("Sync: %v", err)
	}
}

func testAppendRead(t *testing.T, h Harness) {
	l := newLog(t, h)
	for i := range uint64(100) {
		if off := mustAppend(t, l, value(i)); off != i {
			t.Fatalf("Append #%d got offset %d", i, off)
		}
	}
	wantBounds(t, l, 0, 100)
	for _, i := range []uint64{0, 1, 50, 99} {
		wantRead(t, l, i, value(i))
	}
	_, err := l.Read(100)
	wantErr(t, "Read(next)", err, storage.ErrOutOfRange)
	// An empty record is a record.
	off := mustAppend(t, l, []byte{})
	wantRead(t, l, off, []byte{})
}

func testBatch(t *testing.T, h Harness) {
	l := newLog(t, h)
	mustAppend(t, l, value(0))
	batch := [][]byte{value(1), value(2), value(3)}
	if first := mustAppend(t, l, batch...); first != 1 {
		t.Fatalf("batch first offset = %d, want 1", first)
	}
	if first := mustAppend(t, l, value(4), value(5)); first != 4 {
		t.Fatalf("second batch first offset = %d, want 4", first)
	}
	wantBounds(t, l, 0, 6)
	for i := range uint64(6) {
		wantRead(t, l, i, value(i))
	}
}

func testErrors(t *testing.T, h Harness) {
	l := newLog(t, h)
	_, err := l.Append()
	wantErr(t, "Append()", err, storage.ErrEmptyBatch)
	if h.MaxRecordBytes > 0 {
		_, err = l.Append(value(0), make([]byte, h.MaxRecordBytes+1))
		wantErr(t, "Append(oversized)", err, storage.ErrTooLarge)
		if off := mustAppend(t, l, make([]byte, h.MaxRecordBytes)); off != 0 {
			t.Fatalf("record of exactly MaxRecordBytes got offset %d, want 0 (a failed batch must not consume offsets)", off)
		}
	}
	wantBounds(t, l, 0, uint64(min(h.MaxRecordBytes, 1)))
}

func testOwnership(t *testing.T, h Harness) {
	l := newLog(t, h)
	in := []byte("original")
	mustAppend(t, l, in)
	copy(in, "CHANGED!")
	wantRead(t, l, 0, []byte("original"))
	got, err := l.Read(0)
	if err != nil {
		t.Fatal(err)
	}
	copy(got, "CHANGED!")
	wantRead(t, l, 0, []byte("original"))
}

func testRecords(t *testing.T, h Harness) {
	l := newLog(t, h)
	for i := uint64(0); i < 50; i += 5 {
		mustAppend(t, l, value(i), value(i+1), value(i+2), value(i+3), value(i+4))
	}
	tests := []struct {
		name     string
		from, to uint64
		want     []uint64 // offsets
	}{
		{"all", 0, 50, seq(0, 50)},
		{"middle", 7, 23, seq(7, 23)},
		{"to capped at next", 45, 1000, seq(45, 50)},
		{"empty range", 10, 10, nil},
		{"from at next", 50, 60, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			recs, err := collect(l, tc.from, tc.to)
			if err != nil {
				t.Fatalf("Records(%d, %d): %v", tc.from, tc.to, err)
			}
			if len(recs) != len(tc.want) {
				t.Fatalf("Records(%d, %d) gave %d records, want %d", tc.from, tc.to, len(recs), len(tc.want))
			}
			for i, r := range recs {
				if r.Offset != tc.want[i] || !bytes.Equal(r.Value, value(tc.want[i])) {
					t.Fatalf("record %d = {%d %q}, want {%d %q}", i, r.Offset, r.Value, tc.want[i], value(tc.want[i]))
				}
			}
		})
	}
	t.Run("to capped at call time", func(t *testing.T) {
		n := 0
		for r, err := range l.Records(48, 1000) {
			if err != nil {
				t.Fatal(err)
			}
			if n == 0 {
				mustAppend(t, l, value(50)) // not part of this iteration
			}
			if r.Offset >= 50 {
				t.Fatalf("iteration went past Next as of the call: offset %d", r.Offset)
			}
			n++
		}
		if n != 2 {
			t.Fatalf("got %d records, want 2", n)
		}
	})
	t.Run("below lowest", func(t *testing.T) {
		l := newLog(t, h)
		if err := l.Reset(10); err != nil {
			t.Fatal(err)
		}
		mustAppend(t, l, value(10))
		_, err := collect(l, 5, 11)
		wantErr(t, "Records(below lowest)", err, storage.ErrOutOfRange)
	})
}

func seq(from, to uint64) []uint64 {
	var s []uint64
	for i := from; i < to; i++ {
		s = append(s, i)
	}
	return s
}

func testRecordsEarlyStop(t *testing.T, h Harness) {
	l := newLog(t, h)
	for i := range uint64(10) {
		mustAppend(t, l, value(i))
	}
	n := 0
	for _, err := range l.Records(0, 10) {
		if err != nil {
			t.Fatal(err)
		}
		n++
		if n == 3 {
			break
		}
	}
	if n != 3 {
		t.Fatalf("iterated %d records after break at 3", n)
	}
}

// waitResult runs Wait in a goroutine and returns a channel with its result.
func waitResult(ctx context.Context, l storage.Log, off uint64) <-chan error {
	ch := make(chan error, 1)
	go func() { ch <- l.Wait(ctx, off) }()
	return ch
}

// within returns the result of ch, failing the test if none comes within a generous bound
// (a hang, not a timing assertion).
func within(t *testing.T, ch <-chan error, what string) error {
	t.Helper()
	select {
	case err := <-ch:
		return err
	case <-time.After(10 * time.Second):
		t.Fatalf("%s: Wait did not return", what)
		return nil
	}
}

// notYet checks that the Wait whose result ch delivers is blocked: it polls until n goroutines
// started by waitResult are parked (in a select, a channel receive or a sync.Cond wait, as a
// goroutine stack dump shows them) and fails the test if ch delivers a result first. Observing
// the parked state, rather than sleeping a while, proves the wait really began and blocks.
func notYet(t *testing.T, ch <-chan error, what string, n int) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		select {
		case err := <-ch:
			t.Fatalf("%s: Wait returned early: %v", what, err)
		default:
		}
		if parkedWaiters() >= n {
			select {
			case err := <-ch:
				t.Fatalf("%s: Wait returned early: %v", what, err)
			default:
			}
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: Wait neither returned nor blocked within 10s", what)
		}
		time.Sleep(time.Millisecond)
	}
}

// parkedWaiters counts the goroutines started by waitResult that are blocked waiting.
func parkedWaiters() int {
	buf := make([]byte, 1<<20)
	for {
		n := runtime.Stack(buf, true)
		if n < len(buf) {
			buf = buf[:n]
			break
		}
		buf = make([]byte, 2*len(buf))
	}
	count := 0
	for _, g := range strings.Split(string(buf), "\n\n") {
		header, _, _ := strings.Cut(g, "\n")
		if !strings.Contains(g, "storagetest.waitResult.func") {
			continue
		}
		for _, state := range []string{"[select", "[chan receive", "[sync.Cond.Wait"} {
			if strings.Contains(header, state) {
				count++
				break
			}
		}
	}
	return count
}

func testWait(t *testing.T, h Harness) {
	t.Run("present", func(t *testing.T) {
		l := newLog(t, h)
		mustAppend(t, l, value(0))
		if err := l.Wait(context.Background(), 0); err != nil {
			t.Fatalf("Wait(0) with record 0 present: %v", err)
		}
	})
	t.Run("woken by append", func(t *testing.T) {
		l := newLog(t, h)
		ch := waitResult(context.Background(), l, 1)
		notYet(t, ch, "before any append", 1)
		mustAppend(t, l, value(0))
		// A second Wait(1) begun after offset 0 exists must block too; once it is parked, the
		// first one has had the append's wake-up and must still be waiting.
		ch2 := waitResult(context.Background(), l, 1)
		notYet(t, ch2, "Wait(1) begun after appending offset 0", 2)
		notYet(t, ch, "after appending offset 0 of 1", 2)
		mustAppend(t, l, value(1))
		if err := within(t, ch, "append"); err != nil {
			t.Fatalf("Wait(1) after append: %v", err)
		}
		if err := within(t, ch2, "append"); err != nil {
			t.Fatalf("second Wait(1) after append: %v", err)
		}
	})
	t.Run("woken by ctx", func(t *testing.T) {
		l := newLog(t, h)
		ctx, cancel := context.WithCancel(context.Background())
		ch := waitResult(ctx, l, 0)
		notYet(t, ch, "before cancel", 1)
		cancel()
		wantErr(t, "Wait after cancel", within(t, ch, "cancel"), context.Canceled)
	})
	t.Run("woken by close", func(t *testing.T) {
		l := newLog(t, h)
		ch := waitResult(context.Background(), l, 0)
		if err := l.Close(); err != nil {
			t.Fatal(err)
		}
		wantErr(t, "Wait after Close", within(t, ch, "close"), storage.ErrClosed)
	})
	t.Run("many waiters", func(t *testing.T) {
		l := newLog(t, h)
		var chs []<-chan error
		for i := range uint64(8) {
			chs = append(chs, waitResult(context.Background(), l, i))
		}
		for i := range uint64(8) {
			mustAppend(t, l, value(i))
		}
		for i, ch := range chs {
			if err := within(t, ch, fmt.Sprintf("waiter %d", i)); err != nil {
				t.Fatalf("waiter %d: %v", i, err)
			}
		}
	})
}

func testTruncatePrefix(t *testing.T, h Harness) {
	l := newLog(t, h)
	for i := range uint64(100) {
		mustAppend(t, l, value(i))
	}
	for _, before := range []uint64{0, 10, 60, 60, 99} {
		lo0, _ := l.Bounds()
		if err := l.TruncatePrefix(before); err != nil {
			t.Fatalf("TruncatePrefix(%d): %v", before, err)
		}
		lo, nx := l.Bounds()
		if lo < lo0 || lo > before || nx != 100 {
			t.Fatalf("after TruncatePrefix(%d): bounds [%d, %d) (was lowest %d)", before, lo, nx, lo0)
		}
		for i := before; i < 100; i += 7 {
			wantRead(t, l, i, value(i))
		}
		if lo > 0 {
			_, err := l.Read(lo - 1)
			wantErr(t, "Read below lowest", err, storage.ErrOutOfRange)
		}
	}
	// Past Next: lowest may not pass Next; appends continue.
	if err := l.TruncatePrefix(1000); err != nil {
		t.Fatal(err)
	}
	if lo, nx := l.Bounds(); lo > nx || nx != 100 {
		t.Fatalf("after TruncatePrefix past next: bounds [%d, %d)", lo, nx)
	}
	if off := mustAppend(t, l, value(100)); off != 100 {
		t.Fatalf("append after truncation got %d, want 100", off)
	}
	wantRead(t, l, 100, value(100))
}

func testTruncateSuffix(t *testing.T, h Harness) {
	l := newLog(t, h)
	for i := uint64(0); i < 100; i += 4 {
		mustAppend(t, l, value(i), value(i+1), value(i+2), value(i+3))
	}
	if err := l.TruncateSuffix(100); err != nil {
		t.Fatalf("TruncateSuffix(next) = %v, want nil", err)
	}
	wantBounds(t, l, 0, 100)
	err := l.TruncateSuffix(101)
	wantErr(t, "TruncateSuffix(past next)", err, storage.ErrOutOfRange)

	if err := l.TruncateSuffix(42); err != nil { // in the middle of a batch
		t.Fatalf("TruncateSuffix(42): %v", err)
	}
	wantBounds(t, l, 0, 42)
	wantRead(t, l, 41, value(41))
	_, err = l.Read(42)
	wantErr(t, "Read(truncated)", err, storage.ErrOutOfRange)
	if off := mustAppend(t, l, []byte("new-42"), []byte("new-43")); off != 42 {
		t.Fatalf("append after TruncateSuffix got %d, want 42", off)
	}
	wantRead(t, l, 42, []byte("new-42"))
	wantRead(t, l, 43, []byte("new-43"))
	recs, err := collect(l, 40, 44)
	if err != nil || len(recs) != 4 || string(recs[3].Value) != "new-43" {
		t.Fatalf("Records after rewrite: %v %v", recs, err)
	}

	if err := l.TruncateSuffix(0); err != nil {
		t.Fatalf("TruncateSuffix(0): %v", err)
	}
	wantBounds(t, l, 0, 0)
	if off := mustAppend(t, l, value(0)); off != 0 {
		t.Fatalf("append after emptying got %d", off)
	}

	l2 := newLog(t, h)
	if err := l2.Reset(50); err != nil {
		t.Fatal(err)
	}
	err = l2.TruncateSuffix(49)
	wantErr(t, "TruncateSuffix(below lowest)", err, storage.ErrOutOfRange)
}

func testReset(t *testing.T, h Harness) {
	l := newLog(t, h)
	for i := range uint64(20) {
		mustAppend(t, l, value(i))
	}
	for _, next := range []uint64{1000, 5, 5} {
		if err := l.Reset(next); err != nil {
			t.Fatalf("Reset(%d): %v", next, err)
		}
		wantBounds(t, l, next, next)
		_, err := l.Read(next - 1)
		wantErr(t, "Read after Reset", err, storage.ErrOutOfRange)
		if off := mustAppend(t, l, value(next)); off != next {
			t.Fatalf("append after Reset(%d) got %d", next, off)
		}
		wantRead(t, l, next, value(next))
	}
}

func testClose(t *testing.T, h Harness) {
	l := newLog(t, h)
	mustAppend(t, l, value(0))
	if err := l.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if err := l.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	_, err := l.Append(value(1))
	wantErr(t, "Append after Close", err, storage.ErrClosed)
	_, err = l.Read(0)
	wantErr(t, "Read after Close", err, storage.ErrClosed)
	wantErr(t, "Wait after Close", l.Wait(context.Background(), 5), storage.ErrClosed)
	wantErr(t, "TruncateSuffix after Close", l.TruncateSuffix(0), storage.ErrClosed)
	wantErr(t, "TruncatePrefix after Close", l.TruncatePrefix(0), storage.ErrClosed)
	wantErr(t, "Reset after Close", l.Reset(0), storage.ErrClosed)
	wantErr(t, "Sync after Close", l.Sync(), storage.ErrClosed)
	_, err = collect(l, 0, 1)
	wantErr(t, "Records after Close", err, storage.ErrClosed)
}

func testConcurrent(t *testing.T, h Harness) {
	l := newLog(t, h)
	const total = 2000
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	// Tailing readers: Wait for each offset, then read it, and stream with Records.
	for r := range 4 {
		wg.Go(func() {
			for off := uint64(0); off < total; off++ {
				if err := l.Wait(context.Background(), off); err != nil {
					errs <- fmt.Errorf("reader %d: Wait(%d): %w", r, off, err)
					return
				}
				if r%2 == 0 {
					got, err := l.Read(off)
					if err != nil || !bytes.Equal(got, value(off)) {
						errs <- fmt.Errorf("reader %d: Read(%d) = %q, %v", r, off, got, err)
						return
					}
					continue
				}
				_, next := l.Bounds()
				for rec, err := range l.Records(off, next) {
					if err != nil || rec.Offset != off || !bytes.Equal(rec.Value, value(off)) {
						errs <- fmt.Errorf("reader %d: Records at %d = {%d %q}, %v", r, off, rec.Offset, rec.Value, err)
						return
					}
					off++
				}
				off--
			}
		})
	}
	for i := uint64(0); i < total; {
		n := min(uint64(1+i%7), total-i)
		batch := make([][]byte, n)
		for j := range n {
			batch[j] = value(i + j)
		}
		if first := mustAppend(t, l, batch...); first != i {
			t.Fatalf("batch got %d, want %d", first, i)
		}
		i += n
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

func testReopen(t *testing.T, h Harness) {
	l := h.New(t)
	for i := uint64(0); i < 30; i += 3 {
		mustAppend(t, l, value(i), value(i+1), value(i+2))
	}
	if err := l.TruncateSuffix(25); err != nil {
		t.Fatal(err)
	}
	l = h.Reopen(t, l)
	t.Cleanup(func() { _ = l.Close() })
	wantBounds(t, l, 0, 25)
	for i := range uint64(25) {
		wantRead(t, l, i, value(i))
	}
	if off := mustAppend(t, l, value(25)); off != 25 {
		t.Fatalf("append after reopen got %d", off)
	}
	if err := l.Reset(500); err != nil {
		t.Fatal(err)
	}
	mustAppend(t, l, value(500))
	l = h.Reopen(t, l)
	t.Cleanup(func() { _ = l.Close() })
	wantBounds(t, l, 500, 501)
	wantRead(t, l, 500, value(500))
}
