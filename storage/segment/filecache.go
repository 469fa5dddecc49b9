package segment

import (
	"errors"
	"slices"
	"sync"
	"sync/atomic"

	"github.com/commitlog-go/commitlog/storage/vfs"
)

// DefaultMaxOpenFiles is the capacity of the file cache that logs share when their Config
// names none (Config.Files): how many segment files may be held open, beyond those that cannot
// be closed (see FileCache).
const DefaultMaxOpenFiles = 256

// sharedFiles is the FileCache of every Log whose Config.Files is nil.
var sharedFiles = NewFileCache(DefaultMaxOpenFiles)

// FileCache bounds the segment files held open by the logs that share it (Config.Files).
// Without it every segment file stayed open for the life of its log: one file descriptor per
// segment of every partition, however old, so a log that kept growing ran the process out of
// open files (EMFILE) and then failed its next roll, and a node reopening it held them all
// again.
//
// A segment file is closed when the cache holds more than its capacity and the file is idle
// (no call in flight on it) and clean (every byte written through it since it was opened was
// then synced by a successful Sync); the next call on it opens it again. A file with writes not
// yet synced is never closed: a descriptor closed before the fsync could hide a write-back
// error from the fsync made through the next one. So the active segment of a log, which
// SyncNever or SyncInterval keeps unsynced, stays open; and so does the active segment's file
// in any case (holdOpen). The capacity bounds only the other files: at most capacity + (active
// segments) + (files with unsynced writes) + (files with a call in flight) are open at once.
type FileCache struct {
	max  int
	tick atomic.Uint64 // recency: each use of a file stamps it with the next tick

	mu    sync.Mutex
	open  map[*cachedFile]struct{} // files holding a descriptor
	evict atomic.Uint64            // descriptors closed by the cache (for tests)
}

// NewFileCache returns a cache holding at most n idle, clean segment files open (at least 1).
func NewFileCache(n int) *FileCache {
	return &FileCache{max: max(1, n), open: map[*cachedFile]struct{}{}}
}

// OpenFiles returns how many files of the cache hold a descriptor.
func (c *FileCache) OpenFiles() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.open)
}

// wrap returns f, just opened at path on fs, as a file of the cache.
func (c *FileCache) wrap(fs vfs.FS, path string, f vfs.File) *cachedFile {
	cf := &cachedFile{c: c, fs: fs, path: path, f: f}
	cf.last.Store(c.tick.Add(1))
	c.add(cf)
	return cf
}

// add registers cf, which now holds a descriptor, and closes idle clean files over capacity.
func (c *FileCache) add(cf *cachedFile) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.open[cf] = struct{}{}
	if len(c.open) <= c.max {
		return
	}
	// Close the least recently used idle, clean files, down to 7/8 of the capacity so that
	// the scan is paid once per several opens. TryLock: a file whose lock is held is in use
	// (and a file's lock is taken before the cache's in cachedFile.get).
	type cand struct {
		cf   *cachedFile
		last uint64
	}
	var cands []cand
	for o := range c.open {
		if o != cf {
			cands = append(cands, cand{o, o.last.Load()})
		}
	}
	slices.SortFunc(cands, func(a, b cand) int {
		switch {
		case a.last < b.last:
			return -1
		case a.last > b.last:
			return 1
		}
		return 0
	})
	target := c.max - c.max/8
	for _, k := range cands {
		if len(c.open) <= target {
			break
		}
		o := k.cf
		if !o.mu.TryLock() {
			continue
		}
		if o.f != nil && o.users == 0 && o.dirty == 0 && !o.pinned && !o.held {
			_ = o.f.Close()
			o.f = nil
			delete(c.open, o)
			c.evict.Add(1)
		}
		o.mu.Unlock()
	}
}

// drop forgets cf, whose descriptor was closed.
func (c *FileCache) drop(cf *cachedFile) {
	c.mu.Lock()
	delete(c.open, cf)
	c.mu.Unlock()
}

// cachedFile is a vfs.File whose descriptor the FileCache may close while it is idle and
// clean, and which opens it again on its next use.
type cachedFile struct {
	c    *FileCache
	fs   vfs.FS
	path string
	last atomic.Uint64 // tick of the last use

	mu     sync.Mutex
	f      vfs.File // nil: closed by the cache (or by Close)
	users  int      // calls in flight
	dirty  uint64   // writes since the last successful Sync began (0: clean)
	writes int      // writes in flight
	pinned bool     // never closed by the cache (the file was removed: it cannot be reopened)
	held   bool     // not closed by the cache while set: the active segment's (holdOpen)
	closed bool
}

var errFileClosed = errors.New("segment: file closed")

// get returns the open file for one call, opening it again if the cache closed it; put ends
// the call.
func (cf *cachedFile) get(write bool) (vfs.File, error) {
	cf.last.Store(cf.c.tick.Add(1))
	cf.mu.Lock()
	defer cf.mu.Unlock()
	if cf.closed {
		return nil, errFileClosed
	}
	if cf.f == nil {
		f, err := cf.fs.Open(cf.path)
		if err != nil {
			return nil, err
		}
		cf.f = f
		cf.c.add(cf)
	}
	cf.users++
	if write {
		cf.dirty++
		cf.writes++
	}
	return cf.f, nil
}

func (cf *cachedFile) put(write bool) {
	cf.mu.Lock()
	cf.users--
	if write {
		cf.writes--
	}
	cf.mu.Unlock()
}

// holdOpen keeps f (a file of a FileCache) open while hold is set, or lets the cache close it
// again. The active segment's file is held: every append writes and syncs it, so closing it
// whenever it is clean and idle would reopen it on the next append, and a reopen that fails
// (EMFILE) would fail the write path rather than a read.
func holdOpen(f vfs.File, hold bool) {
	if cf, ok := f.(*cachedFile); ok {
		cf.mu.Lock()
		cf.held = hold
		cf.mu.Unlock()
	}
}

// pin keeps the file open for good (opening it if needed): it is about to be removed, and
// calls in flight on its segment must still reach it, as with any open descriptor.
func (cf *cachedFile) pin() {
	if _, err := cf.get(false); err == nil {
		cf.mu.Lock()
		cf.pinned = true
		cf.users--
		cf.mu.Unlock()
	}
}

func (cf *cachedFile) ReadAt(p []byte, off int64) (int, error) {
	f, err := cf.get(false)
	if err != nil {
		return 0, err
	}
	defer cf.put(false)
	return f.ReadAt(p, off)
}

func (cf *cachedFile) Write(p []byte) (int, error) {
	f, err := cf.get(true)
	if err != nil {
		return 0, err
	}
	defer cf.put(true)
	return f.Write(p)
}

func (cf *cachedFile) WriteAt(p []byte, off int64) (int, error) {
	f, err := cf.get(true)
	if err != nil {
		return 0, err
	}
	defer cf.put(true)
	return f.WriteAt(p, off)
}

func (cf *cachedFile) Truncate(size int64) error {
	f, err := cf.get(true)
	if err != nil {
		return err
	}
	defer cf.put(true)
	return f.Truncate(size)
}

// Sync syncs the file; on success the writes made before it began are durable, and the file
// is clean unless more were made meanwhile.
func (cf *cachedFile) Sync() error {
	f, err := cf.get(false)
	if err != nil {
		return err
	}
	cf.mu.Lock()
	// A write still in flight when the fsync begins may not be covered by it.
	before, covered := cf.dirty, cf.writes == 0
	cf.mu.Unlock()
	err = f.Sync()
	cf.mu.Lock()
	cf.users--
	if err == nil && covered && cf.dirty == before {
		cf.dirty = 0
	}
	cf.mu.Unlock()
	return err
}

func (cf *cachedFile) Size() (int64, error) {
	f, err := cf.get(false)
	if err != nil {
		return 0, err
	}
	defer cf.put(false)
	return f.Size()
}

// Close closes the file for good.
func (cf *cachedFile) Close() error {
	cf.mu.Lock()
	defer cf.mu.Unlock()
	if cf.closed {
		return nil
	}
	cf.closed = true
	if cf.f == nil {
		return nil
	}
	err := cf.f.Close()
	cf.f = nil
	cf.c.drop(cf)
	return err
}
