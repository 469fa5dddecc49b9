// Package crashfs is an in-memory vfs.FS that simulates power failures and injects faults,
// for testing code that must survive them (storage/segment's crash tests).
//
// It remembers what was made durable: a file's content as of its last Sync, and the
// directory entries as of the last SyncDir of their directory. Crash then models a power
// failure: every handle dies, each file reverts to its durable content (optionally keeping a
// torn prefix of the bytes appended since, possibly ending in garbage, or a random subset of
// the pages written since, as unordered page writeback leaves it), and creations and removals
// that were not followed by SyncDir are forgotten.
//
// Faults: FailNext makes the next operation of a kind fail (writes, syncs, reads, …); SetLimit makes writes beyond a
// total size fail with ENOSPC (disk full).
//
// All methods are safe for concurrent use; operations are serialized by one mutex.
package crashfs

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math"
	"math/rand/v2"
	"path/filepath"
	"slices"
	"sync"
	"syscall"
	"time"

	"github.com/commitlog-go/commitlog/storage/vfs"
)

// ErrCrashed is returned by every operation on a handle opened before the last Crash.
var ErrCrashed = errors.New("crashfs: file handle from before a crash")

// Op names a kind of operation for FailNext.
type Op int

// Operations that FailNext can make fail.
const (
	OpWrite    Op = iota // File.Write and File.WriteAt
	OpSync               // File.Sync
	OpCreate             // FS.Create
	OpRemove             // FS.Remove
	OpSyncDir            // FS.SyncDir
	OpTruncate           // File.Truncate
	OpRead               // File.ReadAt
	numOps
)

// FS is the crash-simulating file system. Create one with New.
type FS struct {
	mu        sync.Mutex
	files     map[string]*inode // current namespace
	durable   map[string]*inode // namespace as of the last SyncDir of each directory
	dirs      map[string]bool
	locks     map[string]bool
	gen       int // incremented by Crash
	fail      [numOps]fault
	limit     int64 // 0: none
	syncs     int
	syncDelay time.Duration
	hold      chan struct{} // when set, Sync waits for it to be closed
	entered   chan struct{} // Sync signals here when it starts waiting on hold
}

type fault struct {
	err  error
	skip int // operations to let pass before failing
}

type inode struct {
	data    []byte
	durable []byte // content as of the last Sync
	dirty   int64  // lowest position changed since the last Sync (MaxInt64: none)
}

func newInode(data []byte) *inode {
	return &inode{data: data, durable: slices.Clone(data), dirty: math.MaxInt64}
}

func (n *inode) touch(off int64) { n.dirty = min(n.dirty, off) }

// New returns an empty FS.
func New() *FS {
	return &FS{files: map[string]*inode{}, durable: map[string]*inode{}, dirs: map[string]bool{}, locks: map[string]bool{}}
}

var _ vfs.FS = (*FS)(nil)

// FailNext makes the next operation of kind op fail with err (once).
func (f *FS) FailNext(op Op, err error) { f.FailNth(op, 1, err) }

// FailNth lets n-1 operations of kind op pass, then makes the n-th fail with err (once).
func (f *FS) FailNth(op Op, n int, err error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.fail[op] = fault{err: err, skip: n - 1}
}

// SetLimit makes writes fail with ENOSPC once the files' total size would exceed n bytes
// (0: no limit). The write that crosses the limit writes what fits.
func (f *FS) SetLimit(n int64) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.limit = n
}

// SetSyncDelay makes every File.Sync take at least d (without holding the FS lock), like a
// slow disk. Tests use it to make concurrent appenders pile up behind an fsync.
func (f *FS) SetSyncDelay(d time.Duration) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.syncDelay = d
}

// HoldSyncs makes every File.Sync block, until release is called, after signalling on
// entered (buffered; a signal is dropped if the buffer is full). Tests use it to observe what
// happens while an fsync is in progress.
func (f *FS) HoldSyncs() (entered <-chan struct{}, release func()) {
	f.mu.Lock()
	defer f.mu.Unlock()
	hold, ent := make(chan struct{}), make(chan struct{}, 16)
	f.hold, f.entered = hold, ent
	var once sync.Once
	return ent, func() {
		once.Do(func() {
			f.mu.Lock()
			f.hold, f.entered = nil, nil
			f.mu.Unlock()
			close(hold)
		})
	}
}

// Syncs returns the number of successful File.Sync calls so far.
func (f *FS) Syncs() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.syncs
}

// takeFault returns and clears the injected fault for op. f.mu must be held.
func (f *FS) takeFault(op Op) error {
	ft := &f.fail[op]
	if ft.err == nil {
		return nil
	}
	if ft.skip > 0 {
		ft.skip--
		return nil
	}
	err := ft.err
	*ft = fault{}
	return err
}

// CrashMode says what Crash keeps of the bytes appended to a file since its last Sync.
type CrashMode int

// Crash modes.
const (
	// DropUnsynced keeps nothing that was not synced.
	DropUnsynced CrashMode = iota
	// TearUnsynced keeps a random prefix of the bytes appended since the last Sync, and
	// sometimes replaces the last few bytes kept with garbage (a torn sector).
	TearUnsynced
	// DropUnsyncedPages models unordered page writeback: each PageSize page holding bytes
	// written since the last Sync independently keeps its new content or reverts to its
	// durable content (zeros where the file had none), so holes can appear anywhere in the
	// unsynced data with new data after them. The file keeps its new size (usually) or its
	// durable size. Synced bytes are never changed.
	DropUnsyncedPages
)

// PageSize is the page granularity of DropUnsyncedPages.
const PageSize = 4096

// Crash simulates a power failure: every open handle and lock dies, files revert to their
// durable content (see CrashMode; rng drives TearUnsynced and DropUnsyncedPages and may be
// nil for DropUnsynced), and unsynced directory changes are forgotten.
func (f *FS) Crash(mode CrashMode, rng *rand.Rand) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.gen++
	f.locks = map[string]bool{}
	f.fail = [numOps]fault{}
	files := make(map[string]*inode, len(f.durable))
	for name, n := range f.durable {
		content := slices.Clone(n.durable)
		if mode == TearUnsynced && rng != nil && n.dirty >= int64(len(n.durable)) && len(n.data) > len(n.durable) {
			extra := n.data[len(n.durable):]
			k := rng.IntN(len(extra) + 1)
			content = append(content, extra[:k]...)
			if k > 0 && rng.IntN(2) == 0 {
				for i := max(0, len(content)-min(k, 8)); i < len(content); i++ {
					content[i] = byte(rng.Uint32())
				}
			}
		}
		if mode == DropUnsyncedPages && rng != nil {
			content = dropPages(n, rng)
		}
		files[name] = newInode(content)
	}
	f.files = files
	f.durable = make(map[string]*inode, len(files))
	for name, n := range files {
		f.durable[name] = n
	}
}

// ReadFile returns a copy of the current content of name (a test helper).
func (f *FS) ReadFile(name string) ([]byte, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	n, ok := f.files[filepath.Clean(name)]
	if !ok {
		return nil, &fs.PathError{Op: "read", Path: name, Err: fs.ErrNotExist}
	}
	return slices.Clone(n.data), nil
}

// WriteFile replaces (or creates) name with data, durably, directory entry included (a
// test helper to plant files).
func (f *FS) WriteFile(name string, data []byte) {
	f.mu.Lock()
	defer f.mu.Unlock()
	name = filepath.Clean(name)
	n := newInode(slices.Clone(data))
	f.files[name] = n
	f.durable[name] = n
	f.dirs[filepath.Dir(name)] = true
}

// Create implements vfs.FS.
func (f *FS) Create(name string) (vfs.File, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	name = filepath.Clean(name)
	if err := f.takeFault(OpCreate); err != nil {
		return nil, &fs.PathError{Op: "create", Path: name, Err: err}
	}
	if !f.dirs[filepath.Dir(name)] {
		return nil, &fs.PathError{Op: "create", Path: name, Err: fs.ErrNotExist}
	}
	n, ok := f.files[name]
	if ok {
		n.data = n.data[:0]
		n.touch(0)
	} else {
		n = &inode{dirty: 0}
		f.files[name] = n
	}
	return &file{fs: f, n: n, gen: f.gen, name: name}, nil
}

// Open implements vfs.FS.
func (f *FS) Open(name string) (vfs.File, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	name = filepath.Clean(name)
	n, ok := f.files[name]
	if !ok {
		return nil, &fs.PathError{Op: "open", Path: name, Err: fs.ErrNotExist}
	}
	return &file{fs: f, n: n, gen: f.gen, name: name}, nil
}

// Remove implements vfs.FS.
func (f *FS) Remove(name string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	name = filepath.Clean(name)
	if err := f.takeFault(OpRemove); err != nil {
		return &fs.PathError{Op: "remove", Path: name, Err: err}
	}
	if _, ok := f.files[name]; !ok {
		return &fs.PathError{Op: "remove", Path: name, Err: fs.ErrNotExist}
	}
	delete(f.files, name)
	return nil
}

// ReadDir implements vfs.FS.
func (f *FS) ReadDir(dir string) ([]string, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	dir = filepath.Clean(dir)
	if !f.dirs[dir] {
		return nil, &fs.PathError{Op: "readdir", Path: dir, Err: fs.ErrNotExist}
	}
	var names []string
	for name := range f.files {
		if filepath.Dir(name) == dir {
			names = append(names, filepath.Base(name))
		}
	}
	slices.Sort(names)
	return names, nil
}

// MkdirAll implements vfs.FS. Directories are durable at once.
func (f *FS) MkdirAll(dir string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.dirs[filepath.Clean(dir)] = true
	return nil
}

// SyncDir implements vfs.FS: the current entries of dir become durable.
func (f *FS) SyncDir(dir string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	dir = filepath.Clean(dir)
	if err := f.takeFault(OpSyncDir); err != nil {
		return &fs.PathError{Op: "syncdir", Path: dir, Err: err}
	}
	for name := range f.durable {
		if filepath.Dir(name) == dir {
			delete(f.durable, name)
		}
	}
	for name, n := range f.files {
		if filepath.Dir(name) == dir {
			f.durable[name] = n
		}
	}
	return nil
}

// Lock implements vfs.FS. Locks die with Crash.
func (f *FS) Lock(name string) (io.Closer, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	name = filepath.Clean(name)
	if f.locks[name] {
		return nil, fmt.Errorf("lock %s: %w", name, vfs.ErrLocked)
	}
	f.locks[name] = true
	return &lock{fs: f, name: name, gen: f.gen}, nil
}

type lock struct {
	fs   *FS
	name string
	gen  int
	once sync.Once
}

func (l *lock) Close() error {
	l.once.Do(func() {
		l.fs.mu.Lock()
		defer l.fs.mu.Unlock()
		if l.gen == l.fs.gen {
			delete(l.fs.locks, l.name)
		}
	})
	return nil
}

// totalLocked returns the total size of the current files. f.mu must be held.
func (f *FS) totalLocked() int64 {
	var t int64
	for _, n := range f.files {
		t += int64(len(n.data))
	}
	return t
}

type file struct {
	fs     *FS
	n      *inode
	gen    int
	name   string
	closed bool
}

// check returns an error if the handle is dead. f.fs.mu must be held.
func (h *file) check(op string) error {
	switch {
	case h.closed:
		return &fs.PathError{Op: op, Path: h.name, Err: fs.ErrClosed}
	case h.gen != h.fs.gen:
		return &fs.PathError{Op: op, Path: h.name, Err: ErrCrashed}
	}
	return nil
}

func (h *file) ReadAt(p []byte, off int64) (int, error) {
	h.fs.mu.Lock()
	defer h.fs.mu.Unlock()
	if err := h.check("read"); err != nil {
		return 0, err
	}
	if err := h.fs.takeFault(OpRead); err != nil {
		return 0, &fs.PathError{Op: "read", Path: h.name, Err: err}
	}
	if off >= int64(len(h.n.data)) {
		return 0, io.EOF
	}
	n := copy(p, h.n.data[off:])
	if n < len(p) {
		return n, io.EOF
	}
	return n, nil
}

func (h *file) Write(p []byte) (int, error) {
	h.fs.mu.Lock()
	defer h.fs.mu.Unlock()
	return h.writeLocked(p, int64(len(h.n.data)))
}

func (h *file) WriteAt(p []byte, off int64) (int, error) {
	h.fs.mu.Lock()
	defer h.fs.mu.Unlock()
	if off < 0 || off+int64(len(p)) > int64(len(h.n.data)) {
		return 0, &fs.PathError{Op: "writeat", Path: h.name, Err: errors.New("crashfs: WriteAt beyond the end of the file")}
	}
	return h.writeLocked(p, off)
}

func (h *file) writeLocked(p []byte, off int64) (int, error) {
	if err := h.check("write"); err != nil {
		return 0, err
	}
	if err := h.fs.takeFault(OpWrite); err != nil {
		return 0, &fs.PathError{Op: "write", Path: h.name, Err: err}
	}
	var err error
	if h.fs.limit > 0 {
		grow := max(0, off+int64(len(p))-int64(len(h.n.data)))
		if room := h.fs.limit - h.fs.totalLocked(); grow > room {
			p = p[:max(0, int64(len(p))-(grow-max(room, 0)))]
			err = &fs.PathError{Op: "write", Path: h.name, Err: syscall.ENOSPC}
		}
	}
	h.n.touch(off)
	if end := off + int64(len(p)); end > int64(len(h.n.data)) {
		h.n.data = append(h.n.data, make([]byte, end-int64(len(h.n.data)))...)
	}
	copy(h.n.data[off:], p)
	return len(p), err
}

func (h *file) Truncate(size int64) error {
	h.fs.mu.Lock()
	defer h.fs.mu.Unlock()
	if err := h.check("truncate"); err != nil {
		return err
	}
	if err := h.fs.takeFault(OpTruncate); err != nil {
		return &fs.PathError{Op: "truncate", Path: h.name, Err: err}
	}
	if size < int64(len(h.n.data)) {
		h.n.data = h.n.data[:size]
	} else {
		h.n.data = append(h.n.data, make([]byte, size-int64(len(h.n.data)))...)
	}
	h.n.touch(size)
	return nil
}

func (h *file) Sync() error {
	h.fs.mu.Lock()
	delay, hold, entered := h.fs.syncDelay, h.fs.hold, h.fs.entered
	h.fs.mu.Unlock()
	if delay > 0 {
		time.Sleep(delay)
	}
	if hold != nil {
		select {
		case entered <- struct{}{}:
		default:
		}
		<-hold
	}
	h.fs.mu.Lock()
	defer h.fs.mu.Unlock()
	if err := h.check("sync"); err != nil {
		return err
	}
	if err := h.fs.takeFault(OpSync); err != nil {
		return &fs.PathError{Op: "sync", Path: h.name, Err: err}
	}
	n := h.n
	keep := min(n.dirty, int64(len(n.durable)), int64(len(n.data)))
	n.durable = append(n.durable[:keep], n.data[keep:]...)
	n.dirty = math.MaxInt64
	h.fs.syncs++
	return nil
}

func (h *file) Size() (int64, error) {
	h.fs.mu.Lock()
	defer h.fs.mu.Unlock()
	if err := h.check("stat"); err != nil {
		return 0, err
	}
	return int64(len(h.n.data)), nil
}

func (h *file) Close() error {
	h.fs.mu.Lock()
	defer h.fs.mu.Unlock()
	if h.closed {
		return &fs.PathError{Op: "close", Path: h.name, Err: fs.ErrClosed}
	}
	h.closed = true
	return nil
}

// dropPages returns what a power failure leaves of n under DropUnsyncedPages.
func dropPages(n *inode, rng *rand.Rand) []byte {
	size := len(n.data)
	if len(n.data) != len(n.durable) && rng.IntN(4) == 0 {
		size = len(n.durable) // the size change itself was lost
	}
	at := func(b []byte, i int) byte {
		if i < len(b) {
			return b[i]
		}
		return 0
	}
	out := make([]byte, size)
	dirty := int(min(n.dirty, int64(size)))
	for i := range dirty {
		out[i] = at(n.durable, i) // unchanged since the last Sync: data and durable agree
	}
	for page := dirty / PageSize; page*PageSize < size; page++ {
		src := n.data
		if rng.IntN(2) == 0 {
			src = n.durable
		}
		for i := max(page*PageSize, dirty); i < min((page+1)*PageSize, size); i++ {
			out[i] = at(src, i)
		}
	}
	return out
}
