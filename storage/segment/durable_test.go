package segment_test

import (
	"bytes"
	"math/rand/v2"
	"testing"

	"github.com/commitlog-go/commitlog/storage/segment"
	"github.com/commitlog-go/commitlog/storage/vfs/crashfs"
)

// bigVal is the value of offset o in the page-drop tests: a few hundred bytes, so that the
// unsynced tail spans many pages.
func bigVal(o uint64) []byte { return bytes.Repeat(val(o), 20+int(o%30)) }

// TestPowerFailureDropUnsyncedPages: a power failure that keeps a random subset of the pages
// written since the last fdatasync (holes in the unsynced tail with valid frames after them)
// never makes Open refuse the log, which reopens as a clean prefix of whole batches holding
// at least what was synced, and serves no damaged record. Some seeds must produce a hole
// (otherwise the test proves nothing).
func TestPowerFailureDropUnsyncedPages(t *testing.T) {
	holes := 0
	for _, policy := range []segment.SyncPolicy{segment.SyncNever, segment.SyncInterval, segment.SyncAlways} {
		for seed := range uint64(25) {
			rng := rand.New(rand.NewPCG(seed, 11))
			fs := crashfs.New()
			cfg := segment.Config{FS: fs, SegmentBytes: 256 << 10, Sync: policy, SyncInterval: 1e9}
			l, err := segment.Open(dir, cfg)
			if err != nil {
				t.Fatal(err)
			}
			ends := map[uint64]bool{0: true}
			var synced uint64
			var next uint64
			for i := range 200 {
				n := 1 + rng.IntN(4)
				batch := make([][]byte, n)
				for j := range batch {
					batch[j] = bigVal(next + uint64(j))
				}
				if first, err := l.Append(batch...); err != nil || first != next {
					t.Fatalf("Append = %d, %v; want %d", first, err, next)
				}
				next += uint64(n)
				ends[next] = true
				if policy == segment.SyncAlways {
					synced = next
				}
				if i%60 == 59 {
					if err := l.Sync(); err != nil {
						t.Fatal(err)
					}
					synced = next
				}
			}
			fs.Crash(crashfs.DropUnsyncedPages, rng)
			_ = l.Close()
			l, err = segment.Open(dir, cfg)
			if err != nil {
				t.Fatalf("%v seed %d: reopen after losing unsynced pages: %v", policy, seed, err)
			}
			lo, got := l.Bounds()
			if lo != 0 || !ends[got] || got < synced {
				t.Fatalf("%v seed %d: log holds [%d, %d) after the crash; want a batch boundary at or after %d", policy, seed, lo, got, synced)
			}
			for o := range got {
				if v, err := l.Read(o); err != nil || !bytes.Equal(v, bigVal(o)) {
					t.Fatalf("%v seed %d: Read(%d) = %d bytes, %v; want bigVal", policy, seed, o, len(v), err)
				}
			}
			if l.Recovery().Hole {
				holes++
			}
			if err := l.Close(); err != nil {
				t.Fatal(err)
			}
		}
	}
	if holes == 0 {
		t.Fatal("no crash left a hole followed by valid frames; the test proves nothing")
	}
	t.Logf("%d crashes left a hole in the unsynced tail", holes)
}

// TestSyncedWatermark: Sync and Close leave the header's watermark exact, and recovery tells
// damage above it (a torn tail with a hole, cut and reported) from damage at or below it
// (corruption, refused), including a bad last frame that the log without a watermark would
// have cut.
func TestSyncedWatermark(t *testing.T) {
	fs := crashfs.New()
	cfg := segment.Config{FS: fs, Sync: segment.SyncNever}
	l := openT(t, dir, cfg)
	appendBatches(t, l, 3, 3)
	if err := l.Sync(); err != nil {
		t.Fatal(err)
	}
	file := segFiles(t, fs, dir)[0]
	data, _ := fs.ReadFile(file)
	if got := syncedMark(data); got != len(data) {
		t.Fatalf("watermark after Sync = %d, want %d", got, len(data))
	}
	mid := len(data)
	appendBatches(t, l, 3, 3)
	closeT(t, l)
	orig, _ := fs.ReadFile(file)
	if got := syncedMark(orig); got != len(orig) {
		t.Fatalf("watermark after Close = %d, want %d", got, len(orig))
	}
	// Zero the frame of offset 6 (the first after mid), leaving valid frames after it.
	holed := func() []byte {
		b := bytes.Clone(orig)
		clear(b[mid : mid+frameHdr+len(val(6))])
		return b
	}

	t.Run("hole above the watermark is a torn tail", func(t *testing.T) {
		fs.WriteFile(file, withSynced(holed(), mid))
		l := openT(t, dir, cfg)
		checkContent(t, l, 0, 6)
		rep := l.Recovery()
		if !rep.Hole || rep.Synced != int64(mid) || rep.TruncatedBytes != int64(len(orig)-mid) {
			t.Fatalf("Recovery() = %+v; want a hole cut at %d", rep, mid)
		}
		closeT(t, l)
		if b, _ := fs.ReadFile(file); syncedMark(b) != len(b) || len(b) != mid {
			t.Fatalf("after recovery the file is %d bytes with watermark %d; want %d and exact", len(b), syncedMark(b), mid)
		}
	})
	t.Run("same hole at or below the watermark is corruption", func(t *testing.T) {
		for _, mark := range []int{mid + 1, len(orig)} {
			fs.WriteFile(file, withSynced(holed(), mark))
			_, err := segment.Open(dir, cfg)
			wantCorrupt(t, err, file, int64(mid))
		}
	})
	t.Run("same hole without a watermark (version 1) is corruption", func(t *testing.T) {
		fs.WriteFile(file, withSynced(holed(), -1))
		_, err := segment.Open(dir, cfg)
		wantCorrupt(t, err, file, int64(mid))
	})
	t.Run("bad last frame below the watermark is corruption", func(t *testing.T) {
		b := bytes.Clone(orig)
		b[len(b)-1] ^= 1
		fs.WriteFile(file, b)
		_, err := segment.Open(dir, cfg)
		wantCorrupt(t, err, file, int64(len(b)-frameHdr-len(val(11))))
		// Without a watermark (an old data dir) it is a torn tail, as before.
		fs.WriteFile(file, withSynced(b, -1))
		l := openT(t, dir, cfg)
		checkContent(t, l, 0, 9)
		closeT(t, l)
	})
	t.Run("file shorter than its watermark is corruption", func(t *testing.T) {
		fs.WriteFile(file, orig[:len(orig)-1])
		_, err := segment.Open(dir, cfg)
		wantCorrupt(t, err, file, int64(len(orig)-1))
	})
}

// TestTruncateSuffixLowersWatermark: after TruncateSuffix, records appended and lost in a
// power failure are not mistaken for lost durable data.
func TestTruncateSuffixLowersWatermark(t *testing.T) {
	fs := crashfs.New()
	cfg := segment.Config{FS: fs, Sync: segment.SyncNever}
	l := openT(t, dir, cfg)
	appendBatches(t, l, 3, 3, 3)
	if err := l.Sync(); err != nil {
		t.Fatal(err)
	}
	if err := l.TruncateSuffix(4); err != nil {
		t.Fatal(err)
	}
	appendBatches(t, l, 2, 2)
	if err := l.Sync(); err != nil { // the watermark now covers 4 records more
		t.Fatal(err)
	}
	if err := l.TruncateSuffix(5); err != nil {
		t.Fatal(err)
	}
	appendBatches(t, l, 3)
	fs.Crash(crashfs.DropUnsynced, nil)
	_ = l.Close()
	l = openT(t, dir, cfg)
	checkContent(t, l, 0, 5)
}

// TestOldFormatOpens: a log written before the watermark (segment header version 1) opens,
// keeps its records, and gets an exact watermark (version 2 header).
func TestOldFormatOpens(t *testing.T) {
	fs := crashfs.New()
	cfg := segment.Config{FS: fs, Sync: segment.SyncNever}
	l := openT(t, dir, cfg)
	appendBatches(t, l, 2, 2)
	closeT(t, l)
	file := segFiles(t, fs, dir)[0]
	data, _ := fs.ReadFile(file)
	fs.WriteFile(file, withSynced(data, -1))
	l = openT(t, dir, cfg)
	if rep := l.Recovery(); rep.Synced != -1 {
		t.Fatalf("Recovery().Synced = %d for a version 1 segment, want -1", rep.Synced)
	}
	checkContent(t, l, 0, 4)
	appendBatches(t, l, 1)
	closeT(t, l)
	b, _ := fs.ReadFile(file)
	if b[4] != 2 || syncedMark(b) != len(b) {
		t.Fatalf("header version %d watermark %d, want 2 and %d", b[4], syncedMark(b), len(b))
	}
}

// TestPowerFailureDuringFsync: a power failure while an fdatasync is in flight (so the header
// rewritten just before it may or may not have reached the disk, and any unsynced page may be
// lost) never leaves a watermark above what is durable: the log always reopens.
func TestPowerFailureDuringFsync(t *testing.T) {
	for seed := range uint64(30) {
		rng := rand.New(rand.NewPCG(seed, 5))
		fs := crashfs.New()
		cfg := segment.Config{FS: fs, Sync: segment.SyncNever}
		l, err := segment.Open(dir, cfg)
		if err != nil {
			t.Fatal(err)
		}
		var next uint64
		appendSome := func(n int) {
			for range n {
				if _, err := l.Append(bigVal(next)); err != nil {
					t.Fatal(err)
				}
				next++
			}
		}
		appendSome(20)
		if err := l.Sync(); err != nil {
			t.Fatal(err)
		}
		appendSome(30)
		if err := l.Sync(); err != nil {
			t.Fatal(err)
		}
		synced := next
		appendSome(30)
		entered, release := fs.HoldSyncs()
		done := make(chan error, 1)
		go func() { done <- l.Sync() }()
		<-entered
		fs.Crash(crashfs.DropUnsyncedPages, rng)
		release()
		<-done // fails: the handle died with the power
		_ = l.Close()
		l, err = segment.Open(dir, cfg)
		if err != nil {
			t.Fatalf("seed %d: reopen after a power failure during fdatasync: %v", seed, err)
		}
		if _, got := l.Bounds(); got < synced {
			t.Fatalf("seed %d: log ends at %d, before the synced %d", seed, got, synced)
		}
		if err := l.Close(); err != nil {
			t.Fatal(err)
		}
	}
}
