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
		return c.wrap(fs, name, f, false)
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

// TestFileCacheCountsOnlyClosableFiles: held files (active segments) and pinned ones take no
// room in the cache's capacity, so that a process with more active segments than the capacity
// still keeps its sealed files open: they were counted, and every file the cache registered
// then closed another sealed file (and sorted every held one to find it).
func TestFileCacheCountsOnlyClosableFiles(t *testing.T) {
	fs := crashfs.New()
	if err := fs.MkdirAll("/d"); err != nil {
		t.Fatal(err)
	}
	c := NewFileCache(1)
	open := func(name string, held bool) *cachedFile {
		f, err := fs.Create(name)
		if err != nil {
			t.Fatal(err)
		}
		return c.wrap(fs, name, f, held)
	}
	sealed := open("/d/sealed", false)
	var held []*cachedFile
	for _, name := range []string{"/d/a", "/d/b", "/d/c"} {
		held = append(held, open(name, true))
	}
	pinned := open("/d/pinned", true) // held until pinned, so that it is never counted
	pinned.pin()
	holdOpen(pinned, false)
	if n, e := c.OpenFiles(), c.evict.Load(); n != 1 || e != 0 {
		t.Fatalf("cache of 1 with one sealed, three held and one pinned file: %d counted, %d closed; want 1 and 0", n, e)
	}
	// Released (a roll sealed it), a held file is one more to count: over capacity, the
	// least recently used of the two is closed.
	holdOpen(held[0], false)
	if n, e := c.OpenFiles(), c.evict.Load(); n != 1 || e != 1 {
		t.Fatalf("after a release: %d counted, %d closed; want 1 and 1", n, e)
	}
	for _, f := range append(held, sealed, pinned) {
		if err := f.Close(); err != nil {
			t.Fatal(err)
		}
	}
	if n := c.OpenFiles(); n != 0 {
		t.Fatalf("after closing every file the cache counts %d", n)
	}
}

// TestFileCacheReopenFails: a file the cache closed whose path is gone answers its next calls
// with the open's error, holds nothing, and still closes.
func TestFileCacheReopenFails(t *testing.T) {
	fs := crashfs.New()
	if err := fs.MkdirAll("/d"); err != nil {
		t.Fatal(err)
	}
	c := NewFileCache(1)
	wrap := func(name string) *cachedFile {
		f, err := fs.Create(name)
		if err != nil {
			t.Fatal(err)
		}
		return c.wrap(fs, name, f, false)
	}
	gone := wrap("/d/gone")
	other := wrap("/d/other") // over capacity: gone (clean, idle, older) is closed
	if c.evict.Load() != 1 {
		t.Fatalf("closed %d files, want 1", c.evict.Load())
	}
	if err := fs.Remove("/d/gone"); err != nil {
		t.Fatal(err)
	}
	for range 2 {
		if _, err := gone.ReadAt(make([]byte, 1), 0); err == nil {
			t.Fatal("ReadAt of a file whose path is gone succeeded")
		}
	}
	gone.mu.Lock()
	users, f := gone.users, gone.f
	gone.mu.Unlock()
	if users != 0 || f != nil {
		t.Fatalf("after failed reopens: %d calls in flight, descriptor %v; want 0 and none", users, f)
	}
	for _, f := range []*cachedFile{gone, other} {
		if err := f.Close(); err != nil {
			t.Fatal(err)
		}
	}
}
