package segment_test

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"

	"github.com/commitlog-go/commitlog/storage"
	"github.com/commitlog-go/commitlog/storage/segment"
	"github.com/commitlog-go/commitlog/storage/vfs/crashfs"
)

// timed returns a record whose first 8 bytes are its timestamp (big endian), as tsOf reads.
func timed(ts int64, rest string) []byte {
	return append(binary.BigEndian.AppendUint64(nil, uint64(ts)), rest...)
}

// tsOf is the tests' Config.Timestamp: records shorter than 8 bytes have no timestamp.
func tsOf(b []byte) (int64, bool) {
	if len(b) < 8 {
		return 0, false
	}
	return int64(binary.BigEndian.Uint64(b)), true
}

func timedConfig(fs *crashfs.FS) segment.Config {
	return segment.Config{FS: fs, SegmentBytes: 2048, TimeIndexInterval: 128, Timestamp: tsOf, Sync: segment.SyncNever}
}

// bruteForce is OffsetForTime's contract computed by reading every record.
func bruteForce(t *testing.T, l *segment.Log, ts int64) uint64 {
	t.Helper()
	lowest, next := l.Bounds()
	for rec, err := range l.Records(lowest, next) {
		if err != nil {
			t.Fatal(err)
		}
		if v, ok := tsOf(rec.Value); ok && v >= ts {
			return rec.Offset
		}
	}
	return next
}

func checkLookups(t *testing.T, l *segment.Log, targets []int64) {
	t.Helper()
	for _, ts := range targets {
		got, err := l.OffsetForTime(ts)
		if err != nil {
			t.Fatalf("OffsetForTime(%d): %v", ts, err)
		}
		if want := bruteForce(t, l, ts); got != want {
			t.Fatalf("OffsetForTime(%d) = %d, want %d", ts, got, want)
		}
	}
}

// appendTimed appends n batches of 1-4 records; timestamps mostly increase (several records
// share one, as a batch does), some go back in time, some records have none.
func appendTimed(t *testing.T, l *segment.Log, rng *rand.Rand, n int, ts *int64) {
	t.Helper()
	for range n {
		batch := make([][]byte, 1+rng.IntN(4))
		for i := range batch {
			switch r := rng.IntN(20); {
			case r == 0:
				batch[i] = []byte("no-ts")
			case r == 1:
				batch[i] = timed(*ts-int64(rng.IntN(50)), "late")
			default:
				*ts += int64(rng.IntN(3))
				batch[i] = timed(*ts, "record")
			}
		}
		if _, err := l.Append(batch...); err != nil {
			t.Fatal(err)
		}
	}
}

func targets(maxTS int64) []int64 {
	out := []int64{-1, 0, 1, maxTS, maxTS + 1, 1 << 62}
	for ts := int64(0); ts <= maxTS; ts += 7 {
		out = append(out, ts)
	}
	return out
}

// TestTimeIndexLookup checks OffsetForTime against a full read for every kind of target,
// over many segments, with timestamps that repeat, go back, or are missing; and again after
// a reopen that loads the .tix files, after their loss (rebuilt), and after truncations.
func TestTimeIndexLookup(t *testing.T) {
	fs := crashfs.New()
	l := openT(t, dir, timedConfig(fs))
	rng := rand.New(rand.NewPCG(1, 2))
	ts := int64(100)
	if got, err := l.OffsetForTime(5); err != nil || got != 0 {
		t.Fatalf("empty log: OffsetForTime = %d, %v; want 0", got, err)
	}
	appendTimed(t, l, rng, 300, &ts)
	if l.Segments() < 5 {
		t.Fatalf("%d segments: the test wants several", l.Segments())
	}
	checkLookups(t, l, targets(ts))
	closeT(t, l)

	tixFiles := func() []string {
		names, _ := fs.ReadDir(dir)
		var out []string
		for _, n := range names {
			if filepath.Ext(n) == ".tix" {
				out = append(out, dir+"/"+n)
			}
		}
		return out
	}
	files := tixFiles()
	l = openT(t, dir, timedConfig(fs))
	if len(files) != l.Segments()-1 {
		t.Fatalf("%d .tix files for %d segments: want one per sealed segment", len(files), l.Segments())
	}
	if r := l.Recovery(); r.RebuiltTimeIndexes != 0 {
		t.Fatalf("reopen rebuilt %d time indexes, want 0 (the files are good)", r.RebuiltTimeIndexes)
	}
	checkLookups(t, l, targets(ts))
	closeT(t, l)

	// Lose one, tear one, flip a bit in one: each is rebuilt from its segment.
	fs.Remove(files[0])
	b, _ := fs.ReadFile(files[1])
	fs.WriteFile(files[1], b[:len(b)-5])
	b, _ = fs.ReadFile(files[2])
	b[50] ^= 1
	fs.WriteFile(files[2], b)
	l = openT(t, dir, timedConfig(fs))
	if r := l.Recovery(); r.RebuiltTimeIndexes != 3 {
		t.Fatalf("rebuilt %d time indexes, want 3", r.RebuiltTimeIndexes)
	}
	checkLookups(t, l, targets(ts))
	if len(tixFiles()) != l.Segments()-1 {
		t.Fatal("rebuilt time indexes were not written back")
	}

	// Truncations: the suffix into a sealed segment, then the prefix; appends go on.
	_, next := l.Bounds()
	if err := l.TruncateSuffix(next / 2); err != nil {
		t.Fatal(err)
	}
	checkLookups(t, l, targets(ts))
	appendTimed(t, l, rng, 100, &ts)
	checkLookups(t, l, targets(ts))
	if err := l.TruncatePrefix(next / 3); err != nil {
		t.Fatal(err)
	}
	checkLookups(t, l, targets(ts))
	closeT(t, l)
	l = openT(t, dir, timedConfig(fs))
	checkLookups(t, l, targets(ts))
	if err := l.Reset(1000); err != nil {
		t.Fatal(err)
	}
	if got, err := l.OffsetForTime(0); err != nil || got != 1000 {
		t.Fatalf("after Reset(1000): OffsetForTime = %d, %v; want 1000", got, err)
	}
	closeT(t, l)
	if _, err := l.OffsetForTime(0); !errors.Is(err, storage.ErrClosed) {
		t.Fatalf("closed: %v, want storage.ErrClosed", err)
	}
}

// TestTimeIndexTornTail: a torn active segment's index covers exactly its whole batches.
func TestTimeIndexTornTail(t *testing.T) {
	fs := crashfs.New()
	cfg := timedConfig(fs)
	cfg.SegmentBytes = 1 << 20
	l := openT(t, dir, cfg)
	for i := range int64(20) {
		if i == 19 {
			if err := l.Sync(); err != nil {
				t.Fatal(err)
			}
		}
		if _, err := l.Append(timed(10*i, "a"), timed(10*i+5, "b")); err != nil {
			t.Fatal(err)
		}
	}
	// A power failure tears the last batch, written after the last sync.
	seg := dir + "/0000000001-00000000000000000000.seg"
	b, _ := fs.ReadFile(seg)
	fs.Crash(crashfs.DropUnsynced, nil)
	fs.WriteFile(seg, b[:len(b)-3])
	l = openT(t, dir, cfg)
	if r := l.Recovery(); r.DroppedRecords != 1 {
		t.Fatalf("recovery %+v: want the last batch's first record dropped", r)
	}
	// Records 0..37 remain; 38 (ts 190) and 39 (ts 195) are gone.
	for ts, want := range map[int64]uint64{185: 37, 186: 38, 190: 38, 0: 0, 11: 3, 10: 2} {
		if got, err := l.OffsetForTime(ts); err != nil || got != want {
			t.Fatalf("OffsetForTime(%d) = %d, %v; want %d", ts, got, err, want)
		}
	}
	if _, err := l.Append(timed(300, "c")); err != nil {
		t.Fatal(err)
	}
	if got, err := l.OffsetForTime(186); err != nil || got != 38 {
		t.Fatalf("OffsetForTime(186) after an append = %d, %v; want 38", got, err)
	}
}

// TestTimeIndexNotConfigured: without Config.Timestamp there is no index and no .tix file.
func TestTimeIndexNotConfigured(t *testing.T) {
	d := t.TempDir()
	l := openT(t, d, segment.Config{SegmentBytes: 256})
	for i := range int64(40) {
		if _, err := l.Append(timed(i, "x")); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := l.OffsetForTime(3); !errors.Is(err, storage.ErrNoTimeIndex) {
		t.Fatalf("OffsetForTime: %v, want storage.ErrNoTimeIndex", err)
	}
	closeT(t, l)
	m, _ := filepath.Glob(filepath.Join(d, "*.tix"))
	if len(m) != 0 {
		t.Fatalf("time index files %v without Config.Timestamp", m)
	}
	// Turning it on later builds the indexes of the sealed segments.
	cfg := segment.Config{SegmentBytes: 256, Timestamp: tsOf}
	l = openT(t, d, cfg)
	if r := l.Recovery(); r.RebuiltTimeIndexes != l.Segments()-1 || r.RebuiltTimeIndexes == 0 {
		t.Fatalf("rebuilt %d time indexes for %d segments", r.RebuiltTimeIndexes, l.Segments())
	}
	checkLookups(t, l, targets(41))
	if _, err := os.Stat(d); err != nil {
		t.Fatal(err)
	}
}

// TestTimeIndexLookupDuringRetention looks offsets up by time while retention removes the
// oldest segments under the lookups: each answer is the first record at or after the time
// among those the log holds, never storage.ErrOutOfRange (which TimeIndex does not return;
// a lookup that raced a truncation starts again from the new lowest offset).
func TestTimeIndexLookupDuringRetention(t *testing.T) {
	fs := crashfs.New()
	l, err := segment.Open("log", timedConfig(fs))
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	const n = 4000
	for i := range n {
		if _, err := l.Append(timed(int64(i), "0123456789abcdef0123456789abcdef")); err != nil {
			t.Fatal(err)
		}
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		for before := uint64(0); before < n-100; before += 7 {
			if err := l.TruncatePrefix(before); err != nil {
				t.Error(err)
				return
			}
		}
	}()
	var failure error
	for running := true; running && failure == nil; {
		select {
		case <-done:
			running = false
		default:
		}
		lowest, _ := l.Bounds()
		got, err := l.OffsetForTime(0)
		switch {
		case err != nil:
			failure = fmt.Errorf("OffsetForTime(0) during retention: %w", err)
		case got < lowest:
			failure = fmt.Errorf("OffsetForTime(0) = %d, below the lowest offset %d", got, lowest)
		}
	}
	<-done
	if failure != nil {
		t.Fatal(failure)
	}
	lowest, _ := l.Bounds()
	if got, err := l.OffsetForTime(0); err != nil || got != lowest {
		t.Fatalf("OffsetForTime(0) after retention = %d, %v; want the lowest offset %d", got, err, lowest)
	}
}

// TestTimeIndexLookupFrom checks OffsetForTimeFrom against a full read from every start
// offset, with timestamps that go back (so that a segment's records after its maximum
// are found only by reading them), and a start below the log and past its end.
func TestTimeIndexLookupFrom(t *testing.T) {
	fs := crashfs.New()
	l := openT(t, dir, timedConfig(fs))
	defer closeT(t, l)
	rng := rand.New(rand.NewPCG(3, 4))
	for range 600 {
		if _, err := l.Append(timed(int64(rng.IntN(1000)), "record")); err != nil {
			t.Fatal(err)
		}
	}
	if l.Segments() < 5 {
		t.Fatalf("%d segments: the test wants several", l.Segments())
	}
	lowest, next := l.Bounds()
	var all []int64
	for rec, err := range l.Records(lowest, next) {
		if err != nil {
			t.Fatal(err)
		}
		v, _ := tsOf(rec.Value)
		all = append(all, v)
	}
	for from := uint64(0); from <= next+1; from += 1 + uint64(rng.IntN(5)) {
		for _, ts := range []int64{-1, 0, 1, 500, 900, 990, 999, 1000} {
			want := next
			for off := from; off < next; off++ {
				if all[off] >= ts {
					want = off
					break
				}
			}
			if got, err := l.OffsetForTimeFrom(ts, from); err != nil || got != want {
				t.Fatalf("OffsetForTimeFrom(%d, %d) = %d, %v; want %d", ts, from, got, err, want)
			}
		}
	}
}

// TestTimeIndexLookupFromAcrossReset: a lookup from inside a segment past its largest
// timestamp reads the rest of that segment, finds nothing, and goes on with the segments after
// it. When the log is Reset under it meanwhile (a snapshot installed) and written again, the
// records below that segment's end are other records: the lookup starts again from its start
// offset in the log as it is, as it does when a truncation removed its span, rather than skip
// them (before, it answered the new log's next offset, passing over a matching record).
func TestTimeIndexLookupFromAcrossReset(t *testing.T) {
	fs := crashfs.New()
	var l *segment.Log
	armed, trigger := false, ""
	cfg := timedConfig(fs)
	cfg.Timestamp = func(b []byte) (int64, bool) {
		if armed && string(b[8:]) == trigger {
			armed = false
			// The last record of the span: the log starts anew, its records all match.
			if err := l.Reset(0); err != nil {
				t.Fatal(err)
			}
			for i := range 20 {
				if _, err := l.Append(timed(1000, fmt.Sprintf("new %06d", i))); err != nil {
					t.Fatal(err)
				}
			}
		}
		return tsOf(b)
	}
	l = openT(t, dir, cfg)
	defer closeT(t, l)
	var firstLast uint64 // the first segment's last offset
	for off := uint64(0); l.Segments() < 3 || off < 200; off++ {
		ts := int64(0)
		if off < 5 {
			ts = 1000 // the first segment's largest timestamp is in its first records
		}
		if _, err := l.Append(timed(ts, fmt.Sprintf("old %06d", off))); err != nil {
			t.Fatal(err)
		}
		if l.Segments() == 2 && firstLast == 0 {
			firstLast = off - 1
		}
	}
	if _, err := l.Append(timed(1000, "old last")); err != nil {
		t.Fatal(err)
	}
	if firstLast < 25 {
		t.Fatalf("the first segment ends at %d; the test wants it past the 20 records written after the Reset", firstLast)
	}
	trigger, armed = fmt.Sprintf("old %06d", firstLast), true
	got, err := l.OffsetForTimeFrom(1000, 5)
	if armed {
		t.Fatal("the lookup did not read the first segment's last record: the test no longer races what it means to")
	}
	if err != nil || got != 5 {
		t.Fatalf("OffsetForTimeFrom(1000, 5) across a Reset = %d, %v; want 5, the first match at or above 5 of the log as it is", got, err)
	}
}
