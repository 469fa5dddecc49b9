package segment_test

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"path/filepath"
	"strings"
	"testing"

	"github.com/commitlog-go/commitlog/storage"
	"github.com/commitlog-go/commitlog/storage/segment"
	"github.com/commitlog-go/commitlog/storage/vfs/crashfs"
)

// Format facts the tests rely on (see format.go); a test fails if the format changes.
const (
	segHdrLen = 40
	frameHdr  = 16
)

const dir = "/log"

func val(i uint64) []byte { return fmt.Appendf(nil, "value-%d", i) }

// openT opens a log and registers its Close.
func openT(t *testing.T, d string, cfg segment.Config) *segment.Log {
	t.Helper()
	l, err := segment.Open(d, cfg)
	if err != nil {
		t.Fatalf("Open(%s): %v", d, err)
	}
	t.Cleanup(func() { _ = l.Close() })
	return l
}

func closeT(t *testing.T, l *segment.Log) {
	t.Helper()
	if err := l.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
}

// appendBatches appends batches of the given sizes with values val(offset).
func appendBatches(t *testing.T, l storage.Log, sizes ...int) {
	t.Helper()
	for _, n := range sizes {
		_, next := l.Bounds()
		batch := make([][]byte, n)
		for j := range batch {
			batch[j] = val(next + uint64(j))
		}
		if first, err := l.Append(batch...); err != nil || first != next {
			t.Fatalf("Append(%d records) = %d, %v; want %d", n, first, err, next)
		}
	}
}

// checkContent checks that l holds exactly val(o) at every offset of [lowest, next), read
// both by Read and by Records.
func checkContent(t *testing.T, l storage.Log, lowest, next uint64) {
	t.Helper()
	if lo, nx := l.Bounds(); lo != lowest || nx != next {
		t.Fatalf("Bounds() = [%d, %d), want [%d, %d)", lo, nx, lowest, next)
	}
	for o := lowest; o < next; o++ {
		got, err := l.Read(o)
		if err != nil || !bytes.Equal(got, val(o)) {
			t.Fatalf("Read(%d) = %q, %v; want %q", o, got, err, val(o))
		}
	}
	o := lowest
	for r, err := range l.Records(lowest, next) {
		if err != nil || r.Offset != o || !bytes.Equal(r.Value, val(o)) {
			t.Fatalf("Records at %d = {%d %q}, %v", o, r.Offset, r.Value, err)
		}
		o++
	}
	if o != next {
		t.Fatalf("Records stopped at %d, want %d", o, next)
	}
}

// segFiles returns the segment file paths in dir, oldest first.
func segFiles(t *testing.T, fs *crashfs.FS, d string) []string {
	t.Helper()
	names, err := fs.ReadDir(d)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, n := range names {
		if strings.HasSuffix(n, ".seg") {
			out = append(out, filepath.Join(d, n))
		}
	}
	return out
}

// wantCorrupt checks that err wraps storage.ErrCorrupt and names the file and position.
func wantCorrupt(t *testing.T, err error, file string, pos int64) {
	t.Helper()
	if !errors.Is(err, storage.ErrCorrupt) {
		t.Fatalf("err = %v, want ErrCorrupt", err)
	}
	if msg := err.Error(); !strings.Contains(msg, file) || (pos >= 0 && !strings.Contains(msg, fmt.Sprintf("position %d", pos))) {
		t.Fatalf("error %q does not name %s at position %d", msg, file, pos)
	}
}

// withSynced returns a copy of the segment file seg whose header says that only [0, mark)
// was known durable (format version 2), as after a power failure that lost the rest; with
// mark < 0 the header is format version 1, which has no watermark (an old data dir).
func withSynced(seg []byte, mark int) []byte {
	b := bytes.Clone(seg)
	if mark < 0 {
		binary.LittleEndian.PutUint16(b[4:], 1)
		binary.LittleEndian.PutUint32(b[32:], 0)
	} else {
		binary.LittleEndian.PutUint16(b[4:], 2)
		binary.LittleEndian.PutUint32(b[32:], uint32(mark))
	}
	binary.LittleEndian.PutUint32(b[36:], crc32.Checksum(b[:36], crc32.MakeTable(crc32.Castagnoli)))
	return b
}

// syncedMark returns the synced watermark of the segment file seg (format version 2).
func syncedMark(seg []byte) int { return int(binary.LittleEndian.Uint32(seg[32:])) }
