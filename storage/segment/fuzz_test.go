package segment_test

import (
	"errors"
	"testing"

	"github.com/commitlog-go/commitlog/storage"
	"github.com/commitlog-go/commitlog/storage/segment"
	"github.com/commitlog-go/commitlog/storage/vfs/crashfs"
)

const (
	fuzzSeg1 = dir + "/0000000001-00000000000000000000.seg"
	fuzzIdx1 = dir + "/0000000001-00000000000000000000.idx"
)

// fuzzSeeds returns the files of real logs: two segments (the first sealed with its index),
// for the seed corpus.
func fuzzSeeds(t testing.TB) (seg1, idx1, seg2 []byte) {
	fs := crashfs.New()
	l, err := segment.Open(dir, segment.Config{FS: fs, SegmentBytes: 150})
	if err != nil {
		t.Fatal(err)
	}
	for i := range uint64(8) {
		if _, err := l.Append(val(2*i), val(2*i+1)); err != nil {
			t.Fatal(err)
		}
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	files := segFilesTB(t, fs)
	seg1, _ = fs.ReadFile(files[0])
	idx1, _ = fs.ReadFile(fuzzIdx1)
	seg2, _ = fs.ReadFile(files[1])
	return seg1, idx1, seg2
}

func segFilesTB(t testing.TB, fs *crashfs.FS) []string {
	names, err := fs.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, n := range names {
		if len(n) > 4 && n[len(n)-4:] == ".seg" {
			out = append(out, dir+"/"+n)
		}
	}
	return out
}

// FuzzOpen opens a directory holding arbitrary segment and index files: Open must fail or
// succeed, never panic, and a log it opens must serve its records or report corruption.
// Allocation is bounded by MaxRecordBytes (1 KiB here) and by file sizes.
func FuzzOpen(f *testing.F) {
	seg1, idx1, seg2 := fuzzSeeds(f)
	f.Add(seg1, idx1, seg2, uint64(1))
	f.Add(seg1, []byte(nil), seg2, uint64(1))
	f.Add(seg1[:len(seg1)-3], idx1, seg2, uint64(1))
	f.Add(seg1, idx1[:len(idx1)-1], seg2[:50], uint64(1))
	f.Add(seg1, idx1, []byte{}, uint64(1))
	f.Add([]byte("garbage"), []byte("garbage"), []byte("garbage"), uint64(0))
	f.Fuzz(func(t *testing.T, seg1, idx1, seg2 []byte, base2 uint64) {
		fs := crashfs.New()
		fs.WriteFile(fuzzSeg1, seg1)
		if idx1 != nil {
			fs.WriteFile(fuzzIdx1, idx1)
		}
		if base2 != 0 {
			fs.WriteFile(dir+"/0000000002-"+pad20(base2)+".seg", seg2)
		}
		l, err := segment.Open(dir, segment.Config{FS: fs, MaxRecordBytes: 1024})
		if err != nil {
			return
		}
		defer l.Close()
		lo, next := l.Bounds()
		for o := lo; o < next && o < lo+10_000; o++ {
			if _, err := l.Read(o); err != nil && !errors.Is(err, storage.ErrCorrupt) {
				t.Fatalf("Read(%d) of [%d, %d): %v", o, lo, next, err)
			}
		}
		for _, err := range l.Records(lo, min(next, lo+10_000)) {
			if err != nil && !errors.Is(err, storage.ErrCorrupt) {
				t.Fatalf("Records: %v", err)
			}
		}
		if _, err := l.Append([]byte("after")); err != nil {
			t.Fatalf("Append to a recovered log: %v", err)
		}
	})
}

func pad20(v uint64) string {
	s := []byte("00000000000000000000")
	for i := len(s) - 1; v > 0 && i >= 0; i-- {
		s[i] = byte('0' + v%10)
		v /= 10
	}
	return string(s)
}
