package fsm

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"runtime"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/commitlog-go/commitlog/consensus"
	"github.com/commitlog-go/commitlog/storage"
	"github.com/commitlog-go/commitlog/storage/memory"
)

// newMemLog returns a new in-memory log.
func newMemLog(t testing.TB, cfg memory.Config) *memory.Log {
	t.Helper()
	l, err := memory.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return l
}

// newMemFSM returns an FSM over a new in-memory log.
func newMemFSM(t testing.TB, cfg Config) (*FSM, *memory.Log) {
	t.Helper()
	log := newMemLog(t, memory.Config{})
	t.Cleanup(func() { _ = log.Close() })
	cfg.Log = log
	f, err := New(cfg)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return f, log
}

// testTime is the timestamp cmd stamps commands with, so that the same command applied to
// two FSMs stores the same bytes (as a replicated one does).
var testTime = time.UnixMilli(1_780_000_000_000)

// cmd encodes an append command of the given values (type = 1 for all), stamped testTime.
func cmd(t testing.TB, values ...string) []byte {
	t.Helper()
	recs := make([]AppendRecord, len(values))
	for i, v := range values {
		recs[i] = AppendRecord{Value: []byte(v), Type: 1}
	}
	b, err := EncodeAppendAt(Limits{}, testTime, recs...)
	if err != nil {
		t.Fatalf("EncodeAppend: %v", err)
	}
	return b
}

// valuesCmd returns a command of n values named prefix-i.
func valuesCmd(t testing.TB, prefix string, n int) ([]byte, []string) {
	t.Helper()
	values := make([]string, n)
	for i := range values {
		values[i] = fmt.Sprintf("%s-%d", prefix, i)
	}
	return cmd(t, values...), values
}

// mustApply applies entries and fails the test on any error result.
func mustApply(t testing.TB, f *FSM, entries ...consensus.Entry) []AppendResult {
	t.Helper()
	res := f.Apply(entries)
	out := make([]AppendResult, len(res))
	for i, r := range res {
		ar, ok := r.(AppendResult)
		if !ok {
			t.Fatalf("entry %d (index %d): result %v, want an AppendResult", i, entries[i].Index, r)
		}
		out[i] = ar
	}
	return out
}

// readAll returns every record the FSM's log holds, checking that offsets are dense.
func readAll(t testing.TB, f *FSM) []Record {
	t.Helper()
	lowest, next := f.Bounds()
	var out []Record
	for off := lowest; off < next; off++ {
		r, err := f.Read(context.Background(), off)
		if err != nil {
			t.Fatalf("Read(%d): %v", off, err)
		}
		out = append(out, r)
	}
	return out
}

// values returns the records' values as strings.
func values(recs []Record) []string {
	out := make([]string, len(recs))
	for i, r := range recs {
		out[i] = string(r.Value)
	}
	return out
}

// faultLog wraps a storage.Log: Append fails with appendErr once failAppends reaches zero, and
// batches whose total size exceeds maxBatchBytes (when set) are refused with ErrTooLarge.
type faultLog struct {
	storage.Log
	maxBatchBytes int
	appendErr     error
	syncErr       error
	appends       int   // number of Append calls
	appended      int   // number of records appended
	batchBytes    []int // stored bytes of each Append call
	syncs         atomic.Int64
}

func (l *faultLog) Sync() error {
	l.syncs.Add(1)
	if l.syncErr != nil {
		return l.syncErr
	}
	return l.Log.Sync()
}

func (l *faultLog) Append(records ...[]byte) (uint64, error) {
	l.appends++
	size := 0
	for _, r := range records {
		size += len(r)
	}
	l.batchBytes = append(l.batchBytes, size)
	if l.appendErr != nil {
		return 0, l.appendErr
	}
	if l.maxBatchBytes > 0 {
		n := 0
		for _, r := range records {
			n += len(r)
		}
		if n > l.maxBatchBytes {
			return 0, fmt.Errorf("batch of %d bytes: %w", n, storage.ErrTooLarge)
		}
	}
	first, err := l.Log.Append(records...)
	if err == nil {
		l.appended += len(records)
	}
	return first, err
}

var errDisk = errors.New("disk on fire")

// newRand returns a deterministic random source for seed.
func newRand(seed uint64) *rand.Rand { return rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15)) }

// waitParked polls until a goroutine whose stack names fn is blocked (in a select, a channel
// receive or a sync.Cond wait, as a goroutine dump shows it), calling early on each round so the
// caller can fail the test if what it waits on already happened. It fails the test after 10s.
func waitParked(t testing.TB, fn string, early func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		if early() {
			return
		}
		buf := make([]byte, 1<<20)
		for {
			n := runtime.Stack(buf, true)
			if n < len(buf) {
				buf = buf[:n]
				break
			}
			buf = make([]byte, 2*len(buf))
		}
		for _, g := range strings.Split(string(buf), "\n\n") {
			header, _, _ := strings.Cut(g, "\n")
			if !strings.Contains(g, fn) {
				continue
			}
			for _, state := range []string{"[select", "[chan receive", "[sync.Cond.Wait"} {
				if strings.Contains(header, state) {
					return
				}
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("no goroutine in %s blocked within 10s", fn)
		}
		time.Sleep(time.Millisecond)
	}
}
