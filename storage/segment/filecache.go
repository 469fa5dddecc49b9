package segment

import (
	"cmp"
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
	max int
	// tick is the cache's clock of recency: it advances when a file is registered (add), and
	// each use of a file stamps the file with it. Reads, the hot path, only load it.
	tick atomic.Uint64

	mu sync.Mutex
	// open holds the files whose descriptor the cache may close: open, and neither held
	// (holdOpen) nor pinned (pin). The capacity counts these alone.
	open  map[*cachedFile]struct{}
	evict atomic.Uint64 // descriptors closed by the cache (for tests)
}

// NewFileCache returns a cache holding at most n idle, clean segment files open (at least 1).
func NewFileCache(n int) *FileCache {
	return &FileCache{max: max(1, n), open: map[*cachedFile]struct{}{}}
}

// OpenFiles returns how many files of the cache hold a descriptor it may close (held and
// pinned files are not counted).
func (c *FileCache) OpenFiles() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.open)
}

// wrap returns f, just opened at path on fs, as a file of the cache, held open (holdOpen) from
// the start when held is set.
func (c *FileCache) wrap(fs vfs.FS, path string, f vfs.File, held bool) *cachedFile {
	cf := &cachedFile{c: c, fs: fs, path: path, f: f, held: held}
	cf.mu.Lock()
	cf.track()
	cf.mu.Unlock()
	return cf
}

// add registers cf, which holds a descriptor the cache may close, stamps it as just used, and
// closes idle clean files over capacity. Called with cf.mu held (cachedFile.track).
func (c *FileCache) add(cf *cachedFile) {
	c.mu.Lock()
	defer c.mu.Unlock()
	cf.last.Store(c.tick.Add(1))
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
	slices.SortFunc(cands, func(a, b cand) int { return cmp.Compare(a.last, b.last) })
	target := c.max - c.max/8
	for _, k := range cands {
		if len(c.open) <= target {
			break
		}
		o := k.cf
		if !o.mu.TryLock() {
			continue
		}
		if o.f != nil && o.users == 0 && o.dirty == 0 { // held and pinned files are not in open
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
	last atomic.Uint64 // the cache's tick at the last use

	mu     sync.Mutex
	f      vfs.File // nil: closed by the cache (or by Close)
	users  int      // calls in flight
	dirty  uint64   // writes since the last successful Sync began (0: clean)
	writes int      // writes in flight
	pinned bool     // never closed by the cache (the file was removed: it cannot be reopened)
	held   bool     // not closed by the cache while set: the active segment's (holdOpen)
	// In the cache's open set exactly while f != nil && !held && !pinned (track).
	closed bool
}

var errFileClosed = errors.New("segment: file closed")

// get returns the open file for one call, opening it again if the cache closed it; put ends
// the call.
func (cf *cachedFile) get(write bool) (vfs.File, error) {
	if t := cf.c.tick.Load(); cf.last.Load() != t {
		cf.last.Store(t)
	}
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
		cf.track()
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
		if cf.held != hold {
			cf.held = hold
			cf.track()
		}
		cf.mu.Unlock()
	}
}

// pin keeps the file open for good (opening it if needed): it is about to be removed, and
// calls in flight on its segment must still reach it, as with any open descriptor. A file that
// cannot be opened again stays closed: those calls get the open's error.
func (cf *cachedFile) pin() {
	cf.mu.Lock()
	defer cf.mu.Unlock()
	if cf.closed {
		return
	}
	if cf.f == nil {
		f, err := cf.fs.Open(cf.path)
		if err != nil {
			return
		}
		cf.f = f
	}
	cf.pinned = true
	cf.track()
}

// track puts cf in its cache's open set while the cache may close it (open, neither held nor
// pinned), and takes it out otherwise. Called with cf.mu held.
func (cf *cachedFile) track() {
	if cf.f != nil && !cf.held && !cf.pinned {
		cf.c.add(cf)
	} else {
		cf.c.drop(cf)
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
	cf.track()
	return err
}
