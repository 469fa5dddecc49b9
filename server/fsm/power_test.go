package fsm

import (
	"errors"
	"io"
	"math/rand/v2"
	"runtime"
	"sync"

	"github.com/hashicorp/raft-wal/types"

	"github.com/commitlog-go/commitlog/storage/vfs"
	"github.com/commitlog-go/commitlog/storage/vfs/crashfs"
)

// errPowerOff is what every storage operation of a node returns between its power failure
// and its restart.
var errPowerOff = errors.New("power is off")

// power is one node's power supply in the crash tests: everything the node stores is on it.
// Its FSM log is on fsm (crashfs), Raft's log segments on wal (another crashfs, so that a fault
// injected into the FSM's file system reaches the FSM only), and raft-wal's meta store (the
// segment list, term and vote: BoltDB, which opens its file through os and mmap, not through a
// VFS) stays on the real disk behind a fence.
//
// cut is a power failure at one instant: it waits for storage operations in progress (a
// BoltDB commit in progress completes: it was durable before the power went), then both file
// systems lose what was not synced, and every later operation fails until the node restarts.
// So the state a restart finds is one a real power failure leaves: the meta store as of its
// last commit (BoltDB commits are durable when they return, atomically: its meta pages are
// double-buffered and checksummed), and each file as of its last fsync. What the fence does
// not explore is a BoltDB commit torn by the power failure; BoltDB's own design covers that
// (the older meta page wins), and raft-wal commits its meta only before creating or after
// deleting the files it names, which it then handles missing or left over.
type power struct {
	mu  sync.RWMutex
	off bool
	// halted is closed when the node whose power failed is stopped: see halt.
	halted chan struct{}
	fsm    *crashfs.FS
	wal    *crashfs.FS
}

func newPower() *power { return &power{fsm: crashfs.New(), wal: crashfs.New()} }

// cut fails the power: unsynced data is lost in mode (rng for the torn modes).
func (p *power) cut(mode crashfs.CrashMode, rng *rand.Rand) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.off = true
	p.halted = make(chan struct{})
	p.fsm.Crash(mode, rng)
	p.wal.Crash(mode, rng)
}

// restore turns the power on again (before the node restarts).
func (p *power) restore() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.off = false
	p.halted = nil
}

// stopping releases the goroutines that halt holds: the node is being stopped, and they exit
// instead of returning to code that a machine without power would never run.
func (p *power) stopping() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.halted != nil {
		select {
		case <-p.halted:
		default:
			close(p.halted)
		}
	}
}

// halt stops the calling goroutine of a node whose power failed: it waits until the node is
// stopped, then exits the goroutine (its deferred calls run). A machine without power runs
// nothing; returning errPowerOff instead is right for most operations (the node refuses, and
// stops soon), but hashicorp/raft panics when it cannot save its term, which a real power
// failure never makes it do.
func (p *power) halt() {
	p.mu.RLock()
	h := p.halted
	p.mu.RUnlock()
	if h == nil {
		return // the power is on again: the caller gets its error
	}
	<-h
	runtime.Goexit()
}

// do runs op unless the power is off.
func (p *power) do(op func() error) error {
	p.mu.RLock()
	defer p.mu.RUnlock()
	if p.off {
		return errPowerOff
	}
	return op()
}

// fs returns f (one of p's file systems) behind p's switch.
func (p *power) fs(f vfs.FS) vfs.FS { return &poweredFS{p: p, fs: f} }

// meta wraps raft-wal's meta store behind p's switch (craft.Config.WALMeta).
func (p *power) meta(m types.MetaStore) types.MetaStore { return &poweredMeta{p: p, MetaStore: m} }

type poweredFS struct {
	p  *power
	fs vfs.FS
}

func (f *poweredFS) Create(name string) (vfs.File, error) {
	var h vfs.File
	err := f.p.do(func() (err error) { h, err = f.fs.Create(name); return err })
	if err != nil {
		return nil, err
	}
	return &poweredFile{p: f.p, f: h}, nil
}

func (f *poweredFS) Open(name string) (vfs.File, error) {
	var h vfs.File
	err := f.p.do(func() (err error) { h, err = f.fs.Open(name); return err })
	if err != nil {
		return nil, err
	}
	return &poweredFile{p: f.p, f: h}, nil
}

func (f *poweredFS) Remove(name string) error {
	return f.p.do(func() error { return f.fs.Remove(name) })
}

func (f *poweredFS) ReadDir(dir string) ([]string, error) {
	var names []string
	err := f.p.do(func() (err error) { names, err = f.fs.ReadDir(dir); return err })
	return names, err
}

func (f *poweredFS) MkdirAll(dir string) error {
	return f.p.do(func() error { return f.fs.MkdirAll(dir) })
}

func (f *poweredFS) SyncDir(dir string) error {
	return f.p.do(func() error { return f.fs.SyncDir(dir) })
}

func (f *poweredFS) Lock(name string) (io.Closer, error) {
	var c io.Closer
	err := f.p.do(func() (err error) { c, err = f.fs.Lock(name); return err })
	return c, err
}

// poweredFile is a file behind the switch. Close always works: it only releases the handle.
type poweredFile struct {
	p *power
	f vfs.File
}

func (h *poweredFile) ReadAt(b []byte, off int64) (n int, err error) {
	err = h.p.do(func() error { n, err = h.f.ReadAt(b, off); return err })
	return n, err
}

func (h *poweredFile) Write(b []byte) (n int, err error) {
	err = h.p.do(func() error { n, err = h.f.Write(b); return err })
	return n, err
}

func (h *poweredFile) WriteAt(b []byte, off int64) (n int, err error) {
	err = h.p.do(func() error { n, err = h.f.WriteAt(b, off); return err })
	return n, err
}

func (h *poweredFile) Truncate(size int64) error {
	return h.p.do(func() error { return h.f.Truncate(size) })
}

func (h *poweredFile) Sync() error { return h.p.do(h.f.Sync) }

func (h *poweredFile) Size() (n int64, err error) {
	err = h.p.do(func() error { n, err = h.f.Size(); return err })
	return n, err
}

func (h *poweredFile) Close() error { return h.f.Close() }

// poweredMeta is raft-wal's meta store behind the switch: commits fail once the power is off.
// Reads and Close pass (they change nothing on disk).
type poweredMeta struct {
	p *power
	types.MetaStore
}

func (m *poweredMeta) CommitState(s types.PersistentState) error {
	return m.p.do(func() error { return m.MetaStore.CommitState(s) })
}

// SetStable saves Raft's term and vote: once the power is off, its caller halts (see halt).
func (m *poweredMeta) SetStable(k, v []byte) error {
	err := m.p.do(func() error { return m.MetaStore.SetStable(k, v) })
	if errors.Is(err, errPowerOff) {
		m.p.halt()
	}
	return err
}
