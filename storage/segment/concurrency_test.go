package segment_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/commitlog-go/commitlog/storage"
	"github.com/commitlog-go/commitlog/storage/segment"
	"github.com/commitlog-go/commitlog/storage/vfs"
	"github.com/commitlog-go/commitlog/storage/vfs/crashfs"
)

// TestTailReadersWhileRolling: readers wait at the tail while a writer appends and rolls
// tiny segments; each reader sees every record, in order, with the right value.
func TestTailReadersWhileRolling(t *testing.T) {
	for _, policy := range []segment.SyncPolicy{segment.SyncAlways, segment.SyncNever} {
		t.Run(policy.String(), func(t *testing.T) {
			l := openT(t, t.TempDir(), segment.Config{Sync: policy, SegmentBytes: 256})
			const total = 600
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			var wg sync.WaitGroup
			errs := make(chan error, 4)
			for r := range 4 {
				wg.Go(func() {
					var off uint64
					for off < total {
						if err := l.Wait(ctx, off); err != nil {
							errs <- fmt.Errorf("reader %d: Wait(%d): %w", r, off, err)
							return
						}
						_, next := l.Bounds()
						for rec, err := range l.Records(off, next) {
							if err != nil || rec.Offset != off || !bytes.Equal(rec.Value, val(off)) {
								errs <- fmt.Errorf("reader %d at %d: {%d %q} %v", r, off, rec.Offset, rec.Value, err)
								return
							}
							off++
						}
					}
				})
			}
			for i := 0; i < total; i += 3 {
				appendBatches(t, l, 3)
			}
			wg.Wait()
			close(errs)
			for err := range errs {
				t.Error(err)
			}
			if l.Segments() < 10 {
				t.Fatalf("only %d segments: the test did not roll", l.Segments())
			}
		})
	}
}

// TestTruncatePrefixWhileReading: iterations and reads racing with retention either see the
// right values or fail with ErrOutOfRange; never anything else.
func TestTruncatePrefixWhileReading(t *testing.T) {
	l := openT(t, t.TempDir(), segment.Config{Sync: segment.SyncNever, SegmentBytes: 300})
	for range 200 {
		appendBatches(t, l, 2)
	}
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	stop := make(chan struct{})
	for r := range 4 {
		wg.Go(func() {
			for {
				select {
				case <-stop:
					return
				default:
				}
				lo, next := l.Bounds()
				for rec, err := range l.Records(lo, next) {
					if errors.Is(err, storage.ErrOutOfRange) {
						break
					}
					if err != nil || !bytes.Equal(rec.Value, val(rec.Offset)) {
						errs <- fmt.Errorf("reader %d: {%d %q} %v", r, rec.Offset, rec.Value, err)
						return
					}
				}
				if v, err := l.Read(lo); err != nil && !errors.Is(err, storage.ErrOutOfRange) || err == nil && !bytes.Equal(v, val(lo)) {
					errs <- fmt.Errorf("reader %d: Read(%d) = %q, %v", r, lo, v, err)
					return
				}
			}
		})
	}
	for before := uint64(0); before <= 400; before += 10 {
		if err := l.TruncatePrefix(before); err != nil {
			t.Fatal(err)
		}
		appendBatches(t, l, 2)
	}
	close(stop)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if lo, _ := l.Bounds(); lo < 300 {
		t.Fatalf("lowest %d after truncating to 400", lo)
	}
}

// TestGroupCommit: 16 concurrent appenders under SyncAlways share fsyncs. The disk is made
// slow (each fsync takes 2ms) so that appenders pile up behind an fsync; the assertion is
// on counts, not time: far fewer fsyncs than appends.
func TestGroupCommit(t *testing.T) {
	fs := crashfs.New()
	l := openT(t, dir, segment.Config{FS: fs})
	fs.SetSyncDelay(2 * time.Millisecond)
	const writers, each = 16, 20
	before := fs.Syncs()
	var wg sync.WaitGroup
	offsets := make(chan uint64, writers*each)
	for w := range writers {
		wg.Go(func() {
			for i := range each {
				off, err := l.Append([]byte{byte(w), byte(i)})
				if err != nil {
					t.Errorf("Append: %v", err)
					return
				}
				offsets <- off
			}
		})
	}
	wg.Wait()
	close(offsets)
	seen := map[uint64]bool{}
	for off := range offsets {
		if seen[off] {
			t.Fatalf("offset %d given twice", off)
		}
		seen[off] = true
	}
	if len(seen) != writers*each {
		t.Fatalf("%d distinct offsets, want %d", len(seen), writers*each)
	}
	for off := range uint64(writers * each) {
		if !seen[off] {
			t.Fatalf("offset %d missing", off)
		}
	}
	syncs := fs.Syncs() - before
	t.Logf("%d appends, %d fsyncs", writers*each, syncs)
	if syncs > writers*each/3 {
		t.Fatalf("%d fsyncs for %d appends: no group commit", syncs, writers*each)
	}
}

// TestReadsDoNotWaitForFsync: while an append's fsync is in progress, reads of published
// records and Bounds return (they never wait for a write or fsync), and the record being
// synced is not visible yet.
func TestReadsDoNotWaitForFsync(t *testing.T) {
	fs := crashfs.New()
	l := openT(t, dir, segment.Config{FS: fs})
	appendBatches(t, l, 3)
	entered, release := fs.HoldSyncs()
	defer release()
	done := make(chan error, 1)
	go func() { _, err := l.Append(val(3)); done <- err }()
	<-entered // the append is inside fdatasync
	for i := range uint64(3) {
		if got, err := l.Read(i); err != nil || !bytes.Equal(got, val(i)) {
			t.Fatalf("Read(%d) = %q, %v", i, got, err)
		}
	}
	if _, next := l.Bounds(); next != 3 {
		t.Fatalf("next = %d while the append's fsync is in flight, want 3 (not yet durable)", next)
	}
	if _, err := l.Read(3); !errors.Is(err, storage.ErrOutOfRange) {
		t.Fatalf("Read of the record being synced = %v, want ErrOutOfRange", err)
	}
	select {
	case err := <-done:
		t.Fatalf("Append returned before its fsync: %v", err)
	default:
	}
	release()
	if err := <-done; err != nil {
		t.Fatalf("Append: %v", err)
	}
	checkContent(t, l, 0, 4)
}

// TestReadsRacingRewrites: a reader racing TruncateSuffix or Reset, each followed by an Append of
// a record of another size at the same offset, sees a record the log held, or ErrOutOfRange
// while the offset is gone: never ErrCorrupt on a healthy log (it looked the record's position
// up before the rewrite and read other bytes there). Read and Records alike.
func TestReadsRacingRewrites(t *testing.T) {
	short, long := []byte("x"), bytes.Repeat([]byte("y"), 300)
	rewrites := map[string]func(l *segment.Log) error{
		"TruncateSuffix": func(l *segment.Log) error { return l.TruncateSuffix(1) },
		"Reset":          func(l *segment.Log) error { return l.Reset(1) },
	}
	readers := map[string]func(l *segment.Log) error{
		"Read": func(l *segment.Log) error { _, err := l.Read(1); return err },
		"Records": func(l *segment.Log) error {
			for rec, err := range l.Records(1, 2) {
				if err != nil {
					return err
				}
				if !bytes.Equal(rec.Value, short) && !bytes.Equal(rec.Value, long) {
					return fmt.Errorf("offset 1 holds %q", rec.Value)
				}
			}
			return nil
		},
	}
	for rname, rewrite := range rewrites {
		for name, read := range readers {
			t.Run(rname+"/"+name, func(t *testing.T) {
				l := openT(t, t.TempDir(), segment.Config{FS: crashfs.New(), Sync: segment.SyncNever})
				if _, err := l.Append([]byte("base")); err != nil {
					t.Fatal(err)
				}
				stop := make(chan struct{})
				errs := make(chan error, 1)
				go func() {
					for {
						select {
						case <-stop:
							errs <- nil
							return
						default:
						}
						if err := read(l); err != nil && !errors.Is(err, storage.ErrOutOfRange) {
							errs <- err
							return
						}
					}
				}()
				for i := range 3000 {
					v := short
					if i%2 == 0 {
						v = long
					}
					if _, err := l.Append(v); err != nil {
						t.Fatal(err)
					}
					if err := rewrite(l); err != nil {
						t.Fatal(err)
					}
				}
				close(stop)
				if err := <-errs; err != nil {
					t.Fatalf("%s of offset 1 racing %s then Append: %v", name, rname, err)
				}
			})
		}
	}
}

// gateFS is a crashfs whose next File.ReadAt, once armed, waits for release after signalling
// that it started.
type gateFS struct {
	*crashfs.FS
	mu      sync.Mutex
	armed   bool
	entered chan struct{}
	release chan struct{}
}

func (g *gateFS) arm() {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.armed, g.entered, g.release = true, make(chan struct{}), make(chan struct{})
}

func (g *gateFS) Create(name string) (vfs.File, error) {
	f, err := g.FS.Create(name)
	if err != nil {
		return nil, err
	}
	return &gateFile{File: f, g: g}, nil
}

func (g *gateFS) Open(name string) (vfs.File, error) {
	f, err := g.FS.Open(name)
	if err != nil {
		return nil, err
	}
	return &gateFile{File: f, g: g}, nil
}

type gateFile struct {
	vfs.File
	g *gateFS
}

func (f *gateFile) ReadAt(p []byte, off int64) (int, error) {
	f.g.mu.Lock()
	armed, entered, release := f.g.armed, f.g.entered, f.g.release
	f.g.armed = false
	f.g.mu.Unlock()
	if armed {
		close(entered)
		<-release
	}
	return f.File.ReadAt(p, off)
}

// TestReadAfterTruncateSuffixSeesNoUnsyncedRecord: under SyncAlways a record is visible only
// once durable. A Read (or Records) that looked a record's position up before a
// TruncateSuffix, and read there after the offset was appended again — written, its fsync
// still running — returned that new record, which a power failure then erased: a read of a
// record the log never held. It answers ErrOutOfRange (the offset is not in the log), as a
// read after the truncation does.
func TestReadAfterTruncateSuffixSeesNoUnsyncedRecord(t *testing.T) {
	readers := map[string]func(l *segment.Log) ([]byte, error){
		"Read": func(l *segment.Log) ([]byte, error) { return l.Read(1) },
		"Records": func(l *segment.Log) ([]byte, error) {
			for rec, err := range l.Records(1, 2) {
				return rec.Value, err
			}
			return nil, errors.New("Records yielded nothing")
		},
	}
	for name, read := range readers {
		t.Run(name, func(t *testing.T) {
			g := &gateFS{FS: crashfs.New()}
			l := openT(t, dir, segment.Config{FS: g, Sync: segment.SyncAlways})
			if _, err := l.Append([]byte("old-0"), []byte("old-1")); err != nil {
				t.Fatal(err)
			}
			g.arm()
			type result struct {
				v   []byte
				err error
			}
			got := make(chan result, 1)
			go func() {
				v, err := read(l)
				got <- result{bytes.Clone(v), err}
			}()
			<-g.entered // the position of offset 1 is looked up; its pread waits
			if err := l.TruncateSuffix(1); err != nil {
				t.Fatal(err)
			}
			entered, release := g.HoldSyncs()
			appended := make(chan error, 1)
			go func() {
				_, err := l.Append([]byte("new-1"))
				appended <- err
			}()
			<-entered // new-1 is written at the old record's position; its fsync waits
			if _, next := l.Bounds(); next != 1 {
				t.Fatalf("next = %d while the append's fsync waits, want 1", next)
			}
			close(g.release)
			r := <-got
			release()
			if err := <-appended; err != nil {
				t.Fatal(err)
			}
			if !errors.Is(r.err, storage.ErrOutOfRange) {
				t.Fatalf("%s of offset 1 racing TruncateSuffix(1) and an Append not yet durable = %q, %v; want ErrOutOfRange", name, r.v, r.err)
			}
		})
	}
}
