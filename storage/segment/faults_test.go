package segment_test

import (
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/commitlog-go/commitlog/storage"
	"github.com/commitlog-go/commitlog/storage/segment"
	"github.com/commitlog-go/commitlog/storage/vfs/crashfs"
)

// TestStickyError: after a failed write or fsync every later write fails with ErrFailed
// (wrapping the cause) until the log is reopened; reads keep working.
func TestStickyError(t *testing.T) {
	eio := syscall.EIO
	tests := []struct {
		name   string
		policy segment.SyncPolicy
		inject func(fs *crashfs.FS)
		cause  error
	}{
		{"fsync fails", segment.SyncAlways, func(fs *crashfs.FS) { fs.FailNext(crashfs.OpSync, eio) }, eio},
		{"write fails", segment.SyncAlways, func(fs *crashfs.FS) { fs.FailNext(crashfs.OpWrite, eio) }, eio},
		{"write fails, sync never", segment.SyncNever, func(fs *crashfs.FS) { fs.FailNext(crashfs.OpWrite, eio) }, eio},
		{"disk full", segment.SyncNever, func(fs *crashfs.FS) { fs.SetLimit(300) }, syscall.ENOSPC},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			fs := crashfs.New()
			cfg := segment.Config{FS: fs, Sync: tc.policy}
			l := openT(t, dir, cfg)
			appendBatches(t, l, 2, 2)
			tc.inject(fs)
			var err error
			for i := 0; i < 100 && err == nil; i++ { // disk full takes a few appends
				_, next := l.Bounds()
				_, err = l.Append(val(next), val(next+1))
			}
			if !errors.Is(err, storage.ErrFailed) || !errors.Is(err, tc.cause) {
				t.Fatalf("Append after fault: %v, want ErrFailed wrapping %v", err, tc.cause)
			}
			fs.SetLimit(0)
			if _, err := l.Append(val(4)); !errors.Is(err, storage.ErrFailed) {
				t.Fatalf("next Append: %v, want sticky ErrFailed", err)
			}
			for _, op := range []struct {
				name string
				err  error
			}{
				{"TruncateSuffix", l.TruncateSuffix(1)},
				{"Reset", l.Reset(9)},
				{"Sync", l.Sync()},
			} {
				if !errors.Is(op.err, storage.ErrFailed) {
					t.Fatalf("%s after fault: %v, want ErrFailed", op.name, op.err)
				}
			}
			if got, err := l.Read(1); err != nil || string(got) != string(val(1)) {
				t.Fatalf("Read after fault = %q, %v", got, err)
			}
			if err := l.Close(); !errors.Is(err, storage.ErrFailed) {
				t.Fatalf("Close after fault = %v, want the sticky error", err)
			}
			l = openT(t, dir, cfg)
			_, next := l.Bounds()
			if next < 4 {
				t.Fatalf("reopened log ends at %d, lost acknowledged records", next)
			}
			appendBatches(t, l, 1)
			checkContent(t, l, 0, next+1)
		})
	}
}

// TestLock: a second Open of the same directory fails with ErrLocked until the first Log is
// closed, with the OS file system (flock) and with crashfs.
func TestLock(t *testing.T) {
	for name, cfg := range map[string]segment.Config{
		"os":      {},
		"crashfs": {FS: crashfs.New()},
	} {
		t.Run(name, func(t *testing.T) {
			d := dir
			if cfg.FS == nil {
				d = t.TempDir()
			}
			l := openT(t, d, cfg)
			if _, err := segment.Open(d, cfg); !errors.Is(err, storage.ErrLocked) {
				t.Fatalf("second Open: %v, want ErrLocked", err)
			}
			closeT(t, l)
			l2 := openT(t, d, cfg)
			closeT(t, l2)
		})
	}
}

// TestRetention: EnforceRetention deletes whole sealed segments by total size and by age
// (with an injected clock), oldest first, never the active one.
func TestRetention(t *testing.T) {
	t.Run("size", func(t *testing.T) {
		fs := crashfs.New()
		cfg := segment.Config{FS: fs, SegmentBytes: 200, RetentionBytes: 500}
		l := openT(t, dir, cfg)
		appendBatches(t, l, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2)
		before := l.Segments()
		n, err := l.EnforceRetention(time.Now())
		if err != nil || n == 0 {
			t.Fatalf("EnforceRetention = %d, %v", n, err)
		}
		if l.Segments() != before-n {
			t.Fatalf("%d segments after removing %d of %d", l.Segments(), n, before)
		}
		if size := l.Size(); size > 500 {
			t.Fatalf("size %d after retention, want <= 500", size)
		}
		lo, next := l.Bounds()
		if lo == 0 {
			t.Fatal("lowest did not move")
		}
		checkContent(t, l, lo, next)
		if len(segFiles(t, fs, dir)) != l.Segments() {
			t.Fatal("segment files not removed")
		}
		closeT(t, l)
		l = openT(t, dir, cfg)
		checkContent(t, l, lo, next)
	})
	t.Run("age", func(t *testing.T) {
		fs := crashfs.New()
		now := time.Unix(1_000_000, 0)
		cfg := segment.Config{FS: fs, SegmentBytes: 150, RetentionAge: time.Hour, Now: func() time.Time { return now }}
		l := openT(t, dir, cfg)
		appendBatches(t, l, 3, 3, 3) // three segments created at t0
		now = now.Add(2 * time.Hour)
		appendBatches(t, l, 3, 3) // two more segments created at t0+2h
		if got := l.Segments(); got != 5 {
			t.Fatalf("%d segments, want 5", got)
		}
		// At t0+2h: segments 1 and 2 were sealed at t0 (when 2 and 3 were created): expired.
		// Segment 3 was sealed when segment 4 was created, at t0+2h: kept.
		n, err := l.EnforceRetention(now)
		if err != nil || n != 2 {
			t.Fatalf("EnforceRetention = %d, %v; want 2", n, err)
		}
		checkContent(t, l, 6, 15)
		// Much later, everything but the active segment goes.
		n, err = l.EnforceRetention(now.Add(10 * time.Hour))
		if err != nil || n != 2 || l.Segments() != 1 {
			t.Fatalf("EnforceRetention later = %d, %v, %d segments", n, err, l.Segments())
		}
		checkContent(t, l, 12, 15)
	})
	t.Run("disabled", func(t *testing.T) {
		l := openT(t, dir, segment.Config{FS: crashfs.New(), SegmentBytes: 150})
		appendBatches(t, l, 3, 3, 3)
		if n, err := l.EnforceRetention(time.Now().Add(1000 * time.Hour)); n != 0 || err != nil {
			t.Fatalf("EnforceRetention without limits = %d, %v", n, err)
		}
	})
}

// TestInvalidConfig: Open validates its Config; the error wraps ErrInvalidConfig and names the
// field.
func TestInvalidConfig(t *testing.T) {
	for _, tt := range []struct {
		field string
		cfg   segment.Config
	}{
		{"Sync", segment.Config{Sync: segment.SyncPolicy(7)}},
		{"SegmentBytes", segment.Config{SegmentBytes: 10}},
		{"SegmentBytes", segment.Config{SegmentBytes: 2 << 30}},
		{"SegmentBytes", segment.Config{SegmentBytes: -1}},
		{"MaxRecordBytes", segment.Config{MaxRecordBytes: segment.MaxRecordBytesLimit + 1}},
		{"MaxRecordBytes", segment.Config{MaxRecordBytes: -1}},
		{"MaxBatchBytes", segment.Config{MaxBatchBytes: -1}},
		{"MaxBatchBytes", segment.Config{MaxBatchBytes: segment.MaxBatchBytesLimit + 1}},
		{"RetentionBytes", segment.Config{RetentionBytes: -1}},
		{"RetentionAge", segment.Config{RetentionAge: -time.Hour}},
		{"SyncInterval", segment.Config{SyncInterval: -time.Second}},
		{"TimeIndexInterval", segment.Config{TimeIndexInterval: -1}},
	} {
		tt.cfg.FS = crashfs.New()
		l, err := segment.Open(dir, tt.cfg)
		if l != nil || !errors.Is(err, segment.ErrInvalidConfig) || !strings.Contains(err.Error(), tt.field+" ") {
			t.Errorf("Open(%+v) = %v, %v; want ErrInvalidConfig naming %s", tt.cfg, l, err, tt.field)
		}
	}
	if _, err := segment.ParseSyncPolicy("sometimes"); !errors.Is(err, segment.ErrInvalidConfig) {
		t.Errorf("ParseSyncPolicy(sometimes) = %v", err)
	}
	for _, p := range []segment.SyncPolicy{segment.SyncAlways, segment.SyncInterval, segment.SyncNever} {
		if got, err := segment.ParseSyncPolicy(p.String()); got != p || err != nil {
			t.Errorf("ParseSyncPolicy(%q) = %v, %v", p, got, err)
		}
	}
}

// TestTooLargeBatch: a batch above MaxBatchBytes is refused without consuming offsets.
func TestTooLargeBatch(t *testing.T) {
	l := openT(t, dir, segment.Config{FS: crashfs.New(), MaxBatchBytes: 100})
	if _, err := l.Append(make([]byte, 50), make([]byte, 50)); !errors.Is(err, storage.ErrTooLarge) {
		t.Fatalf("Append(100 B + frames) = %v, want ErrTooLarge", err)
	}
	appendBatches(t, l, 1)
	if err := l.Wait(context.Background(), 0); err != nil {
		t.Fatal(err)
	}
}

// TestBitFlipWhileOpen: a bit flipped on disk under a running log (page cache included) is
// detected by Read and Records, in the active segment too, and other records still read.
func TestBitFlipWhileOpen(t *testing.T) {
	d := t.TempDir()
	l := openT(t, d, segment.Config{Sync: segment.SyncNever})
	appendBatches(t, l, 3, 3)
	names, err := filepath.Glob(filepath.Join(d, "*.seg"))
	if err != nil || len(names) != 1 {
		t.Fatalf("segments: %v %v", names, err)
	}
	f, err := os.OpenFile(names[0], os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	at := int64(segHdrLen + frameHdr + len(val(0)) + frameHdr + 2) // inside record 1's value
	var b [1]byte
	if _, err := f.ReadAt(b[:], at); err != nil {
		t.Fatal(err)
	}
	b[0] ^= 0x80
	if _, err := f.WriteAt(b[:], at); err != nil {
		t.Fatal(err)
	}
	_ = f.Close()
	_, err = l.Read(1)
	wantCorrupt(t, err, names[0], int64(segHdrLen+frameHdr+len(val(0))))
	var iterErr error
	n := 0
	for _, err := range l.Records(0, 6) {
		if err != nil {
			iterErr = err
			break
		}
		n++
	}
	if n != 1 || !errors.Is(iterErr, storage.ErrCorrupt) {
		t.Fatalf("Records served %d records then %v; want 1 then ErrCorrupt", n, iterErr)
	}
	for _, o := range []uint64{0, 2, 5} {
		if _, err := l.Read(o); err != nil {
			t.Fatalf("Read(%d): %v", o, err)
		}
	}
}

// TestReadFault: a pread that fails is reported as what it is: an I/O error names the file and
// position and is not called corruption (the record is intact: the next read succeeds), a short
// file is corruption, and a read of a log closed meanwhile is ErrClosed.
func TestReadFault(t *testing.T) {
	fs := crashfs.New()
	l := openT(t, dir, segment.Config{FS: fs})
	appendBatches(t, l, 2, 2)

	fs.FailNext(crashfs.OpRead, syscall.EIO)
	_, err := l.Read(1)
	if !errors.Is(err, syscall.EIO) || errors.Is(err, storage.ErrCorrupt) || !strings.Contains(err.Error(), ".seg at position") {
		t.Fatalf("Read with a failing pread: %v, want EIO naming the file and position, not ErrCorrupt", err)
	}
	if v, err := l.Read(1); err != nil || string(v) != string(val(1)) {
		t.Fatalf("Read after the fault: %q, %v", v, err)
	}

	fs.FailNext(crashfs.OpRead, io.ErrUnexpectedEOF)
	_, err = l.Read(2)
	if !errors.Is(err, storage.ErrCorrupt) || !strings.Contains(err.Error(), "file too short") {
		t.Fatalf("Read of a file cut short: %v, want ErrCorrupt (file too short)", err)
	}

	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := l.Read(1); !errors.Is(err, storage.ErrClosed) {
		t.Fatalf("Read after Close: %v, want ErrClosed", err)
	}
}
