// Package walvfs puts hashicorp/raft-wal's segment files on a storage/vfs.FS: New adapts one to
// raft-wal's file system interface (consensus/raft's Config.WALFS). Tests use it to keep every
// file of a node, Raft's log included, on storage/vfs/crashfs and simulate power failures.
//
// It keeps raft-wal's own file system's durability steps: a created file's directory entry is
// synced with its first Sync, and a deletion is synced at once. raft-wal preallocates segment
// files; this adapter does not (a file grows as it is written; raft-wal reads a short file as
// one that ends in zeros).
package walvfs

import (
	"errors"
	"fmt"
	"io/fs"
	"path/filepath"
	"sync"

	"github.com/hashicorp/raft-wal/types"

	"github.com/commitlog-go/commitlog/storage/vfs"
)

// FS is a vfs.FS seen as raft-wal's types.VFS.
type FS struct {
	fs vfs.FS
}

var _ types.VFS = FS{}

// New returns raft-wal's view of f. Directories are created on demand (raft-wal expects its
// directory to exist; consensus/raft creates it on the real disk only).
func New(f vfs.FS) FS { return FS{fs: f} }

// ListDir implements types.VFS.
func (w FS) ListDir(dir string) ([]string, error) {
	if err := w.fs.MkdirAll(dir); err != nil {
		return nil, err
	}
	return w.fs.ReadDir(dir)
}

// Create implements types.VFS: it fails if the file exists. size is ignored.
func (w FS) Create(dir, name string, _ uint64) (types.WritableFile, error) {
	path := filepath.Join(dir, name)
	if err := w.fs.MkdirAll(dir); err != nil {
		return nil, err
	}
	if f, err := w.fs.Open(path); err == nil {
		_ = f.Close()
		return nil, &fs.PathError{Op: "create", Path: path, Err: fs.ErrExist}
	} else if !errors.Is(err, fs.ErrNotExist) {
		return nil, err
	}
	f, err := w.fs.Create(path)
	if err != nil {
		return nil, err
	}
	return &file{File: f, fs: w.fs, dir: dir, created: true}, nil
}

// Delete implements types.VFS: the removal is durable when it returns.
func (w FS) Delete(dir, name string) error {
	if err := w.fs.Remove(filepath.Join(dir, name)); err != nil {
		return err
	}
	return w.fs.SyncDir(dir)
}

// OpenReader implements types.VFS.
func (w FS) OpenReader(dir, name string) (types.ReadableFile, error) {
	return w.open(dir, name)
}

// OpenWriter implements types.VFS.
func (w FS) OpenWriter(dir, name string) (types.WritableFile, error) {
	return w.open(dir, name)
}

func (w FS) open(dir, name string) (*file, error) {
	f, err := w.fs.Open(filepath.Join(dir, name))
	if err != nil {
		return nil, err // wraps fs.ErrNotExist when missing: raft-wal recreates a lost tail
	}
	return &file{File: f, fs: w.fs, dir: dir}, nil
}

// file is a vfs.File with raft-wal's positional writes.
type file struct {
	vfs.File
	fs  vfs.FS
	dir string

	mu      sync.Mutex
	created bool // its directory entry is not synced yet
}

// WriteAt implements io.WriterAt. vfs.File writes in place only within the file and appends
// at its end: a write past the end extends the file with zeros first.
func (f *file) WriteAt(p []byte, off int64) (int, error) {
	size, err := f.Size()
	if err != nil {
		return 0, err
	}
	if off > size {
		if err := f.Truncate(off); err != nil {
			return 0, err
		}
		size = off
	}
	n := 0
	if off < size {
		in := p[:min(int64(len(p)), size-off)]
		k, err := f.File.WriteAt(in, off)
		n += k
		if err != nil {
			return n, err
		}
	}
	if rest := p[n:]; len(rest) > 0 {
		k, err := f.Write(rest)
		n += k
		if err != nil {
			return n, err
		}
	}
	return n, nil
}

// Sync implements types.WritableFile: the first Sync of a created file also syncs its
// directory, as raft-wal's own file system does.
func (f *file) Sync() error {
	if err := f.File.Sync(); err != nil {
		return err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.created {
		if err := f.fs.SyncDir(f.dir); err != nil {
			return fmt.Errorf("walvfs: sync %s: %w", f.dir, err)
		}
		f.created = false
	}
	return nil
}
