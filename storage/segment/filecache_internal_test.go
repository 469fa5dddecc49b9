package segment

import (
	"testing"

	"github.com/commitlog-go/commitlog/storage/vfs"
	"github.com/commitlog-go/commitlog/storage/vfs/crashfs"
)

// TestFileCacheNeverClosesUnsyncedFile: the cache closes idle files beyond its capacity, but
// never one with writes not yet synced (closing it could hide a write-back error from the
// next fsync), nor one pinned for removal; a closed file opens again on its next use.
func TestFileCacheNeverClosesUnsyncedFile(t *testing.T) {
	fs := crashfs.New()
	if err := fs.MkdirAll("/d"); err != nil {
		t.Fatal(err)
	}
	c := NewFileCache(1)
	open := func(name string) *cachedFile {
		f, err := fs.Create(name)
		if err != nil {
			t.Fatal(err)
		}
		return c.wrap(fs, name, f)
	}
	dirty := open("/d/dirty")
	if _, err := dirty.Write([]byte("unsynced")); err != nil {
		t.Fatal(err)
	}
	pinned := open("/d/pinned")
	pinned.pin()
	clean := open("/d/clean")
	if _, err := clean.Write([]byte("synced")); err != nil {
		t.Fatal(err)
	}
	if err := clean.Sync(); err != nil {
		t.Fatal(err)
	}
	_ = open("/d/other") // over capacity: only clean can be closed

	dirty.mu.Lock()
	dirtyOpen := dirty.f != nil
	dirty.mu.Unlock()
	pinned.mu.Lock()
	pinnedOpen := pinned.f != nil
	pinned.mu.Unlock()
	clean.mu.Lock()
	cleanOpen := clean.f != nil
	clean.mu.Unlock()
	if !dirtyOpen || !pinnedOpen || cleanOpen {
		t.Fatalf("open after eviction: dirty %v (want true), pinned %v (want true), clean %v (want false)", dirtyOpen, pinnedOpen, cleanOpen)
	}
	b := make([]byte, 6)
	if _, err := clean.ReadAt(b, 0); err != nil || string(b) != "synced" {
		t.Fatalf("ReadAt of a closed file = %q, %v; want it reopened", b, err)
	}
	// Synced, the dirty file may be closed too.
	if err := dirty.Sync(); err != nil {
		t.Fatal(err)
	}
	_ = open("/d/more")
	dirty.mu.Lock()
	dirtyOpen = dirty.f != nil
	dirty.mu.Unlock()
	if dirtyOpen {
		t.Fatalf("a synced idle file over capacity stayed open")
	}
	for _, f := range []*cachedFile{dirty, pinned, clean} {
		if err := f.Close(); err != nil {
			t.Fatal(err)
		}
	}
}

// TestFileCacheHoldsActiveSegment: the active segment's file stays open however full the cache
// is, although it is clean and idle after every append (SyncAlways): closing it then would make
// every append reopen it, and a reopen that fails (EMFILE) would fail the log's writes. Once a
// roll seals it, the cache may close it like any other. Two logs share a cache of one file.
func TestFileCacheHoldsActiveSegment(t *testing.T) {
	fs := crashfs.New()
	c := NewFileCache(1)
	cfg := Config{FS: fs, Files: c, SegmentBytes: 64} // every append rolls
	a, err := Open("/a", cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	b, err := Open("/b", cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	rec := make([]byte, 32)
	if _, err := a.Append(rec); err != nil {
		t.Fatal(err)
	}
	isOpen := func(f vfs.File) bool {
		cf := f.(*cachedFile)
		cf.mu.Lock()
		defer cf.mu.Unlock()
		return cf.f != nil
	}
	aActive := a.active
	for i := range 8 {
		if _, err := b.Append(rec); err != nil {
			t.Fatalf("b.Append %d: %v", i, err)
		}
	}
	if c.evict.Load() == 0 {
		t.Fatalf("the cache closed nothing: the test no longer fills it")
	}
	if !isOpen(aActive.f) || !isOpen(b.active.f) {
		t.Fatalf("active segments closed by the cache: a's open %v, b's open %v", isOpen(aActive.f), isOpen(b.active.f))
	}
	// Sealed by a roll, a's old active segment is the cache's to close.
	if _, err := a.Append(rec); err != nil {
		t.Fatal(err)
	}
	for i := range 8 {
		if _, err := b.Append(rec); err != nil {
			t.Fatalf("b.Append %d: %v", i, err)
		}
	}
	if a.active == aActive || isOpen(aActive.f) {
		t.Fatalf("a's sealed segment: still active %v, still open %v", a.active == aActive, isOpen(aActive.f))
	}
}
