package segment_test

import (
	"bytes"
	"sync"
	"testing"

	"github.com/commitlog-go/commitlog/storage/segment"
	"github.com/commitlog-go/commitlog/storage/vfs"
	"github.com/commitlog-go/commitlog/storage/vfs/crashfs"
)

// openCountFS counts the files opened through it and not yet closed.
type openCountFS struct {
	vfs.FS
	mu   sync.Mutex
	open int
	peak int
}

func (c *openCountFS) track(f vfs.File, err error) (vfs.File, error) {
	if err != nil {
		return nil, err
	}
	c.mu.Lock()
	c.open++
	c.peak = max(c.peak, c.open)
	c.mu.Unlock()
	return &openCountFile{File: f, c: c}, nil
}

func (c *openCountFS) Create(name string) (vfs.File, error) { return c.track(c.FS.Create(name)) }
func (c *openCountFS) Open(name string) (vfs.File, error)   { return c.track(c.FS.Open(name)) }

func (c *openCountFS) counts() (open, peak int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.open, c.peak
}

type openCountFile struct {
	vfs.File
	c    *openCountFS
	once sync.Once
}

func (f *openCountFile) Close() error {
	f.once.Do(func() {
		f.c.mu.Lock()
		f.c.open--
		f.c.mu.Unlock()
	})
	return f.File.Close()
}

// TestOpenFilesBoundedAsLogGrows: a log's open files do not grow with its segments. Every
// segment file used to stay open for the life of the log, so a log that kept rolling ran the
// process out of file descriptors (seen: a node with ulimit -n 1024 stopped applying at ~1000
// segments, "roll: ... too many open files"). The default cache holds at most
// segment.DefaultMaxOpenFiles idle, synced segment files open, whatever the segment count.
func TestOpenFilesBoundedAsLogGrows(t *testing.T) {
	const segments = 600 // well over DefaultMaxOpenFiles (256)
	fs := &openCountFS{FS: crashfs.New()}
	cfg := segment.Config{FS: fs, SegmentBytes: 64} // every append rolls
	l := openT(t, dir, cfg)
	rec := bytes.Repeat([]byte("x"), 32)
	for i := 0; i < segments; i++ {
		if _, err := l.Append(rec); err != nil {
			t.Fatalf("Append %d: %v", i, err)
		}
	}
	const bound = 256 + 8 // the cache's capacity, the active segment, LOCK and FIRST files
	if open, _ := fs.counts(); open > bound {
		t.Fatalf("after %d segments the log holds %d files open; want at most %d", segments, open, bound)
	}
	// Every record still reads back, through files the cache closed and opens again.
	for off := uint64(0); off < segments; off++ {
		v, err := l.Read(off)
		if err != nil || !bytes.Equal(v, rec) {
			t.Fatalf("Read(%d) = %q, %v", off, v, err)
		}
	}
	n := 0
	for r, err := range l.Records(0, segments) {
		if err != nil || r.Offset != uint64(n) {
			t.Fatalf("Records: record %d: offset %d, %v", n, r.Offset, err)
		}
		n++
	}
	if n != segments {
		t.Fatalf("Records read %d records, want %d", n, segments)
	}
	if open, _ := fs.counts(); open > bound {
		t.Fatalf("after reading every segment the log holds %d files open; want at most %d", open, bound)
	}
	closeT(t, l)
	if open, _ := fs.counts(); open != 0 {
		t.Fatalf("after Close %d files are still open", open)
	}

	// Reopening the log does not hold every segment open either.
	l = openT(t, dir, cfg)
	if open, _ := fs.counts(); open > bound {
		t.Fatalf("after reopening a log of %d segments it holds %d files open; want at most %d", segments, open, bound)
	}
	if _, err := l.Append(rec); err != nil {
		t.Fatalf("Append after reopen: %v", err)
	}
	if v, err := l.Read(0); err != nil || !bytes.Equal(v, rec) {
		t.Fatalf("Read(0) after reopen = %q, %v", v, err)
	}
	closeT(t, l)
}
