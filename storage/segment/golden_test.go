package segment

import (
	"encoding/binary"
	"errors"
	"flag"
	"fmt"
	"hash/crc32"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/commitlog-go/commitlog/storage"
)

// updateGolden writes the golden log directories from today's engine. Only for a new format
// version's new fixture: a committed fixture never changes.
var updateGolden = flag.Bool("update-golden", false, "write testdata/golden from the current engine")

// goldenConfig is the configuration every golden log was written and is opened with: small
// segments, so that the clean log has sealed segments with index files and an active one.
var goldenConfig = Config{SegmentBytes: 256, Sync: SyncNever}

func goldenValue(off int) []byte { return fmt.Appendf(nil, "golden record %03d", off) }

// writeGolden opens a log in dir and appends batches of 3 records; the caller closes it.
func writeGolden(t *testing.T, dir string, batches int) *Log {
	t.Helper()
	l, err := Open(dir, goldenConfig)
	if err != nil {
		t.Fatal(err)
	}
	for b := range batches {
		if _, err := l.Append(goldenValue(3*b), goldenValue(3*b+1), goldenValue(3*b+2)); err != nil {
			t.Fatal(err)
		}
	}
	return l
}

func copyLogFiles(t *testing.T, from, to string) {
	t.Helper()
	if err := os.MkdirAll(to, 0o755); err != nil {
		t.Fatal(err)
	}
	entries, err := os.ReadDir(from)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		if e.Name() == "LOCK" {
			continue
		}
		b, err := os.ReadFile(filepath.Join(from, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(to, e.Name()), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// lastSegment returns the path of the active (highest id) segment file in dir.
func lastSegment(t *testing.T, dir string) string {
	t.Helper()
	segs, _ := filepath.Glob(filepath.Join(dir, "*.seg"))
	slices.Sort(segs)
	if len(segs) == 0 {
		t.Fatalf("no segment in %s", dir)
	}
	return segs[len(segs)-1]
}

// generateGolden writes the fixtures: clean (a closed log of 12 records over several
// segments), torn-tail (4 batches synced, a 5th cut in its middle past the durable watermark,
// as a crash leaves it), bit-flip (clean with one bit of record 1's value flipped in the first,
// sealed, segment) and clean-v1 (clean with its active segment's header in version 1, written
// before the durable watermark existed).
func generateGolden(t *testing.T, root string) {
	if _, err := os.Stat(root); err == nil {
		t.Fatalf("%s exists: committed fixtures never change (a new layout gets a new version and new fixtures)", root)
	}
	clean := filepath.Join(root, "clean")
	tmp := t.TempDir()
	l := writeGolden(t, tmp, 4)
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	copyLogFiles(t, tmp, clean)

	tmp = t.TempDir()
	l = writeGolden(t, tmp, 4)
	if err := l.Sync(); err != nil {
		t.Fatal(err)
	}
	if _, err := l.Append(goldenValue(12), goldenValue(13), goldenValue(14)); err != nil {
		t.Fatal(err)
	}
	torn := filepath.Join(root, "torn-tail")
	copyLogFiles(t, tmp, torn)
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	active := lastSegment(t, torn)
	fi, err := os.Stat(active)
	if err != nil {
		t.Fatal(err)
	}
	frame := int64(frameHdr + len(goldenValue(0)))
	// Two whole frames of the last batch and half of its third: a batch without its last frame.
	if err := os.Truncate(active, fi.Size()-frame/2); err != nil {
		t.Fatal(err)
	}

	flip := filepath.Join(root, "bit-flip")
	copyLogFiles(t, clean, flip)
	first := filepath.Join(flip, "0000000001-00000000000000000000.seg")
	b, err := os.ReadFile(first)
	if err != nil {
		t.Fatal(err)
	}
	b[segHdrLen+int(frame)+frameHdr+3] ^= 0x10 // record 1, 4th byte of its value
	if err := os.WriteFile(first, b, 0o644); err != nil {
		t.Fatal(err)
	}

	v1 := filepath.Join(root, "clean-v1")
	copyLogFiles(t, clean, v1)
	active = lastSegment(t, v1)
	b, err = os.ReadFile(active)
	if err != nil {
		t.Fatal(err)
	}
	binary.LittleEndian.PutUint16(b[4:6], 1)   // version 1
	binary.LittleEndian.PutUint32(b[32:36], 0) // reserved, no watermark
	binary.LittleEndian.PutUint32(b[36:40], crc32.Checksum(b[:36], crc32.MakeTable(crc32.Castagnoli)))
	if err := os.WriteFile(active, b, 0o644); err != nil {
		t.Fatal(err)
	}
}

// TestGoldenFormat opens committed log directories written by the engine at format version 2
// (and one with a version-1 header), so that a change to how segments are encoded and decoded
// together cannot pass unnoticed: each must open to the same records, recover the same torn
// tail, and report the same corruption.
func TestGoldenFormat(t *testing.T) {
	root := filepath.Join("testdata", "golden")
	if *updateGolden {
		generateGolden(t, root)
	}
	open := func(t *testing.T, name string) *Log {
		t.Helper()
		dir := filepath.Join(t.TempDir(), name)
		copyLogFiles(t, filepath.Join(root, name), dir)
		if err := os.Chmod(dir, 0o700); err != nil {
			t.Fatal(err)
		}
		for _, seg := range mustGlob(t, filepath.Join(dir, "*.seg")) {
			b, _ := os.ReadFile(seg)
			if string(b[:4]) != "CLGS" {
				t.Fatalf("%s starts with %q, not the magic CLGS", seg, b[:4])
			}
		}
		l, err := Open(dir, goldenConfig)
		if err != nil {
			t.Fatalf("Open %s: %v", name, err)
		}
		t.Cleanup(func() { _ = l.Close() })
		return l
	}
	readAll := func(t *testing.T, l *Log, n int) {
		t.Helper()
		if lowest, next := l.Bounds(); lowest != 0 || next != uint64(n) {
			t.Fatalf("bounds [%d, %d), want [0, %d)", lowest, next, n)
		}
		for off := range n {
			v, err := l.Read(uint64(off))
			if err != nil || string(v) != string(goldenValue(off)) {
				t.Fatalf("Read(%d) = %q, %v; want %q", off, v, err, goldenValue(off))
			}
		}
	}

	t.Run("clean", func(t *testing.T) {
		l := open(t, "clean")
		if segs := len(mustGlob(t, filepath.Join(root, "clean", "*.seg"))); segs < 2 || l.Segments() != segs {
			t.Fatalf("%d segments open, %d files: want the same, at least 2", l.Segments(), segs)
		}
		if idx := len(mustGlob(t, filepath.Join(root, "clean", "*.idx"))); idx != l.Segments()-1 {
			t.Fatalf("%d index files, want one per sealed segment (%d)", idx, l.Segments()-1)
		}
		readAll(t, l, 12)
		if r := l.Recovery(); r.TruncatedBytes != 0 || r.DroppedRecords != 0 || r.RebuiltIndexes != 0 {
			t.Fatalf("recovery of a clean log: %+v", r)
		}
	})
	t.Run("clean-v1", func(t *testing.T) {
		readAll(t, open(t, "clean-v1"), 12)
	})
	t.Run("torn-tail", func(t *testing.T) {
		l := open(t, "torn-tail")
		readAll(t, l, 12)
		r := l.Recovery()
		frame := int64(frameHdr + len(goldenValue(0)))
		if r.DroppedRecords != 2 || r.TruncatedBytes != 2*frame+frame-frame/2 || !strings.HasSuffix(r.TruncatedFile, ".seg") {
			t.Fatalf("recovery %+v: want the last batch's 2 whole frames and half frame (%d bytes) cut", r, 2*frame+frame-frame/2)
		}
	})
	t.Run("bit-flip", func(t *testing.T) {
		l := open(t, "bit-flip")
		if _, err := l.Read(1); !errors.Is(err, storage.ErrCorrupt) {
			t.Fatalf("Read(1) of the flipped record: %v, want storage.ErrCorrupt", err)
		}
		for _, off := range []uint64{0, 2, 11} {
			if v, err := l.Read(off); err != nil || string(v) != string(goldenValue(int(off))) {
				t.Fatalf("Read(%d) = %q, %v", off, v, err)
			}
		}
	})
}

func mustGlob(t *testing.T, pattern string) []string {
	t.Helper()
	m, err := filepath.Glob(pattern)
	if err != nil {
		t.Fatal(err)
	}
	return m
}
