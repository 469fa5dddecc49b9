package segment_test

import (
	"errors"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/commitlog-go/commitlog/storage"
	"github.com/commitlog-go/commitlog/storage/segment"
	"github.com/commitlog-go/commitlog/storage/vfs/crashfs"
)

// checkCleanPrefix checks that l holds whole batches with the right values: every record
// is val(offset), and the log ends at a batch boundary of the batches recorded in ends.
func checkCleanPrefix(t *testing.T, l storage.Log, ends map[uint64]bool) uint64 {
	t.Helper()
	lo, next := l.Bounds()
	if lo != 0 {
		t.Fatalf("lowest = %d after crash, want 0", lo)
	}
	if next != 0 && !ends[next] {
		t.Fatalf("log ends at %d, inside a batch", next)
	}
	checkContent(t, l, 0, next)
	return next
}

// TestPowerFailureSyncAlways: every append that returned before the power failure is there
// after it, with concurrent appenders, segment rolls and torn unsynced tails.
func TestPowerFailureSyncAlways(t *testing.T) {
	for seed := range uint64(8) {
		rng := rand.New(rand.NewPCG(seed, 7))
		fs := crashfs.New()
		cfg := segment.Config{FS: fs, SegmentBytes: 600}
		l, err := segment.Open(dir, cfg)
		if err != nil {
			t.Fatal(err)
		}
		var (
			mu    sync.Mutex
			acked = map[uint64]int{} // first offset -> batch size
			ends  = map[uint64]bool{}
			count atomic.Int64
			wg    sync.WaitGroup
		)
		crashAt := int64(20 + rng.IntN(60))
		crashed := make(chan struct{})
		for w := range 4 {
			wg.Go(func() {
				for i := 0; i < 1000; i++ {
					n := 1 + (w+i)%4
					// Offsets are unknown before Append returns, so values say who wrote
					// them and where they sit in their batch: {writer, index, batch size}.
					batch := make([][]byte, n)
					for j := range batch {
						batch[j] = []byte{byte(w), byte(j), byte(n)}
					}
					first, err := l.Append(batch...)
					if err != nil {
						if !errors.Is(err, storage.ErrFailed) && !errors.Is(err, storage.ErrClosed) {
							t.Errorf("Append: %v", err)
						}
						return
					}
					mu.Lock()
					acked[first] = n
					ends[first+uint64(n)] = true
					mu.Unlock()
					if count.Add(1) == crashAt {
						fs.Crash(crashfs.TearUnsynced, rng)
						close(crashed)
					}
				}
			})
		}
		wg.Wait()
		select {
		case <-crashed:
		default:
			t.Fatal("never crashed")
		}
		_ = l.Close()
		l, err = segment.Open(dir, cfg)
		if err != nil {
			t.Fatalf("seed %d: reopen after crash: %v", seed, err)
		}
		_, next := l.Bounds()
		mu.Lock()
		for first, n := range acked {
			if first+uint64(n) > next {
				t.Fatalf("seed %d: acknowledged batch [%d, %d) lost (log ends at %d)", seed, first, first+uint64(n), next)
			}
			for j := range n {
				got, err := l.Read(first + uint64(j))
				if err != nil || len(got) != 3 || int(got[1]) != j || int(got[2]) != n {
					t.Fatalf("seed %d: record %d of acked batch at %d = %v, %v", seed, j, first, got, err)
				}
			}
		}
		mu.Unlock()
		// Every record present, acknowledged or not, belongs to a whole batch.
		var off uint64
		for off < next {
			got, err := l.Read(off)
			if err != nil {
				t.Fatalf("seed %d: Read(%d): %v", seed, off, err)
			}
			n := int(got[2])
			for j := range n {
				r, err := l.Read(off + uint64(j))
				if err != nil || int(r[1]) != j || int(r[2]) != n || r[0] != got[0] {
					t.Fatalf("seed %d: batch at %d torn at record %d: %v, %v", seed, off, j, r, err)
				}
			}
			off += uint64(n)
		}
		if err := l.Close(); err != nil {
			t.Fatal(err)
		}
	}
}

// TestPowerFailureSyncNever: without fsync, a power failure may lose records, but the log
// is a clean prefix of whole batches, holding at least what Sync covered.
func TestPowerFailureSyncNever(t *testing.T) {
	for seed := range uint64(20) {
		rng := rand.New(rand.NewPCG(seed, 9))
		for _, policy := range []segment.SyncPolicy{segment.SyncNever, segment.SyncInterval} {
			fs := crashfs.New()
			cfg := segment.Config{FS: fs, SegmentBytes: 400, Sync: policy, SyncInterval: 1e9}
			l, err := segment.Open(dir, cfg)
			if err != nil {
				t.Fatal(err)
			}
			ends := map[uint64]bool{}
			var synced uint64
			for i := range 60 {
				_, next := l.Bounds()
				n := 1 + rng.IntN(4)
				appendBatches(t, l, n)
				ends[next+uint64(n)] = true
				if i == 30 {
					if err := l.Sync(); err != nil {
						t.Fatal(err)
					}
					synced = next + uint64(n)
				}
			}
			fs.Crash(crashfs.TearUnsynced, rng)
			_ = l.Close()
			l, err = segment.Open(dir, cfg)
			if err != nil {
				t.Fatalf("seed %d %v: reopen: %v", seed, policy, err)
			}
			if next := checkCleanPrefix(t, l, ends); next < synced {
				t.Fatalf("seed %d %v: log ends at %d, before the Sync at %d", seed, policy, next, synced)
			}
			if err := l.Close(); err != nil {
				t.Fatal(err)
			}
		}
	}
}

// TestCrashDuringOpenRepair: a crash right after recovery's repair leaves a log that still
// opens cleanly (recovery is idempotent).
func TestCrashDuringOpenRepair(t *testing.T) {
	fs := crashfs.New()
	cfg := segment.Config{FS: fs, Sync: segment.SyncNever}
	l := openT(t, dir, cfg)
	appendBatches(t, l, 3, 3)
	if err := l.Sync(); err != nil {
		t.Fatal(err)
	}
	appendBatches(t, l, 3)
	fs.Crash(crashfs.TearUnsynced, rand.New(rand.NewPCG(3, 3)))
	_ = l.Close()
	for range 3 {
		l := openT(t, dir, cfg)
		checkCleanPrefix(t, l, map[uint64]bool{3: true, 6: true, 9: true})
		fs.Crash(crashfs.DropUnsynced, nil)
		_ = l.Close()
	}
}

// TestIndexesSurvivePowerFailure: index files are durable when their segment is sealed, so
// Open after a power failure does not rescan sealed segments.
func TestIndexesSurvivePowerFailure(t *testing.T) {
	fs := crashfs.New()
	cfg := segment.Config{FS: fs, SegmentBytes: 200}
	l, err := segment.Open(dir, cfg)
	if err != nil {
		t.Fatal(err)
	}
	appendBatches(t, l, 3, 3, 3, 3, 3, 3)
	fs.Crash(crashfs.DropUnsynced, nil)
	_ = l.Close()
	l = openT(t, dir, cfg)
	if rep := l.Recovery(); rep.RebuiltIndexes != 0 || rep.Segments < 3 {
		t.Fatalf("recovery after power failure: %+v; want several segments and no rebuilt index", rep)
	}
	checkContent(t, l, 0, 18)
}
