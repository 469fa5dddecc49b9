package fsm

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"testing"

	"github.com/commitlog-go/commitlog/consensus"
	"github.com/commitlog-go/commitlog/storage"
	"github.com/commitlog-go/commitlog/storage/memory"
)

// source builds an FSM over a memory log with n records applied by entries of batch records
// each (indices 1, 2, … in term 1), and returns it with its log.
func source(t *testing.T, n, batch int) (*FSM, *memory.Log) {
	t.Helper()
	f, log := newMemFSM(t, Config{})
	applyRange(t, f, 0, n, batch, 1)
	return f, log
}

// applyRange applies records [from, to) named v-i, batch per entry, entries indexed from
// firstIndex.
func applyRange(t *testing.T, f *FSM, from, to, batch int, firstIndex uint64) uint64 {
	t.Helper()
	idx := firstIndex
	for i := from; i < to; i += batch {
		var vals []string
		for j := i; j < min(i+batch, to); j++ {
			vals = append(vals, fmt.Sprintf("v-%d", j))
		}
		res := mustApply(t, f, consensus.Entry{Index: idx, Term: 1, Data: cmd(t, vals...)})
		if res[0].First != uint64(i) {
			t.Fatalf("applied at %d, want %d", res[0].First, i)
		}
		idx++
	}
	return idx
}

// persist takes a snapshot of f and returns its manifest.
func persist(t *testing.T, f *FSM) []byte {
	t.Helper()
	s, err := f.Snapshot()
	if err != nil {
		t.Fatalf("Snapshot: %v", err)
	}
	defer s.Release()
	var buf bytes.Buffer
	if err := s.Persist(&buf); err != nil {
		t.Fatalf("Persist: %v", err)
	}
	return buf.Bytes()
}

// streamOf returns the snapshot data f produces for manifest, read whole.
func streamOf(t *testing.T, f *FSM, manifest []byte) []byte {
	t.Helper()
	rc, err := f.SnapshotData(manifest)
	if err != nil {
		t.Fatalf("SnapshotData: %v", err)
	}
	defer rc.Close()
	b, err := io.ReadAll(rc)
	if err != nil {
		t.Fatalf("read snapshot data: %v", err)
	}
	return b
}

// sameStored checks that two logs hold the same stored bytes at the same offsets.
func sameStored(t *testing.T, got, want storage.Log) {
	t.Helper()
	gl, gn := got.Bounds()
	wl, wn := want.Bounds()
	if gl != wl || gn != wn {
		t.Fatalf("log holds [%d, %d), source [%d, %d)", gl, gn, wl, wn)
	}
	for off := wl; off < wn; off++ {
		g, err := got.Read(off)
		if err != nil {
			t.Fatalf("read %d: %v", off, err)
		}
		w, err := want.Read(off)
		if err != nil {
			t.Fatalf("read source %d: %v", off, err)
		}
		if !bytes.Equal(g, w) {
			t.Fatalf("offset %d differs from the source", off)
		}
	}
}

// unreadable is a data stream that fails the test if read.
type unreadable struct{ t *testing.T }

func (u unreadable) Read([]byte) (int, error) {
	u.t.Error("Restore read the data stream although the local log holds the snapshot")
	return 0, io.ErrUnexpectedEOF
}

func TestPersistSyncsBeforeWritingTheManifest(t *testing.T) {
	fl := &faultLog{Log: newMemLog(t, memory.Config{})}
	defer fl.Close()
	f, err := New(Config{Log: fl})
	if err != nil {
		t.Fatal(err)
	}
	mustApply(t, f, consensus.Entry{Index: 1, Term: 1, Data: cmd(t, "a")})
	s, err := f.Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	if fl.syncs.Load() != 0 {
		t.Fatal("Snapshot synced: it must stay cheap, Persist syncs")
	}
	w := writerFunc(func(p []byte) (int, error) {
		if fl.syncs.Load() == 0 {
			t.Error("manifest written before the log was synced")
		}
		return len(p), nil
	})
	if err := s.Persist(w); err != nil {
		t.Fatal(err)
	}
	fl.syncErr = errDisk
	if err := s.Persist(writerFunc(func(p []byte) (int, error) {
		t.Error("manifest written although the sync failed")
		return len(p), nil
	})); !errors.Is(err, errDisk) {
		t.Fatalf("Persist with a failing sync: %v", err)
	}
}

type writerFunc func([]byte) (int, error)

func (w writerFunc) Write(p []byte) (int, error) { return w(p) }

func TestRestoreKeepsALogThatHoldsTheSnapshot(t *testing.T) {
	tests := []struct {
		name  string
		after int // records applied after the snapshot, before the restart
	}{
		{"log at the snapshot", 0},
		{"log ahead of the snapshot", 7},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f, log := source(t, 50, 4)
			m := persist(t, f)
			idx := applyRange(t, f, 50, 50+tt.after, 1, f.AppliedIndex()+1)
			before := f.AppliedIndex()
			_, nextBefore := log.Bounds()

			// Restart: a new FSM over the same log, the consensus restores its latest snapshot.
			re, err := New(Config{Log: log})
			if err != nil {
				t.Fatal(err)
			}
			if err := re.Restore(m, unreadable{t}); err != nil {
				t.Fatalf("Restore: %v", err)
			}
			if re.AppliedIndex() != before {
				t.Fatalf("AppliedIndex %d, want %d", re.AppliedIndex(), before)
			}
			if _, next := log.Bounds(); next != nextBefore {
				t.Fatalf("log next %d after Restore, want %d", next, nextBefore)
			}
			res := mustApply(t, re, consensus.Entry{Index: idx, Term: 2, Data: cmd(t, "new")})
			if res[0].First != nextBefore {
				t.Fatalf("next record at %d, want %d", res[0].First, nextBefore)
			}
		})
	}
}

func TestRestoreKeepDetectsAForeignLog(t *testing.T) {
	f, _ := source(t, 10, 2)
	m := persist(t, f)
	other, _ := newMemFSM(t, Config{})
	applyRange(t, other, 0, 9, 3, 1)
	mustApply(t, other, consensus.Entry{Index: 100, Term: 1, Data: cmd(t, "not v-9")})
	if err := other.Restore(m, unreadable{t}); !errors.Is(err, storage.ErrCorrupt) {
		t.Fatalf("Restore over a log that differs at next-1: %v, want ErrCorrupt", err)
	}
}

func TestRestoreIngests(t *testing.T) {
	tests := []struct {
		name      string
		retention uint64 // source TruncatePrefix before the snapshot
		local     int    // records the destination already holds (same as the source's)
		localAt   uint64 // the destination log's initial offset when it holds nothing
		wantAdded int    // records Restore appends
	}{
		{name: "empty destination", wantAdded: 300},
		{name: "overlap skipped", local: 120, wantAdded: 180},
		{name: "overlap at one record", local: 1, wantAdded: 299},
		{name: "no overlap resets", retention: 200, local: 50, wantAdded: 100},
		{name: "empty destination elsewhere resets", localAt: 1000, wantAdded: 300},
		{name: "destination inside the compacted source", retention: 100, local: 150, wantAdded: 150},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			src, srcLog := source(t, 300, 7)
			if err := srcLog.TruncatePrefix(tt.retention); err != nil {
				t.Fatal(err)
			}
			m := persist(t, src)

			fl := &faultLog{Log: newMemLog(t, memory.Config{InitialOffset: tt.localAt})}
			defer fl.Close()
			dst, err := New(Config{Log: fl, MaxAppendBytes: 1024})
			if err != nil {
				t.Fatal(err)
			}
			applyRange(t, dst, 0, tt.local, 7, 1)
			fl.appended = 0

			stream := streamOf(t, src, m)
			if size, err := src.SnapshotDataSize(m); err != nil || size != int64(len(stream)) {
				t.Fatalf("SnapshotDataSize = %d, %v; the stream is %d bytes", size, err, len(stream))
			}
			if err := dst.Restore(m, bytes.NewReader(stream)); err != nil {
				t.Fatalf("Restore: %v", err)
			}
			if fl.appended != tt.wantAdded {
				t.Errorf("Restore appended %d records, want %d", fl.appended, tt.wantAdded)
			}
			if dst.AppliedIndex() != src.AppliedIndex() {
				t.Fatalf("AppliedIndex %d, want %d", dst.AppliedIndex(), src.AppliedIndex())
			}
			// The destination holds exactly [first, next) of the source: what the source
			// dropped is not served, even where the destination's storage still has it.
			if lowest, next := dst.Bounds(); lowest != tt.retention || next != 300 {
				t.Fatalf("destination bounds [%d, %d), want [%d, 300)", lowest, next, tt.retention)
			}
			if tt.local > 0 && tt.retention < uint64(tt.local) {
				for off := uint64(0); off < uint64(tt.local); off++ {
					_, err := dst.Read(t.Context(), off)
					if off < tt.retention && !errors.Is(err, storage.ErrOutOfRange) {
						t.Fatalf("local record %d, below the snapshot's first offset: %v, want OutOfRange", off, err)
					}
					if off >= tt.retention && err != nil {
						t.Fatalf("local record %d lost: %v", off, err)
					}
				}
				if err := fl.TruncatePrefix(tt.retention); err != nil {
					t.Fatal(err)
				}
			}
			sameStored(t, fl, srcLog)

			// The destination goes on where the source would.
			res := mustApply(t, dst, consensus.Entry{Index: src.AppliedIndex() + 1, Term: 2, Data: cmd(t, "next")})
			if res[0].First != 300 {
				t.Fatalf("next record at %d, want 300", res[0].First)
			}
			// And its own snapshot, restored at a restart, keeps the log.
			m2 := persist(t, dst)
			re, err := New(Config{Log: fl})
			if err != nil {
				t.Fatal(err)
			}
			if err := re.Restore(m2, unreadable{t}); err != nil {
				t.Fatalf("restore own snapshot: %v", err)
			}
		})
	}
}

func TestRestoreRejectsBadData(t *testing.T) {
	src, srcLog := source(t, 200, 5)
	m := persist(t, src)
	good := streamOf(t, src, m)
	flip := func(at int) []byte {
		b := bytes.Clone(good)
		b[at] ^= 0x10
		return b
	}
	tests := []struct {
		name    string
		data    []byte
		local   int
		wantEOF bool
	}{
		{name: "flipped header", data: flip(10)},
		{name: "flipped frame in the middle", data: flip(len(good) / 2)},
		{name: "flipped last byte", data: flip(len(good) - 1)},
		{name: "cut short", data: good[:len(good)-5], wantEOF: true},
		{name: "empty", data: nil, wantEOF: true},
		{name: "flipped frame after the overlap", data: flip(len(good) * 3 / 4), local: 100},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dst, dstLog := newMemFSM(t, Config{MaxAppendBytes: 512})
			applyRange(t, dst, 0, tt.local, 5, 1)
			err := dst.Restore(m, bytes.NewReader(tt.data))
			if !errors.Is(err, storage.ErrCorrupt) {
				t.Fatalf("Restore: %v, want ErrCorrupt", err)
			}
			if tt.wantEOF != errors.Is(err, io.ErrUnexpectedEOF) {
				t.Fatalf("Restore: %v, ErrUnexpectedEOF expected: %v", err, tt.wantEOF)
			}
			// What was ingested is a verified prefix of the source, and the applied index
			// says exactly that.
			lowest, next := dstLog.Bounds()
			if next >= 200 {
				t.Fatalf("a corrupt stream was ingested to the end (log next %d)", next)
			}
			var lastIndex uint64
			for off := lowest; off < next; off++ {
				g, _ := dstLog.Read(off)
				w, _ := srcLog.Read(off)
				if !bytes.Equal(g, w) {
					t.Fatalf("offset %d differs from the source", off)
				}
				env, _ := decodeEnvelope(g)
				lastIndex = env.Index
			}
			if dst.AppliedIndex() != lastIndex {
				t.Fatalf("AppliedIndex %d, last ingested record's index %d", dst.AppliedIndex(), lastIndex)
			}
			if dst.Err() != nil {
				t.Fatalf("a bad stream failed the FSM: %v", dst.Err())
			}
			// A retry with a good stream completes.
			if err := dst.Restore(m, bytes.NewReader(good)); err != nil {
				t.Fatalf("retry: %v", err)
			}
			sameStored(t, dstLog, srcLog)
		})
	}
}

func TestRestoreDetectsDivergentOverlap(t *testing.T) {
	src, _ := source(t, 100, 10)
	m := persist(t, src)
	dst, dstLog := newMemFSM(t, Config{})
	applyRange(t, dst, 0, 39, 10, 1)
	mustApply(t, dst, consensus.Entry{Index: 100, Term: 1, Data: cmd(t, "not v-39")})
	err := dst.Restore(m, bytes.NewReader(streamOf(t, src, m)))
	if !errors.Is(err, storage.ErrCorrupt) {
		t.Fatalf("Restore over a divergent log: %v, want ErrCorrupt", err)
	}
	if _, next := dstLog.Bounds(); next != 40 {
		t.Fatalf("divergent log changed: next %d", next)
	}
}

func TestRestoreStorageFailureIsFatal(t *testing.T) {
	src, _ := source(t, 50, 5)
	m := persist(t, src)
	fl := &faultLog{Log: newMemLog(t, memory.Config{}), appendErr: errDisk}
	defer fl.Close()
	dst, err := New(Config{Log: fl})
	if err != nil {
		t.Fatal(err)
	}
	if err := dst.Restore(m, bytes.NewReader(streamOf(t, src, m))); !errors.Is(err, ErrFailed) || !errors.Is(err, errDisk) {
		t.Fatalf("Restore: %v, want ErrFailed wrapping the cause", err)
	}
	if !errors.Is(dst.Err(), errDisk) {
		t.Fatalf("Err = %v", dst.Err())
	}
}

func TestSnapshotDataErrors(t *testing.T) {
	src, srcLog := source(t, 20, 5)
	m := persist(t, src)
	if _, err := src.SnapshotData([]byte("nope")); !errors.Is(err, storage.ErrCorrupt) {
		t.Fatalf("SnapshotData of a bad manifest: %v", err)
	}
	short, _ := newMemFSM(t, Config{})
	if _, err := short.SnapshotData(m); !errors.Is(err, storage.ErrOutOfRange) {
		t.Fatalf("SnapshotData past the log: %v", err)
	}
	rc, err := src.SnapshotData(m)
	if err != nil {
		t.Fatal(err)
	}
	if err := srcLog.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := io.ReadAll(rc); !errors.Is(err, storage.ErrClosed) {
		t.Fatalf("reading data of a closed log: %v", err)
	}
	_ = rc.Close()
	if _, err := rc.Read(make([]byte, 1)); err == nil {
		t.Fatal("Read after Close succeeded")
	}
}

func TestManifestRoundTripAndRejects(t *testing.T) {
	m := manifest{Index: 42, Term: 3, Lowest: 5, First: 7, Next: 99, NextPos: 1 << 33, LastCRC: 0xdeadbeef, HasLastCRC: true, HasNextPos: true}
	got, err := decodeManifest(m.encode())
	if err != nil || got != m {
		t.Fatalf("round trip: %+v, %v", got, err)
	}
	// A version-1 manifest (written before retention was replicated) still decodes; its
	// first offset is its lowest.
	v1 := make([]byte, manifestLenV1)
	copy(v1, manifestMagic)
	v1[4], v1[5] = manifestVersion1, manifestFlagLastCRC|manifestFlagNextPos
	for i, v := range []uint64{m.Index, m.Term, m.Lowest, m.Next, m.NextPos} {
		binary.BigEndian.PutUint64(v1[8+8*i:], v)
	}
	binary.BigEndian.PutUint32(v1[48:], m.LastCRC)
	binary.BigEndian.PutUint32(v1[52:], crc32.Checksum(v1[:52], castagnoli))
	want := m
	want.First = m.Lowest
	if got, err := decodeManifest(v1); err != nil || got != want {
		t.Fatalf("version 1: %+v, %v; want %+v", got, err, want)
	}
	good := m.encode()
	edit := func(f func(b []byte)) []byte { b := bytes.Clone(good); f(b); return b }
	for name, b := range map[string][]byte{
		"short":          good[:manifestLen-1],
		"long":           append(bytes.Clone(good), 0),
		"magic":          edit(func(b []byte) { b[0] = 'X' }),
		"version":        edit(func(b []byte) { b[4] = 9 }),
		"checksum":       edit(func(b []byte) { b[20] ^= 1 }),
		"lowest > next":  (manifest{Lowest: 10, First: 10, Next: 5}).encode(),
		"first < lowest": (manifest{Lowest: 10, First: 9, Next: 20}).encode(),
		"first > next":   (manifest{Lowest: 10, First: 21, Next: 20}).encode(),
	} {
		if _, err := decodeManifest(b); !errors.Is(err, storage.ErrCorrupt) {
			t.Errorf("%s: %v, want ErrCorrupt", name, err)
		}
	}
}

func FuzzSnapshotStream(f *testing.F) {
	add := func(first uint64, recs ...[]byte) {
		b := appendStreamHeader(nil, first, first+uint64(len(recs)))
		for i, r := range recs {
			b = appendFrame(b, first+uint64(i), r)
		}
		f.Add(b)
	}
	add(0)
	add(0, appendEnvelope(nil, 1, 1, 0, 0, 0, []byte("a")))
	add(7, appendEnvelope(nil, 3, 1, 70, 2, 5, []byte("bc")), appendEnvelope(nil, 4, 2, 78, 0, 6, nil))
	f.Add(appendStreamHeader(nil, 0, 1<<62))
	f.Fuzz(func(t *testing.T, data []byte) {
		sr, err := newStreamReader(bytes.NewReader(data))
		if err != nil {
			if !errors.Is(err, storage.ErrCorrupt) {
				t.Fatalf("header error %v does not wrap ErrCorrupt", err)
			}
			return
		}
		again := appendStreamHeader(nil, sr.first, sr.next)
		for range 1 << 16 { // bounded: a fuzzed header may promise 2^64 frames
			off, rec, err := sr.frame()
			if errors.Is(err, io.EOF) {
				// Whatever decodes re-encodes to the bytes it was read from.
				if !bytes.Equal(again, data[:len(again)]) {
					t.Fatal("re-encoded stream differs")
				}
				return
			}
			if err != nil {
				if !errors.Is(err, storage.ErrCorrupt) {
					t.Fatalf("frame error %v does not wrap ErrCorrupt", err)
				}
				return
			}
			again = appendFrame(again, off, rec)
		}
	})
}

func TestRestoreRejectsInconsistentPositions(t *testing.T) {
	// Frames with valid checksums whose envelopes' byte positions do not chain: a source bug
	// or a forged stream. Restore refuses it instead of storing records that would make every
	// later size computation wrong.
	recs := [][]byte{
		appendEnvelope(nil, 1, 1, 0, 0, 0, []byte("a")),
		appendEnvelope(nil, 1, 1, 999, 0, 0, []byte("b")),
	}
	data := appendStreamHeader(nil, 0, 2)
	for i, r := range recs {
		data = appendFrame(data, uint64(i), r)
	}
	m := manifest{Index: 1, Term: 1, Next: 2, NextPos: 999 + uint64(len(recs[1])), HasNextPos: true}.encode()
	dst, dstLog := newMemFSM(t, Config{})
	if err := dst.Restore(m, bytes.NewReader(data)); !errors.Is(err, storage.ErrCorrupt) {
		t.Fatalf("Restore: %v, want ErrCorrupt", err)
	}
	if _, next := dstLog.Bounds(); next != 1 {
		t.Fatalf("log next %d: only the first, consistent record may be kept", next)
	}
}

func TestRestoreKeepsALogCompactedPastTheSnapshot(t *testing.T) {
	f, log := source(t, 30, 3)
	m := persist(t, f)
	applyRange(t, f, 30, 40, 2, f.AppliedIndex()+1)
	if err := log.TruncatePrefix(35); err != nil { // retention went past the snapshot
		t.Fatal(err)
	}
	re, err := New(Config{Log: log})
	if err != nil {
		t.Fatal(err)
	}
	if err := re.Restore(m, unreadable{t}); err != nil {
		t.Fatalf("Restore: %v", err)
	}
	if lowest, next := log.Bounds(); lowest != 35 || next != 40 {
		t.Fatalf("log holds [%d, %d), want [35, 40)", lowest, next)
	}
}

func TestApplyRefusesAnUnknownPosition(t *testing.T) {
	// An empty log that does not start at 0, and no snapshot restored: the FSM cannot know the
	// byte position of its next record, so it refuses to store rather than diverge.
	log := newMemLog(t, memory.Config{InitialOffset: 50})
	defer log.Close()
	f, err := New(Config{Log: log})
	if err != nil {
		t.Fatal(err)
	}
	res := f.Apply([]consensus.Entry{{Index: 1, Term: 1, Data: cmd(t, "x")}})
	if err, ok := res[0].(error); !ok || !errors.Is(err, ErrFailed) {
		t.Fatalf("Apply: %v, want ErrFailed", res[0])
	}
	if _, next := log.Bounds(); next != 50 {
		t.Fatal("a record was stored at an unknown position")
	}
}
