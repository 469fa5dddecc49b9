package raft

import (
	"bytes"
	"io"
	"testing"
)

// FuzzSnapshotFrame feeds arbitrary streams to the snapshot frame decoder: it must never
// panic, never allocate a manifest above the bound, and accept only well-formed frames.
func FuzzSnapshotFrame(f *testing.F) {
	f.Add(append(frameHeader{applied: 7, manifestLen: 3}.encode(), "abcdata"...))
	f.Add(frameHeader{manifestLen: 1 << 40}.encode())
	f.Add([]byte("CLSN"))
	f.Fuzz(func(t *testing.T, stream []byte) {
		sm := &plainSM{}
		fs := newFSM(sm, 1024, nil)
		err := fs.Restore(io.NopCloser(bytes.NewReader(stream)))
		if err != nil {
			return
		}
		if len(sm.restored.manifest) > 1024 {
			t.Fatalf("manifest of %d bytes accepted, bound 1024", len(sm.restored.manifest))
		}
		h, herr := readFrameHeader(bytes.NewReader(stream), 1024)
		if herr != nil {
			t.Fatalf("Restore accepted a stream whose header fails: %v", herr)
		}
		rest := stream[frameHeaderSize+int(h.manifestLen):]
		if !bytes.Equal(sm.restored.data, rest) || fs.applied.Load() != h.applied {
			t.Fatalf("restore did not hand over the rest of the stream")
		}
	})
}
