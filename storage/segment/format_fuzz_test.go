package segment

import (
	"bytes"
	"testing"
)

// FuzzDecodeFrame feeds arbitrary bytes to the frame decoder: it must never panic nor
// accept a length above the limit, and whatever it accepts must re-encode to the same bytes.
func FuzzDecodeFrame(f *testing.F) {
	f.Add(appendFrame(nil, 7, []byte("hello"), true), 64)
	f.Add(appendFrame(nil, 0, nil, false), 64)
	f.Add(appendFrame(appendFrame(nil, 1, []byte("a"), false), 2, []byte("bc"), true), 64)
	f.Add([]byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f, 0, 0, 0, 0, 0, 0, 0, 0}, 64)
	f.Add([]byte{1, 2, 3}, 1)
	f.Fuzz(func(t *testing.T, b []byte, maxLen int) {
		maxLen = max(0, maxLen%(1<<20))
		fi, v, err := decodeFrame(b, maxLen)
		if err != nil {
			return
		}
		if fi.length > maxLen || len(v) != fi.length {
			t.Fatalf("accepted length %d (value %d bytes) with limit %d", fi.length, len(v), maxLen)
		}
		if re := appendFrame(nil, fi.offset, v, fi.last); !bytes.Equal(re, b[:fi.size()]) {
			t.Fatalf("re-encoding differs:\n got %x\nwant %x", re, b[:fi.size()])
		}
	})
}

// FuzzDecodeIndex: the index decoder never panics and never allocates more entries than its
// input holds.
func FuzzDecodeIndex(f *testing.F) {
	f.Add(encodeIndex(1, 0, []uint32{40, 60, 90}))
	f.Add(encodeIndex(1, 0, nil))
	f.Add([]byte("short"))
	f.Fuzz(func(t *testing.T, b []byte) {
		pos, err := decodeIndex(b, 1, 0)
		if err == nil && 4*len(pos) > len(b) {
			t.Fatalf("%d entries from %d bytes", len(pos), len(b))
		}
	})
}
