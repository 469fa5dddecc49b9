package segment_test

import (
	"bytes"
	"errors"
	"log/slog"
	"strings"
	"testing"

	"github.com/commitlog-go/commitlog/storage/segment"
	"github.com/commitlog-go/commitlog/storage/vfs/crashfs"
)

// TestStartKeptAcrossReopen: the offset TruncatePrefix cut the log at is kept across a reopen
// and a power failure (Start), although the lowest segment still holds records below it;
// Reset and a TruncateSuffix below it move it; a damaged START file only loses the cut.
func TestStartKeptAcrossReopen(t *testing.T) {
	fs := crashfs.New()
	cfg := segment.Config{FS: fs, SegmentBytes: 120}
	l := openT(t, dir, cfg)
	appendBatches(t, l, 3, 3, 3, 3, 3)
	if got := l.Start(); got != 0 {
		t.Fatalf("Start of a new log = %d, want 0", got)
	}
	lowest, next := l.Bounds()
	cut := lowest + (next-lowest)/2 + 1
	if err := l.TruncatePrefix(cut); err != nil {
		t.Fatal(err)
	}
	if lo, _ := l.Bounds(); lo >= cut {
		t.Fatalf("lowest %d after TruncatePrefix(%d): the test needs a cut inside a segment", lo, cut)
	}
	if got := l.Start(); got != cut {
		t.Fatalf("Start = %d after TruncatePrefix(%d)", got, cut)
	}
	if err := l.TruncatePrefix(cut - 1); err != nil { // never moves down
		t.Fatal(err)
	}
	fs.Crash(crashfs.DropUnsynced, nil)
	l = openT(t, dir, cfg)
	if got := l.Start(); got != cut {
		t.Fatalf("Start = %d after a power failure and reopen, want %d", got, cut)
	}
	if err := l.TruncateSuffix(cut - 1); err != nil {
		t.Fatal(err)
	}
	if got := l.Start(); got != cut-1 {
		t.Fatalf("Start = %d after TruncateSuffix(%d)", got, cut-1)
	}
	closeT(t, l)
	l = openT(t, dir, cfg)
	if got := l.Start(); got != cut-1 {
		t.Fatalf("Start = %d after TruncateSuffix(%d) and reopen", got, cut-1)
	}
	if err := l.Reset(5); err != nil {
		t.Fatal(err)
	}
	appendBatches(t, l, 3)
	closeT(t, l)
	l = openT(t, dir, cfg)
	if got := l.Start(); got != 5 {
		t.Fatalf("Start = %d after Reset(5) and reopen", got)
	}
	closeT(t, l)
	fs.WriteFile(dir+"/START", []byte("damaged"))
	l = openT(t, dir, cfg)
	if lo, _ := l.Bounds(); l.Start() != lo {
		t.Fatalf("Start = %d with a damaged START file, want the lowest offset %d", l.Start(), lo)
	}
}

// TestStartPastEndAfterPowerFailure: a cut recorded above records that a power failure then
// loses (TruncatePrefix does not sync them) is brought down to the log's end at Open, and
// stays there once records are appended again, across another reopen.
func TestStartPastEndAfterPowerFailure(t *testing.T) {
	fs := crashfs.New()
	cfg := segment.Config{FS: fs, SegmentBytes: 4096, Sync: segment.SyncNever}
	l := openT(t, dir, cfg)
	appendBatches(t, l, 3)
	if err := l.Sync(); err != nil {
		t.Fatal(err)
	}
	appendBatches(t, l, 3) // [3, 6) unsynced
	if err := l.TruncatePrefix(5); err != nil {
		t.Fatal(err)
	}
	fs.Crash(crashfs.DropUnsynced, nil)
	l = openT(t, dir, cfg)
	if _, next := l.Bounds(); next != 3 || l.Start() != 3 {
		t.Fatalf("after the power failure: next %d, Start %d, want 3 and 3", next, l.Start())
	}
	appendBatches(t, l, 3)
	closeT(t, l)
	l = openT(t, dir, cfg)
	if got := l.Start(); got != 3 {
		t.Fatalf("Start = %d after appending past the lost tail and reopening, want 3", got)
	}
}

// TestStartKeptWhenDeletionsStop: TruncatePrefix deletes the segments below the cut one by
// one (an fsync of FIRST each), so a process killed among them (a failing Remove here, then
// a power failure) leaves a first segment below the cut: the START file must already hold the
// cut then. Before, it was written after the last deletion: a node killed during a cut that
// dropped many small segments restarted with a lower start (seen with real processes and
// --segment-bytes 1024: lowest_offset 66675 after a cut at 66901 on the others).
func TestStartKeptWhenDeletionsStop(t *testing.T) {
	fs := crashfs.New()
	cfg := segment.Config{FS: fs, SegmentBytes: 120}
	l := openT(t, dir, cfg)
	appendBatches(t, l, 3, 3, 3, 3, 3, 3)
	if err := l.Sync(); err != nil {
		t.Fatal(err)
	}
	_, next := l.Bounds()
	cut := next - 2
	fs.FailNth(crashfs.OpRemove, 6, errors.New("injected: killed here")) // the second segment's .seg (after its .idx and .tix)
	if err := l.TruncatePrefix(cut); err == nil {
		t.Fatal("TruncatePrefix with the second segment's removal failing: no error")
	}
	fs.Crash(crashfs.DropUnsynced, nil)
	l = openT(t, dir, cfg)
	if lo, _ := l.Bounds(); lo >= cut {
		t.Fatalf("lowest %d after the interrupted deletions: the test needs segments below the cut %d left", lo, cut)
	}
	if got := l.Start(); got != cut {
		t.Fatalf("Start = %d after deletions stopped midway and a reopen, want the cut %d", got, cut)
	}
}

// TestStartWriteFailureOnlyLosesTheCut: a START file that cannot be written (here its creation
// fails) is logged and fails nothing: TruncatePrefix succeeds and Start answers the cut while the
// log stays open; after a reopen the cut is lost (Start is the lowest offset held) and no record
// with it.
func TestStartWriteFailureOnlyLosesTheCut(t *testing.T) {
	fs := crashfs.New()
	var logged bytes.Buffer
	cfg := segment.Config{FS: fs, SegmentBytes: 120, Logger: slog.New(slog.NewTextHandler(&logged, nil))}
	l := openT(t, dir, cfg)
	appendBatches(t, l, 3, 3, 3, 3, 3)
	lowest, next := l.Bounds()
	cut := lowest + 1 // inside the first segment: nothing is deleted, START alone records it
	fs.FailNext(crashfs.OpCreate, errors.New("disk on fire"))
	if err := l.TruncatePrefix(cut); err != nil {
		t.Fatalf("TruncatePrefix(%d) with START unwritable: %v, want nil (START only hides records)", cut, err)
	}
	if got := l.Start(); got != cut {
		t.Fatalf("Start = %d after TruncatePrefix(%d)", got, cut)
	}
	if !strings.Contains(logged.String(), "recording the log's start") || !strings.Contains(logged.String(), "disk on fire") {
		t.Fatalf("the failed START write was not logged: %q", logged.String())
	}
	closeT(t, l)
	l = openT(t, dir, cfg)
	if lo, hi := l.Bounds(); lo != lowest || hi != next || l.Start() != lowest {
		t.Fatalf("after a reopen: bounds [%d, %d), Start %d; want [%d, %d), Start %d", lo, hi, l.Start(), lowest, next, lowest)
	}
}
