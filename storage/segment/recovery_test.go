package segment_test

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/commitlog-go/commitlog/storage/segment"
	"github.com/commitlog-go/commitlog/storage/vfs/crashfs"
)

// TestTornTailEveryByte cuts the last segment at every byte position within its last few
// batches, which were never synced (the header's watermark is below them, or absent in a
// version 1 segment), and checks that reopening yields exactly the whole batches before the
// cut, and reports what it cut.
func TestTornTailEveryByte(t *testing.T) {
	for _, v1 := range []bool{false, true} {
		t.Run(map[bool]string{false: "v2", true: "v1"}[v1], func(t *testing.T) { testTornTailEveryByte(t, v1) })
	}
}

func testTornTailEveryByte(t *testing.T, v1 bool) {
	fs := crashfs.New()
	cfg := segment.Config{FS: fs, SegmentBytes: 1 << 20}
	l := openT(t, dir, cfg)
	sizes := []int{2, 1, 3, 1, 4, 2}
	appendBatches(t, l, sizes...)
	closeT(t, l)
	file := segFiles(t, fs, dir)[0]
	full, err := fs.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	// Batch boundaries from the format: each frame is 16 bytes + its value.
	type boundary struct {
		end  int // byte position after the batch
		next uint64
	}
	var ends []boundary
	pos, off := segHdrLen, uint64(0)
	for _, n := range sizes {
		for range n {
			pos += frameHdr + len(val(off))
			off++
		}
		ends = append(ends, boundary{pos, off})
	}
	if pos != len(full) {
		t.Fatalf("segment is %d bytes, format says %d", len(full), pos)
	}
	start := ends[len(ends)-4].end - 3 // a little before the last three batches
	mark := ends[len(ends)-5].end      // synced up to the batch before
	if v1 {
		mark = -1
	}
	if got := syncedMark(full); got != len(full) {
		t.Fatalf("synced watermark after Close = %d, want the file size %d", got, len(full))
	}
	full = withSynced(full, mark)
	for cut := start; cut <= len(full); cut++ {
		fs.WriteFile(file, full[:cut])
		l := openT(t, dir, cfg)
		want, wantEnd := uint64(0), segHdrLen
		for _, b := range ends {
			if b.end <= cut {
				want, wantEnd = b.next, b.end
			}
		}
		checkContent(t, l, 0, want)
		rep := l.Recovery()
		if rep.TruncatedBytes != int64(cut-wantEnd) {
			t.Fatalf("cut at %d: report says %d bytes cut, want %d", cut, rep.TruncatedBytes, cut-wantEnd)
		}
		closeT(t, l)
		if got, _ := fs.ReadFile(file); len(got) != wantEnd {
			t.Fatalf("cut at %d: file is %d bytes after recovery, want %d", cut, len(got), wantEnd)
		}
	}
}

// TestTornHeader: a last segment shorter than its header (torn at creation) is removed; any
// other segment with a bad header makes Open fail.
func TestTornHeader(t *testing.T) {
	fs := crashfs.New()
	cfg := segment.Config{FS: fs, SegmentBytes: 150}
	l := openT(t, dir, cfg)
	appendBatches(t, l, 3, 3, 3, 3) // one batch per segment
	_, next := l.Bounds()
	closeT(t, l)
	files := segFiles(t, fs, dir)
	if len(files) < 3 {
		t.Fatalf("want several segments, got %d", len(files))
	}
	last := files[len(files)-1]
	orig, _ := fs.ReadFile(last)

	t.Run("last segment torn at creation", func(t *testing.T) {
		fs.WriteFile(last, orig[:segHdrLen-1])
		l := openT(t, dir, cfg)
		if rep := l.Recovery(); !slices.Contains(rep.RemovedFiles, last) {
			t.Fatalf("RemovedFiles = %v, want %s", rep.RemovedFiles, last)
		}
		_, got := l.Bounds()
		if got >= next {
			t.Fatalf("next = %d after losing the last segment, want < %d", got, next)
		}
		closeT(t, l)
		fs.WriteFile(last, orig)
	})
	t.Run("flipped header byte", func(t *testing.T) {
		bad := slices.Clone(orig)
		bad[20] ^= 1
		fs.WriteFile(last, bad)
		_, err := segment.Open(dir, cfg)
		wantCorrupt(t, err, last, 0)
		fs.WriteFile(last, orig)
	})
	// A segment before the last shorter than its header (a zero-length file: RELIABILITY.md's
	// "truncated middle") held records once: ErrCorrupt naming it, and nothing removed.
	for _, size := range []int{0, segHdrLen - 1} {
		t.Run(fmt.Sprintf("segment before the last cut to %d bytes", size), func(t *testing.T) {
			mid := files[1]
			midOrig, _ := fs.ReadFile(mid)
			fs.WriteFile(mid, midOrig[:size])
			_, err := segment.Open(dir, cfg)
			wantCorrupt(t, err, mid, 0)
			if got := segFiles(t, fs, dir); !slices.Equal(got, files) {
				t.Fatalf("files after the refused Open: %v, want %v", got, files)
			}
			fs.WriteFile(mid, midOrig)
		})
	}
}

// TestGarbageTail: random bytes after the last batch are a torn tail, cut on open.
func TestGarbageTail(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for i := range 50 {
		fs := crashfs.New()
		cfg := segment.Config{FS: fs}
		l := openT(t, dir, cfg)
		appendBatches(t, l, 3, 2)
		closeT(t, l)
		file := segFiles(t, fs, dir)[0]
		data, _ := fs.ReadFile(file)
		junk := make([]byte, 1+rng.IntN(100))
		for j := range junk {
			junk[j] = byte(rng.Uint32())
		}
		fs.WriteFile(file, append(data, junk...))
		l = openT(t, dir, cfg)
		checkContent(t, l, 0, 5)
		if got := l.Recovery().TruncatedBytes; got != int64(len(junk)) {
			t.Fatalf("case %d: cut %d bytes, want %d", i, got, len(junk))
		}
		closeT(t, l)
	}
}

// TestBitFlip flips one bit in every byte of a record in the middle of the log. Documented
// behaviour: in the active segment Open fails with ErrCorrupt naming the file and the
// frame's position (valid frames follow, so it is not a torn tail). In a sealed segment
// with a good index, Open succeeds and serves every other record, while reading the
// damaged one (by Read or Records) fails with ErrCorrupt; without the index, Open's full
// scan fails with ErrCorrupt.
func TestBitFlip(t *testing.T) {
	fs := crashfs.New()
	cfg := segment.Config{FS: fs, SegmentBytes: 150}
	l := openT(t, dir, cfg)
	appendBatches(t, l, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2)
	_, next := l.Bounds()
	closeT(t, l)
	files := segFiles(t, fs, dir)
	if len(files) < 3 {
		t.Fatalf("want at least 3 segments, got %d", len(files))
	}
	// The second record of the first segment (offset 1), and the first of the active one.
	frameLen := func(o uint64) int { return frameHdr + len(val(o)) }

	t.Run("active segment", func(t *testing.T) {
		file := files[len(files)-1]
		orig, _ := fs.ReadFile(file)
		if len(orig) <= segHdrLen+frameLen(next-1) {
			t.Fatal("setup: the active segment holds a single record, want several")
		}
		for i := segHdrLen; i < segHdrLen+frameHdr+4; i++ {
			bad := slices.Clone(orig)
			bad[i] ^= 0x10
			fs.WriteFile(file, bad)
			_, err := segment.Open(dir, cfg)
			wantCorrupt(t, err, file, segHdrLen)
		}
		fs.WriteFile(file, orig)
	})
	t.Run("sealed segment", func(t *testing.T) {
		file := files[0]
		orig, _ := fs.ReadFile(file)
		at := segHdrLen + frameLen(0) // frame of offset 1
		for i := at; i < at+frameLen(1); i++ {
			bad := slices.Clone(orig)
			bad[i] ^= 0x04
			fs.WriteFile(file, bad)
			l := openT(t, dir, cfg)
			_, err := l.Read(1)
			wantCorrupt(t, err, file, int64(at))
			for o := uint64(0); o < next; o++ {
				if o == 1 {
					continue
				}
				if _, err := l.Read(o); err != nil {
					t.Fatalf("flip at %d: Read(%d): %v", i, o, err)
				}
			}
			var iterErr error
			for _, err := range l.Records(0, next) {
				if err != nil {
					iterErr = err
				}
			}
			wantCorrupt(t, iterErr, file, int64(at))
			closeT(t, l)
		}
		fs.WriteFile(file, orig)
	})
	t.Run("sealed segment without index", func(t *testing.T) {
		file := files[0]
		orig, _ := fs.ReadFile(file)
		idx := file[:len(file)-len(".seg")] + ".idx"
		if err := fs.Remove(idx); err != nil {
			t.Fatal(err)
		}
		at := segHdrLen + frameLen(0)
		bad := slices.Clone(orig)
		bad[at+frameHdr] ^= 1
		fs.WriteFile(file, bad)
		_, err := segment.Open(dir, cfg)
		wantCorrupt(t, err, file, int64(at))
		fs.WriteFile(file, orig)
		l := openT(t, dir, cfg) // rebuilds the index
		if got := l.Recovery().RebuiltIndexes; got != 1 {
			t.Fatalf("RebuiltIndexes = %d, want 1", got)
		}
		checkContent(t, l, 0, next)
	})
}

// TestMissingSegment: a segment missing from the middle is corruption.
func TestMissingSegment(t *testing.T) {
	fs, cfg, files := fiveSegmentLog(t)
	if err := fs.Remove(files[1]); err != nil {
		t.Fatal(err)
	}
	_, err := segment.Open(dir, cfg)
	wantCorrupt(t, err, files[2], -1)
}

// TestIndexRebuilt: a missing, short or corrupt index of a sealed segment is rebuilt.
func TestIndexRebuilt(t *testing.T) {
	tests := []struct {
		name   string
		damage func(fs *crashfs.FS, idx string, data []byte)
	}{
		{"missing", func(fs *crashfs.FS, idx string, _ []byte) { _ = fs.Remove(idx) }},
		{"short", func(fs *crashfs.FS, idx string, data []byte) { fs.WriteFile(idx, data[:len(data)-5]) }},
		{"empty", func(fs *crashfs.FS, idx string, _ []byte) { fs.WriteFile(idx, nil) }},
		{"flipped", func(fs *crashfs.FS, idx string, data []byte) {
			data = slices.Clone(data)
			data[len(data)/2] ^= 1
			fs.WriteFile(idx, data)
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			fs := crashfs.New()
			cfg := segment.Config{FS: fs, SegmentBytes: 250}
			l := openT(t, dir, cfg)
			appendBatches(t, l, 4, 4, 4, 4, 4, 4)
			_, next := l.Bounds()
			closeT(t, l)
			files := segFiles(t, fs, dir)
			idx := files[1][:len(files[1])-len(".seg")] + ".idx"
			data, err := fs.ReadFile(idx)
			if err != nil {
				t.Fatalf("sealed segment has no index: %v", err)
			}
			tc.damage(fs, idx, data)
			l = openT(t, dir, cfg)
			if got := l.Recovery().RebuiltIndexes; got != 1 {
				t.Fatalf("RebuiltIndexes = %d, want 1", got)
			}
			checkContent(t, l, 0, next)
			closeT(t, l)
			if got, _ := fs.ReadFile(idx); !slices.Equal(got, data) {
				t.Fatalf("rebuilt index differs from the original")
			}
		})
	}
}

// TestRollingAndReopen: many segments, reopened, every record intact; rolls at the
// configured size.
func TestRollingAndReopen(t *testing.T) {
	fs := crashfs.New()
	cfg := segment.Config{FS: fs, SegmentBytes: 1024, Sync: segment.SyncNever}
	l := openT(t, dir, cfg)
	for range 300 {
		appendBatches(t, l, 1+int(l.Segments()%3))
	}
	_, next := l.Bounds()
	segs := l.Segments()
	if segs < 10 {
		t.Fatalf("only %d segments for %d records of ~24 bytes in 1 KiB segments", segs, next)
	}
	for _, f := range segFiles(t, fs, dir)[:segs-1] {
		data, _ := fs.ReadFile(f)
		if len(data) > 1024 {
			t.Fatalf("%s is %d bytes, above SegmentBytes with small batches", f, len(data))
		}
	}
	closeT(t, l)
	l = openT(t, dir, cfg)
	if l.Segments() != segs {
		t.Fatalf("reopened with %d segments, want %d", l.Segments(), segs)
	}
	checkContent(t, l, 0, next)
	appendBatches(t, l, 5)
	checkContent(t, l, 0, next+5)
}

// TestInterruptedReset: a crash after Reset created its segment but before the old ones were
// removed is finished by Open.
func TestInterruptedReset(t *testing.T) {
	fs := crashfs.New()
	cfg := segment.Config{FS: fs, SegmentBytes: 200}
	l := openT(t, dir, cfg)
	appendBatches(t, l, 3, 3, 3, 3)
	// Reset syncs the directory twice: after creating its segment, after removing the old
	// ones. Failing the second leaves the removals undurable; the crash forgets them.
	fs.FailNth(crashfs.OpSyncDir, 2, errors.New("injected"))
	if err := l.Reset(1000); err != nil {
		t.Fatalf("Reset: %v (the reset is durable; only cleanup failed)", err)
	}
	appendBatches(t, l, 2)
	fs.Crash(crashfs.DropUnsynced, nil)
	_ = l.Close()
	l = openT(t, dir, cfg)
	checkContent(t, l, 1000, 1002)
	if rep := l.Recovery(); len(rep.RemovedFiles) == 0 {
		t.Fatalf("recovery removed nothing: %+v", rep)
	}
	if n := len(segFiles(t, fs, dir)); n != 1 {
		t.Fatalf("%d segment files after finishing the reset, want 1", n)
	}
}

// TestTruncateSuffixMidBatchDurable: truncating inside a batch keeps the records before the
// cut across a reopen (the new last record closes its batch).
func TestTruncateSuffixMidBatchDurable(t *testing.T) {
	fs := crashfs.New()
	cfg := segment.Config{FS: fs, Sync: segment.SyncNever}
	l := openT(t, dir, cfg)
	appendBatches(t, l, 5, 5)
	if err := l.TruncateSuffix(7); err != nil {
		t.Fatal(err)
	}
	fs.Crash(crashfs.DropUnsynced, nil) // TruncateSuffix is durable whatever the policy
	_ = l.Close()
	l = openT(t, dir, cfg)
	checkContent(t, l, 0, 7)
	if rep := l.Recovery(); rep.TruncatedBytes != 0 {
		t.Fatalf("recovery cut %d bytes", rep.TruncatedBytes)
	}
}
