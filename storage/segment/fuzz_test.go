package segment_test

import (
	"errors"
	"fmt"
	"testing"

	"github.com/commitlog-go/commitlog/storage"
	"github.com/commitlog-go/commitlog/storage/segment"
	"github.com/commitlog-go/commitlog/storage/vfs/crashfs"
)

const (
	fuzzSeg1 = dir + "/0000000001-00000000000000000000.seg"
	fuzzIdx1 = dir + "/0000000001-00000000000000000000.idx"
)

// fuzzSeeds returns the files of a real log: two segments (the first sealed with its index),
// and the second segment's base offset as its file name gives it, for the seed corpus.
func fuzzSeeds(t testing.TB) (seg1, idx1, seg2 []byte, base2 uint64) {
	fs := crashfs.New()
	l, err := segment.Open(dir, segment.Config{FS: fs, SegmentBytes: 300})
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
	if len(files) != 2 || files[0] != fuzzSeg1 {
		t.Fatalf("seed log has segments %q, want %s and one more", files, fuzzSeg1)
	}
	seg1, _ = fs.ReadFile(files[0])
	idx1, _ = fs.ReadFile(fuzzIdx1)
	seg2, _ = fs.ReadFile(files[1])
	// The name is <seq>-<base offset, 20 digits>.seg.
	name := files[1][len(dir)+1:]
	if _, err := fmt.Sscanf(name, "0000000002-%020d.seg", &base2); err != nil || base2 == 0 {
		t.Fatalf("second segment %q: base offset: %v", name, err)
	}
	return seg1, idx1, seg2, base2
}

// openFuzzFiles opens a log made of the given files (seg2 only when base2 is not 0).
func openFuzzFiles(seg1, idx1, seg2 []byte, base2 uint64) (*segment.Log, error) {
	fs := crashfs.New()
	fs.WriteFile(fuzzSeg1, seg1)
	if idx1 != nil {
		fs.WriteFile(fuzzIdx1, idx1)
	}
	if base2 != 0 {
		fs.WriteFile(dir+"/0000000002-"+pad20(base2)+".seg", seg2)
	}
	return segment.Open(dir, segment.Config{FS: fs, MaxRecordBytes: 1024})
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
	seg1, idx1, seg2, base2 := fuzzSeeds(f)
	// Seeds a recovering Open must accept: the log as written, without its sealed segment's
	// index (rebuilt), with a torn index and a torn active segment, and with an empty active
	// segment. If one of these stopped opening, the fuzzer would only ever exercise Open's
	// error paths, so check them here, outside the fuzz function.
	opens := [][4]any{
		{seg1, idx1, seg2, base2},
		{seg1, []byte(nil), seg2, base2},
		{seg1, idx1[:len(idx1)-1], withSynced(seg2, segHdrLen)[:50], base2}, // torn beyond its synced watermark
		{seg1, idx1, []byte{}, base2},
	}
	for i, s := range opens {
		l, err := openFuzzFiles(s[0].([]byte), s[1].([]byte), s[2].([]byte), s[3].(uint64))
		if err != nil {
			f.Fatalf("seed %d: Open: %v", i, err)
		}
		lo, next := l.Bounds()
		if i == 0 && (lo != 0 || next != 16) {
			f.Fatalf("seed %d: bounds [%d, %d), want [0, 16)", i, lo, next)
		}
		_ = l.Close()
		f.Add(s[0].([]byte), s[1].([]byte), s[2].([]byte), s[3].(uint64))
	}
	// Seeds Open may refuse: a sealed segment cut short, and garbage.
	f.Add(seg1[:len(seg1)-3], idx1, seg2, base2)
	f.Add([]byte("garbage"), []byte("garbage"), []byte("garbage"), uint64(0))
	f.Fuzz(func(t *testing.T, seg1, idx1, seg2 []byte, base2 uint64) {
		l, err := openFuzzFiles(seg1, idx1, seg2, base2)
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
