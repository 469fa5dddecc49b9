package segment_test

import (
	"bytes"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/commitlog-go/commitlog/storage"
	"github.com/commitlog-go/commitlog/storage/segment"
	"github.com/commitlog-go/commitlog/storage/vfs/crashfs"
)

// fiveSegmentLog stores 15 records in five batches in a log of 4+ segments on a crashfs and
// closes it: the file system, the log's config and its segment files, oldest first.
func fiveSegmentLog(t *testing.T) (*crashfs.FS, segment.Config, []string) {
	t.Helper()
	fs := crashfs.New()
	cfg := segment.Config{FS: fs, SegmentBytes: 120}
	l := openT(t, dir, cfg)
	appendBatches(t, l, 3, 3, 3, 3, 3)
	closeT(t, l)
	files := segFiles(t, fs, dir)
	if len(files) < 4 {
		t.Fatalf("want 4+ segments, got %d", len(files))
	}
	return fs, cfg, files
}

// removeSeg deletes segment seg's files (.seg, and its .idx and .tix where they exist).
func removeSeg(t *testing.T, fs *crashfs.FS, seg string) {
	t.Helper()
	for _, ext := range []string{".seg", ".idx", ".tix"} {
		err := fs.Remove(strings.TrimSuffix(seg, ".seg") + ext)
		if err != nil && ext == ".seg" {
			t.Fatal(err)
		}
	}
}

// TestMissingFirstSegments: the oldest segment files deleted at rest (by hand, or lost) are
// corruption, named with the missing segments, and not taken for retention: Open used to
// succeed with the log starting at the next segment, every record below it gone without an
// error. Segments that retention or Reset deleted, and a FIRST file damaged or missing alone
// (which loses nothing), still open.
func TestMissingFirstSegments(t *testing.T) {
	wantMissing := func(t *testing.T, err error, first string) {
		t.Helper()
		if !errors.Is(err, storage.ErrCorrupt) {
			t.Fatalf("Open = %v, want ErrCorrupt (records below the first segment left are missing)", err)
		}
		for _, s := range []string{filepath.Join(dir, "FIRST"), first, "missing"} {
			if !strings.Contains(err.Error(), s) {
				t.Fatalf("error %q does not name %q", err, s)
			}
		}
	}
	// wantFirstMissingRefused deletes the log's first segment and wants Open to refuse the
	// log as corrupt: what was recorded of the log's start still finds the loss.
	wantFirstMissingRefused := func(t *testing.T, fs *crashfs.FS, cfg segment.Config) {
		t.Helper()
		first := segFiles(t, fs, dir)[0]
		removeSeg(t, fs, first)
		_, err := segment.Open(dir, cfg)
		if !errors.Is(err, storage.ErrCorrupt) {
			t.Fatalf("Open with the first segment %s deleted = %v, want ErrCorrupt", first, err)
		}
	}

	t.Run("first deleted", func(t *testing.T) {
		fs, cfg, files := fiveSegmentLog(t)
		removeSeg(t, fs, files[0])
		_, err := segment.Open(dir, cfg)
		wantMissing(t, err, files[1])
	})
	t.Run("first two deleted", func(t *testing.T) {
		fs, cfg, files := fiveSegmentLog(t)
		removeSeg(t, fs, files[0])
		removeSeg(t, fs, files[1])
		_, err := segment.Open(dir, cfg)
		wantMissing(t, err, files[2])
	})
	t.Run("every segment deleted", func(t *testing.T) {
		fs, cfg, files := fiveSegmentLog(t)
		for _, f := range files {
			removeSeg(t, fs, f)
		}
		_, err := segment.Open(dir, cfg)
		if !errors.Is(err, storage.ErrCorrupt) {
			t.Fatalf("Open = %v, want ErrCorrupt", err)
		}
	})
	t.Run("first deleted after retention", func(t *testing.T) {
		fs, cfg, files := fiveSegmentLog(t)
		l := openT(t, dir, cfg)
		if err := l.TruncatePrefix(4); err != nil {
			t.Fatal(err)
		}
		closeT(t, l)
		left := segFiles(t, fs, dir)
		if len(left) != len(files)-1 {
			t.Fatalf("retention left %d segments of %d, want one fewer", len(left), len(files))
		}
		l = openT(t, dir, cfg) // retention's deletion is no corruption
		lowest, next := l.Bounds()
		checkContent(t, l, lowest, next)
		closeT(t, l)
		removeSeg(t, fs, left[0])
		_, err := segment.Open(dir, cfg)
		wantMissing(t, err, left[1])
	})
	t.Run("reset", func(t *testing.T) {
		fs, cfg, _ := fiveSegmentLog(t)
		l := openT(t, dir, cfg)
		if err := l.Reset(1000); err != nil {
			t.Fatal(err)
		}
		appendBatches(t, l, 3, 3, 3)
		closeT(t, l)
		l = openT(t, dir, cfg)
		checkContent(t, l, 1000, 1009)
		closeT(t, l)
		wantFirstMissingRefused(t, fs, cfg)
	})
	t.Run("FIRST damaged or missing alone", func(t *testing.T) {
		for name, data := range map[string][]byte{"empty": {}, "short": {1, 2, 3}, "flipped": nil, "missing": nil} {
			t.Run(name, func(t *testing.T) {
				fs, cfg, _ := fiveSegmentLog(t)
				first := filepath.Join(dir, "FIRST")
				switch name {
				case "missing":
					if err := fs.Remove(first); err != nil {
						t.Fatal(err)
					}
				case "flipped":
					b, err := fs.ReadFile(first)
					if err != nil {
						t.Fatal(err)
					}
					b[5] ^= 0x40
					fs.WriteFile(first, b)
				default:
					fs.WriteFile(first, data)
				}
				l := openT(t, dir, cfg)
				checkContent(t, l, 0, 15)
				closeT(t, l)
				// FIRST is recorded again: a deleted first segment is found once more.
				wantFirstMissingRefused(t, fs, cfg)
			})
		}
	})
}

// TestRetentionCrashKeepsFirst: a power failure at any point of a retention run (FIRST
// written, segments removed, directory synced or not) reopens as a log whose records are a
// suffix of what it held, never as corruption.
func TestRetentionCrashKeepsFirst(t *testing.T) {
	for n := 1; n <= 6; n++ {
		for _, op := range []crashfs.Op{crashfs.OpSync, crashfs.OpSyncDir, crashfs.OpRemove, crashfs.OpWrite} {
			fs := crashfs.New()
			cfg := segment.Config{FS: fs, SegmentBytes: 120}
			l := openT(t, dir, cfg)
			appendBatches(t, l, 3, 3, 3, 3, 3)
			if err := l.Sync(); err != nil {
				t.Fatal(err)
			}
			fs.FailNth(op, n, errors.New("injected"))
			_ = l.TruncatePrefix(10)
			fs.Crash(crashfs.DropUnsynced, nil)
			_ = l.Close()
			l, err := segment.Open(dir, cfg)
			if err != nil {
				t.Fatalf("op %v #%d: reopen after a crash in retention: %v", op, n, err)
			}
			lowest, next := l.Bounds()
			if next != 15 || lowest > 10 {
				t.Fatalf("op %v #%d: bounds [%d, %d) after the crash, want a suffix of [0, 15) from at most 10", op, n, lowest, next)
			}
			checkContent(t, l, lowest, next)
			_ = l.Close()
		}
	}
}

// TestFirstReadFault: a read of the FIRST file that fails with an I/O error (not a short
// file) is an error of Open, not damage: readFirst took any short read for a damaged FIRST,
// so Open warned, took the lowest segment left for the first and recorded it, and a first
// segment deleted at rest (what FIRST guards against) opened as a shorter log, its records
// gone without an error, FIRST then recording the loss as the log's start.
func TestFirstReadFault(t *testing.T) {
	for _, firstLost := range []bool{false, true} {
		t.Run(fmt.Sprintf("first segment lost %v", firstLost), func(t *testing.T) {
			fs, cfg, files := fiveSegmentLog(t)
			if firstLost {
				removeSeg(t, fs, files[0])
			}
			first := filepath.Join(dir, "FIRST")
			// FIRST is the first file Open reads (before any segment's header).
			fs.FailNext(crashfs.OpRead, syscall.EIO)
			l, err := segment.Open(dir, cfg)
			if err == nil {
				lowest, next := l.Bounds()
				_ = l.Close()
				t.Fatalf("Open with FIRST's read failing (EIO) opened the log [%d, %d), want the I/O error", lowest, next)
			}
			if !errors.Is(err, syscall.EIO) || errors.Is(err, storage.ErrCorrupt) || !strings.Contains(err.Error(), first) {
				t.Fatalf("Open with FIRST's read failing: %v, want EIO naming %s, not ErrCorrupt", err, first)
			}
			// The fault passed, Open finds what the log holds.
			l, err = segment.Open(dir, cfg)
			if firstLost {
				if err == nil {
					_ = l.Close()
				}
				if !errors.Is(err, storage.ErrCorrupt) || !strings.Contains(err.Error(), "missing") {
					t.Fatalf("Open after the fault, the first segment lost: %v, want ErrCorrupt (missing segments)", err)
				}
				return
			}
			if err != nil {
				t.Fatalf("Open after the fault: %v", err)
			}
			checkContent(t, l, 0, 15)
			closeT(t, l)
		})
	}
}

// TestRetentionFirstWriteFault: retention records the new first segment in FIRST before it
// deletes the old one; when that write fails (in place, or creating a FIRST that was
// missing), TruncatePrefix and EnforceRetention fail with the log's sticky error naming FIRST,
// delete nothing, and the log, reopened, holds every record.
func TestRetentionFirstWriteFault(t *testing.T) {
	injected := errors.New("injected")
	retention := map[string]func(l *segment.Log) error{
		"TruncatePrefix": func(l *segment.Log) error { return l.TruncatePrefix(10) },
		"EnforceRetention": func(l *segment.Log) error {
			n, err := l.EnforceRetention(time.Now())
			if n != 0 {
				return fmt.Errorf("EnforceRetention removed %d segments, error %v", n, err)
			}
			return err
		},
	}
	for _, tc := range []struct {
		name      string
		firstGone bool // FIRST removed first: writeFirst creates it
		op        crashfs.Op
	}{
		{"in place, write", false, crashfs.OpWrite},
		{"in place, fsync", false, crashfs.OpSync},
		{"created, create", true, crashfs.OpCreate},
		{"created, write", true, crashfs.OpWrite},
		{"created, fsync", true, crashfs.OpSync},
		{"created, dir fsync", true, crashfs.OpSyncDir},
	} {
		for rname, retain := range retention {
			t.Run(tc.name+"/"+rname, func(t *testing.T) {
				fs := crashfs.New()
				cfg := segment.Config{FS: fs, SegmentBytes: 120, RetentionBytes: 1}
				l := openT(t, dir, cfg)
				appendBatches(t, l, 3, 3, 3, 3, 3)
				if err := l.Sync(); err != nil {
					t.Fatal(err)
				}
				files := segFiles(t, fs, dir)
				first := filepath.Join(dir, "FIRST")
				if tc.firstGone {
					if err := fs.Remove(first); err != nil {
						t.Fatal(err)
					}
				}
				fs.FailNext(tc.op, injected)
				err := retain(l)
				if !errors.Is(err, storage.ErrFailed) || !errors.Is(err, injected) || !strings.Contains(err.Error(), first) {
					t.Fatalf("%s with FIRST's write failing: %v, want ErrFailed wrapping the fault and naming %s", rname, err, first)
				}
				if got := segFiles(t, fs, dir); !slices.Equal(got, files) {
					t.Fatalf("%s whose FIRST write failed left segments %v, want every one of %v", rname, got, files)
				}
				if lowest, next := l.Bounds(); lowest != 0 || next != 15 {
					t.Fatalf("bounds after the failed %s: [%d, %d), want [0, 15)", rname, lowest, next)
				}
				checkContent(t, l, 0, 15)
				if err := l.Close(); !errors.Is(err, injected) {
					t.Fatalf("Close after the failed %s: %v, want the sticky error", rname, err)
				}
				l = openT(t, dir, cfg)
				checkContent(t, l, 0, 15)
				// The fault passed, retention deletes what it may.
				if err := l.TruncatePrefix(10); err != nil {
					t.Fatalf("TruncatePrefix after reopening: %v", err)
				}
				lowest, next := l.Bounds()
				if lowest == 0 || lowest > 10 || next != 15 {
					t.Fatalf("bounds after retention: [%d, %d), want [(0, 10], 15)", lowest, next)
				}
				checkContent(t, l, lowest, next)
			})
		}
	}
}

// TestResetFirstWriteFault: Reset records its new segment in FIRST after the reset segment is
// durable; when that write fails, Reset still succeeds (Open takes a reset segment for the
// first whatever FIRST says), logs a warning, and the log works on: reopened, it starts at
// the reset, FIRST recorded again, so a first segment then deleted is still refused.
func TestResetFirstWriteFault(t *testing.T) {
	injected := errors.New("injected")
	for _, tc := range []struct {
		name      string
		firstGone bool // FIRST removed first: writeFirst creates it
		op        crashfs.Op
		nth       int // the op of Reset that is FIRST's (the reset segment's own come first)
	}{
		{"in place, write", false, crashfs.OpWrite, 2},
		{"in place, fsync", false, crashfs.OpSync, 2},
		{"created, create", true, crashfs.OpCreate, 2},
		{"created, dir fsync", true, crashfs.OpSyncDir, 2},
	} {
		t.Run(tc.name, func(t *testing.T) {
			fs := crashfs.New()
			logs := &lockedBuffer{}
			cfg := segment.Config{FS: fs, SegmentBytes: 120, Logger: slog.New(slog.NewTextHandler(logs, nil))}
			l := openT(t, dir, cfg)
			appendBatches(t, l, 3, 3, 3)
			if err := l.Sync(); err != nil {
				t.Fatal(err)
			}
			first := filepath.Join(dir, "FIRST")
			if tc.firstGone {
				if err := fs.Remove(first); err != nil {
					t.Fatal(err)
				}
			}
			fs.FailNth(tc.op, tc.nth, injected)
			if err := l.Reset(1000); err != nil {
				t.Fatalf("Reset with FIRST's write failing: %v, want success (the reset segment is durable)", err)
			}
			if out := logs.String(); !strings.Contains(out, "recording the first segment after reset") || !strings.Contains(out, "injected") {
				t.Fatalf("Reset with FIRST's write failing logged %q, want a warning with the fault", out)
			}
			appendBatches(t, l, 3, 3, 3)
			checkContent(t, l, 1000, 1009)
			closeT(t, l)
			l = openT(t, dir, cfg)
			checkContent(t, l, 1000, 1009)
			closeT(t, l)
			files := segFiles(t, fs, dir)
			if len(files) < 2 {
				t.Fatalf("want 2+ segments after the reset, got %v", files)
			}
			for _, ext := range []string{".seg", ".idx", ".tix"} {
				_ = fs.Remove(strings.TrimSuffix(files[0], ".seg") + ext)
			}
			if _, err := segment.Open(dir, cfg); !errors.Is(err, storage.ErrCorrupt) {
				t.Fatalf("Open with the reset segment %s deleted = %v, want ErrCorrupt", files[0], err)
			}
		})
	}
}

// lockedBuffer is a bytes.Buffer safe for a logger's concurrent writes.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}
